package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"sort"

	"github.com/pipe-ml/pipe/internal/sgemm/elementwise"
	"github.com/pipe-ml/pipe/nn/gemm"
	"github.com/pipe-ml/pipe/nn/optim"
)

// Batch is the input of one forward pass. The model does not modify or retain it beyond the
// next call.
type Batch struct {
	Rows int
	// X is Rows×NumInputs, row-major.
	X []float32
	// Cat holds one index column per embedding (Spec.Embeddings order), each of length Rows.
	Cat [][]int32
}

// HeadTargets are the targets of one head for a batch.
type HeadTargets struct {
	// Labels (softmax, binary): class index per row, negative = missing.
	Labels []int32
	// Soft (softmax, binary), when not empty, gives every present row a target distribution
	// over the classes instead of its label (mixup, distillation): Rows×Classes values for a
	// softmax head, Rows×2 values [1−t, t] for a binary head, each row finite, ≥ 0 and summing
	// to 1 (±1e-3). Labels is still required and still marks the missing rows (negative:
	// masked, their Soft row is ignored); a present row's label is not used by the loss.
	// The loss is the cross-entropy −Σ_j t_j·log p_j (gradient p − t); label smoothing applies
	// on top (t ← (1−ε)·t + ε/Classes); class weights weight a row by its class mix Σ_j t_j·w_j.
	// An empty Soft with spare capacity is storage an augmenter may reslice (see
	// nn/train.Config.Augment). Default nil: the labels are the targets.
	Soft []float32
	// Values (regression): Rows×Outputs, NaN = missing.
	Values []float32
}

// Targets are the training targets of a batch, one HeadTargets per head in Spec.Heads order.
type Targets struct {
	Heads []HeadTargets
	// Weights are optional per-row sample weights (bootstrap counts, pseudo-label confidence);
	// nil means 1.
	Weights []float32
}

// Loss is the result of a loss evaluation.
type Loss struct {
	// Total = Σ_h LossWeight_h·Heads[h] + Penalty.
	Total float64
	// Heads is each head's mean data loss (before its LossWeight). The slice is owned by the
	// model and overwritten by the next call.
	Heads []float64
	// Penalty is the sum of L1/L2 weight, activity and param-difference penalties (training
	// only; 0 from EvalLoss).
	Penalty float64
}

// Outputs are per-head predictions: softmax probabilities (Rows×Classes), binary [1−p, p]
// (Rows×2), or regression values (Rows×Outputs).
type Outputs struct {
	Heads [][]float32
	Width []int
}

// Model is a trunk of layers with one or more heads. See the package doc.
type Model struct {
	spec    Spec
	embeds  []*embedding
	layers  []layer
	heads   []*head
	params  []*optim.Param
	buffers []*optim.Param
	byName  map[string]*optim.Param
	shared  []*optim.Param // gradients accumulated by several users: zeroed each step

	weightPen   []weightPenalty
	activityPen []activityPenalty // indexed like layers
	diffPen     []diffPenalty

	numInputs  int
	trunkIn    int
	trunkOut   int
	rc         runCtx
	pcg        *rand.PCG
	rows       int
	workers    int
	input      []float32 // concatenated numeric + embeddings
	dtrunk     []float32
	layerOut   [][]float32 // outputs of the last forward, per layer
	record     bool
	layerGrad  [][]float32 // dL/d(output) per layer, recorded when record is set
	headLosses []float64
	headLogits [][]float32 // the heads' logits of the last forward (losses' argument)
	keepDX     bool        // backward keeps dL/dX of the numeric inputs (SetKeepInputGrad)
	dx         []float32   // rows×numInputs, the last backward's dL/dX when keepDX
	gradSave   [][]float32 // params' gradients set aside by LossStep (indexed like params)
	layerExtra [][]float32 // extra dL/d(output) per layer added by backward (SetLayerGradients)
}

type embedding struct {
	spec EmbeddingSpec
	w    *optim.Param
}

type weightPenalty struct {
	p      *optim.Param
	l1, l2 float64
}

type activityPenalty struct{ l1, l2 float64 }

