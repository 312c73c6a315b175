package train

import (
	"math"

	"github.com/pipe-ml/pipe/nn"
)

// The consistency losses of semi-supervised training, as nn.OutputLoss functions of a softmax
// head's logits. Each is a mean over the batch's rows, times weight, and adds weight·dL/dz
// into dz. Targets (p) are constants: no gradient flows into them.

// softmaxRowsTo writes softmax(logits) row by row into dst (rows×k).
func softmaxRowsTo(dst, logits []float32, k int) {
	for r := 0; r < len(logits)/k; r++ {
		z, p := logits[r*k:(r+1)*k], dst[r*k:(r+1)*k]
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
		for j := range p {
			p[j] = float32(float64(p[j]) / s)
		}
	}
}

// logSoftmaxRow returns log softmax(z) in out (float64) for one row.
func logSoftmaxRow(out []float64, z []float32) {
	mx := z[0]
	for _, v := range z[1:] {
		mx = max(mx, v)
	}
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v - mx))
	}
	ls := math.Log(s)
	for j, v := range z {
		out[j] = float64(v-mx) - ls
	}
}

// klLoss is weight·mean_r KL(p_r ‖ softmax(z_r)) = weight·mean_r Σ_j p_j(log p_j − log q_j),
// gradient weight·(q − p)/rows: VAT's virtual adversarial loss.
func klLoss(p []float32, k int, weight float64) nn.OutputLoss {
	lq := make([]float64, k)
	return func(head int, logits, dz []float32, rows int) float64 {
		if head != 0 {
			return 0
		}
		var total float64
		c := weight / float64(rows)
		for r := 0; r < rows; r++ {
			logSoftmaxRow(lq, logits[r*k:(r+1)*k])
			pr, d := p[r*k:(r+1)*k], dz[r*k:(r+1)*k]
			for j, pj := range pr {
				if pj > 0 {
					total += float64(pj) * (math.Log(float64(pj)) - lq[j])
				}
				d[j] += float32(c * (math.Exp(lq[j]) - float64(pj)))
			}
		}
		return c * total
	}
}

// mseLoss is weight·mean_r Σ_j (q_j − p_j)², q = softmax(z): the consistency cost of the
// Π-model and Mean Teacher (summed over classes; the papers' mean over classes is this
// divided by the number of classes). Its gradient goes through the softmax Jacobian:
// dL/dz_j = q_j·(g_j − Σ_k q_k g_k) with g = 2·weight·(q − p)/rows.
func mseLoss(p []float32, k int, weight float64) nn.OutputLoss {
	lq := make([]float64, k)
	g := make([]float64, k)
	return func(head int, logits, dz []float32, rows int) float64 {
		if head != 0 {
			return 0
		}
		var total float64
		c := weight / float64(rows)
		for r := 0; r < rows; r++ {
			logSoftmaxRow(lq, logits[r*k:(r+1)*k])
			pr, d := p[r*k:(r+1)*k], dz[r*k:(r+1)*k]
			var dot float64
			for j := range lq {
				q := math.Exp(lq[j])
				diff := q - float64(pr[j])
				total += diff * diff
				g[j] = 2 * c * diff
				dot += q * g[j]
			}
			for j := range lq {
				d[j] += float32(math.Exp(lq[j]) * (g[j] - dot))
			}
		}
		return c * total
	}
}

// entropyLoss is weight·mean_r H(softmax(z_r)), H = −Σ q log q (entropy minimisation),
// gradient dH/dz_j = −q_j(log q_j + H). If keep is not nil, the softmax of the rows is also
// written there (the clean predictions VAT needs).
func entropyLoss(k int, weight float64, keep []float32) nn.OutputLoss {
	lq := make([]float64, k)
	return func(head int, logits, dz []float32, rows int) float64 {
		if head != 0 {
			return 0
		}
		var total float64
		c := weight / float64(rows)
		for r := 0; r < rows; r++ {
			logSoftmaxRow(lq, logits[r*k:(r+1)*k])
			var h float64
			for _, l := range lq {
				h -= math.Exp(l) * l
			}
			total += h
			d := dz[r*k : (r+1)*k]
			for j, l := range lq {
				q := math.Exp(l)
				if keep != nil {
					keep[r*k+j] = float32(q)
				}
				if weight != 0 {
					d[j] += float32(-c * q * (l + h))
				}
			}
		}
		return c * total
	}
}

// keepSoftmax is an OutputLoss of zero that records softmax(z) of head 0 into dst.
func keepSoftmax(dst []float32, k int) nn.OutputLoss {
	return func(head int, logits, _ []float32, rows int) float64 {
		if head == 0 {
			softmaxRowsTo(dst[:rows*k], logits[:rows*k], k)
		}
		return 0
	}
}

// sigmoidRampup is the ramp-up of the consistency weight of Laine & Aila and Mean Teacher:
// exp(−5(1 − t)²) for t = progress/length in [0, 1], 1 after; 1 when length ≤ 0.
func sigmoidRampup(progress, length float64) float64 {
	if length <= 0 || progress >= length {
		return 1
	}
	t := 1 - max(progress, 0)/length
	return math.Exp(-5 * t * t)
}
