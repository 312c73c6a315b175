package nn

import (
	"fmt"
	"math"

	"github.com/pipe-ml/pipe/nn/optim"
)

// head is a linear output layer (optionally batch-normalised) plus its loss.
type head struct {
	spec         HeadSpec
	lin          *dense
	bn           *batchNorm // nil without HeadSpec.BatchNorm
	dbn          []float32  // rows×k: dL/dlogits through bn (bn's backward works in place)
	k            int        // logits per row
	classWeights []float32  // nil: all 1
	weight       float64    // loss weight
	probs        []float32  // rows×k: softmax probabilities, sigmoid p, or regression values
	dz           []float32  // dL/dlogits
	// noise holds the last training pass's draws of HeadSpec.Noise (rows×k; in normalised
	// units with bn), noisy whether that pass drew them, out the noisy logits without bn.
	noise, out []float32
	noisy      bool
	gNoise     []float64 // γ's gradient through the noise (k)
	// extra is added to dL/d(linear output) by backward (Model.SetHeadGradient), or nil.
	extra []float32
}

func (h *head) alloc(rows int) {
	h.lin.alloc(rows)
	h.probs = grow(h.probs, rows*h.k)
	h.dz = grow(h.dz, rows*h.k)
	if h.bn != nil {
		h.bn.alloc(rows)
	}
	h.dbn = grow(h.dbn, rows*h.k)
	if h.spec.Noise > 0 {
		h.noise = grow(h.noise, rows*h.k)
		h.out = grow(h.out, rows*h.k)
	}
}

// forward computes the head's logits from the trunk's output x.
func (h *head) forward(rc *runCtx, x []float32, rows int) {
	y := h.lin.forward(rc, x, rows)
	if h.bn != nil {
		h.bn.forward(rc, y, rows)
	}
	h.noisy = rc.train && !rc.pass.NoNoise && h.spec.Noise > 0
	if !h.noisy {
		return
	}
	n, k := rows*h.k, h.k
	noise := h.noise[:n]
	for i := range noise {
		noise[i] = float32(rc.rng.NormFloat64() * h.spec.Noise)
	}
	if h.bn != nil {
		// (x̂ + n)·γ + β: the noise in normalised units, scaled with the signal.
		g, y := h.bn.gamma.Value, h.bn.y[:n]
		for i, v := range noise {
			y[i] += g[i%k] * v
		}
		return
	}
	out := h.out[:n]
	for i, v := range y[:n] {
		out[i] = v + noise[i]
	}
}

// logits are the head's logits of the last forward pass (rows×k).
func (h *head) logits(rows int) []float32 {
	switch {
	case h.bn != nil:
		return h.bn.y[:rows*h.k]
	case h.noisy:
		return h.out[:rows*h.k]
	}
	return h.lin.y[:rows*h.k]
}

// pre is the head's linear output of the last forward pass (rows×k): its logits before batch
// norm and noise.
func (h *head) pre(rows int) []float32 { return h.lin.y[:rows*h.k] }

// noiseOf is the noise of the last forward pass (rows×k), or nil if it drew none.
func (h *head) noiseOf(rows int) []float32 {
	if !h.noisy {
		return nil
	}
	return h.noise[:rows*h.k]
}

// backward backpropagates dz = dL/dlogits (left unchanged) into the head's params and
// returns dL/dx when needDX.
func (h *head) backward(rc *runCtx, dz []float32, rows int, needDX bool) []float32 {
	k := h.k
	if h.bn != nil {
		if h.noisy && !h.bn.gamma.Frozen {
			// y = (x̂ + n)·γ + β: γ's gradient has Σ dL/dy·n besides batch norm's Σ dL/dy·x̂
			// (which backward writes).
			if h.gNoise == nil {
				h.gNoise = make([]float64, k)
			}
			acc := h.gNoise
			clear(acc)
			for r := 0; r < rows; r++ {
				nr := h.noise[r*k : (r+1)*k]
				for j, v := range dz[r*k : (r+1)*k] {
					acc[j] += float64(v) * float64(nr[j])
				}
			}
			defer func() {
				for j, v := range acc {
					h.bn.gamma.Grad[j] += float32(v)
				}
			}()
		}
		d := h.dbn[:rows*k]
		copy(d, dz)
		dz = h.bn.backward(rc, d, rows, true)
	}
	if h.extra != nil {
		if h.bn == nil {
			d := h.dbn[:rows*k]
			copy(d, dz)
			dz = d
		}
		for i, v := range h.extra[:rows*k] {
			dz[i] += v
		}
	}
	return h.lin.backward(rc, dz, rows, needDX)
}