type diffPenalty struct {
	a, b   *optim.Param
	weight float64
}

// Build constructs a model from spec, drawing the initial weights from rng. The returned model
// uses gemm.Default() on one worker (see SetWorkers) and a noise source for dropout and noise
// layers seeded from rng (see SetNoiseSource).
func Build(spec Spec, rng *rand.Rand) (*Model, error) {
	s, err := spec.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Model{spec: s, numInputs: s.NumInputs, byName: map[string]*optim.Param{}}
	width := s.NumInputs
	for _, e := range s.Embeddings {
		emb := &embedding{spec: e, w: newParam(e.Name+"/W", false, e.Cardinality, e.Dim)}
		for i := range emb.w.Value {
			emb.w.Value[i] = float32((2*rng.Float64() - 1) * 0.05)
		}
		m.embeds = append(m.embeds, emb)
		width += e.Dim
	}
	m.trunkIn = width
	denses := map[string]*dense{}
	shape := s.InputShape // [C, H, W] while the trunk carries an image, else nil
	for _, ls := range s.Layers {
		l, err := m.buildLayer(ls, width, shape, rng, denses)
		if err != nil {
			return nil, err
		}
		for _, one := range l {
			m.layers = append(m.layers, one)
			m.activityPen = append(m.activityPen, activityPenalty{})
			width = one.outWidth()
			shape = imageShapeAfter(one, shape)
		}
		// The activity penalty applies to the layer's final output (after inline dropout too).
		m.activityPen[len(m.activityPen)-1] = activityPenalty{ls.ActivityL1, ls.ActivityL2}
	}
	m.trunkOut = width
	for _, hs := range s.Heads {
		k := hs.headOutputs()
		init := defaultInit(hs.Init, actLinear)
		lin := &dense{lname: "head_" + hs.Name, in: width, out: k, w: newParam("head_"+hs.Name+"/W", false, width, k), b: newParam("head_"+hs.Name+"/b", true, k)}
		init.fill(lin.w.Value, width, k, rng)
		h := &head{spec: hs, lin: lin, k: k, weight: hs.LossWeight}
		if hs.BatchNorm {
			h.bn = newBatchNorm("head_"+hs.Name+"/bn", k, 0, 0)
		}
		if h.weight == 0 {
			h.weight = 1
		}
		if hs.ClassWeights != nil {
			h.classWeights = make([]float32, len(hs.ClassWeights))
			for i, v := range hs.ClassWeights {
				h.classWeights[i] = float32(v)
			}
		}
		m.heads = append(m.heads, h)
	}
	m.headLosses = make([]float64, len(m.heads))
	m.headLogits = make([][]float32, len(m.heads))
	// Params in a stable order: embeddings, trunk, heads.
	for _, e := range m.embeds {
		m.params = append(m.params, e.w)
	}
	for _, l := range m.layers {
		m.params = append(m.params, l.params()...)
		m.buffers = append(m.buffers, l.buffers()...)
	}
	for _, h := range m.heads {
		m.params = append(m.params, h.params()...)
		m.buffers = append(m.buffers, h.buffers()...)
	}
	for _, p := range append(append([]*optim.Param(nil), m.params...), m.buffers...) {
		if m.byName[p.Name] != nil {
			return nil, fmt.Errorf("nn: duplicate param name %q", p.Name)
		}
		m.byName[p.Name] = p
	}
	m.buildWeightPenalties()
	if err := m.buildDiffPenalties(); err != nil {
		return nil, err
	}
	m.pcg = rand.NewPCG(rng.Uint64(), rng.Uint64())
	m.rc = runCtx{rng: rand.New(m.pcg), gemm: gemm.Default()}
	m.workers = 1
	return m, nil
}

