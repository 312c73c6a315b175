package train

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/gemm"
	"github.com/pipe-ml/pipe/nn/optim"
)

// The full ladder network (Rasmus et al. 2015, Algorithm 1; Semi.Decoder = "full"): a
// decoder that mirrors the encoder top-down, with a lateral connection and a denoising cost
// at every layer. Its levels are l = 0 (the numeric inputs), 1…L−1 (every dense layer's
// pre-activation, batch-normalised) and L (the head's logits):
//
//	clean pass:      z(l) = (z_pre(l) − μ(l))/σ(l), μ and σ the clean batch's statistics;
//	                 z(0) = x, μ(0) = 0, σ(0) = 1
//	corrupted pass:  z̃(l) = BN(z̃_pre(l)) + n(l), BN over the corrupted batch; n(l) the noise
//	                 of the gaussian_noise layer after the batch norm (0 without one), n(0)
//	                 and n(L) of stddev Semi.Noise; z̃(0) = x + n(0)
//	decoder:         u(L) = BN(softmax(z̃_pre(L))), u(l) = BN(ẑ(l+1)·V(l)) for l < L,
//	                 ẑ(l) = g(z̃(l), u(l)) with the vanilla combinator's per-unit a1…a10
//	cost:            C = Σ_l λ_l/(rows·width_l)·‖(ẑ(l) − μ(l))/σ(l) − z(l)‖²
//
// (Semi.EstimateNorm "clean", the paper's). With EstimateNorm "none" the cost compares ẑ(l)
// itself with z(l), as the Γ-model does at the top: ẑ then lives in z's normalised units, and
// the cost has no path through μ and σ into the encoder (through which, with "clean", it can
// move the dense layers' biases and scales, which batch norm otherwise makes irrelevant).
//
// V(l) is a learned width_{l+1}×width_l matrix. The cost's gradient reaches the corrupted
// pass through z̃ (at the dense layers' outputs and the logits) and the clean pass through
// z(l), μ(l) and σ(l) (a second clean pass backpropagates it), as in the reference code.
//
// The corrupted encoder here adds its noise after the batch norm's scale and shift
// (dense → batch_norm → gaussian_noise → activation), the paper before them; z̃ is the
// paper's either way (noise in normalised units).

// Ladder decoders (Semi.Decoder), and how the full ladder normalises its estimates ẑ
// before comparing them with the clean z (Semi.EstimateNorm).
const (
	LadderTop           = "top"
	LadderFull          = "full"
	LadderEstimateClean = "clean"
	LadderEstimateNone  = "none"
)

// streamLadderInit seeds the full ladder decoder's initial V weights.
const streamLadderInit = 8

// ladderTap is one hidden level of the full ladder: a dense layer's pre-activation.
type ladderTap struct {
	name  string
	dense int // the dense layer's index in the trunk (LayerTensors order)
	bn    int // the batch norm after it
	noise int // the gaussian_noise layer after the batch norm, or −1
	width int
}

// CheckLadderLayers says whether the full ladder's decoder can mirror layers (decoder =
// "full"; "top" and "" take any layers): each dense layer must be linear (activation =
// "linear" or unset, no dropout) and followed by a batch_norm, optionally a gaussian_noise
// after it, and activation layers; any other layer (conv, residual, dropout, layer_norm,
// custom, a batch_norm or gaussian_noise elsewhere) has no mirror in the decoder and is an
// error naming it (by Name, else by position and type).
func CheckLadderLayers(decoder string, layers []nn.LayerSpec) error {
	_, err := ladderTaps(decoder, layers)
	return err
}