// params are the head's trainable params; buffers its batch norm's running statistics.
func (h *head) params() []*optim.Param {
	if h.bn != nil {
		return append(h.lin.params(), h.bn.params()...)
	}
	return h.lin.params()
}

func (h *head) buffers() []*optim.Param {
	if h.bn != nil {
		return h.bn.buffers()
	}
	return nil
}

// lossTo computes the head's mean loss over present rows from logits (rows×k), writes
// scale·dL/dlogits into h.dz when grad is set, and returns (mean loss, Σ weights of present
// rows). A row with a missing target contributes nothing; the mean is Σw·ℓ/Σw over present
// rows (present values for regression), w = sample weight × class weight. With soft targets
// (t.Soft, see HeadTargets) the class weight of a row is its class mix Σ_j t_j·w_j.
func (h *head) lossTo(logits []float32, t HeadTargets, sampleW []float32, rows int, scale float64, grad bool) (float64, float64) {
	k := h.k
	logits = logits[:rows*k]
	h.probs = grow(h.probs, rows*k) // scratch; more rows than the buffers' when PredictLoss chunks
	probs := h.probs
	var dz []float32
	if grad {
		dz = h.dz[:rows*k]
	}
	soft := len(t.Soft) > 0
	tw := h.targetWidth()
	rowWeight := func(r int, label int32) float64 {
		w := 1.0
		if sampleW != nil {
			w = float64(sampleW[r])
		}
		switch {
		case h.classWeights == nil || label < 0:
		case soft:
			var mix float64
			for j, tj := range t.Soft[r*tw : (r+1)*tw] {
				mix += float64(tj) * float64(h.classWeights[j])
			}
			w *= mix
		case int(label) < len(h.classWeights):
			w *= float64(h.classWeights[label])
		}
		return w
	}
	switch h.spec.Kind {
	case HeadSoftmax:
		var wsum float64
		for r := 0; r < rows; r++ {
			if l := t.Labels[r]; l >= 0 {
				wsum += rowWeight(r, l)
			}
		}
		eps := h.spec.LabelSmoothing
		var total float64
		for r := 0; r < rows; r++ {
			z, p := logits[r*k:r*k+k], probs[r*k:r*k+k]
			mx := z[0]
			for _, v := range z[1:] {
				mx = max(mx, v)
			}
			var s float64
			for j, v := range z {
				e := math.Exp(float64(v - mx))
				p[j] = float32(e)
				s += e
			}
			inv := 1 / s
			logS := math.Log(s)
			for j := range p {
				p[j] = float32(float64(p[j]) * inv)
			}
			l := t.Labels[r]
			var d []float32
			if grad {
				d = dz[r*k : r*k+k]
			}
			if l < 0 || wsum == 0 {
				if grad {
					clear(d)
				}
				continue
			}
			w := rowWeight(r, l)
			if soft {
				// Cross-entropy with the (smoothed) distribution q: −Σ q_j·log p_j, gradient p − q.
				q := t.Soft[r*k : r*k+k]
				var lr float64
				for j, v := range z {
					lr -= (float64(q[j])*(1-eps) + eps/float64(k)) * (float64(v-mx) - logS)
				}
				total += w * lr
				if grad {
					c := float32(scale * w / wsum)
					for j, pv := range p {
						d[j] = c * (pv - float32(float64(q[j])*(1-eps)+eps/float64(k)))
					}
				}
				continue
			}
			var lr float64
			if eps == 0 {
				lr = -(float64(z[l]-mx) - logS)
			} else {
				var sumLog float64
				for _, v := range z {
					sumLog += float64(v-mx) - logS
				}
				lr = -(1-eps)*(float64(z[l]-mx)-logS) - eps/float64(k)*sumLog
			}
			total += w * lr
			if grad {
				c := float32(scale * w / wsum)
				off := float32(eps / float64(k))
				for j, pv := range p {
					d[j] = c * (pv - off)
				}
				d[l] -= c * float32(1-eps)
			}
		}
		if wsum == 0 {
			return 0, 0
		}
		return total / wsum, wsum
	case HeadBinary:
		var wsum float64
		for r := 0; r < rows; r++ {
			if l := t.Labels[r]; l >= 0 {
				wsum += rowWeight(r, l)
			}
		}
		eps := h.spec.LabelSmoothing
		var total float64
		for r := 0; r < rows; r++ {
			z := float64(logits[r])
			p := sigmoidExact(logits[r])
			probs[r] = p
			l := t.Labels[r]
			if l < 0 || wsum == 0 {
				if grad {
					dz[r] = 0
				}
				continue
			}
			w := rowWeight(r, l)
			tt := float64(l)*(1-eps) + eps/2
			if soft {
				tt = float64(t.Soft[2*r+1])*(1-eps) + eps/2
			}
			// softplus(z) − t·z, stable.
			total += w * (max(z, 0) - z*tt + math.Log1p(math.Exp(-math.Abs(z))))
			if grad {
				dz[r] = float32(scale * w / wsum * (float64(p) - tt))
			}
		}
		if wsum == 0 {
			return 0, 0
		}
		return total / wsum, wsum
	default:
		delta := h.spec.HuberDelta
		if delta == 0 {
			delta = 1
		}
		var wsum float64
		for r := 0; r < rows; r++ {
			for j := 0; j < k; j++ {
				if !math.IsNaN(float64(t.Values[r*k+j])) {
					wsum += rowWeight(r, -1)
				}
			}
		}
		copy(probs, logits)
		var total float64
		for i, y := range logits {
			tv := t.Values[i]
			if math.IsNaN(float64(tv)) || wsum == 0 {
				if grad {
					dz[i] = 0
				}
				continue
			}
			w := rowWeight(i/k, -1)
			d := float64(y) - float64(tv)
			var l, g float64
			switch h.spec.Loss {
			case LossMAE:
				l = math.Abs(d)
				if d > 0 {
					g = 1
				} else if d < 0 {
					g = -1
				}
			case LossHuber:
				if math.Abs(d) <= delta {
					l, g = 0.5*d*d, d
				} else {
					l = delta * (math.Abs(d) - 0.5*delta)
					g = math.Copysign(delta, d)
				}
			default:
				l, g = d*d, 2*d
			}
			total += w * l
			if grad {
				dz[i] = float32(scale * w / wsum * g)
			}
		}
		if wsum == 0 {
			return 0, 0
		}
		return total / wsum, wsum
	}
}

