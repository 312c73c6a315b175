package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// fullLadderSpec is a two-hidden-layer model the full ladder mirrors: the first layer with
// noise after its batch norm, the second without; tanh keeps finite differences off kinks.
func fullLadderSpec(act string) nn.Spec {
	return nn.Spec{NumInputs: 3, Layers: []nn.LayerSpec{
		{Type: nn.LayerDense, Units: 5, Activation: "linear"}, {Type: nn.LayerBatchNorm}, {Type: nn.LayerGaussianNoise, Stddev: 0.3}, {Type: nn.LayerActivation, Activation: act},
		{Type: nn.LayerDense, Units: 4}, {Type: nn.LayerBatchNorm}, {Type: nn.LayerActivation, Activation: act},
	}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}
}

// relErrCheck compares analytic gradients with central differences of cost over the
// coordinates of v, and fails on a relative error above tol (with a floor of 1e-3 of the
// largest analytic value, for float32 noise on tiny gradients).
func relErrCheck(t *testing.T, what string, v, grad []float32, h float32, tol float64, cost func() float64) {
	t.Helper()
	floor := 5e-4 // the central difference of a float32 loss is good to about this much
	for _, g := range grad {
		floor = max(floor, 1e-3*math.Abs(float64(g)))
	}
	worst, nonzero, numNonzero := 0.0, 0, 0
	for i := range v {
		orig := v[i]
		v[i] = orig + h
		up := cost()
		v[i] = orig - h
		down := cost()
		v[i] = orig
		num := (up - down) / float64(2*h)
		a := float64(grad[i])
		err := math.Abs(num-a) / (max(math.Abs(num), math.Abs(a)) + floor)
		worst = max(worst, err)
		if math.Abs(a) > floor {
			nonzero++
		}
		if math.Abs(num) > 10*floor {
			numNonzero++
		}
		if err > tol {
			t.Errorf("%s %d: analytic %g, numeric %g", what, i, a, num)
		}
	}
	if nonzero == 0 && numNonzero > 0 {
		t.Errorf("%s: every analytic gradient is zero, %d numeric ones are not", what, numNonzero)
	}
	t.Logf("%s: %d coordinates, worst relative error %.2g", what, len(v), worst)
}

// TestFullLadderDecoderGradCheck checks the full ladder's denoising cost against central
// finite differences: its gradients with respect to every decoder weight V(l) and every
// combinator parameter a1…a10 of every level, to the corrupted pass's hidden
// pre-activations and logits (the lateral connections into the encoder, through z̃'s batch
// norm, and at the top through u's softmax), and to the clean pass's pre-activations and
// logits (through the targets z and the statistics μ, σ that normalise ẑ).
func TestFullLadderDecoderGradCheck(t *testing.T) {
	for _, norm := range []string{LadderEstimateClean, LadderEstimateNone} {
		t.Run(norm, func(t *testing.T) { fullLadderDecoderGradCheck(t, norm) })
	}
}

func fullLadderDecoderGradCheck(t *testing.T, norm string) {
	const rows = 6
	spec := fullLadderSpec("tanh")
	f, err := newFullLadder(spec, []float64{1.3, 0.7, 2.1, 0.9}, norm, rows, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.levels) != 4 || len(f.taps) != 2 {
		t.Fatalf("%d levels and %d taps, want 4 and 2", len(f.levels), len(f.taps))
	}
	rng := rand.New(rand.NewPCG(11, 1))
	randn := func(n int, sd float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * sd)
		}
		return v
	}
	for _, lv := range f.levels {
		for i := range lv.comb.Value {
			lv.comb.Value[i] = float32(rng.NormFloat64() * 0.7)
		}
	}
	x := randn(rows*3, 1)
	xt := append([]float32(nil), x...)
	for i := range xt {
		xt[i] += float32(rng.NormFloat64() * 0.3)
	}
	preClean := [][]float32{randn(rows*5, 2), randn(rows*4, 1.5)}
	preCorr := [][]float32{randn(rows*5, 2), randn(rows*4, 1.5)}
	noise := [][]float32{randn(rows*5, 0.3), nil}
	// The top level: the head's linear outputs (z and z̃'s source) and, separately, the
	// corrupted logits u(L) takes the softmax of (with a head batch norm or noise they differ).
	topClean, topCorr, logitsCorr := randn(rows*3, 2), randn(rows*3, 2), randn(rows*3, 2)
	topNoise := randn(rows*3, 0.3)
	const weight = 1.5
	cost := func() float64 {
		f.setClean(x, preClean, topClean, rows)
		return f.cost(weight, xt, preCorr, noise, topCorr, topNoise, logitsCorr, make([]float32, rows*3), rows)
	}
	dl := make([]float32, rows*3)
	f.setClean(x, preClean, topClean, rows)
	f.cost(weight, xt, preCorr, noise, topCorr, topNoise, logitsCorr, dl, rows)
	type gradOf struct {
		what    string
		v, grad []float32
	}
	var checks []gradOf
	for _, p := range f.params {
		checks = append(checks, gradOf{p.Name, p.Value, append([]float32(nil), p.Grad...)})
	}
	checks = append(checks, gradOf{"corrupted logits", logitsCorr, dl})
	checks = append(checks, gradOf{"corrupted top pre-activation", topCorr, append([]float32(nil), f.dpre[:rows*3]...)})
	for i := range preCorr {
		checks = append(checks, gradOf{"corrupted pre-activation " + string(rune('1'+i)), preCorr[i], append([]float32(nil), f.levels[i+1].dcorr[:rows*f.levels[i+1].w]...)})
		checks = append(checks, gradOf{"clean pre-activation " + string(rune('1'+i)), preClean[i], append([]float32(nil), f.levels[i+1].dclean[:rows*f.levels[i+1].w]...)})
	}
	checks = append(checks, gradOf{"clean top pre-activation", topClean, append([]float32(nil), f.cleanTopGrad(rows)...)})
	for _, c := range checks {
		relErrCheck(t, c.what, c.v, c.grad, 3e-3, 3e-2, cost)
	}
}

