package nn

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func mustBuild(t *testing.T, spec Spec) *Model {
	t.Helper()
	m, err := Build(spec, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLossesByHand checks each loss on a one-row model whose logits are set directly (no trunk,
// zero head weights, bias = logits), against formulas written out here.
func TestLossesByHand(t *testing.T) {
	cases := []struct {
		name   string
		head   HeadSpec
		bias   []float32
		target HeadTargets
		want   float64
	}{
		{"softmax", HeadSpec{Kind: HeadSoftmax, Classes: 3}, []float32{1, 2, 0.5}, HeadTargets{Labels: []int32{1}},
			-math.Log(math.Exp(2) / (math.Exp(1) + math.Exp(2) + math.Exp(0.5)))},
		{"softmax_smoothing", HeadSpec{Kind: HeadSoftmax, Classes: 3, LabelSmoothing: 0.3}, []float32{1, 2, 0.5}, HeadTargets{Labels: []int32{1}},
			func() float64 {
				s := math.Exp(1) + math.Exp(2) + math.Exp(0.5)
				lp := []float64{1 - math.Log(s), 2 - math.Log(s), 0.5 - math.Log(s)}
				q := []float64{0.1, 0.7 + 0.1, 0.1}
				return -(q[0]*lp[0] + q[1]*lp[1] + q[2]*lp[2])
			}()},
		{"binary", HeadSpec{Kind: HeadBinary}, []float32{0.8}, HeadTargets{Labels: []int32{0}}, -math.Log(1 - 1/(1+math.Exp(-0.8)))},
		{"binary_smoothing", HeadSpec{Kind: HeadBinary, LabelSmoothing: 0.2}, []float32{0.8}, HeadTargets{Labels: []int32{1}},
			func() float64 { p := 1 / (1 + math.Exp(-0.8)); return -(0.9*math.Log(p) + 0.1*math.Log(1-p)) }()},
		{"mse", HeadSpec{Kind: HeadRegression, Outputs: 2}, []float32{1, -1}, HeadTargets{Values: []float32{3, -0.5}}, (4 + 0.25) / 2},
		{"mae", HeadSpec{Kind: HeadRegression, Outputs: 2, Loss: LossMAE}, []float32{1, -1}, HeadTargets{Values: []float32{3, -0.5}}, (2 + 0.5) / 2},
		{"huber", HeadSpec{Kind: HeadRegression, Outputs: 2, Loss: LossHuber, HuberDelta: 1}, []float32{1, -1}, HeadTargets{Values: []float32{3, -0.5}},
			((2 - 0.5) + 0.5*0.25) / 2},
		{"regression_missing_value", HeadSpec{Kind: HeadRegression, Outputs: 2}, []float32{1, -1}, HeadTargets{Values: []float32{float32(math.NaN()), -0.5}}, 0.25},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := mustBuild(t, Spec{NumInputs: 1, Heads: []HeadSpec{tc.head}})
			h := m.Param("head_out/W")
			clear(h.Value)
			copy(m.Param("head_out/b").Value, tc.bias)
			l, err := m.EvalLoss(Batch{Rows: 1, X: []float32{0.3}}, Targets{Heads: []HeadTargets{tc.target}})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(l.Total-tc.want) > 1e-6*max(1, math.Abs(tc.want)) {
				t.Fatalf("loss %.9g, want %.9g", l.Total, tc.want)
			}
		})
	}
}

// TestMaskedAndWeightedRows checks that a row with a missing label contributes exactly nothing
// (the loss and gradients equal those of the batch without it), and that a sample weight of 2
// equals duplicating the row.
func TestMaskedAndWeightedRows(t *testing.T) {
	spec := Spec{NumInputs: 3, Layers: []LayerSpec{{Type: LayerDense, Units: 4, Activation: "tanh"}},
		Heads: []HeadSpec{{Name: "c", Kind: HeadSoftmax, Classes: 3}, {Name: "r", Kind: HeadRegression}}}
	x := []float32{0.1, 0.2, -0.3, 1, -1, 0.5, 0.7, 0.1, 0.2}
	grads := func(b Batch, tg Targets) (float64, [][]float32) {
		m := mustBuild(t, spec)
		l, err := m.TrainStep(b, tg)
		if err != nil {
			t.Fatal(err)
		}
		var g [][]float32
		for _, p := range m.Params() {
			g = append(g, append([]float32(nil), p.Grad...))
		}
		return l.Total, g
	}
	compare := func(t *testing.T, l1, l2 float64, g1, g2 [][]float32) {
		if math.Abs(l1-l2) > 1e-6 {
			t.Fatalf("loss %v vs %v", l1, l2)
		}
		for i := range g1 {
			for j := range g1[i] {
				if math.Abs(float64(g1[i][j]-g2[i][j])) > 1e-6 {
					t.Fatalf("grad %d[%d]: %v vs %v", i, j, g1[i][j], g2[i][j])
				}
			}
		}
	}
	t.Run("missing_label", func(t *testing.T) {
		// Row 1 misses its class label: the class head must see only rows 0 and 2, while the
		// regression head sees all three. Reference: the class loss from rows {0,2} plus the
		// regression loss from all rows, computed on separate models with one head each.
		nan := float32(math.NaN())
		lFull, _ := grads(Batch{Rows: 3, X: x}, Targets{Heads: []HeadTargets{{Labels: []int32{2, -1, 0}}, {Values: []float32{0.5, 1, -1}}}})
		// Same batch with the regression targets of rows 0/2 missing instead: class head unchanged.
		lA, gA := grads(Batch{Rows: 3, X: x}, Targets{Heads: []HeadTargets{{Labels: []int32{2, -1, 0}}, {Values: []float32{nan, nan, nan}}}})
		lB, gB := grads(Batch{Rows: 2, X: append(append([]float32(nil), x[:3]...), x[6:]...)}, Targets{Heads: []HeadTargets{{Labels: []int32{2, 0}}, {Values: []float32{nan, nan}}}})
		compare(t, lA, lB, gA, gB)
		if lFull <= lA {
			t.Fatalf("adding regression targets did not add loss: %v vs %v", lFull, lA)
		}
	})
	t.Run("weight_two_equals_duplicate", func(t *testing.T) {
		l1, g1 := grads(Batch{Rows: 3, X: x}, Targets{Heads: []HeadTargets{{Labels: []int32{2, 1, 0}}, {Values: []float32{0.5, 1, -1}}}, Weights: []float32{2, 1, 1}})
		xd := append(append([]float32(nil), x...), x[:3]...)
		l2, g2 := grads(Batch{Rows: 4, X: xd}, Targets{Heads: []HeadTargets{{Labels: []int32{2, 1, 0, 2}}, {Values: []float32{0.5, 1, -1, 0.5}}}})
		compare(t, l1, l2, g1, g2)
	})
}

func TestBatchNormEvalUsesRunningStats(t *testing.T) {
	m := mustBuild(t, Spec{NumInputs: 2, Layers: []LayerSpec{{Type: LayerBatchNorm, Momentum: 0.5}}, Heads: []HeadSpec{{Kind: HeadRegression, Outputs: 2}}})
	b := Batch{Rows: 4, X: []float32{1, 10, 2, 20, 3, 30, 6, 0}}
	if _, err := m.TrainStep(b, Targets{Heads: []HeadTargets{{Values: make([]float32, 8)}}}); err != nil {
		t.Fatal(err)
	}
	// By hand: column 0 mean 3, unbiased var ((4+1+0+9)/3); momentum 0.5 from (0, 1).
	rm0, rv0 := 0.5*3, 0.5*1+0.5*(14.0/3)
	if got := m.Param("batch_norm_1/running_mean").Value[0]; math.Abs(float64(got)-rm0) > 1e-6 {
		t.Fatalf("running mean %v, want %v", got, rm0)
	}
	if got := m.Param("batch_norm_1/running_var").Value[0]; math.Abs(float64(got)-rv0) > 1e-5 {
		t.Fatalf("running var %v, want %v", got, rv0)
	}
	m.forward(Batch{Rows: 1, X: []float32{4, 0}}, false)
	want := (4 - rm0) / math.Sqrt(rv0+1e-5)
	if got := m.layerOut[0][0]; math.Abs(float64(got)-want) > 1e-5 {
		t.Fatalf("eval output %v, want %v", got, want)
	}
}

func TestDropoutTrainAndEval(t *testing.T) {
	m := mustBuild(t, Spec{NumInputs: 1000, Layers: []LayerSpec{{Type: LayerDropout, Rate: 0.3}}, Heads: softmaxHead(2)})
	x := make([]float32, 1000)
	for i := range x {
		x[i] = 1
	}
	m.forward(Batch{Rows: 1, X: x}, false)
	for i, v := range m.layerOut[0] {
		if v != 1 {
			t.Fatalf("eval output %d = %v, want identity", i, v)
		}
	}
	m.forward(Batch{Rows: 1, X: x}, true)
	zeros := 0
	for _, v := range m.layerOut[0] {
		if v == 0 {
			zeros++
		} else if math.Abs(float64(v)-1/0.7) > 1e-6 {
			t.Fatalf("kept unit scaled to %v, want 1/0.7", v)
		}
	}
	// Binomial(1000, 0.3): mean 300, sd 14.5; 5 sd bounds.
	if zeros < 228 || zeros > 372 {
		t.Fatalf("%d of 1000 units dropped at rate 0.3", zeros)
	}
}

func TestEmbeddingUnknownBucket(t *testing.T) {
	m := mustBuild(t, Spec{NumInputs: 1, Embeddings: []EmbeddingSpec{{Cardinality: 3, Dim: 2}}, Heads: softmaxHead(2)})
	out, err := m.Predict(Batch{Rows: 4, X: []float32{0.5, 0.5, 0.5, 0.5}, Cat: [][]int32{{0, 7, -2, 1}}})
	if err != nil {
		t.Fatal(err)
	}
	p := out.Heads[0]
	for _, r := range []int{1, 2} {
		if p[2*r] != p[0] || p[2*r+1] != p[1] {
			t.Fatalf("row %d (out of range index) output %v, want the unknown bucket's %v", r, p[2*r:2*r+2], p[:2])
		}
	}
	if p[6] == p[0] {
		t.Fatal("index 1 gives the same output as the unknown bucket")
	}
}

func TestSpecJSONShortForms(t *testing.T) {
	in := `{"num_inputs": 4, "layers": [
		{"dense": 16, "activation": "relu", "dropout": 0.2},
		{"batch_norm": true}, {"layer_norm": true}, {"dropout": 0.1}, {"activation": "tanh"},
		{"gaussian_noise": 0.05}, {"residual": 8, "norm": "layer_norm"}],
		"heads": [{"kind": "softmax", "classes": 3}]}`
	var s Spec
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	want := []LayerSpec{
		{Type: LayerDense, Units: 16, Activation: "relu", Dropout: 0.2},
		{Type: LayerBatchNorm}, {Type: LayerLayerNorm}, {Type: LayerDropout, Rate: 0.1}, {Type: LayerActivation, Activation: "tanh"},
		{Type: LayerGaussianNoise, Stddev: 0.05}, {Type: LayerResidual, Units: 8, Norm: LayerLayerNorm},
	}
	for i, w := range want {
		if s.Layers[i] != w {
			t.Errorf("layer %d = %+v, want %+v", i, s.Layers[i], w)
		}
	}
	m := mustBuild(t, s)
	names := []string{}
	for _, l := range m.Spec().Layers {
		names = append(names, l.Name)
	}
	if got := strings.Join(names, ","); got != "dense_1,batch_norm_1,layer_norm_1,dropout_1,activation_1,gaussian_noise_1,residual_1" {
		t.Errorf("generated names %s", got)
	}
	// Canonical JSON round trip.
	b, _ := json.Marshal(m.Spec())
	var back Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Layers) != len(want) || back.Layers[0] != m.Spec().Layers[0] {
		t.Fatalf("round trip changed the spec: %s", b)
	}
}

