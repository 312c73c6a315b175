package nn

import (
	"math/rand/v2"
	"testing"
)

// TestInputGradCheck checks dL/dX against finite differences on the inputs for every layer
// kind: dense, activation, dropout, noise, batch and layer norm, MLP and conv residual blocks,
// custom layers, conv, pooling, flatten, embeddings beside numeric inputs, a model with no
// trunk, several heads, tied weights and input-dependent penalties.
func TestInputGradCheck(t *testing.T) {
	conv := func(f, k, s int, pad string) LayerSpec {
		return LayerSpec{Type: LayerConv, Filters: f, Kernel: k, Stride: s, Padding: pad, Activation: "tanh"}
	}
	flat := LayerSpec{Type: LayerFlatten}
	cases := []struct {
		name      string
		spec      Spec
		missing   int
		eps, tol  float64
		skipKinks bool
	}{
		{name: "dense_tanh", spec: Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerDense, Units: 7, Activation: "tanh"}}, Heads: softmaxHead(3)}},
		{name: "dense_relu_two_layers", spec: Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerDense, Units: 7, Activation: "relu"}, {Type: LayerDense, Units: 6, Activation: "relu"}}, Heads: softmaxHead(3)},
			eps: 1e-3, tol: 2e-2, skipKinks: true},
		{name: "activation_gelu_elu_sigmoid", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerActivation, Activation: "gelu"},
			{Type: LayerDense, Units: 6, Activation: "elu"}, {Type: LayerDense, Units: 5, Activation: "sigmoid"}}, Heads: softmaxHead(3)}},
		{name: "noise_dropout_first", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerGaussianNoise, Stddev: 0.3}, {Type: LayerDropout, Rate: 0.3},
			{Type: LayerDense, Units: 8, Activation: "tanh", Dropout: 0.3}}, Heads: softmaxHead(3)}},
		{name: "batch_norm_first", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerBatchNorm}, {Type: LayerDense, Units: 6, Activation: "tanh"}}, Heads: softmaxHead(3)}, eps: 2e-3, tol: 2e-2},
		{name: "layer_norm_first", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerLayerNorm}, {Type: LayerDense, Units: 6, Activation: "tanh"}}, Heads: softmaxHead(3)}},
		{name: "residual_mlp_projection", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerResidual, Units: 6, Activation: "tanh", Norm: LayerLayerNorm, Dropout: 0.1}}, Heads: softmaxHead(3)}},
		{name: "residual_mlp_identity", spec: Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerResidual, Units: 5, Activation: "elu"}}, Heads: softmaxHead(3)}},
		{name: "custom_first", spec: customSpec("test_scaled_tanh", 0)},
		{name: "embeddings_beside_numeric", spec: Spec{NumInputs: 3, Embeddings: []EmbeddingSpec{{Cardinality: 4, Dim: 2}, {Cardinality: 3, Dim: 3}},
			Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}}, Heads: softmaxHead(3)}},
		{name: "no_trunk", spec: Spec{NumInputs: 4, Heads: softmaxHead(3)}},
		{name: "no_trunk_two_heads", spec: Spec{NumInputs: 4, Heads: []HeadSpec{{Name: "a", Kind: HeadSoftmax, Classes: 3}, {Name: "b", Kind: HeadRegression, Outputs: 2}}}},
		{name: "multitask_masked", spec: Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerDense, Units: 8, Activation: "tanh"}},
			Heads: []HeadSpec{{Name: "a", Kind: HeadSoftmax, Classes: 4, LossWeight: 0.7}, {Name: "b", Kind: HeadBinary, LossWeight: 2}, {Name: "c", Kind: HeadRegression, Loss: LossMSE}}}, missing: 3},
		{name: "tied_autoencoder", spec: Spec{NumInputs: 6, Layers: []LayerSpec{{Type: LayerDense, Name: "enc", Units: 3, Activation: "tanh"},
			{Type: LayerDense, Name: "dec", Units: 6, Tie: "enc", TieTranspose: true}}, Heads: []HeadSpec{{Kind: HeadRegression, Outputs: 2}}}},
		{name: "activity_penalty", spec: Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "sigmoid", ActivityL1: 1e-2, ActivityL2: 1e-2}}, Heads: softmaxHead(3)}},
		{name: "conv_same_s1", spec: imageSpec(2, 5, 5, conv(3, 3, 1, PaddingSame), flat)},
		{name: "conv_valid_s2_even", spec: imageSpec(1, 6, 6, conv(4, 2, 2, PaddingValid), flat)},
		{name: "conv_avg_pool_batch_norm", spec: imageSpec(2, 6, 6, LayerSpec{Type: LayerConv, Filters: 3, Kernel: 3, Padding: PaddingSame, NoBias: true}, LayerSpec{Type: LayerBatchNorm},
			LayerSpec{Type: LayerActivation, Activation: "tanh"}, LayerSpec{Type: LayerAvgPool, Kernel: 2}, flat), eps: 2e-3, tol: 2e-2},
		{name: "max_pool_first", spec: imageSpec(2, 6, 6, LayerSpec{Type: LayerMaxPool, Kernel: 2}, flat, LayerSpec{Type: LayerDense, Units: 5, Activation: "tanh"}),
			eps: 1e-3, skipKinks: true},
		{name: "residual_conv_global_avg_pool", spec: imageSpec(2, 5, 5, LayerSpec{Type: LayerResidual, Filters: 3, Activation: "tanh", Norm: LayerBatchNorm},
			LayerSpec{Type: LayerGlobalAvgPool}), eps: 2e-3, tol: 2e-2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 9))
			m, err := Build(tc.spec, rng)
			if err != nil {
				t.Fatal(err)
			}
			rows := 7
			b := randomBatch(rng, m.Spec(), rows)
			tg := randomTargets(rng, m.Spec(), rows, tc.missing)
			x0 := append([]float32(nil), b.X...)
			res, err := InputGradCheck(m, b, tg, GradCheckOptions{Eps: tc.eps, MaxCoords: 40, SkipKinks: tc.skipKinks})
			if err != nil {
				t.Fatal(err)
			}
			tol := tc.tol
			if tol == 0 {
				tol = 1e-2
			}
			if res.CoordsSeen == 0 || res.Coord < 0 {
				t.Fatalf("no coordinate checked: %+v", res)
			}
			if res.RelError > tol {
				t.Errorf("input coordinate %d: analytic %.6g numeric %.6g (rel error %.3g > %g)", res.Coord, res.Analytic, res.Numeric, res.RelError, tol)
			}
			for i, v := range b.X {
				if v != x0[i] {
					t.Fatalf("InputGradCheck modified the batch at %d", i)
				}
			}
			if m.keepDX {
				t.Error("InputGradCheck left SetKeepInputGrad on")
			}
		})
	}
}