// TestFullLadderGradThroughEncoder checks a whole full-ladder step (the clean pass, the
// corrupted pass with the supervised loss and the decoder's costs, and the second clean pass)
// against central finite differences of its loss in every weight of the encoder and the
// decoder, with the step's random draws (unlabeled rows, noise) held fixed: the lateral
// connections' gradients reach the encoder's dense layers and batch norms through both
// passes.
// With SeparateBatches the labelled rows' corrupted pass (the supervised loss) and the
// unlabelled rows' (the costs) are two passes, each normalised by its own statistics.
// With a head that has batch norm and noise of its own (the ladder authors' top layer), the
// top level's costs reach the head through Model.SetHeadGradient; the Γ-model (decoder
// "top") is checked the same way.
func TestFullLadderGradThroughEncoder(t *testing.T) {
	for _, norm := range []string{LadderEstimateClean, LadderEstimateNone} {
		for _, separate := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/separate_batches=%v", norm, separate), func(t *testing.T) { fullLadderGradThroughEncoder(t, LadderFull, norm, separate, false) })
		}
	}
	t.Run("clean/separate_batches=true/head_batch_norm_noise", func(t *testing.T) {
		fullLadderGradThroughEncoder(t, LadderFull, LadderEstimateClean, true, true)
	})
	for _, headNoise := range []bool{false, true} {
		t.Run(fmt.Sprintf("top/head_batch_norm_noise=%v", headNoise), func(t *testing.T) { fullLadderGradThroughEncoder(t, LadderTop, "", true, headNoise) })
	}
}

