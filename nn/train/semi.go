package train

import (
	"bytes"
	"cmp"
	"encoding/gob"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/pipe-ml/pipe/internal/f32le"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// Semi-supervised methods (Semi.Method).
const (
	SemiVAT          = "vat"
	SemiPi           = "pi"
	SemiMeanTeacher  = "mean_teacher"
	SemiLadder       = "ladder"
	streamSemi       = 7
	semiStateVersion = 1
)

// Semi configures semi-supervised training (Config.Semi): every step trains on the labeled
// mini-batch of the epoch plus UnlabeledBatch rows of Unlabeled in the same batch, with the
// supervised loss on the labeled rows and a consistency loss on all of them, whose weight
// ramps up. The model must have exactly one head, a softmax head. Zero values take the
// documented defaults.
//
//   - "vat", virtual adversarial training (Miyato et al. 2018): the loss
//     Weight·KL(p(x) ‖ p(x + r_adv)), p(x) a constant (the clean pass's predictions),
//     r_adv = Eps·g/‖g‖ per row, g the input gradient of KL(p(x) ‖ p(x + Xi·d)) for a random
//     unit d (one power iteration); Entropy adds entropy minimisation (VAT+EntMin). Three
//     forward and three backward passes per step. Meant for models without dropout (the
//     passes draw their own dropout masks). Every pass normalises with its own batch's
//     statistics; only the clean pass updates the running statistics (the probe and
//     adversarial passes are perturbed rows). SeparateBatches runs the labelled rows as a
//     pass of their own, as the authors' code does.
//   - "pi", the Π-model (Laine & Aila 2017): Weight·mean Σ_j (q_j − p_j)² between the
//     softmax of two passes of the same rows with independent input noise (Noise) and
//     dropout; the first pass is the (constant) target.
//   - "mean_teacher" (Tarvainen & Valpola 2017): the same cost between the student and a
//     teacher whose weights are the EMA (TeacherDecay) of the student's, each with its own
//     input noise and dropout.
//   - "ladder", the ladder network's Γ-model (Rasmus et al. 2015): each step runs a clean
//     pass (no noise or dropout; its batch-norm statistics are the ones kept for inference)
//     and a corrupted pass (Gaussian noise of stddev Noise on the inputs, the model's own
//     gaussian_noise layers, which should follow each batch_norm, and on the normalised
//     logits the head's own noise (nn.HeadSpec.Noise, which the supervised loss sees too,
//     as in the ladder authors' code) or, without one, Noise in the cost only; batch norm on
//     the pass's own statistics, running statistics left alone). The supervised loss is on
//     the corrupted pass; the denoising cost Weight·mean (ẑ − z)² compares the clean pass's
//     top pre-activation z (the head's linear output), normalised by its batch statistics,
//     with the vanilla combinator's estimate ẑ = g(z̃, u) from the corrupted one (see
//     denoisingLoss). The cost's gradient flows into both passes: the clean pass
//     runs a second time (same forward, running statistics left alone) to backpropagate it
//     (on digits with 5 labels per class it was worth +.06 validation accuracy over a
//     constant target, which did not beat supervised training). The combinator's 10
//     per-class parameters are trained by an optimizer of Config.Optimizer's kind at the
//     step's learning rate (not clipped) and are not part of the model. Four forward and
//     two backward passes per step. The model needs a gaussian_noise layer.
//     With Decoder "full" it is the full ladder (semi_ladder_full.go): a decoder with a
//     learned V per layer mirrors the encoder top-down, and the denoising costs (Weights, one
//     per layer) compare its estimates with the clean pass at the inputs, at every dense
//     layer's batch-normalised pre-activation and at the logits; their gradients reach the
//     encoder through both passes (Model.SetLayerGradients). It mirrors dense (linear) →
//     batch_norm → gaussian_noise → activation layers only (CheckLadderLayers): conv,
//     residual, dropout, layer_norm and custom layers, and embeddings, are refused with an
//     error naming them. The decoder's params (V and the combinators) are trained like the
//     combinator and checkpointed with their optimizer state.
//
// Epochs count passes over the labeled rows; the ramp-up is over steps, measured in epochs.
// Config.Augment applies to the labeled rows of a batch only. Every training-mode pass
// updates batch-norm running statistics except VAT's probe and adversarial passes, VAT's
// labelled pass with SeparateBatches, and the ladder's corrupted pass. The model
// Fit returns is the student (for Mean Teacher, set Config.EMADecay to evaluate and keep an
// average of the weights instead). History's "loss" includes the consistency terms.
type Semi struct {
	// Method is "vat", "pi", "mean_teacher" or "ladder" (required).
	Method string
	// Unlabeled are the rows without labels (their targets, if any, are not read; it may
	// include the labeled rows). Required, non-empty.
	Unlabeled Dataset
	// UnlabeledBatch is the number of Unlabeled rows added to every step's batch, drawn
	// uniformly with replacement from the seeded semi stream; default 2×BatchSize.
	UnlabeledBatch int
	// Weight is the consistency weight after ramp-up; default 1 for vat (α of the paper) and
	// ladder (the top layer's λ), 10 for pi and mean_teacher (the papers' 100 for a mean over
	// 10 classes).
	Weight float64
	// RampupEpochs is the length of the sigmoid ramp-up exp(−5(1−t)²) of the weight (and of
	// the entropy term); default 10; negative: no ramp-up.
	RampupEpochs float64
	// Eps is VAT's perturbation norm per row (L2 over the numeric inputs); default 2.0, meant
	// for inputs in [0, 1] with hundreds of features (MNIST's pixels: a row's norm is about 9).
	Eps float64
	// Xi is the norm of VAT's probe perturbation; default 0.1 (the paper's 1e-6 is below
	// float32's resolution of the logits here).
	Xi float64
	// Entropy adds Weight-free entropy minimisation on all rows (VAT+EntMin), ramped up like
	// the consistency weight. Default off.
	Entropy bool
	// SeparateBatches (vat and ladder) splits each step into a pass over its labelled rows, with
	// the supervised loss, and VAT's passes (and the entropy term) over its UnlabeledBatch
	// rows only, as the VAT authors' code does (Unlabeled may include the labelled rows).
	// Batch norm then normalises each with its own statistics, and the running statistics
	// follow the unlabelled clean pass. With few labels and batch norm on the logits this is
	// what keeps VAT from a flat function on the pool: over a joint batch the labelled rows
	// can carry the logits' batch variance alone while every other prediction is the same.
	// For the ladder, the corrupted pass runs as a pass over the labelled rows (the
	// supervised loss) and one over the unlabelled rows (the denoising costs), and the clean
	// pass over the unlabelled rows only, as the ladder authors' code does: each part is
	// normalised by its own statistics and the denoising costs are on the unlabelled rows
	// alone. Default off: one joint batch.
	SeparateBatches bool
	// Noise is the stddev of the Gaussian noise added to the inputs of each pass of pi and
	// mean_teacher, and to the inputs and (unless the head has noise of its own,
	// nn.HeadSpec.Noise) the normalised logits of the ladder's corrupted pass; default 0.3
	// (negative: none).
	Noise float64
	// TeacherDecay is the Mean Teacher's EMA decay; default 0.99.
	TeacherDecay float64
	// Decoder is the ladder's decoder: "top" (default), the Γ-model's denoising cost at the
	// top layer only; or "full", the full ladder (see semi_ladder_full.go): a decoder with a
	// lateral connection and a denoising cost at the inputs, every dense layer's
	// pre-activation and the logits, which needs layers it can mirror (CheckLadderLayers).
	Decoder string
	// Weights are the full ladder's per-level denoising weights λ, inputs first, logits last
	// (one per dense layer in between; the paper's for 784-1000-500-250-250-250-10 are
	// [1000, 10, 0.1, 0.1, 0.1, 0.1, 0.1]), each multiplied by Weight (default 1) and the
	// ramp-up. Required with Decoder "full", not allowed otherwise.
	Weights []float64
	// EstimateNorm is how the full ladder normalises its estimate ẑ of each layer before
	// comparing it with the clean pass's z: "clean" (default; the paper's Algorithm 1), with
	// the clean batch's mean and stddev of the layer's pre-activation, or "none", ẑ itself
	// (as the Γ-model compares at the top). Only with Decoder "full".
	EstimateNorm string
	// Augment, when set, augments the unlabelled rows of each step in place: x holds rows
	// rows of the model's numeric inputs (feature transforms only, such as noise or image
	// shifts; mixup needs labels). vat and ladder augment each row once, so their clean,
	// perturbed and corrupted passes see the same augmented row; pi and mean_teacher augment
	// it once for each of their two passes, two views of the row whose predictions the
	// consistency loss brings together. It draws from the semi stream (checkpointed). The
	// labelled rows are Config.Augment's. Default nil: unlabelled rows are not augmented.
	Augment func(x []float32, rows int, rng *rand.Rand)
}

func (s *Semi) withDefaults(batch int) (Semi, error) {
	c := *s
	switch c.Method {
	case SemiVAT, SemiPi, SemiMeanTeacher, SemiLadder:
	default:
		return c, fmt.Errorf("train: semi method %q: want %q, %q, %q or %q", c.Method, SemiVAT, SemiPi, SemiMeanTeacher, SemiLadder)
	}
	if c.UnlabeledBatch == 0 {
		c.UnlabeledBatch = 2 * batch
	}
	if c.Weight == 0 {
		c.Weight = 10
		if c.Method == SemiVAT || c.Method == SemiLadder {
			c.Weight = 1
		}
	}
	if c.RampupEpochs == 0 {
		c.RampupEpochs = 10
	}
	if c.Eps == 0 {
		c.Eps = 2
	}
	if c.Xi == 0 {
		c.Xi = 0.1
	}
	if c.Noise == 0 {
		c.Noise = 0.3
	}
	if c.TeacherDecay == 0 {
		c.TeacherDecay = 0.99
	}
	if c.Method == SemiLadder && c.Decoder == "" {
		c.Decoder = LadderTop
	}
	if c.Decoder == LadderFull && c.EstimateNorm == "" {
		c.EstimateNorm = LadderEstimateClean
	}
	switch {
	case c.UnlabeledBatch < 1:
		return c, fmt.Errorf("train: semi unlabeled batch %d < 1", c.UnlabeledBatch)
	case c.Weight < 0 || !finite(c.Weight):
		return c, fmt.Errorf("train: semi weight %g: want a finite value >= 0", c.Weight)
	case c.Eps < 0 || c.Xi < 0:
		return c, fmt.Errorf("train: semi eps %g and xi %g must be >= 0", c.Eps, c.Xi)
	case c.SeparateBatches && c.Method != SemiVAT && c.Method != SemiLadder:
		return c, fmt.Errorf("train: semi separate batches is a setting of methods %q and %q, not %q", SemiVAT, SemiLadder, c.Method)
	}
	switch {
	case c.Method != SemiLadder && (c.Decoder != "" || len(c.Weights) > 0):
		return c, fmt.Errorf("train: semi decoder and weights are settings of method %q, not %q", SemiLadder, c.Method)
	case c.Method == SemiLadder && c.Decoder != LadderTop && c.Decoder != LadderFull:
		return c, fmt.Errorf("train: semi ladder decoder %q: want %q or %q", c.Decoder, LadderTop, LadderFull)
	case c.Decoder == LadderTop && len(c.Weights) > 0:
		return c, fmt.Errorf("train: semi ladder weights are the full ladder's per-level weights: set decoder = %q, or use weight for the top layer's", LadderFull)
	case c.Decoder != LadderFull && c.EstimateNorm != "":
		return c, fmt.Errorf("train: semi ladder estimate norm is a setting of decoder %q", LadderFull)
	case c.Decoder == LadderFull && c.EstimateNorm != LadderEstimateClean && c.EstimateNorm != LadderEstimateNone:
		return c, fmt.Errorf("train: semi ladder estimate norm %q: want %q or %q", c.EstimateNorm, LadderEstimateClean, LadderEstimateNone)
	case c.Decoder == LadderFull && len(c.Weights) == 0:
		return c, fmt.Errorf("train: semi ladder decoder %q needs weights, one per level, inputs first (the paper's for 784-1000-500-250-250-250-10: [1000, 10, 0.1, 0.1, 0.1, 0.1, 0.1])", LadderFull)
	}
	if err := optim.CheckEMADecay(c.TeacherDecay); err != nil {
		return c, fmt.Errorf("train: semi teacher decay: %w", err)
	}
	return c, nil
}

// semiRun is the state of semi-supervised training within one Fit.
type semiRun struct {
	cfg     Semi
	m       *nn.Model
	k       int
	ni      int
	src     *rand.PCG // semi stream: unlabeled draws, VAT directions, input noise
	rng     *rand.Rand
	teacher *optim.EMA      // mean_teacher only
	comb    *optim.Param    // ladder only: the combinator's parameters
	combOpt optim.Optimizer // ladder only: trains decoder
	decoder []*optim.Param  // ladder only: the decoder's params (comb, or the full ladder's)
	lad     *ladderScratch  // ladder only
	full    *fullLadder     // ladder with decoder "full" only
	clean   []float32       // ladder only: the step's clean inputs
	twin    *nn.Model       // ladder only: keeps the clean pass while the corrupted one runs
	// headNoise (ladder): the model's head has noise of its own (HeadSpec.Noise), which the
	// ladder's top level takes instead of drawing Noise.
	headNoise bool

	batch   nn.Batch // labeled + unlabeled rows
	labels  []int32
	heads   []nn.HeadTargets
	weights []float32
	x2      []float32 // the perturbed inputs of a second pass
	p       []float32 // targets: clean, teacher or first-pass softmax
}

func newSemiRun(s *Semi, cfg Config, m *nn.Model, maxBatch int) (*semiRun, error) {
	c, err := s.withDefaults(cfg.BatchSize)
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(cfg.Optimizer.Name, optim.NameSVRG) {
		return nil, fmt.Errorf("train: semi-supervised training cannot use the svrg optimizer: its full gradient and snapshot correction cover the labelled loss only; use sgd or adam")
	}
	spec := m.Spec()
	if len(spec.Heads) != 1 || spec.Heads[0].Kind != nn.HeadSoftmax {
		return nil, fmt.Errorf("train: semi-supervised training needs a model with one softmax head, this one has %d heads", len(spec.Heads))
	}
	u := c.Unlabeled
	if u.Len() == 0 {
		return nil, fmt.Errorf("train: semi-supervised training has no unlabeled rows")
	}
	if u.NumInputs != spec.NumInputs || len(u.Cat) != len(spec.Embeddings) {
		return nil, fmt.Errorf("train: unlabeled data has %d numeric inputs and %d categorical columns, the model expects %d and %d",
			u.NumInputs, len(u.Cat), spec.NumInputs, len(spec.Embeddings))
	}
	if n := u.baseRows(); len(u.X) != n*u.NumInputs {
		return nil, fmt.Errorf("train: unlabeled data has %d values, not a multiple of %d inputs", len(u.X), u.NumInputs)
	}
	for _, r := range u.Index {
		if r < 0 || r >= u.baseRows() {
			return nil, fmt.Errorf("train: unlabeled data: index row %d out of range [0, %d)", r, u.baseRows())
		}
	}
	rows := maxBatch + c.UnlabeledBatch
	sr := &semiRun{cfg: c, m: m, k: spec.Heads[0].Classes, ni: spec.NumInputs, src: rand.NewPCG(cfg.Seed, streamSemi)}
	sr.rng = rand.New(sr.src)
	sr.batch.X = make([]float32, rows*sr.ni)
	for range u.Cat {
		sr.batch.Cat = append(sr.batch.Cat, make([]int32, rows))
	}
	sr.labels = make([]int32, rows)
	sr.weights = make([]float32, rows)
	sr.heads = make([]nn.HeadTargets, 1)
	sr.x2 = make([]float32, rows*sr.ni)
	sr.p = make([]float32, rows*sr.k)
	switch c.Method {
	case SemiMeanTeacher:
		sr.teacher = optim.NewEMA(m.Params(), c.TeacherDecay)
	case SemiLadder:
		if err := checkLadderModel(spec); err != nil {
			return nil, err
		}
		sr.headNoise = spec.Heads[0].Noise > 0
		if sr.combOpt, err = optim.New(cfg.Optimizer); err != nil {
			return nil, fmt.Errorf("train: ladder combinator: %w", err)
		}
		if c.Decoder == LadderFull {
			if sr.full, err = newFullLadder(spec, c.Weights, c.EstimateNorm, rows, cfg.Seed); err != nil {
				return nil, err
			}
			if err := sr.full.checkModel(m); err != nil {
				return nil, err
			}
			sr.decoder = sr.full.params
			break
		}
		sr.comb = newCombinator(sr.k)
		sr.decoder = []*optim.Param{sr.comb}
		sr.lad = newLadderScratch(sr.k, rows)
	}
	return sr, nil
}

// combine builds the step's batch: the labeled rows of b, t, then UnlabeledBatch rows drawn
// from Unlabeled (label −1: no supervised loss).
func (s *semiRun) combine(b nn.Batch, t nn.Targets) (nn.Batch, nn.Targets) {
	u := s.cfg.Unlabeled
	nl, nu := b.Rows, s.cfg.UnlabeledBatch
	n := nl + nu
	ni := s.ni
	out := nn.Batch{Rows: n, X: s.batch.X[:n*ni]}
	copy(out.X, b.X[:nl*ni])
	copy(s.labels, t.Heads[0].Labels[:nl])
	for c := range s.batch.Cat {
		copy(s.batch.Cat[c], b.Cat[c][:nl])
	}
	for i := 0; i < nu; i++ {
		r := u.row(s.rng.IntN(u.Len()))
		copy(out.X[(nl+i)*ni:(nl+i+1)*ni], u.X[r*ni:(r+1)*ni])
		for c, col := range u.Cat {
			s.batch.Cat[c][nl+i] = col[r]
		}
		s.labels[nl+i] = -1
	}
	if s.cfg.Augment != nil && (s.cfg.Method == SemiVAT || s.cfg.Method == SemiLadder) {
		s.cfg.Augment(out.X[nl*ni:n*ni], nu, s.rng)
	}
	for c := range s.batch.Cat {
		out.Cat = append(out.Cat, s.batch.Cat[c][:n])
	}
	s.heads[0] = nn.HeadTargets{Labels: s.labels[:n]}
	if len(t.Heads[0].Soft) > 0 {
		soft := make([]float32, n*s.k) // rare (mixup with semi): unlabeled rows are masked
		copy(soft, t.Heads[0].Soft)
		s.heads[0].Soft = soft
	}
	tg := nn.Targets{Heads: s.heads}
	if t.Weights != nil {
		copy(s.weights, t.Weights[:nl])
		for i := nl; i < n; i++ {
			s.weights[i] = 1
		}
		tg.Weights = s.weights[:n]
	}
	return out, tg
}

// noisyTo writes x + N(0, Noise²) into dst.
func (s *semiRun) noisyTo(dst, x []float32) {
	sd := s.cfg.Noise
	for i, v := range x {
		if sd > 0 {
			v += float32(s.rng.NormFloat64() * sd)
		}
		dst[i] = v
	}
}

// step computes the semi-supervised loss and gradient of one step (the weights are not
// updated); prog places it on the ramp-up.
func (s *semiRun) step(b nn.Batch, t nn.Targets, prog optim.Progress) (nn.Loss, error) {
	m := s.m
	cb, ct := s.combine(b, t)
	n, k, ni := cb.Rows, s.k, s.ni
	ramp := sigmoidRampup(float64(prog.Step)/float64(max(prog.StepsPerEpoch, 1)), s.cfg.RampupEpochs)
	w := s.cfg.Weight * ramp
	p := s.p[:n*k]
	switch s.cfg.Method {
	case SemiVAT:
		entW := 0.0
		if s.cfg.Entropy {
			entW = ramp
		}
		// vb are the rows VAT perturbs: the whole batch, or with SeparateBatches its
		// unlabelled rows, after a pass of its own over the labelled ones.
		vb := cb
		var loss nn.Loss
		var err error
		defer m.SetTrainPass(nn.TrainPass{})
		if s.cfg.SeparateBatches {
			m.SetTrainPass(nn.TrainPass{KeepRunningStats: true})
			if loss, err = m.TrainStep(b, t); err != nil {
				return loss, err
			}
			m.SetTrainPass(nn.TrainPass{})
			vb = rowsOf(cb, ni, b.Rows, n)
			ent, err := m.LossStep(vb, true, nn.GradAccumulate, entropyLoss(k, entW, p))
			loss.Total += ent
			if err != nil {
				return loss, err
			}
			n = vb.Rows
		} else if loss, err = m.TrainStepWith(cb, ct, entropyLoss(k, entW, p)); err != nil {
			return loss, err
		}
		// The probe and adversarial passes normalise with their own batch's statistics but
		// leave the running statistics to the clean pass (the authors' update_batch_stats =
		// False): perturbed rows would otherwise shift the statistics inference uses.
		m.SetTrainPass(nn.TrainPass{KeepRunningStats: true})
		x := vb.X[:n*ni]
		r := s.x2[:n*ni]
		for i := range r {
			r[i] = float32(s.rng.NormFloat64())
		}
		scaleRowsTo(r, r, ni, s.cfg.Xi)
		for i := range r {
			r[i] += x[i]
		}
		m.SetKeepInputGrad(true)
		_, err = m.LossStep(nn.Batch{Rows: n, X: r, Cat: vb.Cat}, true, nn.GradDiscard, klLoss(p, k, 1))
		g := m.InputGrad(n)
		m.SetKeepInputGrad(false)
		if err != nil {
			return loss, err
		}
		if len(g) != n*ni {
			return loss, fmt.Errorf("train: vat: the model kept %d input gradients, want %d", len(g), n*ni)
		}
		scaleRowsTo(r, g, ni, s.cfg.Eps)
		for i := range r {
			r[i] += x[i]
		}
		kl, err := m.LossStep(nn.Batch{Rows: n, X: r, Cat: vb.Cat}, true, nn.GradAccumulate, klLoss(p, k, w))
		loss.Total += kl
		return loss, err
	case SemiLadder:
		lo := 0
		if s.cfg.SeparateBatches {
			lo = b.Rows
		}
		if s.full != nil {
			return s.full.step(s, cb, ct, w, lo)
		}
		return s.ladderStep(cb, ct, w, lo)
	default:
		x := cb.X[:n*ni]
		tx := s.x2[:n*ni]
		if s.cfg.Augment != nil {
			// Two views of each unlabelled row: the teacher's pass and the student's.
			lo := b.Rows * ni
			copy(tx, x)
			s.cfg.Augment(tx[lo:], n-b.Rows, s.rng)
			s.cfg.Augment(x[lo:], n-b.Rows, s.rng) // cb.X is the semi run's own copy
			s.noisyTo(tx, tx)
		} else {
			s.noisyTo(tx, x)
		}
		if s.teacher != nil {
			s.teacher.Swap(m.Params())
		}
		_, err := m.LossStep(nn.Batch{Rows: n, X: tx, Cat: cb.Cat}, true, nn.GradNone, keepSoftmax(p, k))
		if s.teacher != nil {
			s.teacher.Swap(m.Params())
		}
		if err != nil {
			return nn.Loss{}, err
		}
		s.noisyTo(x, x) // cb.X is the semi run's own copy
		return m.TrainStepWith(cb, ct, mseLoss(p, k, w))
	}
}

// scaleRowsTo writes each row of v (width n) scaled to L2 norm norm into dst (a zero row
// stays zero).
func scaleRowsTo(dst, v []float32, n int, norm float64) {
	for r := 0; r < len(v)/n; r++ {
		row := v[r*n : (r+1)*n]
		var ss float64
		for _, x := range row {
			ss += float64(x) * float64(x)
		}
		c := 0.0
		if ss > 0 {
			c = norm / math.Sqrt(ss)
		}
		for j, x := range row {
			dst[r*n+j] = float32(float64(x) * c)
		}
	}
}

// ladderStep is the ladder's step: the clean pass, the corrupted pass with the supervised
// loss and the denoising cost of weight w, and the clean pass again for the cost's gradient
// through the clean targets (cb.X is the semi run's own copy). The denoising rows are cb's
// rows from lo on: all of them (lo = 0), or with SeparateBatches the unlabelled ones (lo =
// the labelled rows), whose corrupted pass is then a pass of its own after the labelled
// rows' (see ladderPasses).
func (s *semiRun) ladderStep(cb nn.Batch, ct nn.Targets, w float64, lo int) (nn.Loss, error) {
	m, n := s.m, cb.Rows
	defer m.SetTrainPass(nn.TrainPass{})
	tw, err := s.twinOf(m)
	if err != nil {
		return nn.Loss{}, err
	}
	// The clean pass runs in the twin on its own copy of the inputs (the twin's first layer
	// keeps them for its backward), and waits there for the cost's gradient.
	x := cb.X[:n*s.ni]
	s.clean = append(s.clean[:0], x[lo*s.ni:]...)
	clean := rowsOf(cb, s.ni, lo, n)
	clean.X = s.clean
	tw.SetTrainPass(nn.TrainPass{NoNoise: true})
	if _, err := tw.LossStep(clean, true, nn.GradNone, keepLogits(func(_ []float32, rows int) { s.lad.setClean(tw.HeadPre(0, rows), rows) })); err != nil {
		return nn.Loss{}, err
	}
	s.noisyTo(x, x)
	if !s.headNoise {
		noise := s.lad.noise[:(n-lo)*s.k]
		clear(noise)
		s.noisyTo(noise, noise)
	}
	loss, err := s.ladderPasses(cb, ct, lo, nil, s.lad.dpre, s.lad.denoisingLoss(m, s.comb, w))
	if err != nil {
		return loss, err
	}
	// The cost's gradient with respect to the clean pass, backpropagated through the
	// twin's activations of it and added to the step's gradients.
	tw.SetHeadGradient(0, s.lad.cleanGrad(n-lo))
	defer tw.SetHeadGradient(0, nil)
	if _, err := tw.LossBackward(clean, nn.GradOverwrite, noLoss); err != nil {
		return loss, err
	}
	m.AddGrads(tw)
	return loss, nil
}

// ladderPasses runs the ladder's corrupted pass of cb (its inputs already noisy) in training
// mode, running statistics left alone, with the supervised loss on the labelled rows and
// cost on the rows from lo on, inject (the full ladder's gradients at hidden layers, or
// nil) and head (at the head's linear output, which cost writes) set for cost's backward.
// With lo = 0 it is one pass over the whole batch; otherwise a pass over the labelled rows
// with the supervised loss alone, then one over the rest with cost alone, so that batch
// norm normalises each part by its own statistics, as the ladder authors' code does. It
// leaves the step's gradients in m and the injected gradients unset.
func (s *semiRun) ladderPasses(cb nn.Batch, ct nn.Targets, lo int, inject [][]float32, head []float32, cost nn.OutputLoss) (nn.Loss, error) {
	m := s.m
	defer m.SetLayerGradients(nil)
	defer m.SetHeadGradient(0, nil)
	m.SetTrainPass(nn.TrainPass{KeepRunningStats: true})
	if lo == 0 {
		m.SetLayerGradients(inject)
		m.SetHeadGradient(0, head)
		return m.TrainStepWith(cb, ct, cost)
	}
	loss, err := m.TrainStep(rowsOf(cb, s.ni, 0, lo), ct)
	if err != nil {
		return loss, err
	}
	m.SetLayerGradients(inject)
	m.SetHeadGradient(0, head)
	c, err := m.LossStep(rowsOf(cb, s.ni, lo, cb.Rows), true, nn.GradAccumulate, cost)
	loss.Total += c
	return loss, err
}

// rowsOf is rows [lo, hi) of b, of ni numeric inputs a row (sharing its values).
func rowsOf(b nn.Batch, ni, lo, hi int) nn.Batch {
	out := nn.Batch{Rows: hi - lo, X: b.X[lo*ni : hi*ni]}
	for _, c := range b.Cat {
		out.Cat = append(out.Cat, c[lo:hi])
	}
	return out
}

// twinOf returns the semi run's twin of m (see nn.Model.Twin), its values aliased afresh.
func (s *semiRun) twinOf(m *nn.Model) (*nn.Model, error) {
	tw, err := m.Twin(s.twin)
	if err != nil {
		return nil, fmt.Errorf("train: semi ladder: %w", err)
	}
	s.twin = tw
	return tw, nil
}

// afterStep folds the updated weights into the teacher, and steps the ladder's combinator at
// the step's learning rate lr.
func (s *semiRun) afterStep(lr float64) {
	if s == nil {
		return
	}
	if s.teacher != nil {
		s.teacher.Update(s.m.Params())
	}
	if s.decoder != nil {
		s.combOpt.Step(s.decoder, lr)
	}
}

// marshal saves the semi stream and the teacher (bit-exact).
func (s *semiRun) marshal() ([]byte, error) {
	if s == nil {
		return nil, nil
	}
	src, err := s.src.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var teacher []byte
	if s.teacher != nil {
		if teacher, err = s.teacher.MarshalState(); err != nil {
			return nil, err
		}
	}
	st := semiState{Version: semiStateVersion, Method: s.cfg.Method, Decoder: s.cfg.Decoder, EstimateNorm: s.cfg.EstimateNorm, Stream: src, Teacher: teacher}
	if s.decoder != nil {
		for _, p := range s.decoder {
			st.CombinatorBits = f32le.Append(st.CombinatorBits, p.Value)
		}
		if st.CombinatorOptimizer, err = s.combOpt.MarshalState(); err != nil {
			return nil, err
		}
	}
	return encodeSemiState(st)
}

// unmarshal restores a state saved by marshal.
func (s *semiRun) unmarshal(b []byte) error {
	if s == nil {
		if b != nil {
			return fmt.Errorf("it has semi-supervised state, the config trains without")
		}
		return nil
	}
	st, err := decodeSemiState(b)
	if err != nil {
		return err
	}
	if st.Method != s.cfg.Method {
		return fmt.Errorf("semi method %q, the config selects %q", st.Method, s.cfg.Method)
	}
	if (st.Teacher != nil) != (s.teacher != nil) {
		return fmt.Errorf("teacher state present: %v, the config's method is %q", st.Teacher != nil, s.cfg.Method)
	}
	if err := s.src.UnmarshalBinary(st.Stream); err != nil {
		return fmt.Errorf("semi stream: %w", err)
	}
	if s.teacher != nil {
		if err := s.teacher.UnmarshalState(st.Teacher); err != nil {
			return fmt.Errorf("teacher: %w", err)
		}
	}
	if s.decoder != nil {
		if dec := cmp.Or(st.Decoder, LadderTop); dec != s.cfg.Decoder {
			return fmt.Errorf("ladder decoder %q, the config selects %q", dec, s.cfg.Decoder)
		}
		if st.EstimateNorm != s.cfg.EstimateNorm {
			return fmt.Errorf("ladder estimate norm %q, the config selects %q", st.EstimateNorm, s.cfg.EstimateNorm)
		}
		n := 0
		for _, p := range s.decoder {
			n += len(p.Value)
		}
		if len(st.Combinator) != n {
			return fmt.Errorf("ladder decoder: %d values, the model needs %d", len(st.Combinator), n)
		}
		off := 0
		for _, p := range s.decoder {
			off += copy(p.Value, st.Combinator[off:off+len(p.Value)])
		}
		if err := s.combOpt.UnmarshalState(st.CombinatorOptimizer); err != nil {
			return fmt.Errorf("ladder decoder optimizer: %w", err)
		}
		if err := optim.CheckStateFits(s.combOpt, s.decoder); err != nil {
			return fmt.Errorf("ladder decoder optimizer: %w", err)
		}
	}
	return nil
}

// semiState is the checkpointed state of semi-supervised training. The ramp-up position is
// the checkpoint's Step.
type semiState struct {
	Version int
	Method  string
	Stream  []byte // the semi stream's PCG
	Teacher []byte // the Mean Teacher's EMA (nil for other methods)
	// Decoder is the ladder's decoder ("" before it was recorded: "top"), EstimateNorm the
	// full ladder's.
	Decoder      string
	EstimateNorm string
	// Combinator and CombinatorOptimizer are the ladder decoder's parameters (the
	// combinator's, or the full ladder's in semiRun.decoder order, concatenated) and their
	// optimizer state (nil for other methods).
	Combinator          []float32
	CombinatorOptimizer []byte
	// CombinatorBits is Combinator as it is stored: its little-endian IEEE bits (f32le), one
	// copy where gob would encode each value. encodeSemiState moves Combinator here and
	// decodeSemiState back; states written before it existed hold Combinator itself.
	CombinatorBits []byte
}

func encodeSemiState(st semiState) ([]byte, error) {
	var buf bytes.Buffer
	if st.Combinator != nil {
		st.CombinatorBits, st.Combinator = f32le.Append(nil, st.Combinator), nil
	}
	if err := gob.NewEncoder(&buf).Encode(st); err != nil {
		return nil, fmt.Errorf("train: encode semi state: %w", err)
	}
	return buf.Bytes(), nil
}

func decodeSemiState(b []byte) (semiState, error) {
	var st semiState
	if len(b) == 0 {
		return st, fmt.Errorf("it has no semi-supervised state, the config trains with it")
	}
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&st); err != nil {
		return st, fmt.Errorf("semi state: %w", err)
	}
	if st.Version != semiStateVersion {
		return st, fmt.Errorf("semi state version %d, this build reads %d", st.Version, semiStateVersion)
	}
	if st.CombinatorBits != nil {
		if len(st.CombinatorBits)%4 != 0 || st.Combinator != nil {
			return st, fmt.Errorf("semi state: %d bytes of decoder values (and %d values)", len(st.CombinatorBits), len(st.Combinator))
		}
		st.Combinator = make([]float32, len(st.CombinatorBits)/4)
		f32le.Read(st.Combinator, st.CombinatorBits)
		st.CombinatorBits = nil
	}
	return st, nil
}

// trainStep is the step's loss and gradient: TrainStep, or the semi-supervised step.
func (r *run) trainStep(b nn.Batch, t nn.Targets, prog optim.Progress) (nn.Loss, error) {
	if r.semi == nil {
		return r.m.TrainStep(b, t)
	}
	return r.semi.step(b, t, prog)
}