// checkTargets validates t against the head for a batch of rows.
func (h *head) checkTargets(t HeadTargets, rows int) error {
	switch h.spec.Kind {
	case HeadSoftmax, HeadBinary:
		if len(t.Labels) < rows {
			return fmt.Errorf("head %q: %d labels for %d rows", h.spec.Name, len(t.Labels), rows)
		}
		limit := int32(h.k)
		if h.spec.Kind == HeadBinary {
			limit = 2
		}
		for _, l := range t.Labels[:rows] {
			if l >= limit {
				return fmt.Errorf("head %q: label %d out of range [0, %d) (use a negative label for missing)", h.spec.Name, l, limit)
			}
		}
		if len(t.Soft) > 0 {
			return h.checkSoft(t, rows)
		}
	default:
		if len(t.Values) < rows*h.k {
			return fmt.Errorf("head %q: %d target values for %d rows × %d outputs", h.spec.Name, len(t.Values), rows, h.k)
		}
	}
	return nil
}

// softTolerance is how far from 1 a soft target row may sum (float32 mixing rounds).
const softTolerance = 1e-3

// targetWidth is the number of classes a classification head's targets range over (2 for a
// binary head, whose logit is one).
func (h *head) targetWidth() int {
	if h.spec.Kind == HeadBinary {
		return 2
	}
	return h.k
}

// checkSoft validates the soft targets of the present rows: finite, non-negative, each row a
// distribution.
func (h *head) checkSoft(t HeadTargets, rows int) error {
	w := h.targetWidth()
	if len(t.Soft) < rows*w {
		return fmt.Errorf("head %q: %d soft targets for %d rows × %d classes", h.spec.Name, len(t.Soft), rows, w)
	}
	for r, l := range t.Labels[:rows] {
		if l < 0 {
			continue
		}
		var sum float64
		for j, v := range t.Soft[r*w : (r+1)*w] {
			if !(v >= 0) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("head %q: soft target of row %d, class %d is %g: soft targets must be finite and ≥ 0", h.spec.Name, r, j, v)
			}
			sum += float64(v)
		}
		if math.Abs(sum-1) > softTolerance {
			return fmt.Errorf("head %q: soft targets of row %d sum to %.4g, want 1 (±%g): each row is a class distribution (mark a missing row with a negative label)", h.spec.Name, r, sum, softTolerance)
		}
	}
	return nil
}