func ladderTaps(decoder string, layers []nn.LayerSpec) ([]ladderTap, error) {
	if decoder != LadderFull {
		return nil, nil
	}
	name := func(i int) string {
		if layers[i].Name != "" {
			return fmt.Sprintf("layer %q (%s)", layers[i].Name, layers[i].Type)
		}
		return fmt.Sprintf("layer %d (%s)", i+1, layers[i].Type)
	}
	var taps []ladderTap
	for i := 0; i < len(layers); i++ {
		l := layers[i]
		switch l.Type {
		case nn.LayerActivation:
			continue
		case nn.LayerDense:
		default:
			return nil, fmt.Errorf("train: semi ladder decoder %q: %s has no mirror in the ladder's decoder, which takes dense (activation = \"linear\") → batch_norm → gaussian_noise → activation layers only: remove it, or use decoder = %q", LadderFull, name(i), LadderTop)
		}
		if l.Activation != "" && l.Activation != "linear" {
			return nil, fmt.Errorf("train: semi ladder decoder %q: %s has activation %q: the lateral connection needs the pre-activation; set activation = \"linear\" and put { batch_norm = true }, { gaussian_noise = 0.3 }, { activation = %q } after it", LadderFull, name(i), l.Activation, l.Activation)
		}
		if l.Dropout > 0 {
			return nil, fmt.Errorf("train: semi ladder decoder %q: %s has dropout, which the ladder's decoder cannot mirror: remove it (the corrupted pass's noise is the gaussian_noise layers)", LadderFull, name(i))
		}
		if i+1 >= len(layers) || layers[i+1].Type != nn.LayerBatchNorm {
			return nil, fmt.Errorf("train: semi ladder decoder %q: %s is not followed by { batch_norm = true }: the lateral connection takes the batch-normalised pre-activation", LadderFull, name(i))
		}
		tap := ladderTap{name: l.Name, dense: i, bn: i + 1, noise: -1, width: l.Units}
		i++
		if i+1 < len(layers) && layers[i+1].Type == nn.LayerGaussianNoise {
			tap.noise = i + 1
			i++
		}
		taps = append(taps, tap)
	}
	return taps, nil
}

// ladderLevel is one level of the full ladder's decoder and its per-step buffers.
type ladderLevel struct {
	w      int
	lambda float64
	comb   *optim.Param // the combinator's a1…a10 (10×w)
	v      *optim.Param // V(l): level l+1 to l (w_{l+1}×w); nil at the top

	z         []float32 // the clean pass's normalised pre-activation (rows×w)
	mean, inv []float64 // its batch statistics (0 and 1 at the input)
	zn        []float32 // the corrupted pass's normalised pre-activation, before the noise
	zt        []float32 // z̃ = zn + noise
	cInv      []float64 // 1/σ of the corrupted batch
	u         []float32 // the decoder's BN(·) (rows×w)
	uMean     []float64
	uInv      []float64
	p         []float32 // the top-down input of u: ẑ(l+1)·V(l) (rows×w); at the top softmax
	zhat      []float32 // ẑ
	diff      []float64 // (ẑ − μ)/σ − z
	dzhat     []float32 // dC/dẑ
	du        []float64 // dC/du, then dC/dp
	dzt       []float64 // dC/dz̃, then dC/dz̃_pre
	dp        []float32
	dclean    []float32 // dC/dz_pre of the clean pass (hidden levels)
	dcorr     []float32 // dC/dz̃_pre of the corrupted pass (hidden levels)
	gMu, gInv []float64 // dC/dμ, dC/d(1/σ)
	s1, s2    []float64 // the combinator's sigmoids of the last forward (rows×w), for the backward
	sd, sdy   []float64 // bnBackwardRows's scratch (w)
	// hatMean and hatInv normalise ẑ before it is compared with z: mean and inv (the
	// paper), or 0 and 1 (ladderDirect).
	hatMean, hatInv []float64
}

