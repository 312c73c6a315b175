package nn

// Inference (Predict, PredictLoss) runs the network over a bounded number of rows at a time:
// every layer holds its buffers (output, pre-activation, input gradient...) sized for the
// largest forward pass it has seen, and a convolutional layer's are large per row (a 32×28×28
// output is 100 KB a row), so one forward pass over a 10,000-row validation table would make
// the model hold gigabytes for the rest of its life. Eval-mode forward is row-independent
// (batch norm uses its running statistics, GEMM results do not depend on the row count or the
// thread count), so chunked outputs and losses are bit-identical to one pass over all rows.

// inferChunkBytes bounds the activation buffers an inference chunk makes the model hold.
const inferChunkBytes = 32 << 20

// inferChunkMin and inferChunkMax bound the rows of an inference chunk: at least a few rows
// so that GEMM calls stay efficient, and no more than a dense MLP needs for full speed.
const (
	inferChunkMin = 16
	inferChunkMax = 4096
)

// ActivationBytesPerRow estimates the bytes of activation buffers the model holds per row of
// its largest forward pass: per layer its output, pre-activation and one more output-sized
// buffer (batch norm's normalised input, dropout's mask, pooling's argmax) and its input
// gradient; a residual block's inner layers too; the embedding concat, the trunk gradient and
// the heads' logits, probabilities and logit gradients. It is an upper bound for the simpler
// layers, and does not count per-image scratch (a convolution's im2col matrix), which does
// not grow with rows.
func (m *Model) ActivationBytesPerRow() int64 {
	const f32 = 4
	var n int64
	if len(m.embeds) > 0 {
		n += int64(m.trunkIn)
	}
	for _, l := range m.layers {
		n += layerRowFloats(l)
	}
	n += int64(m.trunkOut)
	for _, h := range m.heads {
		n += int64(h.lin.in + 4*h.k)
		if h.bn != nil {
			n += int64(3 * h.k) // its x̂, y and the backward's copy of dL/dlogits
		}
	}
	return f32 * n
}

// layerRowFloats is ActivationBytesPerRow's count of float32 per row for one layer.
func layerRowFloats(l layer) int64 {
	n := int64(l.inWidth() + 3*l.outWidth())
	if r, ok := l.(*residual); ok {
		for _, s := range r.sublayers() {
			n += layerRowFloats(s)
		}
	}
	return n
}

// InferenceRows is the number of rows Predict and PredictLoss forward at a time: as many as
// keep the activation buffers under 32 MiB (between 16 and 4096 rows), or the largest batch
// the model has already been sized for (by training), whose buffers it holds anyway.
func (m *Model) InferenceRows() int {
	return max(m.rows, inferRowsFor(m.ActivationBytesPerRow(), inferChunkBytes))
}

// inferRowsFor is the row count whose activation buffers fit budget bytes, clamped to
// [inferChunkMin, inferChunkMax].
func inferRowsFor(perRow, budget int64) int {
	if perRow <= 0 {
		return inferChunkMax
	}
	return int(min(max(budget/perRow, inferChunkMin), inferChunkMax))
}

// subBatch returns rows [lo, hi) of b.
func subBatch(b Batch, numInputs, lo, hi int) Batch {
	sub := Batch{Rows: hi - lo, X: b.X[lo*numInputs : hi*numInputs]}
	if len(b.Cat) > 0 {
		sub.Cat = make([][]int32, len(b.Cat))
		for i, c := range b.Cat {
			sub.Cat[i] = c[lo:hi]
		}
	}
	return sub
}

// PredictLoss runs the forward pass in eval mode over the whole batch, chunk by chunk (see
// InferenceRows), and returns both the per-head outputs (as Predict) and the loss (as
// EvalLoss, computed over all rows at once from the chunks' logits, so it is the same number
// as one pass over all rows): the trainer's per-epoch validation needs both, and one pass
// costs half of calling the two.
func (m *Model) PredictLoss(b Batch, t Targets) (Outputs, Loss, error) {
	return m.predictLoss(b, t, m.InferenceRows())
}

// predictLoss is PredictLoss with chunks of chunk rows.
func (m *Model) predictLoss(b Batch, t Targets, chunk int) (Outputs, Loss, error) {
	if err := m.checkBatch(b); err != nil {
		return Outputs{}, Loss{}, err
	}
	logits := make([][]float32, len(m.heads))
	for i, h := range m.heads {
		logits[i] = make([]float32, b.Rows*h.k)
	}
	out, err := m.predictChunks(b, chunk, func(lo, hi int) {
		for i, h := range m.heads {
			copy(logits[i][lo*h.k:hi*h.k], h.logits(hi-lo))
		}
	})
	if err != nil {
		return Outputs{}, Loss{}, err
	}
	loss, err := m.lossesOf(logits, t, b.Rows, false)
	if err != nil {
		return Outputs{}, Loss{}, err
	}
	return out, loss, nil
}

// predictChunks runs the eval-mode forward pass over b, chunk rows at a time, writes the
// heads' outputs into freshly allocated Outputs and calls each (when not nil) after every
// chunk's forward pass, with the chunk's rows [lo, hi) (the heads' logits are then in their
// buffers).
func (m *Model) predictChunks(b Batch, chunk int, each func(lo, hi int)) (Outputs, error) {
	out := m.newOutputs(b.Rows)
	chunk = max(chunk, 1)
	for lo := 0; lo < b.Rows; lo += chunk {
		hi := min(lo+chunk, b.Rows)
		sub := b
		if lo > 0 || hi < b.Rows {
			sub = subBatch(b, m.numInputs, lo, hi)
		}
		m.forward(sub, false)
		if err := m.customErr(); err != nil {
			return Outputs{}, err
		}
		for i, h := range m.heads {
			m.headOutputTo(out.Heads[i][lo*out.Width[i]:hi*out.Width[i]], h, sub.Rows)
		}
		if each != nil {
			each(lo, hi)
		}
	}
	return out, nil
}

// newOutputs allocates per-head outputs for rows rows (see Outputs for the widths).
func (m *Model) newOutputs(rows int) Outputs {
	out := Outputs{Heads: make([][]float32, len(m.heads)), Width: make([]int, len(m.heads))}
	for i, h := range m.heads {
		w := h.k
		if h.spec.Kind == HeadBinary {
			w = 2
		}
		out.Width[i] = w
		out.Heads[i] = make([]float32, rows*w)
	}
	return out
}
