package train

import (
	"fmt"
	"math"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// The ladder network's Γ-model (Rasmus et al. 2015, "Semi-supervised learning with ladder
// networks", section 3.2): a clean and a corrupted pass of the encoder, and a denoising cost
// at the top layer, where the "vanilla" combinator g(z̃, u) estimates the clean pre-activation
// z from the corrupted one z̃ and the batch-normalised corrupted prediction u.

// combinatorParams is the number of per-unit parameters a1…a10 of the vanilla combinator.
const combinatorParams = 10

// combinatorParamName names the combinator's parameters in the optimizer's state.
const combinatorParamName = "ladder/combinator"

// newCombinator returns the combinator's parameters for k units, laid out a1[k], a2[k], …,
// a10[k], at the initial values of the ladder's reference code: a2 = a7 = 1, the others 0
// (so that ẑ starts at 0).
func newCombinator(k int) *optim.Param {
	n := combinatorParams * k
	p := &optim.Param{Name: combinatorParamName, Shape: []int{combinatorParams, k}, Value: make([]float32, n), Grad: make([]float32, n), NoDecay: true}
	for j := 0; j < k; j++ {
		p.Value[1*k+j] = 1 // a2
		p.Value[6*k+j] = 1 // a7
	}
	return p
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// ladderScratch holds the per-step buffers of the top-layer denoising cost.
type ladderScratch struct {
	k            int
	zc           []float32 // the clean pass's logits, normalised by their batch statistics (rows×k)
	mean, invStd []float64 // the clean batch's per-unit statistics of the logits
	cMean, cInv  []float64 // the corrupted batch's per-unit statistics of the logits
	dzt          []float64 // dC/dz̃ (rows×k)
	dzc          []float64 // dC/dz of the clean pass (rows×k), for cleanLoss
	noise        []float32 // the top layer's Gaussian noise (rows×k, in normalised units)
	h, u, du     []float64 // softmax of the corrupted logits, its batch norm, dC/du (rows×k)
	hMean, hInv  []float64 // h's per-unit batch statistics
	lq           []float64 // one row's log-softmax
	dpre, dclean []float32 // dC/d(the head's linear output) of the corrupted and the clean pass
}

func newLadderScratch(k, rows int) *ladderScratch {
	return &ladderScratch{k: k, zc: make([]float32, rows*k), mean: make([]float64, k), invStd: make([]float64, k),
		cMean: make([]float64, k), cInv: make([]float64, k), dzt: make([]float64, rows*k), dzc: make([]float64, rows*k),
		noise: make([]float32, rows*k), h: make([]float64, rows*k), u: make([]float64, rows*k), du: make([]float64, rows*k),
		hMean: make([]float64, k), hInv: make([]float64, k), lq: make([]float64, k), dpre: make([]float32, rows*k), dclean: make([]float32, rows*k)}
}

// ladderBNEps is the epsilon of the denoising cost's batch normalisations.
const ladderBNEps = 1e-5

// batchStats writes the per-column mean and 1/√(var+eps) of v (rows×k, biased variance).
func batchStats[T float32 | float64](mean, invStd []float64, v []T, rows, k int) {
	// Row by row (the rows are contiguous), each column's sums in row order.
	mean, invStd = mean[:k], invStd[:k]
	clear(mean)
	for r := 0; r < rows; r++ {
		for j, x := range v[r*k : (r+1)*k] {
			mean[j] += float64(x)
		}
	}
	for j := range mean {
		mean[j] /= float64(rows)
	}
	clear(invStd)
	for r := 0; r < rows; r++ {
		for j, x := range v[r*k : (r+1)*k] {
			d := float64(x) - mean[j]
			invStd[j] += d * d
		}
	}
	for j, ss := range invStd {
		invStd[j] = 1 / math.Sqrt(ss/float64(rows)+ladderBNEps)
	}
}

// setClean records the clean pass's top pre-activation (the head's linear output, its
// logits before batch norm and noise) normalised by its batch statistics: the denoising
// targets z.
func (s *ladderScratch) setClean(pre []float32, rows int) {
	k := s.k
	batchStats(s.mean, s.invStd, pre, rows, k)
	for r := 0; r < rows; r++ {
		for j := 0; j < k; j++ {
			s.zc[r*k+j] = float32((float64(pre[r*k+j]) - s.mean[j]) * s.invStd[j])
		}
	}
}

// denoisingLoss is the Γ-model's cost on the corrupted pass of m (an nn.OutputLoss), with
// l the head's linear output (its logits before batch norm and noise) and y its logits:
//
//	z̃ = BN(l) + n             BN over the corrupted batch, no scale or shift; n the noise
//	u = BN(softmax(y))        over the batch, no scale or shift
//	ẑ = g(z̃, u) = (z̃ − m(u))·v(u) + m(u)
//	m(u) = a1·σ(a2·u + a3) + a4·u + a5,  v(u) = a6·σ(a7·u + a8) + a9·u + a10
//	C = weight/(rows·k)·Σ (ẑ − z)²        z the clean pass's normalised l
//
// n is the head's own noise (HeadSpec.Noise, which the supervised loss sees too), or
// without one the ladder's draw in s.noise (in the cost only). Without the head's batch
// norm and noise, y = l. Both z̃ and z are batch-normalised, each with its own batch's
// statistics (as the ladder's pre-activations are), so the cost cannot be lowered by
// shrinking the logits' spread. It adds dC/dy into dl (through u's batch norm and softmax),
// writes dC/dl through z̃'s batch norm into s.dpre (for Model.SetHeadGradient), dC/da into
// comb.Grad (which it overwrites), and returns C. It keeps dC/dz for cleanLoss.
func (s *ladderScratch) denoisingLoss(m *nn.Model, comb *optim.Param, weight float64) nn.OutputLoss {
	return func(head int, logits, dl []float32, rows int) float64 {
		if head != 0 {
			return 0
		}
		noise := m.HeadNoise(0, rows)
		if noise == nil {
			noise = s.noise[:rows*s.k]
		}
		return s.cost(comb, weight, m.HeadPre(0, rows), noise, logits, dl, rows)
	}
}

func (s *ladderScratch) cost(comb *optim.Param, weight float64, pre, noise, logits, dl []float32, rows int) float64 {
	k := s.k
	n := rows * k
	a := func(i, j int) float64 { return float64(comb.Value[i*k+j]) }
	ga := comb.Grad
	clear(ga)
	h, u, du, lq, dzt := s.h[:n], s.u[:n], s.du[:n], s.lq, s.dzt[:n]
	batchStats(s.cMean, s.cInv, pre, rows, k)
	for r := 0; r < rows; r++ {
		logSoftmaxRow(lq, logits[r*k:(r+1)*k])
		for j, v := range lq {
			h[r*k+j] = math.Exp(v)
		}
	}
	batchStats(s.hMean, s.hInv, h, rows, k)
	for i := range u {
		j := i % k
		u[i] = (h[i] - s.hMean[j]) * s.hInv[j]
	}
	c := weight / float64(n)
	var total float64
	for r := 0; r < rows; r++ {
		for j := 0; j < k; j++ {
			i := r*k + j
			zt := (float64(pre[i])-s.cMean[j])*s.cInv[j] + float64(noise[i])
			ui := u[i]
			s1 := sigmoid(a(1, j)*ui + a(2, j))
			s2 := sigmoid(a(6, j)*ui + a(7, j))
			mu := a(0, j)*s1 + a(3, j)*ui + a(4, j)
			v := a(5, j)*s2 + a(8, j)*ui + a(9, j)
			zhat := (zt-mu)*v + mu
			diff := zhat - float64(s.zc[i])
			total += diff * diff
			g := 2 * c * diff // dC/dẑ
			s.dzc[i] = -g
			gMu := g * (1 - v)
			gV := g * (zt - mu)
			d1 := s1 * (1 - s1)
			d2 := s2 * (1 - s2)
			ga[0*k+j] += float32(gMu * s1)
			ga[1*k+j] += float32(gMu * a(0, j) * d1 * ui)
			ga[2*k+j] += float32(gMu * a(0, j) * d1)
			ga[3*k+j] += float32(gMu * ui)
			ga[4*k+j] += float32(gMu)
			ga[5*k+j] += float32(gV * s2)
			ga[6*k+j] += float32(gV * a(5, j) * d2 * ui)
			ga[7*k+j] += float32(gV * a(5, j) * d2)
			ga[8*k+j] += float32(gV * ui)
			ga[9*k+j] += float32(gV)
			dzt[i] = g * v
			du[i] = gMu*(a(0, j)*d1*a(1, j)+a(3, j)) + gV*(a(5, j)*d2*a(6, j)+a(8, j))
		}
	}
	// Through z̃'s batch norm of l into dpre, and through u's of h (du becomes dC/dh).
	bnBackward(dzt, func(i int) float64 { return (float64(pre[i]) - s.cMean[i%k]) * s.cInv[i%k] }, s.cInv, rows, k)
	for i, v := range dzt {
		s.dpre[i] = float32(v)
	}
	bnBackward(du, func(i int) float64 { return u[i] }, s.hInv, rows, k)
	// Through h = softmax(l) per row: dl_j = h_j·(dh_j − Σ_m h_m dh_m).
	for r := 0; r < rows; r++ {
		var dot float64
		for j := 0; j < k; j++ {
			dot += h[r*k+j] * du[r*k+j]
		}
		for j := 0; j < k; j++ {
			dl[r*k+j] += float32(h[r*k+j] * (du[r*k+j] - dot))
		}
	}
	return c * total
}

// cleanGrad writes the denoising cost's gradient of the last cost call with respect to the
// clean pass's top pre-activation (through its batch norm) into s.dclean, for a second clean
// pass that repeats the first one's forward (Model.SetHeadGradient), and returns it.
func (s *ladderScratch) cleanGrad(rows int) []float32 {
	k := s.k
	d := s.dzc[:rows*k]
	bnBackward(d, func(i int) float64 { return float64(s.zc[i]) }, s.invStd, rows, k)
	out := s.dclean[:rows*k]
	for i, v := range d {
		out[i] = float32(v)
	}
	return out
}

// bnBackward turns d = dC/dy of y = (x − mean)/σ (per column over the rows, batch
// statistics, no scale or shift; xhat(i) is y) into dC/dx in place:
// dx = (d − mean(d) − y·mean(d·y))/σ.
func bnBackward(d []float64, xhat func(i int) float64, invStd []float64, rows, k int) {
	for j := 0; j < k; j++ {
		var sd, sdy float64
		for r := 0; r < rows; r++ {
			sd += d[r*k+j]
			sdy += d[r*k+j] * xhat(r*k+j)
		}
		sd /= float64(rows)
		sdy /= float64(rows)
		for r := 0; r < rows; r++ {
			i := r*k + j
			d[i] = (d[i] - sd - xhat(i)*sdy) * invStd[j]
		}
	}
}

// bnBackwardRows is bnBackward with y as a slice, row by row: sd and sdy are scratch of k
// values. Each column's sums are taken in row order, as bnBackward's.
func bnBackwardRows[T float32 | float64](d []float64, y []T, invStd, sd, sdy []float64, rows, k int) {
	sd, sdy = sd[:k], sdy[:k]
	clear(sd)
	clear(sdy)
	for r := 0; r < rows; r++ {
		dr, yr := d[r*k:(r+1)*k], y[r*k:(r+1)*k]
		for j, v := range dr {
			sd[j] += v
			sdy[j] += v * float64(yr[j])
		}
	}
	for j := range sd {
		sd[j] /= float64(rows)
		sdy[j] /= float64(rows)
	}
	for r := 0; r < rows; r++ {
		dr, yr := d[r*k:(r+1)*k], y[r*k:(r+1)*k]
		for j, v := range dr {
			dr[j] = (v - sd[j] - float64(yr[j])*sdy[j]) * invStd[j]
		}
	}
}

// noLoss is an OutputLoss of zero.
func noLoss(int, []float32, []float32, int) float64 { return 0 }

// keepLogits is an OutputLoss of zero that hands head 0's logits to keep.
func keepLogits(keep func(logits []float32, rows int)) nn.OutputLoss {
	return func(head int, logits, _ []float32, rows int) float64 {
		if head == 0 {
			keep(logits, rows)
		}
		return 0
	}
}

// checkLadderModel says what a model lacks for the ladder: noise in its hidden layers.
func checkLadderModel(spec nn.Spec) error {
	for _, l := range spec.Layers {
		if l.Type == nn.LayerGaussianNoise && l.Stddev > 0 {
			return nil
		}
	}
	return fmt.Errorf("train: semi method %q needs noise in the hidden layers of its corrupted pass: add { gaussian_noise = 0.3 } after each batch_norm (before the activation) of the layers", SemiLadder)
}