// fullLadder is the full ladder's decoder (see the comment at the top of the file).
type fullLadder struct {
	taps      []ladderTap
	levels    []*ladderLevel // 0 = inputs … L = logits
	params    []*optim.Param // the decoder's params: combinators bottom-up, then the Vs
	cleanX    []float32      // the step's clean inputs (rows×w0)
	topNoise  []float32      // n(L) (rows×k), drawn by the semi run when the head has no noise
	dpre      []float32      // dC/d(the corrupted pass's head linear output) (rows×k)
	cleanGrad [][]float32    // per trunk layer: the clean pass's injected gradients
	corrGrad  [][]float32    // per trunk layer: the corrupted pass's
	lq        []float64
	gemm      gemm.Backend
	direct    bool // compare ẑ itself with z (no normalisation of ẑ by the clean statistics)
}

// newFullLadder builds the decoder of model spec (checked by ladderTaps) for batches of up
// to rows rows, with weights λ (inputs first, logits last) and V drawn from seed.
func newFullLadder(spec nn.Spec, weights []float64, estimateNorm string, rows int, seed uint64) (*fullLadder, error) {
	if len(spec.Embeddings) > 0 {
		return nil, fmt.Errorf("train: semi ladder decoder %q mirrors numeric inputs only; this model has %d embeddings: use decoder = %q", LadderFull, len(spec.Embeddings), LadderTop)
	}
	taps, err := ladderTaps(LadderFull, spec.Layers)
	if err != nil {
		return nil, err
	}
	k := spec.Heads[0].Classes
	widths := []int{spec.NumInputs}
	for _, t := range taps {
		widths = append(widths, t.width)
	}
	widths = append(widths, k)
	if len(weights) != len(widths) {
		return nil, fmt.Errorf("train: semi ladder decoder %q: weights has %d values; this model's ladder has %d levels (the inputs, %d dense layers, the logits), one weight each, inputs first (the paper's for 784-1000-500-250-250-250-10: [1000, 10, 0.1, 0.1, 0.1, 0.1, 0.1])",
			LadderFull, len(weights), len(widths), len(taps))
	}
	for i, w := range weights {
		if w < 0 || !finite(w) {
			return nil, fmt.Errorf("train: semi ladder weights[%d] = %g: want a finite value >= 0", i, w)
		}
	}
	rng := rand.New(rand.NewPCG(seed, streamLadderInit))
	f := &fullLadder{taps: taps, cleanX: make([]float32, rows*widths[0]), topNoise: make([]float32, rows*k), dpre: make([]float32, rows*k), lq: make([]float64, k), gemm: gemm.Default(), direct: estimateNorm == LadderEstimateNone}
	nl := len(widths)
	for l, w := range widths {
		lv := &ladderLevel{w: w, lambda: weights[l], comb: newCombinator(w)}
		lv.comb.Name = fmt.Sprintf("%s/%d", combinatorParamName, l)
		n := rows * w
		lv.z, lv.zn, lv.zt, lv.u, lv.p, lv.zhat, lv.dzhat, lv.dp = make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
		lv.diff, lv.du, lv.dzt, lv.s1, lv.s2 = make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
		lv.sd, lv.sdy = make([]float64, w), make([]float64, w)
		lv.mean, lv.inv, lv.cInv, lv.uMean, lv.uInv, lv.gMu, lv.gInv = make([]float64, w), make([]float64, w), make([]float64, w), make([]float64, w), make([]float64, w), make([]float64, w), make([]float64, w)
		if l > 0 && l < nl-1 {
			lv.dclean, lv.dcorr = make([]float32, n), make([]float32, n)
		}
		lv.hatMean, lv.hatInv = lv.mean, lv.inv
		if f.direct {
			lv.hatMean, lv.hatInv = make([]float64, w), make([]float64, w)
			for j := range lv.hatInv {
				lv.hatInv[j] = 1
			}
		}
		f.levels = append(f.levels, lv)
		f.params = append(f.params, lv.comb)
	}
	for l := 0; l < nl-1; l++ {
		up, w := widths[l+1], widths[l]
		v := &optim.Param{Name: fmt.Sprintf("ladder/V/%d", l), Shape: []int{up, w}, Value: make([]float32, up*w), Grad: make([]float32, up*w)}
		sd := 1 / math.Sqrt(float64(up))
		for i := range v.Value {
			v.Value[i] = float32(rng.NormFloat64() * sd)
		}
		f.levels[l].v = v
		f.params = append(f.params, v)
	}
	f.cleanGrad = make([][]float32, len(spec.Layers))
	f.corrGrad = make([][]float32, len(spec.Layers))
	for i, t := range taps {
		f.cleanGrad[t.dense] = f.levels[i+1].dclean
		f.corrGrad[t.dense] = f.levels[i+1].dcorr
	}
	return f, nil
}