func (m *Model) buildLayer(ls LayerSpec, in int, shape []int, rng *rand.Rand, denses map[string]*dense) ([]layer, error) {
	act, _ := parseActivation(ls.Activation)
	switch ls.Type {
	case LayerConv, LayerMaxPool, LayerAvgPool, LayerGlobalAvgPool, LayerFlatten:
		l, err := buildImageLayer(ls, shape, act, func(w []float32, fanIn, fanOut int) {
			defaultInit(ls.Init, act).fill(w, fanIn, fanOut, rng)
		})
		if err != nil {
			return nil, err
		}
		out := []layer{l}
		if ls.Dropout > 0 {
			out = append(out, &dropoutLayer{lname: ls.Name + "_dropout", width: l.outWidth(), rate: ls.Dropout})
		}
		return out, nil
	case LayerUpsample:
		l, err := buildUpsample(ls, shape)
		if err != nil {
			return nil, err
		}
		return []layer{l}, nil
	case LayerBatchNorm:
		if shape != nil {
			// Over channels: one γ, β and running mean/variance per channel.
			bn := newBatchNorm(ls.Name, shape[0], ls.Momentum, ls.Eps)
			bn.plane = shape[1] * shape[2]
			bn.noScale = ls.NoScale
			return []layer{bn}, nil
		}
	case LayerDense, LayerLayerNorm, LayerCustom:
		if shape != nil {
			return nil, fmt.Errorf("nn: layer %q (%s) gets a %v image: add a flatten (or global_avg_pool) layer before it", ls.Name, ls.Type, shape)
		}
	}
	newDense := func(name string, in, out int, act activation, bias bool) *dense {
		d := &dense{lname: name, in: in, out: out, act: act, w: newParam(name+"/W", false, in, out)}
		defaultInit(ls.Init, act).fill(d.w.Value, in, out, rng)
		if bias {
			d.b = newParam(name+"/b", true, out)
		}
		return d
	}
	switch ls.Type {
	case LayerDense:
		var d *dense
		if ls.Tie != "" {
			owner := denses[ls.Tie]
			if owner == nil {
				return nil, fmt.Errorf("nn: layer %q: tie = %q is not an earlier dense layer", ls.Name, ls.Tie)
			}
			a, b := owner.w.Shape[0], owner.w.Shape[1]
			wantIn, wantOut := a, b
			if ls.TieTranspose {
				wantIn, wantOut = b, a
			}
			if in != wantIn || ls.Units != wantOut {
				return nil, fmt.Errorf("nn: layer %q: tied to %q (W %d×%d, transpose=%v) needs %d inputs and units = %d, got %d inputs and units = %d",
					ls.Name, ls.Tie, a, b, ls.TieTranspose, wantIn, wantOut, in, ls.Units)
			}
			d = &dense{lname: ls.Name, in: in, out: ls.Units, act: act, w: owner.w, transposed: ls.TieTranspose, shared: true}
			owner.shared = true
			m.shared = append(m.shared, owner.w)
			if !ls.NoBias {
				d.b = newParam(ls.Name+"/b", true, ls.Units)
			}
		} else {
			d = newDense(ls.Name, in, ls.Units, act, !ls.NoBias)
		}
		denses[ls.Name] = d
		out := []layer{d}
		if ls.Dropout > 0 {
			out = append(out, &dropoutLayer{lname: ls.Name + "_dropout", width: ls.Units, rate: ls.Dropout})
		}
		return out, nil
	case LayerActivation:
		return []layer{&activationLayer{lname: ls.Name, width: in, act: act}}, nil
	case LayerDropout:
		return []layer{&dropoutLayer{lname: ls.Name, width: in, rate: ls.Rate}}, nil
	case LayerGaussianNoise:
		return []layer{&noiseLayer{lname: ls.Name, width: in, stddev: ls.Stddev}}, nil
	case LayerBatchNorm:
		bn := newBatchNorm(ls.Name, in, ls.Momentum, ls.Eps)
		bn.noScale = ls.NoScale
		return []layer{bn}, nil
	case LayerLayerNorm:
		return []layer{newLayerNorm(ls.Name, in, ls.Eps)}, nil
	case LayerResidual:
		if shape != nil {
			r, err := buildConvResidual(ls, shape, act, rng)
			if err != nil {
				return nil, err
			}
			return []layer{r}, nil
		}
		if ls.Filters > 0 {
			return nil, fmt.Errorf("nn: layer %q: a residual block with filters needs an image input (set input_shape, or use units for the MLP block)", ls.Name)
		}
		r := &residual{lname: ls.Name, in: in, units: ls.Units}
		switch ls.Norm {
		case LayerBatchNorm:
			r.norm = newBatchNorm(ls.Name+"/norm", in, ls.Momentum, ls.Eps)
		case LayerLayerNorm:
			r.norm = newLayerNorm(ls.Name+"/norm", in, ls.Eps)
		}
		r.a = newDense(ls.Name+"/dense_a", in, ls.Units, act, true)
		if ls.Dropout > 0 {
			r.drop = &dropoutLayer{lname: ls.Name + "/dropout", width: ls.Units, rate: ls.Dropout}
		}
		r.b = newDense(ls.Name+"/dense_b", ls.Units, ls.Units, actLinear, true)
		if in != ls.Units {
			r.proj = newDense(ls.Name+"/proj", in, ls.Units, actLinear, false)
		}
		return []layer{r}, nil
	case LayerCustom:
		c, err := newCustomLayer(ls, in, rng)
		if err != nil {
			return nil, err
		}
		out := []layer{c}
		if ls.Dropout > 0 {
			out = append(out, &dropoutLayer{lname: ls.Name + "_dropout", width: c.outWidth(), rate: ls.Dropout})
		}
		return out, nil
	}
	return nil, fmt.Errorf("nn: layer %q: unknown type %q", ls.Name, ls.Type)
}