// TestKeepInputGradLeavesParamGrads checks that keeping dL/dX changes neither the loss nor any
// param gradient (bit for bit), and that InputGrad is nil while the setting is off.
func TestKeepInputGradLeavesParamGrads(t *testing.T) {
	spec := Spec{NumInputs: 3, Embeddings: []EmbeddingSpec{{Cardinality: 4, Dim: 2}},
		Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh", Dropout: 0.2}, {Type: LayerBatchNorm}}, Heads: softmaxHead(3)}
	run := func(keep bool) (Loss, [][]float32, []float32) {
		rng := rand.New(rand.NewPCG(1, 2))
		m, err := Build(spec, rng)
		if err != nil {
			t.Fatal(err)
		}
		m.SetKeepInputGrad(keep)
		b := randomBatch(rng, m.Spec(), 6)
		l, err := m.TrainStep(b, randomTargets(rng, m.Spec(), 6, 0))
		if err != nil {
			t.Fatal(err)
		}
		var g [][]float32
		for _, p := range m.Params() {
			g = append(g, append([]float32(nil), p.Grad...))
		}
		return l, g, m.InputGrad(6)
	}
	l0, g0, dx0 := run(false)
	l1, g1, dx1 := run(true)
	if dx0 != nil {
		t.Errorf("InputGrad with the setting off = %d values, want nil", len(dx0))
	}
	if len(dx1) != 6*3 {
		t.Fatalf("InputGrad = %d values, want rows 6 × num_inputs 3", len(dx1))
	}
	var nonzero bool
	for _, v := range dx1 {
		nonzero = nonzero || v != 0
	}
	if !nonzero {
		t.Error("InputGrad is all zero")
	}
	if l0.Total != l1.Total {
		t.Errorf("loss %v with the input gradient kept, %v without", l1.Total, l0.Total)
	}
	for i := range g0 {
		for j := range g0[i] {
			if g0[i][j] != g1[i][j] {
				t.Fatalf("param %d grad %d: %v with the input gradient kept, %v without", i, j, g1[i][j], g0[i][j])
			}
		}
	}
}
