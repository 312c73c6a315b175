package nn

// PredictLoss runs one forward pass in eval mode over the whole batch and returns both the
// per-head outputs (as Predict) and the loss (as EvalLoss): the trainer's per-epoch
// validation needs both, and one pass costs half of calling the two.
func (m *Model) PredictLoss(b Batch, t Targets) (Outputs, Loss, error) {
	if err := m.checkBatch(b); err != nil {
		return Outputs{}, Loss{}, err
	}
	m.forward(b, false)
	if err := m.customErr(); err != nil {
		return Outputs{}, Loss{}, err
	}
	loss, err := m.losses(t, b.Rows, false)
	if err != nil {
		return Outputs{}, Loss{}, err
	}
	out := m.newOutputs(b.Rows)
	for i, h := range m.heads {
		m.headOutputTo(out.Heads[i], h, b.Rows)
	}
	return out, loss, nil
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