// checkModel checks that the model's trunk is the spec's layers one for one (LayerTensors
// order), which the taps' indices assume.
func (f *fullLadder) checkModel(m *nn.Model) error {
	lts := m.LayerTensors(0)
	spec := m.Spec()
	if len(lts) != len(spec.Layers) {
		return fmt.Errorf("train: semi ladder decoder %q: the model has %d trunk layers for %d layer specs", LadderFull, len(lts), len(spec.Layers))
	}
	for _, t := range f.taps {
		if lts[t.dense].Cols != t.width {
			return fmt.Errorf("train: semi ladder decoder %q: layer %q has %d outputs, want %d", LadderFull, t.name, lts[t.dense].Cols, t.width)
		}
	}
	return nil
}

// hiddenOf returns, from the last forward pass of m, each hidden level's pre-activation and
// (for a corrupted pass) the noise its gaussian_noise layer added (nil without one).
func (f *fullLadder) hiddenOf(m *nn.Model, rows int) (pre, noise [][]float32) {
	lts := m.LayerTensors(rows)
	for i, t := range f.taps {
		pre = append(pre, lts[t.dense].Output)
		var n []float32
		if t.noise >= 0 {
			n = f.levels[i+1].dp[:rows*t.width] // scratch until cost reads it
			for j, v := range lts[t.noise].Output {
				n[j] = v - lts[t.bn].Output[j]
			}
		}
		noise = append(noise, n)
	}
	return pre, noise
}

// normalize writes the per-column batch mean and 1/σ of src (rows×w) and the normalised
// values into dst.
func normalize(dst []float32, mean, inv []float64, src []float32, rows, w int) {
	batchStats(mean, inv, src, rows, w)
	for r := 0; r < rows; r++ {
		d := dst[r*w : (r+1)*w]
		for j, v := range src[r*w : (r+1)*w] {
			d[j] = float32((float64(v) - mean[j]) * inv[j])
		}
	}
}

// setClean records the clean pass: its inputs x, hidden pre-activations and top
// pre-activation (the head's linear output: its logits before batch norm and noise).
func (f *fullLadder) setClean(x []float32, pre [][]float32, top []float32, rows int) {
	L := len(f.levels) - 1
	in := f.levels[0]
	copy(in.z, x[:rows*in.w])
	for j := range in.mean {
		in.mean[j], in.inv[j] = 0, 1
	}
	for l := 1; l <= L; l++ {
		lv := f.levels[l]
		src := top
		if l < L {
			src = pre[l-1]
		}
		normalize(lv.z, lv.mean, lv.inv, src, rows, lv.w)
	}
}