// buildWeightPenalties attaches L1/L2 to every decayable param: the layer's own values, else
// the global ones.
func (m *Model) buildWeightPenalties() {
	own := map[string][2]float64{}
	for _, ls := range m.spec.Layers {
		if ls.L1 != 0 || ls.L2 != 0 {
			own[ls.Name] = [2]float64{ls.L1, ls.L2}
		}
	}
	for _, p := range m.params {
		if p.NoDecay {
			continue
		}
		l1, l2 := m.spec.L1, m.spec.L2
		if v, ok := own[layerOf(p.Name)]; ok {
			l1, l2 = v[0], v[1]
		}
		if l1 != 0 || l2 != 0 {
			m.weightPen = append(m.weightPen, weightPenalty{p: p, l1: l1, l2: l2})
		}
	}
}

// layerOf returns the top-level layer name of a param name ("residual_1/dense_a/W" →
// "residual_1").
func layerOf(param string) string {
	for i := 0; i < len(param); i++ {
		if param[i] == '/' {
			return param[:i]
		}
	}
	return param
}

func (m *Model) buildDiffPenalties() error {
	for _, dp := range m.spec.ParamDiffPenalties {
		as, err := m.MatchParams(dp.A)
		if err != nil {
			return err
		}
		bs, err := m.MatchParams(dp.B)
		if err != nil {
			return err
		}
		if len(as) == 0 || len(as) != len(bs) {
			return fmt.Errorf("nn: param_diff_penalty %q vs %q: matched %d and %d params, want the same non-zero count", dp.A, dp.B, len(as), len(bs))
		}
		for i := range as {
			if as[i].Size() != bs[i].Size() {
				return fmt.Errorf("nn: param_diff_penalty: %s %v and %s %v differ in shape", as[i].Name, as[i].Shape, bs[i].Name, bs[i].Shape)
			}
			m.diffPen = append(m.diffPen, diffPenalty{a: as[i], b: bs[i], weight: dp.Weight})
		}
	}
	return nil
}