func fullLadderGradThroughEncoder(t *testing.T, decoder, norm string, separate, headNoise bool) {
	lab, unl := semiBlobs()
	spec := fullLadderSpec("tanh")
	spec.NumInputs = 6
	if headNoise {
		spec.Heads[0].BatchNorm, spec.Heads[0].Noise = true, 0.3
	}
	m := buildModel(t, spec)
	cfg := semiConfig(SemiLadder, unl, 1)
	cfg.Semi.Decoder, cfg.Semi.UnlabeledBatch, cfg.Semi.EstimateNorm = decoder, 8, norm
	if decoder == LadderFull {
		cfg.Semi.Weights = []float64{2, 1, 0.5, 0.8}
	}
	cfg.Semi.SeparateBatches = separate
	sr, err := newSemiRun(cfg.Semi, cfg, m, 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sr.decoder {
		for i := range p.Value {
			p.Value[i] += float32(rand.New(rand.NewPCG(uint64(i), 3)).NormFloat64() * 0.5)
		}
	}
	b, tg := materialize(lab.Subset([]int{0, 1, 2, 3, 4, 5, 6, 7}))
	semiState, _ := sr.src.MarshalBinary()
	noiseState, _ := m.NoiseSource().MarshalBinary()
	prog := optim.Progress{Step: 100, StepsPerEpoch: 1}
	loss := func() float64 {
		if err := sr.src.UnmarshalBinary(semiState); err != nil {
			t.Fatal(err)
		}
		if err := m.NoiseSource().UnmarshalBinary(noiseState); err != nil {
			t.Fatal(err)
		}
		l, err := sr.step(b, tg, prog)
		if err != nil {
			t.Fatal(err)
		}
		return l.Total
	}
	loss()
	params := append(append([]*optim.Param(nil), m.Params()...), sr.decoder...)
	grads := make([][]float32, len(params))
	for i, p := range params {
		grads[i] = append([]float32(nil), p.Grad...)
	}
	for i, p := range params {
		v, g := p.Value, grads[i]
		if len(v) > 24 {
			idx := rand.New(rand.NewPCG(uint64(i), 9)).Perm(len(v))[:24]
			sub, subg := make([]float32, len(idx)), make([]float32, len(idx))
			for j, k := range idx {
				sub[j], subg[j] = v[k], g[k]
			}
			// A smaller step for the weight matrices: at 1e-2 the first layer's truncation
			// error shows (the difference converges on the analytic value as h shrinks).
			relErrCheck(t, p.Name, sub, subg, 5e-3, 5e-2, func() float64 {
				for j, k := range idx {
					v[k] = sub[j]
				}
				return loss()
			})
			for j, k := range idx {
				v[k] = sub[j]
			}
			continue
		}
		relErrCheck(t, p.Name, v, g, 1e-2, 5e-2, loss)
	}
}

// fullLadderConfig is semiConfig's ladder with the full decoder, for fullLadderSpec.
func fullLadderConfig(u Dataset, workers int) Config {
	cfg := semiConfig(SemiLadder, u, workers)
	cfg.Semi.Decoder, cfg.Semi.Weights = LadderFull, []float64{5, 1, 0.5, 0.5}
	return cfg
}

func fullLadderBlobsSpec() nn.Spec {
	s := fullLadderSpec("relu")
	s.NumInputs = 6
	return s
}

// TestFullLadderDeterministicAndResume trains the full ladder with 1 and 3 workers (and 1
// again): weights and history are bit-identical; they differ from the Γ-model's on the same
// layers; a run resumed from the checkpoint of epoch 1 (through its wire form) ends with the
// uninterrupted run's weights, history and decoder (the checkpoint holds V, the combinators
// and their optimizer state); and the Γ-model's checkpoint does not fit the full ladder's
// config (ErrCheckpoint).
func TestFullLadderDeterministicAndResume(t *testing.T) {
	lab, unl := semiBlobs()
	val := blobs(2, 60)
	var ws [][][]float32
	var hs []History
	for _, workers := range []int{1, 3, 1} {
		m := buildModel(t, fullLadderBlobsSpec())
		res, err := Fit(context.Background(), m, lab, val, fullLadderConfig(unl, workers))
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, weightsOf(m))
		hs = append(hs, res.History)
	}
	sameWeights(t, ws[0], ws[1])
	sameWeights(t, ws[0], ws[2])
	if !reflect.DeepEqual(hs[0], hs[1]) {
		t.Errorf("history with 3 workers differs from 1 worker's:\n%v\n%v", hs[1], hs[0])
	}
	top := buildModel(t, fullLadderBlobsSpec())
	topCfg := semiConfig(SemiLadder, unl, 1)
	topCfg.EarlyStopping.Disabled = true
	var topCk *Checkpoint
	if _, err := Fit(context.Background(), top, lab, val, topCfg, checkpointAt(1, &topCk)); err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(ws[0], weightsOf(top)) {
		t.Error("the full ladder gave the Γ-model's weights")
	}

	cfg := fullLadderConfig(unl, 1)
	cfg.EarlyStopping.Disabled = true
	full := buildModel(t, fullLadderBlobsSpec())
	var ck *Checkpoint
	var ckEnd []byte
	resFull, err := Fit(context.Background(), full, lab, val, cfg, checkpointAt(1, &ck), lastSemiState(&ckEnd))
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeSemiState(ck.Semi)
	if err != nil {
		t.Fatal(err)
	}
	if st.Decoder != LadderFull || len(st.Combinator) == 0 || len(st.CombinatorOptimizer) == 0 {
		t.Fatalf("checkpoint: decoder %q, %d decoder values, %d bytes of optimizer state", st.Decoder, len(st.Combinator), len(st.CombinatorOptimizer))
	}
	resumed := buildModel(t, fullLadderBlobsSpec())
	cfg.Resume = ck
	var ckRes []byte
	resRes, err := Fit(context.Background(), resumed, lab, val, cfg, lastSemiState(&ckRes))
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, weightsOf(full), weightsOf(resumed))
	if !reflect.DeepEqual(resFull.History, resRes.History) {
		t.Errorf("resumed history differs:\n%v\n%v", resRes.History, resFull.History)
	}
	if len(ckEnd) == 0 || !reflect.DeepEqual(ckEnd, ckRes) {
		t.Error("the resumed run's final decoder state differs from the uninterrupted run's")
	}
	other := cfg
	other.Semi = &Semi{}
	*other.Semi = *cfg.Semi
	other.Semi.EstimateNorm = LadderEstimateNone
	other.Resume = ck
	if _, err := Fit(context.Background(), buildModel(t, fullLadderBlobsSpec()), lab, val, other); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("resuming with another estimate norm: err = %v, want ErrCheckpoint", err)
	}
	cfg.Resume = topCk
	if _, err := Fit(context.Background(), buildModel(t, fullLadderBlobsSpec()), lab, val, cfg); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("resuming the full ladder from the Γ-model's checkpoint: err = %v, want ErrCheckpoint", err)
	}
}