// cost is the denoising cost of the corrupted pass (inputs xt, hidden pre-activations pre
// and their noise, the top pre-activation top and its noise topNoise, logits, which u(L)
// takes the softmax of), with every λ scaled by weight. It overwrites the decoder params'
// Grad, adds dC/dlogits into dl, and writes the gradients of the corrupted pass's hidden
// pre-activations (dcorr) and top pre-activation (f.dpre), and of the clean pass's recorded
// by setClean (dclean; the top's in the top level's dp, see cleanTopGrad).
func (f *fullLadder) cost(weight float64, xt []float32, pre, noise [][]float32, top, topNoise, logits, dl []float32, rows int) float64 {
	L := len(f.levels) - 1
	for _, p := range f.params {
		clear(p.Grad)
	}
	// The corrupted pass's z̃.
	for l, lv := range f.levels {
		n := rows * lv.w
		switch {
		case l == 0:
			copy(lv.zt, xt[:n])
		default:
			src, nz := top, topNoise
			if l < L {
				src, nz = pre[l-1], noise[l-1]
			}
			mean := lv.gMu // scratch: the corrupted mean is not needed after this
			normalize(lv.zn, mean, lv.cInv, src, rows, lv.w)
			for i := 0; i < n; i++ {
				lv.zt[i] = lv.zn[i]
				if nz != nil {
					lv.zt[i] += nz[i]
				}
			}
		}
	}
	// The decoder, top-down.
	var total float64
	for l := L; l >= 0; l-- {
		lv := f.levels[l]
		w, n := lv.w, rows*lv.w
		if l == L {
			for r := 0; r < rows; r++ {
				logSoftmaxRow(f.lq, logits[r*w:(r+1)*w])
				for j, v := range f.lq {
					lv.p[r*w+j] = float32(math.Exp(v))
				}
			}
		} else {
			up := f.levels[l+1]
			f.gemm.Sgemm(false, false, rows, w, up.w, 1, up.zhat, up.w, lv.v.Value, w, 0, lv.p, w)
		}
		normalize(lv.u, lv.uMean, lv.uInv, lv.p, rows, w)
		a := lv.comb.Value
		c := weight * lv.lambda / float64(n)
		// The vanilla combinator ẑ = (z̃ − m(u))·v(u) + m(u) of each unit j, with
		// m(u) = a1·σ(a2·u + a3) + a4·u + a5 and v(u) = a6·σ(a7·u + a8) + a9·u + a10 (a0 … a9
		// here, the rows of a); the sigmoids are kept for the backward.
		a0, a1, a2, a3, a4 := a[0:w], a[w:2*w], a[2*w:3*w], a[3*w:4*w], a[4*w:5*w]
		a5, a6, a7, a8, a9 := a[5*w:6*w], a[6*w:7*w], a[7*w:8*w], a[8*w:9*w], a[9*w:10*w]
		for r := 0; r < rows; r++ {
			for j, i := 0, r*w; j < w; j, i = j+1, i+1 {
				zt, u := float64(lv.zt[i]), float64(lv.u[i])
				s1 := sigmoid(float64(a1[j])*u + float64(a2[j]))
				s2 := sigmoid(float64(a6[j])*u + float64(a7[j]))
				mu := float64(a0[j])*s1 + float64(a3[j])*u + float64(a4[j])
				v := float64(a5[j])*s2 + float64(a8[j])*u + float64(a9[j])
				zhat := (zt-mu)*v + mu
				lv.s1[i], lv.s2[i] = s1, s2
				lv.zhat[i] = float32(zhat)
				d := (zhat-lv.hatMean[j])*lv.hatInv[j] - float64(lv.z[i])
				lv.diff[i] = d
				total += c * d * d
			}
		}
	}
	// Backward, bottom-up: dC/dẑ(l) is complete once level l−1 is done.
	for l := 0; l <= L; l++ {
		lv := f.levels[l]
		w, n := lv.w, rows*lv.w
		a, ga := lv.comb.Value, lv.comb.Grad
		c := weight * lv.lambda / float64(n)
		if l == 0 {
			clear(lv.dzhat[:n])
		}
		clear(lv.gMu)
		clear(lv.gInv)
		for r := 0; r < rows; r++ {
			for j, i := 0, r*w; j < w; j, i = j+1, i+1 {
				g := 2 * c * lv.diff[i] // dC/dẑ_BN
				if !f.direct {
					lv.gMu[j] -= lv.inv[j] * g
					lv.gInv[j] += (float64(lv.zhat[i]) - lv.mean[j]) * g
				}
				lv.du[i] = -g // dC/dz (the clean target), kept in du until the clean gradient is done
			}
		}
		if l > 0 {
			// The clean pass: z = (z_pre − μ)·inv; dz_pre = inv·dz + dC/dμ/n − dC/dinv·inv²·z/n.
			for r := 0; r < rows; r++ {
				for j, i := 0, r*w; j < w; j, i = j+1, i+1 {
					lv.gMu[j] -= lv.inv[j] * lv.du[i]
					lv.gInv[j] += float64(lv.z[i]) / lv.inv[j] * lv.du[i]
				}
			}
			dst := lv.dclean
			if l == L {
				dst = lv.dp // the logits' clean gradient waits here for cleanLoss
			}
			for r := 0; r < rows; r++ {
				for j, i := 0, r*w; j < w; j, i = j+1, i+1 {
					dst[i] = float32(lv.inv[j]*lv.du[i] + lv.gMu[j]/float64(rows) - lv.gInv[j]*lv.inv[j]*lv.inv[j]*float64(lv.z[i])/float64(rows))
				}
			}
		}
		// The combinator's rows of a, as float32 slices of w (a0 … a9), and of its gradient.
		a0, a1, a3, a4, a5, a6, a8, a9 := a[0:w], a[w:2*w], a[3*w:4*w], a[4*w:5*w], a[5*w:6*w], a[6*w:7*w], a[8*w:9*w], a[9*w:10*w]
		g0, g1, g2, g3, g4, g5, g6, g7, g8, g9 := ga[0:w], ga[w:2*w], ga[2*w:3*w], ga[3*w:4*w], ga[4*w:5*w], ga[5*w:6*w], ga[6*w:7*w], ga[7*w:8*w], ga[8*w:9*w], ga[9*w:10*w]
		for r := 0; r < rows; r++ {
			for j, i := 0, r*w; j < w; j, i = j+1, i+1 {
				dzhat := float64(lv.dzhat[i]) + 2*c*lv.diff[i]*lv.hatInv[j]
				zt, u := float64(lv.zt[i]), float64(lv.u[i])
				// m and v as vanilla computes them, from the forward's sigmoids.
				s1, s2 := lv.s1[i], lv.s2[i]
				at0, at5 := float64(a0[j]), float64(a5[j])
				mu := at0*s1 + float64(a3[j])*u + float64(a4[j])
				v := at5*s2 + float64(a8[j])*u + float64(a9[j])
				gMu := dzhat * (1 - v)
				gV := dzhat * (zt - mu)
				d1, d2 := s1*(1-s1), s2*(1-s2)
				g0[j] += float32(gMu * s1)
				g1[j] += float32(gMu * at0 * d1 * u)
				g2[j] += float32(gMu * at0 * d1)
				g3[j] += float32(gMu * u)
				g4[j] += float32(gMu)
				g5[j] += float32(gV * s2)
				g6[j] += float32(gV * at5 * d2 * u)
				g7[j] += float32(gV * at5 * d2)
				g8[j] += float32(gV * u)
				g9[j] += float32(gV)
				lv.dzt[i] = dzhat * v
				lv.du[i] = gMu*(at0*d1*float64(a1[j])+float64(a3[j])) + gV*(at5*d2*float64(a6[j])+float64(a8[j]))
			}
		}
		// u = BN(p): du becomes dC/dp.
		bnBackwardRows(lv.du[:n], lv.u, lv.uInv, lv.sd, lv.sdy, rows, w)
		if l < L {
			up := f.levels[l+1]
			for i, v := range lv.du[:n] {
				lv.dp[i] = float32(v)
			}
			// p = ẑ(l+1)·V: dV = ẑ(l+1)ᵀ·dp, dẑ(l+1) = dp·Vᵀ.
			f.gemm.Sgemm(true, false, up.w, w, rows, 1, up.zhat, up.w, lv.dp, w, 0, lv.v.Grad, w)
			f.gemm.Sgemm(false, true, rows, up.w, w, 1, lv.dp, w, lv.v.Value, w, 0, up.dzhat, up.w)
		} else {
			// p = softmax(logits) per row: dl_j = p_j·(dp_j − Σ_m p_m dp_m).
			for r := 0; r < rows; r++ {
				var dot float64
				for j := 0; j < w; j++ {
					dot += float64(lv.p[r*w+j]) * lv.du[r*w+j]
				}
				for j := 0; j < w; j++ {
					dl[r*w+j] += float32(float64(lv.p[r*w+j]) * (lv.du[r*w+j] - dot))
				}
			}
		}
		if l == 0 {
			continue
		}
		// z̃ = BN(z̃_pre) + n: through the corrupted batch norm.
		bnBackwardRows(lv.dzt[:n], lv.zn, lv.cInv, lv.sd, lv.sdy, rows, w)
		if l == L {
			for i, v := range lv.dzt[:n] {
				f.dpre[i] = float32(v)
			}
		} else {
			for i, v := range lv.dzt[:n] {
				lv.dcorr[i] = float32(v)
			}
		}
	}
	return total
}

