package nn

import (
	"math/rand/v2"
	"testing"
)

func softmaxHead(k int) []HeadSpec { return []HeadSpec{{Kind: HeadSoftmax, Classes: k}} }

func TestGradCheck(t *testing.T) {
	reg := func(loss string) []HeadSpec { return []HeadSpec{{Kind: HeadRegression, Outputs: 2, Loss: loss}} }
	cases := []struct {
		name    string
		spec    Spec
		weights bool
		missing int
		soft    bool // soft targets (random distributions) for the classification heads
		tol     float64
		eps     float64 // finite-difference step; smaller where kinks or curvature need it
	}{
		{name: "dense_tanh_softmax", spec: Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerDense, Units: 7, Activation: "tanh"}}, Heads: softmaxHead(3)}},
		{name: "dense_relu", spec: Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerDense, Units: 7, Activation: "relu"}}, Heads: softmaxHead(3)}, tol: 2e-2, eps: 1e-3},
		{name: "leaky_relu", spec: Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerDense, Units: 7, Activation: "leaky_relu"}}, Heads: softmaxHead(3)}, tol: 2e-2, eps: 1e-3},
		{name: "gelu_elu_sigmoid_layers", spec: Spec{NumInputs: 4, Layers: []LayerSpec{
			{Type: LayerDense, Units: 6}, {Type: LayerActivation, Activation: "gelu"},
			{Type: LayerDense, Units: 6, Activation: "elu"}, {Type: LayerDense, Units: 5, Activation: "sigmoid"}}, Heads: softmaxHead(3)}},
		{name: "no_bias_lecun", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh", NoBias: true, Init: "lecun_normal"}}, Heads: softmaxHead(2)}},
		{name: "label_smoothing_class_weights_sample_weights", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}},
			Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 3, LabelSmoothing: 0.1, ClassWeights: []float64{1, 2, 0.5}}}}, weights: true},
		{name: "binary_smoothing", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}},
			Heads: []HeadSpec{{Kind: HeadBinary, LabelSmoothing: 0.05, ClassWeights: []float64{1, 3}}}}, weights: true},
		{name: "soft_targets", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}}, Heads: softmaxHead(4)}, soft: true},
		{name: "soft_targets_smoothing_class_weights_sample_weights", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}},
			Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 3, LabelSmoothing: 0.1, ClassWeights: []float64{1, 2, 0.5}}}}, weights: true, soft: true},
		{name: "binary_soft_smoothing_class_weights", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}},
			Heads: []HeadSpec{{Kind: HeadBinary, LabelSmoothing: 0.05, ClassWeights: []float64{1, 3}}}}, weights: true, soft: true},
		{name: "multitask_soft_masked", spec: Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerDense, Units: 8, Activation: "tanh"}},
			Heads: []HeadSpec{{Name: "a", Kind: HeadSoftmax, Classes: 4, LossWeight: 0.7}, {Name: "b", Kind: HeadBinary, LossWeight: 2}, {Name: "c", Kind: HeadRegression, Loss: LossMSE}}}, missing: 3, soft: true},
		{name: "mse", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}}, Heads: reg(LossMSE)}, weights: true, missing: 3},
		{name: "mae", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}}, Heads: reg(LossMAE)}},
		{name: "huber", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}}, Heads: []HeadSpec{{Kind: HeadRegression, Loss: LossHuber, HuberDelta: 0.5}}}},
		{name: "multitask_masked", spec: Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerDense, Units: 8, Activation: "tanh"}},
			Heads: []HeadSpec{{Name: "a", Kind: HeadSoftmax, Classes: 4, LossWeight: 0.7}, {Name: "b", Kind: HeadBinary, LossWeight: 2}, {Name: "c", Kind: HeadRegression, Loss: LossMSE}}}, missing: 3},
		{name: "embeddings", spec: Spec{NumInputs: 3, Embeddings: []EmbeddingSpec{{Cardinality: 4, Dim: 2}, {Cardinality: 3, Dim: 3}},
			Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}}, Heads: softmaxHead(3)}},
		{name: "embeddings_only_no_trunk", spec: Spec{Embeddings: []EmbeddingSpec{{Cardinality: 5, Dim: 3}}, Heads: softmaxHead(2)}},
		{name: "batch_norm", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6}, {Type: LayerBatchNorm}, {Type: LayerActivation, Activation: "tanh"}}, Heads: softmaxHead(3)}, eps: 2e-3, tol: 2e-2},
		{name: "batch_norm_no_scale", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6}, {Type: LayerBatchNorm, NoScale: true}, {Type: LayerActivation, Activation: "tanh"}}, Heads: softmaxHead(3)}, eps: 2e-3, tol: 2e-2},
		{name: "layer_norm", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6}, {Type: LayerLayerNorm}, {Type: LayerActivation, Activation: "tanh"}}, Heads: softmaxHead(3)}},
		{name: "dropout_and_noise", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerGaussianNoise, Stddev: 0.1},
			{Type: LayerDense, Units: 8, Activation: "tanh", Dropout: 0.3}, {Type: LayerDropout, Rate: 0.2}}, Heads: softmaxHead(3)}},
		{name: "residual_projection_layernorm", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerResidual, Units: 6, Activation: "tanh", Norm: LayerLayerNorm, Dropout: 0.1}}, Heads: softmaxHead(3)}},
		{name: "head_batch_norm", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}}, Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 3, BatchNorm: true}}}, eps: 2e-3, tol: 2e-2},
		{name: "head_noise", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}}, Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 3, Noise: 0.5}}}, eps: 2e-3, tol: 2e-2},
		{name: "head_batch_norm_noise", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}}, Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 3, BatchNorm: true, Noise: 0.5}}}, eps: 2e-3, tol: 2e-2},
		{name: "multitask_head_batch_norm", spec: Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerDense, Units: 8, Activation: "tanh"}},
			Heads: []HeadSpec{{Name: "a", Kind: HeadSoftmax, Classes: 4, BatchNorm: true}, {Name: "b", Kind: HeadBinary, BatchNorm: true}, {Name: "c", Kind: HeadRegression}}}, eps: 2e-3, tol: 2e-2},
		{name: "residual_identity_batchnorm", spec: Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerResidual, Units: 5, Activation: "elu", Norm: LayerBatchNorm}}, Heads: softmaxHead(3)}},
		{name: "tied_autoencoder", spec: Spec{NumInputs: 6, Layers: []LayerSpec{{Type: LayerDense, Name: "enc", Units: 3, Activation: "tanh"},
			{Type: LayerDense, Name: "dec", Units: 6, Tie: "enc", TieTranspose: true}}, Heads: []HeadSpec{{Kind: HeadRegression, Outputs: 2}}}},
		{name: "tied_same_orientation", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Name: "d1", Units: 4, Activation: "tanh"},
			{Type: LayerDense, Name: "d2", Units: 4, Activation: "tanh", Tie: "d1"}}, Heads: softmaxHead(2)}},
		{name: "l1_l2_global_and_layer", spec: Spec{NumInputs: 4, L2: 1e-2, L1: 1e-3, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh", L2: 5e-2}, {Type: LayerDense, Units: 5, Activation: "tanh"}}, Heads: softmaxHead(3)}, tol: 3e-2},
		{name: "activity_penalty", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "sigmoid", ActivityL1: 1e-2, ActivityL2: 1e-2}}, Heads: softmaxHead(3)}},
		{name: "param_diff_penalty", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Name: "enc_a", Units: 4, Activation: "tanh"}, {Type: LayerDense, Name: "enc_b", Units: 4, Activation: "tanh"}},
			ParamDiffPenalties: []ParamDiffPenalty{{A: "enc_a/.*", B: "enc_b/.*", Weight: 0.1}}, Heads: softmaxHead(2)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 11))
			m, err := Build(tc.spec, rng)
			if err != nil {
				t.Fatal(err)
			}
			rows := 9
			b := randomBatch(rng, m.Spec(), rows)
			tg := randomTargets(rng, m.Spec(), rows, tc.missing)
			if tc.soft {
				randomSoftTargets(rng, m.Spec(), &tg, rows)
			}
			if tc.weights {
				tg.Weights = make([]float32, rows)
				for i := range tg.Weights {
					tg.Weights[i] = float32(rng.IntN(3)) + 0.5
				}
			}
			// Move BN running stats away from their init so a mix-up with batch statistics shows.
			res, err := GradCheck(m, b, tg, GradCheckOptions{Eps: tc.eps})
			if err != nil {
				t.Fatal(err)
			}
			tol := tc.tol
			if tol == 0 {
				tol = 1e-2
			}
			if len(res) != countTrainable(m) {
				t.Fatalf("checked %d tensors, model has %d trainable", len(res), countTrainable(m))
			}
			for _, r := range res {
				if r.RelError > tol {
					t.Errorf("%s[%d]: analytic %.6g numeric %.6g rel %.3g > %.3g", r.Param, r.Coord, r.Analytic, r.Numeric, r.RelError, tol)
				}
				if r.Analytic == 0 && r.Numeric == 0 && r.CoordsSeen > 1 {
					t.Logf("%s: worst coordinate has a zero gradient", r.Param)
				}
			}
		})
	}
}

func countTrainable(m *Model) int {
	n := 0
	for _, p := range m.Params() {
		if !p.Frozen {
			n++
		}
	}
	return n
}