func TestSpecErrors(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"no_heads", Spec{NumInputs: 2}, "no heads"},
		{"no_inputs", Spec{Heads: softmaxHead(2)}, "no inputs"},
		{"bad_activation", Spec{NumInputs: 2, Layers: []LayerSpec{{Type: LayerDense, Units: 2, Activation: "swish"}}, Heads: softmaxHead(2)}, "unknown activation"},
		{"bad_type", Spec{NumInputs: 2, Layers: []LayerSpec{{Type: "conv3d"}}, Heads: softmaxHead(2)}, "unknown layer type"},
		{"duplicate_name", Spec{NumInputs: 2, Layers: []LayerSpec{{Type: LayerDense, Units: 2, Name: "a"}, {Type: LayerDense, Units: 2, Name: "a"}}, Heads: softmaxHead(2)}, "duplicate"},
		{"tie_shape", Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 2, Name: "e"}, {Type: LayerDense, Units: 3, Tie: "e", TieTranspose: true}}, Heads: softmaxHead(2)}, "tied to"},
		{"unnamed_heads", Spec{NumInputs: 2, Heads: []HeadSpec{{Kind: HeadBinary}, {Kind: HeadBinary}}}, "no name"},
		{"diff_penalty_mismatch", Spec{NumInputs: 2, Layers: []LayerSpec{{Type: LayerDense, Units: 2, Name: "a"}}, ParamDiffPenalties: []ParamDiffPenalty{{A: "a/W", B: "zz/.*", Weight: 1}}, Heads: softmaxHead(2)}, "matched"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(tc.spec, rand.New(rand.NewPCG(1, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDefaultInitFollowsActivation(t *testing.T) {
	cases := []struct {
		act, init string
		wantStd   float64
	}{
		{"relu", "", math.Sqrt(2.0 / 400)},
		{"gelu", "", math.Sqrt(2.0 / 400)},
		{"tanh", "", math.Sqrt(6.0/(400+300)) / math.Sqrt(3)}, // uniform(±a) has std a/√3
		{"tanh", "lecun_normal", math.Sqrt(1.0 / 400)},
		{"relu", "he_uniform", math.Sqrt(6.0/400) / math.Sqrt(3)},
		{"relu", "glorot_normal", math.Sqrt(2.0 / 700)},
	}
	for _, tc := range cases {
		t.Run(tc.act+"_"+tc.init, func(t *testing.T) {
			m := mustBuild(t, Spec{NumInputs: 400, Layers: []LayerSpec{{Type: LayerDense, Units: 300, Activation: tc.act, Init: tc.init}}, Heads: softmaxHead(2)})
			w := m.Param("dense_1/W").Value
			var ss float64
			for _, v := range w {
				ss += float64(v) * float64(v)
			}
			std := math.Sqrt(ss / float64(len(w)))
			if math.Abs(std-tc.wantStd) > 0.02*tc.wantStd {
				t.Fatalf("std %.5f, want %.5f", std, tc.wantStd)
			}
		})
	}
}

func TestTrainStepDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool (used by the GEMM's packing buffers) drop items")
	}
	spec := Spec{NumInputs: 20, Embeddings: []EmbeddingSpec{{Cardinality: 5, Dim: 3}}, Layers: []LayerSpec{
		{Type: LayerDense, Units: 16, Activation: "relu", Dropout: 0.1}, {Type: LayerBatchNorm}, {Type: LayerResidual, Units: 12, Norm: LayerLayerNorm}},
		Heads: []HeadSpec{{Name: "a", Kind: HeadSoftmax, Classes: 3}, {Name: "b", Kind: HeadRegression}}}
	rng := rand.New(rand.NewPCG(1, 2))
	m := mustBuild(t, spec)
	b := randomBatch(rng, m.Spec(), 32)
	tg := randomTargets(rng, m.Spec(), 32, 4)
	if _, err := m.TrainStep(b, tg); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = m.TrainStep(b, tg) }); n != 0 {
		t.Fatalf("TrainStep allocates %v times per call in the steady state", n)
	}
}

func TestTiedDecoderSharesEncoderWeights(t *testing.T) {
	m := mustBuild(t, Spec{NumInputs: 6, Layers: []LayerSpec{{Type: LayerDense, Name: "enc", Units: 3, Activation: "tanh"},
		{Type: LayerDense, Name: "dec", Units: 6, Tie: "enc", TieTranspose: true}}, Heads: []HeadSpec{{Kind: HeadRegression}}})
	if m.Param("dec/W") != nil {
		t.Fatal("tied decoder owns a weight tensor")
	}
	for _, p := range m.Params() {
		if p.Name == "dec/W" {
			t.Fatal("dec/W listed in params")
		}
	}
	// Decoder output by hand: tanh(x·W + b_enc)·Wᵀ + b_dec.
	x := []float32{0.1, -0.2, 0.3, 0.4, -0.5, 0.6}
	w := m.Param("enc/W").Value // 6×3
	be, bd := m.Param("enc/b").Value, m.Param("dec/b").Value
	for i := range be {
		be[i] = 0.1 * float32(i)
	}
	for i := range bd {
		bd[i] = -0.05 * float32(i)
	}
	m.forward(Batch{Rows: 1, X: x}, false)
	h := make([]float64, 3)
	for j := 0; j < 3; j++ {
		s := float64(be[j])
		for i := 0; i < 6; i++ {
			s += float64(x[i]) * float64(w[i*3+j])
		}
		h[j] = math.Tanh(s)
	}
	for i := 0; i < 6; i++ {
		s := float64(bd[i])
		for j := 0; j < 3; j++ {
			s += h[j] * float64(w[i*3+j])
		}
		if got := m.layerOut[1][i]; math.Abs(float64(got)-s) > 1e-6 {
			t.Fatalf("decoder output %d = %v, want %v", i, got, s)
		}
	}
}

func TestBalancedClassWeights(t *testing.T) {
	// n = 5 present labels, k = 3: w_c = 5/(3·count_c); class 2 is absent and gets 1.
	got := BalancedClassWeights([]int32{0, 0, 0, 1, 1, -1}, 3)
	want := []float64{5.0 / 9, 5.0 / 6, 1}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("weights %v, want %v", got, want)
		}
	}
}