// MatchParams returns the trainable params whose names match pattern (an anchored regular
// expression, see the package doc), sorted by name.
func (m *Model) MatchParams(pattern string) ([]*optim.Param, error) {
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		return nil, fmt.Errorf("nn: pattern %q: %w", pattern, err)
	}
	var out []*optim.Param
	for _, p := range m.params {
		if re.MatchString(p.Name) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Spec returns the model's spec with defaults and generated names filled in.
func (m *Model) Spec() Spec { return m.spec }

// Params returns the trainable params in a stable order (embeddings, trunk, heads). The
// slice and the params are the model's own: optimizers update them in place.
func (m *Model) Params() []*optim.Param { return m.params }

// Buffers returns the non-trainable state saved with the model (batch-norm running stats).
func (m *Model) Buffers() []*optim.Param { return m.buffers }

// Param returns the param or buffer with the given name, or nil.
func (m *Model) Param(name string) *optim.Param { return m.byName[name] }

// SetWorkers sets the number of goroutines used for matrix products (the caller's share of the
// CPU budget). Results are bit-identical for any value (see gemm.Parallel).
func (m *Model) SetWorkers(n int) {
	m.workers = max(n, 1)
	m.rc.gemm = gemm.Parallel{Backend: unwrap(m.rc.gemm), Workers: m.workers}
}

// SetBackend selects the GEMM backend (default gemm.Default() at Build).
func (m *Model) SetBackend(b gemm.Backend) {
	m.rc.gemm = gemm.Parallel{Backend: b, Workers: m.workers}
}

func unwrap(b gemm.Backend) gemm.Backend {
	if p, ok := b.(gemm.Parallel); ok {
		return p.Backend
	}
	return b
}

// NoiseSource returns the PCG that drives dropout and noise layers (its state is part of a
// training checkpoint).
func (m *Model) NoiseSource() *rand.PCG { return m.pcg }

// SetNoiseSource replaces the PCG that drives dropout and noise layers.
func (m *Model) SetNoiseSource(src *rand.PCG) {
	m.pcg = src
	m.rc.rng = rand.New(src)
}

// SetClassWeights sets the class weights of the named classification head (nil removes
// them).
func (m *Model) SetClassWeights(headName string, w []float64) error {
	for _, h := range m.heads {
		if h.spec.Name != headName {
			continue
		}
		k := h.k
		if h.spec.Kind == HeadBinary {
			k = 2
		} else if h.spec.Kind != HeadSoftmax {
			return fmt.Errorf("nn: head %q is a regression head: class weights do not apply", headName)
		}
		if w == nil {
			h.classWeights = nil
			return nil
		}
		if len(w) != k {
			return fmt.Errorf("nn: head %q: %d class weights, want %d", headName, len(w), k)
		}
		h.classWeights = make([]float32, k)
		for i, v := range w {
			h.classWeights[i] = float32(v)
		}
		return nil
	}
	return fmt.Errorf("nn: no head named %q", headName)
}

// ClassWeights returns the class weights in use by the named head (nil: none).
func (m *Model) ClassWeights(headName string) []float64 {
	for _, h := range m.heads {
		if h.spec.Name == headName && h.classWeights != nil {
			out := make([]float64, len(h.classWeights))
			for i, v := range h.classWeights {
				out[i] = float64(v)
			}
			return out
		}
	}
	return nil
}

// BalancedClassWeights returns n/(k·count_c) from labels (negative = missing); a class absent
// from labels gets weight 1.
func BalancedClassWeights(labels []int32, k int) []float64 {
	counts := make([]float64, k)
	var n float64
	for _, l := range labels {
		if l >= 0 && int(l) < k {
			counts[l]++
			n++
		}
	}
	w := make([]float64, k)
	for c := range w {
		w[c] = 1
		if counts[c] > 0 {
			w[c] = n / (float64(k) * counts[c])
		}
	}
	return w
}

// alloc sizes every buffer for batches of up to rows rows.
func (m *Model) alloc(rows int) {
	if rows <= m.rows {
		return
	}
	m.rows = rows
	if len(m.embeds) > 0 {
		m.input = grow(m.input, rows*m.trunkIn)
	}
	for _, l := range m.layers {
		l.alloc(rows)
	}
	for _, h := range m.heads {
		h.alloc(rows)
	}
	m.dtrunk = grow(m.dtrunk, rows*m.trunkOut)
	m.layerOut = make([][]float32, len(m.layers))
	m.layerGrad = make([][]float32, len(m.layers))
}

func (m *Model) checkBatch(b Batch) error {
	if b.Rows <= 0 {
		return fmt.Errorf("nn: batch has %d rows", b.Rows)
	}
	if len(b.X) < b.Rows*m.numInputs {
		return fmt.Errorf("nn: batch X has %d values, want rows %d × num_inputs %d", len(b.X), b.Rows, m.numInputs)
	}
	if len(b.Cat) != len(m.embeds) {
		return fmt.Errorf("nn: batch has %d categorical columns, the model has %d embeddings", len(b.Cat), len(m.embeds))
	}
	for i, c := range b.Cat {
		if len(c) < b.Rows {
			return fmt.Errorf("nn: categorical column %d (%s) has %d values for %d rows", i, m.embeds[i].spec.Name, len(c), b.Rows)
		}
	}
	return nil
}

// forward runs the trunk and the heads' linear layers.
func (m *Model) forward(b Batch, train bool) {
	m.alloc(b.Rows)
	m.rc.train = train
	rows := b.Rows
	x := b.X[:rows*m.numInputs]
	if len(m.embeds) > 0 {
		in := m.input[:rows*m.trunkIn]
		for r := 0; r < rows; r++ {
			dst := in[r*m.trunkIn : (r+1)*m.trunkIn]
			off := copy(dst, x[r*m.numInputs:(r+1)*m.numInputs])
			for i, e := range m.embeds {
				idx := int(b.Cat[i][r])
				if idx < 0 || idx >= e.spec.Cardinality {
					idx = 0
				}
				off += copy(dst[off:off+e.spec.Dim], e.w.Value[idx*e.spec.Dim:(idx+1)*e.spec.Dim])
			}
		}
		x = in
	}
	for i, l := range m.layers {
		x = l.forward(&m.rc, x, rows)
		m.layerOut[i] = x
	}
	for _, h := range m.heads {
		h.forward(&m.rc, x, rows)
	}
}

// losses computes the heads' losses (and logit gradients when grad is set).
func (m *Model) losses(t Targets, rows int, grad bool) (Loss, error) {
	for i, h := range m.heads {
		m.headLogits[i] = h.logits(rows)
	}
	return m.lossesOf(m.headLogits, t, rows, grad)
}

// lossesOf is losses on the given per-head logits (rows×k each); grad needs them to be the
// heads' buffers of the last forward pass.
func (m *Model) lossesOf(logits [][]float32, t Targets, rows int, grad bool) (Loss, error) {
	if len(t.Heads) != len(m.heads) {
		return Loss{}, fmt.Errorf("nn: %d head targets for %d heads", len(t.Heads), len(m.heads))
	}
	if t.Weights != nil && len(t.Weights) < rows {
		return Loss{}, fmt.Errorf("nn: %d sample weights for %d rows", len(t.Weights), rows)
	}
	var total float64
	for i, h := range m.heads {
		if err := h.checkTargets(t.Heads[i], rows); err != nil {
			return Loss{}, fmt.Errorf("nn: %w", err)
		}
		l, _ := h.lossTo(logits[i], t.Heads[i], t.Weights, rows, h.weight, grad)
		m.headLosses[i] = l
		total += h.weight * l
	}
	return Loss{Total: total, Heads: m.headLosses}, nil
}

// TrainStep runs forward (training mode), loss and backward on one batch and leaves the
// gradient of Loss.Total in every param's Grad (frozen params' Grad is not updated). It does
// not update the weights. After the first call with a given batch size it does not allocate.
func (m *Model) TrainStep(b Batch, t Targets) (Loss, error) {
	if err := m.checkBatch(b); err != nil {
		return Loss{}, err
	}
	m.forward(b, true)
	if err := m.customErr(); err != nil {
		return Loss{}, err
	}
	loss, err := m.losses(t, b.Rows, true)
	if err != nil {
		return Loss{}, err
	}
	m.backward(b)
	if err := m.customErr(); err != nil {
		return Loss{}, err
	}
	loss.Penalty = m.penalties(b.Rows, true)
	loss.Total += loss.Penalty
	return loss, nil
}

// trainLoss is TrainStep without the backward pass (for gradient checks).
func (m *Model) trainLoss(b Batch, t Targets) (Loss, error) {
	if err := m.checkBatch(b); err != nil {
		return Loss{}, err
	}
	m.forward(b, true)
	if err := m.customErr(); err != nil {
		return Loss{}, err
	}
	loss, err := m.losses(t, b.Rows, false)
	if err != nil {
		return Loss{}, err
	}
	loss.Penalty = m.penalties(b.Rows, false)
	loss.Total += loss.Penalty
	return loss, nil
}

// EvalLoss returns the data loss of a batch in eval mode (no dropout or noise, batch-norm
// running statistics, no penalties). Batches larger than the model's buffers grow them.
func (m *Model) EvalLoss(b Batch, t Targets) (Loss, error) {
	if err := m.checkBatch(b); err != nil {
		return Loss{}, err
	}
	m.forward(b, false)
	if err := m.customErr(); err != nil {
		return Loss{}, err
	}
	return m.losses(t, b.Rows, false)
}

func (m *Model) backward(b Batch) {
	rows := b.Rows
	for _, p := range m.shared {
		clear(p.Grad)
	}
	needTrunkDX := len(m.layers) > 0 || len(m.embeds) > 0 || m.keepDX
	var d []float32
	if len(m.heads) == 1 {
		h := m.heads[0]
		d = h.backward(&m.rc, h.dz[:rows*h.k], rows, needTrunkDX)
	} else {
		d = m.dtrunk[:rows*m.trunkOut]
		for i, h := range m.heads {
			dh := h.backward(&m.rc, h.dz[:rows*h.k], rows, needTrunkDX)
			if !needTrunkDX {
				continue
			}
			if i == 0 {
				copy(d, dh)
			} else {
				for j, v := range dh {
					d[j] += v
				}
			}
		}
	}
	for i := len(m.layers) - 1; i >= 0; i-- {
		l := m.layers[i]
		if i < len(m.layerExtra) && len(m.layerExtra[i]) > 0 {
			for j, v := range m.layerExtra[i][:len(d)] {
				d[j] += v
			}
		}
		if ap := m.activityPen[i]; ap.l1 != 0 || ap.l2 != 0 {
			addActivityGrad(d, m.layerOut[i], ap, rows)
		}
		if m.record {
			m.layerGrad[i] = append(m.layerGrad[i][:0], d...)
		}
		d = l.backward(&m.rc, d, rows, i > 0 || len(m.embeds) > 0 || m.keepDX)
	}
	if m.keepDX {
		m.keepInputGrad(d, rows)
	}
	if len(m.embeds) == 0 {
		return
	}
	off := m.numInputs
	for i, e := range m.embeds {
		if e.w.Frozen {
			off += e.spec.Dim
			continue
		}
		clear(e.w.Grad)
		dim := e.spec.Dim
		for r := 0; r < rows; r++ {
			idx := int(b.Cat[i][r])
			if idx < 0 || idx >= e.spec.Cardinality {
				idx = 0
			}
			g := e.w.Grad[idx*dim : (idx+1)*dim]
			for j, v := range d[r*m.trunkIn+off : r*m.trunkIn+off+dim] {
				g[j] += v
			}
		}
		off += dim
	}
}

func addActivityGrad(d, a []float32, ap activityPenalty, rows int) {
	l1 := float32(ap.l1 / float64(rows))
	l2 := float32(2 * ap.l2 / float64(rows))
	for i, v := range a[:len(d)] {
		g := l2 * v
		if v > 0 {
			g += l1
		} else if v < 0 {
			g -= l1
		}
		d[i] += g
	}
}

// penalties returns the weight, activity and difference penalties and, when grad is set, adds
// their gradients to the params' Grad.
func (m *Model) penalties(rows int, grad bool) float64 {
	var total float64
	for _, wp := range m.weightPen {
		if wp.p.Frozen {
			continue
		}
		if wp.l1 == 0 {
			// The common case, L2 only: one vectorised pass for the gradient and the value.
			if grad {
				total += wp.l2 * elementwise.L2Grad(wp.p.Value, wp.p.Grad, float32(2*wp.l2))
			} else {
				total += wp.l2 * elementwise.SumSquares(wp.p.Value)
			}
			continue
		}
		var s1, s2 float64
		for i, v := range wp.p.Value {
			f := float64(v)
			s1 += math.Abs(f)
			s2 += f * f
			if grad {
				g := 2 * wp.l2 * f
				if f > 0 {
					g += wp.l1
				} else if f < 0 {
					g -= wp.l1
				}
				wp.p.Grad[i] += float32(g)
			}
		}
		total += wp.l1*s1 + wp.l2*s2
	}
	for i, ap := range m.activityPen {
		if ap.l1 == 0 && ap.l2 == 0 {
			continue
		}
		var s1, s2 float64
		for _, v := range m.layerOut[i][:rows*m.layers[i].outWidth()] {
			s1 += math.Abs(float64(v))
			s2 += float64(v) * float64(v)
		}
		total += (ap.l1*s1 + ap.l2*s2) / float64(rows)
	}
	for _, dp := range m.diffPen {
		var s float64
		for i, av := range dp.a.Value {
			diff := float64(av) - float64(dp.b.Value[i])
			s += diff * diff
			if grad {
				g := float32(2 * dp.weight * diff)
				if !dp.a.Frozen {
					dp.a.Grad[i] += g
				}
				if !dp.b.Frozen {
					dp.b.Grad[i] -= g
				}
			}
		}
		total += dp.weight * s
	}
	return total
}

// Predict runs inference in eval mode (no dropout or noise, batch-norm running statistics) and
// returns freshly allocated per-head outputs (see Outputs). It forwards InferenceRows rows at a
// time, so the model's buffers stay bounded however many rows b holds; the outputs are the
// same as one pass over all rows.
func (m *Model) Predict(b Batch) (Outputs, error) {
	return m.predict(b, m.InferenceRows())
}

// predict is Predict with chunks of chunk rows.
func (m *Model) predict(b Batch, chunk int) (Outputs, error) {
	if err := m.checkBatch(b); err != nil {
		return Outputs{}, err
	}
	return m.predictChunks(b, chunk, nil)
}

// headOutputTo converts the head's logits of the last forward into its output.
func (m *Model) headOutputTo(dst []float32, h *head, rows int) {
	logits := h.logits(rows)
	k := h.k
	switch h.spec.Kind {
	case HeadSoftmax:
		for r := 0; r < rows; r++ {
			z, p := logits[r*k:r*k+k], dst[r*k:r*k+k]
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
	case HeadBinary:
		for r := 0; r < rows; r++ {
			p := sigmoidExact(logits[r])
			dst[2*r], dst[2*r+1] = 1-p, p
		}
	default:
		copy(dst, logits)
	}
}

// LayerTensor is one layer's output (and gradient) from the last training step, for
// monitoring. The slices alias model buffers: read them before the next step.
type LayerTensor struct {
	Layer string
	Kind  string
	Rows  int
	Cols  int
	// Output is the layer's forward output, Rows×Cols.
	Output []float32
	// Grad is dL/dOutput, recorded only while SetRecordGradients(true); else nil.
	Grad []float32
}

// SetRecordGradients makes TrainStep keep a copy of every layer's output gradient (costs one
// copy per layer; enable on sampled steps only).
func (m *Model) SetRecordGradients(on bool) { m.record = on }

// LayerTensors returns the trunk layers' outputs (and recorded gradients) of the last forward
// pass with rows rows.
func (m *Model) LayerTensors(rows int) []LayerTensor {
	out := make([]LayerTensor, 0, len(m.layers))
	for i, l := range m.layers {
		lt := LayerTensor{Layer: l.name(), Kind: l.kind(), Rows: rows, Cols: l.outWidth()}
		if m.layerOut != nil && m.layerOut[i] != nil {
			lt.Output = m.layerOut[i][:rows*l.outWidth()]
		}
		if m.record && len(m.layerGrad[i]) >= rows*l.outWidth() {
			lt.Grad = m.layerGrad[i][:rows*l.outWidth()]
		}
		out = append(out, lt)
	}
	return out
}

// Heads returns the head specs in order.
func (m *Model) Heads() []HeadSpec {
	out := make([]HeadSpec, len(m.heads))
	for i, h := range m.heads {
		out[i] = h.spec
	}
	return out
}