// cleanTopGrad is the last cost's gradient with respect to the clean pass's top
// pre-activation (rows×k), for the second clean pass (Model.SetHeadGradient; the hidden
// levels' go through cleanGrad).
func (f *fullLadder) cleanTopGrad(rows int) []float32 {
	top := f.levels[len(f.levels)-1]
	return top.dp[:rows*top.w]
}

// step is the full ladder's step (see semiRun.ladderStep): the clean pass, the corrupted
// pass with the supervised loss and the denoising costs of every level (λ scaled by w), and
// the clean pass again with the costs' gradients on its pre-activations and logits. The
// denoising rows are cb's from lo on (see semiRun.ladderPasses). cb.X is the semi run's own
// copy.
func (f *fullLadder) step(s *semiRun, cb nn.Batch, ct nn.Targets, w float64, lo int) (nn.Loss, error) {
	m, n, ni := s.m, cb.Rows, s.ni
	defer m.SetTrainPass(nn.TrainPass{})
	tw, err := s.twinOf(m)
	if err != nil {
		return nn.Loss{}, err
	}
	defer tw.SetLayerGradients(nil)
	// The clean pass runs in the twin on f.cleanX, and waits there for the costs' gradients.
	x := cb.X[:n*ni]
	nd := n - lo
	copy(f.cleanX, x[lo*ni:])
	clean := rowsOf(cb, s.ni, lo, n)
	clean.X = f.cleanX[:nd*ni]
	tw.SetTrainPass(nn.TrainPass{NoNoise: true})
	if _, err := tw.LossStep(clean, true, nn.GradNone, keepLogits(func(_ []float32, rows int) {
		pre, _ := f.hiddenOf(tw, rows)
		f.setClean(f.cleanX, pre, tw.HeadPre(0, rows), rows)
	})); err != nil {
		return nn.Loss{}, err
	}
	s.noisyTo(x, x)
	if !s.headNoise {
		noise := f.topNoise[:nd*s.k]
		clear(noise)
		s.noisyTo(noise, noise)
	}
	loss, err := s.ladderPasses(cb, ct, lo, f.corrGrad, f.dpre, func(head int, logits, dl []float32, rows int) float64 {
		if head != 0 {
			return 0
		}
		pre, nz := f.hiddenOf(m, rows)
		topNoise := m.HeadNoise(0, rows)
		if topNoise == nil {
			topNoise = f.topNoise[:rows*s.k]
		}
		return f.cost(w, x[lo*ni:], pre, nz, m.HeadPre(0, rows), topNoise, logits, dl, rows)
	})
	if err != nil {
		return loss, err
	}
	tw.SetLayerGradients(f.cleanGrad)
	tw.SetHeadGradient(0, f.cleanTopGrad(nd))
	defer tw.SetHeadGradient(0, nil)
	if _, err := tw.LossBackward(clean, nn.GradOverwrite, noLoss); err != nil {
		return loss, err
	}
	m.AddGrads(tw)
	return loss, nil
}