// TestFullLadderConfigErrors checks that the full ladder's settings and the layers it cannot
// mirror are errors before training, each naming what is wrong.
func TestFullLadderConfigErrors(t *testing.T) {
	lab, unl := semiBlobs()
	good := fullLadderBlobsSpec()
	with := func(edit func(*nn.Spec)) nn.Spec {
		s := fullLadderBlobsSpec()
		s.Layers = append([]nn.LayerSpec(nil), s.Layers...)
		edit(&s)
		return s
	}
	w4 := []float64{5, 1, 0.5, 0.5}
	cases := []struct {
		name    string
		method  string
		decoder string
		weights []float64
		spec    nn.Spec
		want    string
	}{
		{"decoder_on_pi", SemiPi, LadderFull, w4, good, `semi decoder and weights are settings of method "ladder", not "pi"`},
		{"unknown_decoder", SemiLadder, "middle", w4, good, `semi ladder decoder "middle": want "top" or "full"`},
		{"weights_with_top", SemiLadder, LadderTop, w4, good, `set decoder = "full"`},
		{"full_without_weights", SemiLadder, LadderFull, nil, good, `decoder "full" needs weights`},
		{"weights_count", SemiLadder, LadderFull, []float64{1, 1, 1}, good, "weights has 3 values; this model's ladder has 4 levels"},
		{"negative_weight", SemiLadder, LadderFull, []float64{1, -1, 1, 1}, good, "weights[1] = -1"},
		{"dense_with_activation", SemiLadder, LadderFull, w4, with(func(s *nn.Spec) { s.Layers[0].Activation = "relu" }), `layer "dense_1" (dense) has activation "relu"`},
		{"dense_with_dropout", SemiLadder, LadderFull, w4, with(func(s *nn.Spec) { s.Layers[0].Dropout = 0.1 }), `layer "dense_1" (dense) has dropout`},
		{"dropout_layer", SemiLadder, LadderFull, w4, with(func(s *nn.Spec) {
			s.Layers = append(s.Layers[:4:4], append([]nn.LayerSpec{{Type: nn.LayerDropout, Rate: 0.1}}, s.Layers[4:]...)...)
		}), `layer "dropout_1" (dropout) has no mirror in the ladder's decoder`},
		{"residual_layer", SemiLadder, LadderFull, w4, with(func(s *nn.Spec) { s.Layers = append(s.Layers, nn.LayerSpec{Type: nn.LayerResidual, Units: 4}) }), `layer "residual_1" (residual) has no mirror`},
		{"dense_without_batch_norm", SemiLadder, LadderFull, w4, with(func(s *nn.Spec) { s.Layers = append(s.Layers[:5:5], s.Layers[6:]...) }), `layer "dense_2" (dense) is not followed by { batch_norm = true }`},
		{"bad_estimate_norm", SemiLadder, LadderFull, w4, good, `semi ladder estimate norm "batch": want "clean" or "none"`},
		{"estimate_norm_with_top", SemiLadder, LadderTop, nil, good, `semi ladder estimate norm is a setting of decoder "full"`},
		{"embeddings", SemiLadder, LadderFull, w4, with(func(s *nn.Spec) {
			s.Embeddings = []nn.EmbeddingSpec{{Name: "c", Cardinality: 3, Dim: 2}}
		}), "mirrors numeric inputs only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Epochs: 1, Semi: &Semi{Method: tc.method, Unlabeled: unl, Decoder: tc.decoder, Weights: tc.weights}}
			switch tc.name {
			case "bad_estimate_norm":
				cfg.Semi.EstimateNorm = "batch"
			case "estimate_norm_with_top":
				cfg.Semi.EstimateNorm = LadderEstimateNone
			}
			lb, u, val := lab, unl, blobs(2, 10)
			if len(tc.spec.Embeddings) > 0 {
				val.Cat = [][]int32{make([]int32, 10)}
				lb.Cat = [][]int32{make([]int32, unl.Len())} // lab is a subset of unl's rows
				u.Cat = [][]int32{make([]int32, unl.Len())}
				cfg.Semi.Unlabeled = u
			}
			_, err := Fit(context.Background(), buildModel(t, tc.spec), lb, val, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// lastSemiState keeps the semi-supervised state of the last epoch's checkpoint.
func lastSemiState(dst *[]byte) Hook {
	return OnEpochEnd("keep_semi_state", 1001, func(e *EpochInfo) error {
		c, err := e.Checkpoint()
		if err != nil {
			return err
		}
		*dst = c.Semi
		return nil
	})
}