// TestPredictChunksAndModes checks that chunked Predict equals row-by-row prediction and that,
// without dropout, noise or batch norm, the eval loss equals the training loss.
func TestPredictChunksAndModes(t *testing.T) {
	spec := Spec{NumInputs: 4, Embeddings: []EmbeddingSpec{{Cardinality: 6, Dim: 2}}, Layers: []LayerSpec{{Type: LayerDense, Units: 5, Activation: "gelu"}, {Type: LayerLayerNorm}},
		Heads: []HeadSpec{{Name: "c", Kind: HeadSoftmax, Classes: 3}, {Name: "b", Kind: HeadBinary}, {Name: "r", Kind: HeadRegression, Outputs: 2}}}
	rng := rand.New(rand.NewPCG(5, 5))
	m := mustBuild(t, spec)
	const rows = 600 // more than the 256-row chunk
	b := randomBatch(rng, m.Spec(), rows)
	all, err := m.Predict(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []int{0, 255, 256, 599} {
		one, err := m.Predict(Batch{Rows: 1, X: b.X[r*4 : r*4+4], Cat: [][]int32{b.Cat[0][r : r+1]}})
		if err != nil {
			t.Fatal(err)
		}
		for h, w := range all.Width {
			for j := 0; j < w; j++ {
				if d := math.Abs(float64(all.Heads[h][r*w+j] - one.Heads[h][j])); d > 1e-6 {
					t.Fatalf("row %d head %d col %d: batched %v, single %v", r, h, j, all.Heads[h][r*w+j], one.Heads[h][j])
				}
			}
		}
	}
	// Output conventions: softmax rows sum to 1, binary is [1-p, p].
	for r := 0; r < rows; r++ {
		p := all.Heads[0][3*r : 3*r+3]
		if s := p[0] + p[1] + p[2]; math.Abs(float64(s)-1) > 1e-5 {
			t.Fatalf("softmax row %d sums to %v", r, s)
		}
		if q := all.Heads[1][2*r : 2*r+2]; math.Abs(float64(q[0]+q[1])-1) > 1e-6 {
			t.Fatalf("binary row %d = %v", r, q)
		}
	}
	tg := randomTargets(rng, m.Spec(), rows, 5)
	lt, err := m.TrainStep(b, tg)
	if err != nil {
		t.Fatal(err)
	}
	trainTotal := lt.Total
	le, err := m.EvalLoss(b, tg)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(trainTotal-le.Total) > 1e-9*max(1, trainTotal) {
		t.Fatalf("train loss %v, eval loss %v", trainTotal, le.Total)
	}
}
