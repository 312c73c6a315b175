package nn

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn/gemm"
)

// imageSpec is an image model with input shape [c, h, w], the given trunk and a 3-class head.
func imageSpec(c, h, w int, layers ...LayerSpec) Spec {
	return Spec{NumInputs: c * h * w, InputShape: []int{c, h, w}, Layers: layers, Heads: softmaxHead(3)}
}

// TestGradCheckImageLayers checks every image layer's backward pass against finite differences,
// for stride 1 and 2, same and valid padding, odd and even sizes and kernels. A pooling or
// flatten layer has no params: it is put after a conv so that the conv's gradient (which flows
// through the pooling backward) checks it. A max pool after a conv is a kink wherever a step
// changes a window's winner, which the finite difference cannot see through reliably, so max
// pooling is checked here once and, for every stride and padding, by TestPoolInputGradients.
func TestGradCheckImageLayers(t *testing.T) {
	conv := func(f, k, s int, pad string) LayerSpec {
		return LayerSpec{Type: LayerConv, Filters: f, Kernel: k, Stride: s, Padding: pad, Activation: "tanh"}
	}
	pool := func(typ string, k, s int, pad string) LayerSpec {
		return LayerSpec{Type: typ, Kernel: k, Stride: s, Padding: pad}
	}
	flat := LayerSpec{Type: LayerFlatten}
	cases := []struct {
		name string
		spec Spec
	}{
		{"conv_valid_s1_odd", imageSpec(2, 5, 5, conv(3, 3, 1, PaddingValid), flat)},
		{"conv_same_s1_even", imageSpec(2, 6, 6, conv(3, 3, 1, PaddingSame), flat)},
		{"conv_same_s2_odd", imageSpec(2, 7, 7, conv(3, 3, 2, PaddingSame), flat)},
		{"conv_valid_s2_even", imageSpec(1, 6, 6, conv(4, 2, 2, PaddingValid), flat)},
		{"conv_same_even_kernel_nonsquare", imageSpec(2, 5, 4, conv(2, 2, 1, PaddingSame), flat)},
		{"conv_same_s2_even", imageSpec(2, 6, 6, conv(3, 3, 2, PaddingSame), flat)},
		{"conv_1x1_no_bias", imageSpec(3, 4, 4, LayerSpec{Type: LayerConv, Filters: 2, Kernel: 1, NoBias: true, Activation: "tanh"}, flat)},
		{"conv_gelu_dropout", imageSpec(2, 5, 5, LayerSpec{Type: LayerConv, Filters: 3, Kernel: 3, Padding: PaddingSame, Activation: "gelu", Dropout: 0.2}, flat)},
		{"conv_conv", imageSpec(2, 6, 6, conv(3, 3, 1, PaddingSame), conv(2, 3, 2, PaddingValid), flat)},
		{"conv_then_conv5_same_nonsquare", imageSpec(2, 6, 5, conv(3, 3, 1, PaddingSame), conv(4, 5, 1, PaddingSame), flat)},
		{"conv_then_conv5_larger_than_plane", imageSpec(2, 3, 2, conv(3, 3, 1, PaddingSame), conv(2, 5, 1, PaddingSame), flat)},
		{"conv_1x1_direct", imageSpec(3, 5, 4, conv(4, 1, 1, PaddingValid), flat)},
		{"conv_1x1_s2", imageSpec(3, 5, 5, conv(2, 1, 2, PaddingSame), flat)},
		{"conv_then_1x1_direct", imageSpec(2, 5, 5, conv(3, 3, 1, PaddingSame), conv(4, 1, 1, PaddingSame), flat)},
		{"max_pool_valid_even", imageSpec(2, 6, 6, conv(3, 3, 1, PaddingSame), pool(LayerMaxPool, 2, 0, ""), flat)},
		{"avg_pool_valid_even", imageSpec(2, 6, 6, conv(3, 3, 1, PaddingSame), pool(LayerAvgPool, 2, 0, ""), flat)},
		{"avg_pool_same_s2_odd", imageSpec(2, 7, 7, conv(2, 3, 1, PaddingSame), pool(LayerAvgPool, 3, 2, PaddingSame), flat)},
		{"batch_norm_channels", imageSpec(2, 5, 5, LayerSpec{Type: LayerConv, Filters: 3, Kernel: 3, Padding: PaddingSame, NoBias: true}, LayerSpec{Type: LayerBatchNorm},
			LayerSpec{Type: LayerActivation, Activation: "tanh"}, flat)},
		{"residual_identity_batchnorm", imageSpec(3, 5, 5, LayerSpec{Type: LayerResidual, Filters: 3, Activation: "tanh", Norm: LayerBatchNorm}, flat)},
		{"residual_proj_s2_odd_dropout", imageSpec(2, 7, 7, LayerSpec{Type: LayerResidual, Filters: 3, Stride: 2, Activation: "tanh", Dropout: 0.2}, flat)},
		{"residual_proj_channels_even", imageSpec(2, 6, 6, LayerSpec{Type: LayerConv, Filters: 2, Kernel: 3, Padding: PaddingSame, Activation: "tanh"},
			LayerSpec{Type: LayerResidual, Filters: 4, Kernel: 2, Activation: "tanh"}, flat)},
		{"global_avg_pool", imageSpec(2, 5, 5, conv(4, 3, 1, PaddingSame), LayerSpec{Type: LayerGlobalAvgPool})},
		{"cnn_dense", imageSpec(1, 8, 8, conv(3, 3, 1, PaddingSame), pool(LayerMaxPool, 2, 0, ""), conv(4, 3, 1, PaddingSame),
			pool(LayerAvgPool, 2, 0, ""), flat, LayerSpec{Type: LayerDense, Units: 5, Activation: "tanh"})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 11))
			m, err := Build(tc.spec, rng)
			if err != nil {
				t.Fatal(err)
			}
			rows := 4
			b := randomBatch(rng, m.Spec(), rows)
			tg := randomTargets(rng, m.Spec(), rows, 0)
			opts := GradCheckOptions{MaxCoords: 40}
			if strings.Contains(tc.name, "max_pool") || strings.Contains(tc.name, "cnn") {
				opts.Eps, opts.SkipKinks = 1e-3, true // a small step changes few window winners
			}
			res, err := GradCheck(m, b, tg, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != countTrainable(m) {
				t.Fatalf("checked %d tensors, model has %d trainable", len(res), countTrainable(m))
			}
			for _, r := range res {
				// 2e-2 as for the deeper dense cases: the worst coordinates are small gradients
				// whose float32 difference noise reaches ~1.5%; a wrong backward is off by O(1).
				if r.RelError > 2e-2 {
					t.Errorf("%s[%d]: analytic %.6g numeric %.6g rel %.3g > 2e-2", r.Param, r.Coord, r.Analytic, r.Numeric, r.RelError)
				}
			}
		})
	}
}

// refConv is a direct convolution written from the definition: zero padding padT/padL,
// y[f][oy][ox] = b[f] + Σ_{c,ky,kx} W[f][c][ky][kx]·x[c][oy·s−padT+ky][ox·s−padL+kx].
func refConv(x, w, b []float32, c, h, wd, f, k, s, ho, wo, padT, padL int) []float32 {
	y := make([]float32, f*ho*wo)
	for fi := 0; fi < f; fi++ {
		for oy := 0; oy < ho; oy++ {
			for ox := 0; ox < wo; ox++ {
				var acc float64
				if b != nil {
					acc = float64(b[fi])
				}
				for ci := 0; ci < c; ci++ {
					for ky := 0; ky < k; ky++ {
						for kx := 0; kx < k; kx++ {
							iy, ix := oy*s-padT+ky, ox*s-padL+kx
							if iy < 0 || iy >= h || ix < 0 || ix >= wd {
								continue
							}
							acc += float64(w[((fi*c+ci)*k+ky)*k+kx]) * float64(x[(ci*h+iy)*wd+ix])
						}
					}
				}
				y[(fi*ho+oy)*wo+ox] = float32(acc)
			}
		}
	}
	return y
}

// TestConvForwardMatchesDirectConvolution compares the im2col+GEMM forward pass with a direct
// convolution for valid and same padding, strides 1 and 2, odd and even sizes; the output sizes
// and padding are derived here from the definitions (valid: ⌊(n−k)/s⌋+1; same: ⌈n/s⌉ with the
// padding split as TensorFlow does).
func TestConvForwardMatchesDirectConvolution(t *testing.T) {
	cases := []struct {
		c, h, w, f, k, s int
		pad              string
	}{
		{2, 5, 5, 3, 3, 1, PaddingValid}, {2, 6, 7, 3, 3, 2, PaddingValid}, {1, 6, 6, 2, 3, 1, PaddingSame},
		{3, 7, 5, 2, 3, 2, PaddingSame}, {2, 6, 6, 2, 2, 2, PaddingSame}, {2, 5, 5, 2, 4, 1, PaddingSame}, {3, 4, 4, 5, 1, 1, PaddingValid},
	}
	for _, tc := range cases {
		rng := rand.New(rand.NewPCG(1, uint64(tc.k*100+tc.s)))
		m, err := Build(imageSpec(tc.c, tc.h, tc.w, LayerSpec{Type: LayerConv, Filters: tc.f, Kernel: tc.k, Stride: tc.s, Padding: tc.pad}), rng)
		if err != nil {
			t.Fatal(err)
		}
		var ho, wo, padT, padL int
		if tc.pad == PaddingValid {
			ho, wo = (tc.h-tc.k)/tc.s+1, (tc.w-tc.k)/tc.s+1
		} else {
			ho, wo = int(math.Ceil(float64(tc.h)/float64(tc.s))), int(math.Ceil(float64(tc.w)/float64(tc.s)))
			padT = max((ho-1)*tc.s+tc.k-tc.h, 0) / 2
			padL = max((wo-1)*tc.s+tc.k-tc.w, 0) / 2
		}
		bias := m.Param("conv_1/b").Value
		for i := range bias {
			bias[i] = float32(rng.NormFloat64())
		}
		rows := 3
		b := randomBatch(rng, m.Spec(), rows)
		m.forward(b, false)
		got := m.layerOut[0]
		n := tc.c * tc.h * tc.w
		if len(got) != rows*tc.f*ho*wo {
			t.Fatalf("%+v: output has %d values, want %d", tc, len(got), rows*tc.f*ho*wo)
		}
		for r := 0; r < rows; r++ {
			want := refConv(b.X[r*n:(r+1)*n], m.Param("conv_1/W").Value, bias, tc.c, tc.h, tc.w, tc.f, tc.k, tc.s, ho, wo, padT, padL)
			for i, v := range want {
				if g := got[r*len(want)+i]; math.Abs(float64(g-v)) > 1e-4*(1+math.Abs(float64(v))) {
					t.Fatalf("%+v: row %d value %d = %v, want %v", tc, r, i, g, v)
				}
			}
		}
	}
}

// TestPoolForwardMatchesDefinition checks max and average pooling (cells in the padding
// ignored) and global average pooling against loops written from the definitions.
func TestPoolForwardMatchesDefinition(t *testing.T) {
	cases := []struct {
		typ     string
		c, h, w int
		k, s    int
		pad     string
	}{
		{LayerMaxPool, 2, 6, 6, 2, 2, PaddingValid}, {LayerMaxPool, 2, 7, 5, 3, 2, PaddingSame}, {LayerMaxPool, 1, 5, 5, 3, 1, PaddingValid},
		{LayerAvgPool, 2, 6, 6, 2, 2, PaddingValid}, {LayerAvgPool, 2, 7, 5, 3, 2, PaddingSame}, {LayerAvgPool, 1, 5, 5, 2, 1, PaddingSame},
		{LayerGlobalAvgPool, 3, 4, 5, 0, 0, ""},
	}
	for _, tc := range cases {
		rng := rand.New(rand.NewPCG(2, 3))
		m, err := Build(imageSpec(tc.c, tc.h, tc.w, LayerSpec{Type: tc.typ, Kernel: tc.k, Stride: tc.s, Padding: tc.pad}), rng)
		if err != nil {
			t.Fatal(err)
		}
		k, s, pad := tc.k, tc.s, tc.pad
		if tc.typ == LayerGlobalAvgPool {
			k, s, pad = 0, 1, PaddingValid // one window over the whole plane
		}
		var ho, wo, padT, padL, kh, kw int
		switch {
		case tc.typ == LayerGlobalAvgPool:
			ho, wo, kh, kw = 1, 1, tc.h, tc.w
		case pad == PaddingValid:
			ho, wo, kh, kw = (tc.h-k)/s+1, (tc.w-k)/s+1, k, k
		default:
			ho, wo, kh, kw = (tc.h+s-1)/s, (tc.w+s-1)/s, k, k
			padT, padL = max((ho-1)*s+k-tc.h, 0)/2, max((wo-1)*s+k-tc.w, 0)/2
		}
		rows := 2
		b := randomBatch(rng, m.Spec(), rows)
		m.forward(b, false)
		got := m.layerOut[0]
		n := tc.c * tc.h * tc.w
		for r := 0; r < rows; r++ {
			for c := 0; c < tc.c; c++ {
				for oy := 0; oy < ho; oy++ {
					for ox := 0; ox < wo; ox++ {
						best, sum, cnt := math.Inf(-1), 0.0, 0
						for ky := 0; ky < kh; ky++ {
							for kx := 0; kx < kw; kx++ {
								iy, ix := oy*s-padT+ky, ox*s-padL+kx
								if iy < 0 || iy >= tc.h || ix < 0 || ix >= tc.w {
									continue
								}
								v := float64(b.X[r*n+(c*tc.h+iy)*tc.w+ix])
								best, sum, cnt = math.Max(best, v), sum+v, cnt+1
							}
						}
						want := sum / float64(cnt)
						if tc.typ == LayerMaxPool {
							want = best
						}
						g := float64(got[r*tc.c*ho*wo+(c*ho+oy)*wo+ox])
						if math.Abs(g-want) > 1e-5*(1+math.Abs(want)) {
							t.Fatalf("%+v: row %d channel %d (%d,%d) = %v, want %v", tc, r, c, oy, ox, g, want)
						}
					}
				}
			}
		}
	}
}

func TestImageSpecErrors(t *testing.T) {
	conv := LayerSpec{Type: LayerConv, Filters: 2, Kernel: 3}
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"residual_filters_without_image", Spec{NumInputs: 16, Layers: []LayerSpec{{Type: LayerResidual, Filters: 2}}, Heads: softmaxHead(2)}, "needs an image input"},
		{"residual_units_on_image", imageSpec(1, 4, 4, LayerSpec{Type: LayerResidual, Units: 4}), "needs filters >= 1"},
		{"residual_units_and_filters", imageSpec(1, 4, 4, LayerSpec{Type: LayerResidual, Units: 4, Filters: 2}), "not both"},
		{"residual_layer_norm_on_image", imageSpec(1, 4, 4, LayerSpec{Type: LayerResidual, Filters: 2, Norm: LayerLayerNorm}), `norm "layer_norm"`},
		{"residual_valid_padding", imageSpec(1, 4, 4, LayerSpec{Type: LayerResidual, Filters: 2, Padding: PaddingValid}), "always pads same"},
		{"conv_without_input_shape", Spec{NumInputs: 16, Layers: []LayerSpec{conv}, Heads: softmaxHead(2)}, "needs an image input"},
		{"shape_mismatch", Spec{NumInputs: 15, InputShape: []int{1, 4, 4}, Layers: []LayerSpec{conv}, Heads: softmaxHead(2)}, "num_inputs = 15"},
		{"shape_rank", Spec{NumInputs: 16, InputShape: []int{4, 4}, Heads: softmaxHead(2)}, "[channels, height, width]"},
		{"with_embeddings", Spec{NumInputs: 16, InputShape: []int{1, 4, 4}, Embeddings: []EmbeddingSpec{{Cardinality: 2, Dim: 2}}, Heads: softmaxHead(2)}, "only the image"},
		{"dense_on_image", imageSpec(1, 4, 4, conv, LayerSpec{Type: LayerDense, Units: 3}), "add a flatten"},
		{"layer_norm_on_image", imageSpec(1, 4, 4, LayerSpec{Type: LayerLayerNorm}), "add a flatten"},
		{"conv_after_flatten", imageSpec(1, 4, 4, LayerSpec{Type: LayerFlatten}, conv), "needs an image input"},
		{"kernel_too_big_valid", imageSpec(1, 4, 4, LayerSpec{Type: LayerConv, Filters: 2, Kernel: 5}), "does not fit the 4×4 input"},
		{"bad_padding", imageSpec(1, 4, 4, LayerSpec{Type: LayerConv, Filters: 2, Kernel: 3, Padding: "full"}), `padding "full"`},
		{"no_filters", imageSpec(1, 4, 4, LayerSpec{Type: LayerConv, Kernel: 3}), "filters >= 1"},
		{"negative_stride", imageSpec(1, 4, 4, LayerSpec{Type: LayerMaxPool, Stride: -1}), "stride -1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(tc.spec, rand.New(rand.NewPCG(1, 2)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// cnnSpec is a small digits-sized CNN.
func cnnSpec() Spec {
	return imageSpec(1, 8, 8,
		LayerSpec{Type: LayerConv, Filters: 4, Kernel: 3, Padding: PaddingSame, Activation: "relu"},
		LayerSpec{Type: LayerMaxPool},
		LayerSpec{Type: LayerResidual, Filters: 4, Norm: LayerBatchNorm},
		LayerSpec{Type: LayerConv, Filters: 6, Kernel: 3, Stride: 2, Padding: PaddingSame, Activation: "relu", Dropout: 0.1},
		LayerSpec{Type: LayerBatchNorm, Name: "conv_2_bn"},
		LayerSpec{Type: LayerAvgPool, Kernel: 2, Stride: 1},
		LayerSpec{Type: LayerFlatten},
		LayerSpec{Type: LayerDense, Units: 5, Activation: "relu"})
}

func TestSummaryImageShapesAndParams(t *testing.T) {
	m := mustBuild(t, cnnSpec())
	s := m.Summary()
	type want struct {
		layer  string
		output []int
		params int
	}
	// Shapes from the definitions: 8×8 same → 8×8; max 2 → 4×4; same stride 2 → ⌈4/2⌉ = 2;
	// avg 2 stride 1 valid → 1×1; flatten → 6; params F·C·k·k + F.
	wants := []want{
		{"conv_1", []int{4, 8, 8}, 4*1*3*3 + 4}, {"max_pool_1", []int{4, 4, 4}, 0},
		{"residual_1", []int{4, 4, 4}, 2*4 + 2*(4*4*3*3+4)}, // norm γ, β; conv_a, conv_b; no proj
		{"conv_2", []int{6, 2, 2}, 6*4*3*3 + 6}, {"conv_2_dropout", []int{6, 2, 2}, 0},
		{"conv_2_bn", []int{6, 2, 2}, 2 * 6}, {"avg_pool_1", []int{6, 1, 1}, 0}, {"flatten_1", []int{6}, 0}, {"dense_1", []int{5}, 6*5 + 5},
	}
	if len(s.Rows) != len(wants)+1 {
		t.Fatalf("summary has %d rows, want %d:\n%s", len(s.Rows), len(wants)+1, s)
	}
	for i, w := range wants {
		r := s.Rows[i]
		if r.Layer != w.layer || r.Params != w.params || len(r.Output) != len(w.output) {
			t.Fatalf("row %d = %+v, want %+v", i, r, w)
		}
		for j := range w.output {
			if r.Output[j] != w.output[j] {
				t.Fatalf("row %d output %v, want %v", i, r.Output, w.output)
			}
		}
	}
	total := 0
	for _, p := range m.Params() {
		total += p.Size()
	}
	if s.Total != total {
		t.Fatalf("summary total %d, params hold %d", s.Total, total)
	}
	if !strings.Contains(s.Table(), "[4 8 8]") {
		t.Fatalf("table lacks the conv output shape:\n%s", s.Table())
	}
}

// TestConvHeInitByFanIn: the default init of a ReLU conv is N(0, 2/(C·k·k)).
func TestConvHeInitByFanIn(t *testing.T) {
	const c, k = 16, 5
	m := mustBuild(t, imageSpec(c, 5, 5, LayerSpec{Type: LayerConv, Filters: 64, Kernel: k, Activation: "relu"}))
	w := m.Param("conv_1/W")
	if len(w.Shape) != 4 || w.Shape[0] != 64 || w.Shape[1] != c || w.Shape[2] != k || w.Shape[3] != k {
		t.Fatalf("W shape %v, want [64 %d %d %d]", w.Shape, c, k, k)
	}
	var ss float64
	for _, v := range w.Value {
		ss += float64(v) * float64(v)
	}
	std, wantStd := math.Sqrt(ss/float64(len(w.Value))), math.Sqrt(2.0/(c*k*k))
	if math.Abs(std-wantStd) > 0.02*wantStd {
		t.Fatalf("std %.5f, want %.5f (He normal with fan-in C·k·k = %d)", std, wantStd, c*k*k)
	}
}

func TestImageModelSaveLoadRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m, err := Build(cnnSpec(), rng)
	if err != nil {
		t.Fatal(err)
	}
	b := randomBatch(rng, m.Spec(), 6)
	if _, err := m.TrainStep(b, randomTargets(rng, m.Spec(), 6, 0)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Spec(); len(s.InputShape) != 3 || s.InputShape[1] != 8 || s.Layers[3].Stride != 2 || s.Layers[3].Padding != PaddingSame || s.Layers[3].Filters != 6 {
		t.Fatalf("loaded spec lost image fields: %+v", s)
	}
	o1, _ := m.Predict(b)
	o2, _ := got.Predict(b)
	for i := range o1.Heads[0] {
		if math.Float32bits(o1.Heads[0][i]) != math.Float32bits(o2.Heads[0][i]) {
			t.Fatalf("output %d = %v after load, want %v", i, o2.Heads[0][i], o1.Heads[0][i])
		}
	}
}

// TestImageTrainStepIdenticalForAnyWorkers: gradients are bit-identical with 1 and 4 GEMM
// workers (the batch is large enough for the parallel GEMM to split the conv products).
func TestImageTrainStepIdenticalForAnyWorkers(t *testing.T) {
	// The second conv has C·k·k = 16·9 = 144 > gemm.RowBlock, so its dWᵀ and column-gradient
	// products (C·k·k rows) are split into row blocks.
	spec := imageSpec(2, 12, 12,
		LayerSpec{Type: LayerConv, Filters: 16, Kernel: 3, Padding: PaddingSame, Activation: "relu"},
		LayerSpec{Type: LayerMaxPool},
		LayerSpec{Type: LayerConv, Filters: 8, Kernel: 3, Activation: "relu"},
		LayerSpec{Type: LayerResidual, Filters: 12, Stride: 2, Norm: LayerBatchNorm},
		LayerSpec{Type: LayerGlobalAvgPool})
	grads := func(workers int) [][]float32 {
		rng := rand.New(rand.NewPCG(9, 9))
		m, err := Build(spec, rng)
		if err != nil {
			t.Fatal(err)
		}
		m.SetWorkers(workers)
		b := randomBatch(rng, m.Spec(), 64)
		if _, err := m.TrainStep(b, randomTargets(rng, m.Spec(), 64, 0)); err != nil {
			t.Fatal(err)
		}
		var out [][]float32
		for _, p := range m.Params() {
			out = append(out, append([]float32(nil), p.Grad...))
		}
		return out
	}
	if gemm.RowBlock >= 16*3*3 {
		t.Fatalf("gemm.RowBlock %d: the second conv's products would not be split", gemm.RowBlock)
	}
	g1, g4 := grads(1), grads(4)
	for i := range g1 {
		for j := range g1[i] {
			if math.Float32bits(g1[i][j]) != math.Float32bits(g4[i][j]) {
				t.Fatalf("param %d grad %d: %v with 1 worker, %v with 4", i, j, g1[i][j], g4[i][j])
			}
		}
	}
}

// TestTrainStepDoesNotAllocateImage (named so that run.sh's zero-allocation step, which runs
// TestTrainStepDoesNotAllocate without -race, runs it too): an image model's steady-state
// TrainStep allocates nothing with one GEMM worker.
func TestTrainStepDoesNotAllocateImage(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool (used by the GEMM's packing buffers) drop items")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	m := mustBuild(t, cnnSpec())
	b := randomBatch(rng, m.Spec(), 32)
	tg := randomTargets(rng, m.Spec(), 32, 0)
	if _, err := m.TrainStep(b, tg); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = m.TrainStep(b, tg) }); n != 0 {
		t.Fatalf("TrainStep allocates %v times per call in the steady state", n)
	}
}

// TestTrainStepDoesNotAllocateResidualBlock: the residual block of bench/conv's residual case
// (identity skip, no norm, first layer, so conv_a computes no input gradient) allocates
// nothing per steady-state TrainStep with one GEMM worker.
func TestTrainStepDoesNotAllocateResidualBlock(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool (used by the GEMM's packing buffers) drop items")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	m := mustBuild(t, imageSpec(8, 10, 10, LayerSpec{Type: LayerResidual, Filters: 8}, LayerSpec{Type: LayerGlobalAvgPool}))
	m.SetWorkers(1)
	b := randomBatch(rng, m.Spec(), 16)
	tg := randomTargets(rng, m.Spec(), 16, 0)
	if _, err := m.TrainStep(b, tg); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = m.TrainStep(b, tg) }); n != 0 {
		t.Fatalf("TrainStep allocates %v times per call in the steady state", n)
	}
}

// TestPoolInputGradients checks dL/dx of the parameter-free image layers by central
// differences on the input, for L = Σ y·g with a fixed random g. The inputs are a shuffled
// grid of values 0.1 apart, so a ±1e-2 step never changes which cell wins a max (no kinks).
func TestPoolInputGradients(t *testing.T) {
	cases := []struct {
		name    string
		c, h, w int
		ls      LayerSpec
	}{
		{"max_valid_even", 2, 6, 6, LayerSpec{Type: LayerMaxPool}},
		{"max_same_s2_odd", 2, 7, 5, LayerSpec{Type: LayerMaxPool, Kernel: 3, Stride: 2, Padding: PaddingSame}},
		{"max_valid_overlap_odd", 1, 7, 7, LayerSpec{Type: LayerMaxPool, Kernel: 3, Stride: 1}},
		{"max_same_s1_even", 2, 4, 6, LayerSpec{Type: LayerMaxPool, Kernel: 2, Stride: 1, Padding: PaddingSame}},
		{"avg_valid_even", 2, 6, 6, LayerSpec{Type: LayerAvgPool}},
		{"avg_same_s2_odd", 2, 7, 5, LayerSpec{Type: LayerAvgPool, Kernel: 3, Stride: 2, Padding: PaddingSame}},
		{"avg_same_s1_even", 1, 4, 6, LayerSpec{Type: LayerAvgPool, Kernel: 2, Stride: 1, Padding: PaddingSame}},
		{"global_avg", 3, 3, 4, LayerSpec{Type: LayerGlobalAvgPool}},
		{"flatten", 2, 3, 3, LayerSpec{Type: LayerFlatten}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(4, 4))
			m, err := Build(imageSpec(tc.c, tc.h, tc.w, tc.ls), rng)
			if err != nil {
				t.Fatal(err)
			}
			l := m.layers[0]
			const rows = 2
			l.alloc(rows)
			in := l.inWidth()
			x := make([]float32, rows*in)
			for i, p := range rng.Perm(len(x)) {
				x[i] = 0.1 * float32(p-len(x)/2)
			}
			g := make([]float32, rows*l.outWidth())
			for i := range g {
				g[i] = float32(rng.NormFloat64())
			}
			loss := func() float64 {
				y := l.forward(&m.rc, x, rows)
				var s float64
				for i, v := range y[:len(g)] {
					s += float64(v) * float64(g[i])
				}
				return s
			}
			loss()
			dy := append([]float32(nil), g...)
			dx := append([]float32(nil), l.backward(&m.rc, dy, rows, true)...)
			for i := range x {
				num := centralDiff(x, i, 1e-2, loss)
				if math.Abs(num-float64(dx[i])) > 1e-3*(1+math.Abs(num)) {
					t.Fatalf("dx[%d] = %v, numeric %v", i, dx[i], num)
				}
			}
		})
	}
}

// TestBatchNormOverChannels: on an image, batch_norm has one γ/β and running mean/variance per
// channel, and in training normalises each channel over the batch and its H×W plane (checked
// here from the definition: per channel mean 0 and variance ≈ 1 over rows×H×W; running mean =
// momentum·batch mean, running variance = (1−momentum) + momentum·unbiased batch variance).
func TestBatchNormOverChannels(t *testing.T) {
	const c, h, w, rows = 3, 4, 5, 6
	m := mustBuild(t, imageSpec(c, h, w, LayerSpec{Type: LayerBatchNorm}))
	if g := m.Param("batch_norm_1/gamma"); g == nil || g.Size() != c {
		t.Fatalf("gamma %v, want %d values (one per channel)", g, c)
	}
	rng := rand.New(rand.NewPCG(8, 8))
	b := randomBatch(rng, m.Spec(), rows)
	for i := range b.X {
		b.X[i] = b.X[i]*float32(1+i/(h*w)%c) + float32(i/(h*w)%c) // channel-dependent mean and scale
	}
	if _, err := m.TrainStep(b, randomTargets(rng, m.Spec(), rows, 0)); err != nil {
		t.Fatal(err)
	}
	y := m.layerOut[0]
	plane, n := h*w, c*h*w
	for ch := 0; ch < c; ch++ {
		var sx, sx2, sy, sy2 float64
		for r := 0; r < rows; r++ {
			for p := 0; p < plane; p++ {
				x, v := float64(b.X[r*n+ch*plane+p]), float64(y[r*n+ch*plane+p])
				sx, sx2, sy, sy2 = sx+x, sx2+x*x, sy+v, sy2+v*v
			}
		}
		cnt := float64(rows * plane)
		mean, varY := sy/cnt, sy2/cnt-(sy/cnt)*(sy/cnt)
		if math.Abs(mean) > 1e-5 || math.Abs(varY-1) > 1e-3 {
			t.Fatalf("channel %d: output mean %g variance %g, want 0 and 1", ch, mean, varY)
		}
		xMean := sx / cnt
		unbiased := (sx2 - cnt*xMean*xMean) / (cnt - 1)
		if got := float64(m.Param("batch_norm_1/running_mean").Value[ch]); math.Abs(got-0.1*xMean) > 1e-5 {
			t.Fatalf("channel %d running mean %g, want %g", ch, got, 0.1*xMean)
		}
		if got, want := float64(m.Param("batch_norm_1/running_var").Value[ch]), 0.9+0.1*unbiased; math.Abs(got-want) > 1e-4*want {
			t.Fatalf("channel %d running var %g, want %g", ch, got, want)
		}
	}
}

// TestConvResidualSkip: with conv_b zeroed the image residual block is its skip path: the
// identity when channels and stride are kept, else the bias-free 1×1 strided projection
// y[f, oy, ox] = Σ_c P[f, c]·x[c, s·oy, s·ox] (computed here from the definition).
func TestConvResidualSkip(t *testing.T) {
	cases := []struct {
		name       string
		c, h, w, f int
		stride     int
	}{
		{"identity", 3, 5, 4, 3, 1}, {"proj_channels", 2, 4, 4, 3, 1}, {"proj_s2_odd", 2, 5, 7, 3, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := mustBuild(t, imageSpec(tc.c, tc.h, tc.w, LayerSpec{Type: LayerResidual, Filters: tc.f, Stride: tc.stride}))
			clear(m.Param("residual_1/conv_b/W").Value)
			clear(m.Param("residual_1/conv_b/b").Value)
			ho, wo := (tc.h+tc.stride-1)/tc.stride, (tc.w+tc.stride-1)/tc.stride
			proj := m.Param("residual_1/proj/W")
			if (proj == nil) != (tc.c == tc.f && tc.stride == 1) {
				t.Fatalf("proj = %v, want one only when channels or stride change", proj)
			}
			rng := rand.New(rand.NewPCG(3, 3))
			const rows = 2
			b := randomBatch(rng, m.Spec(), rows)
			m.forward(b, false)
			y := m.layerOut[0]
			n, on := tc.c*tc.h*tc.w, tc.f*ho*wo
			if len(y) != rows*on {
				t.Fatalf("output has %d values, want %d", len(y), rows*on)
			}
			for r := 0; r < rows; r++ {
				for f := 0; f < tc.f; f++ {
					for oy := 0; oy < ho; oy++ {
						for ox := 0; ox < wo; ox++ {
							var want float64
							if proj == nil {
								want = float64(b.X[r*n+(f*tc.h+oy)*tc.w+ox])
							} else {
								for c := 0; c < tc.c; c++ {
									want += float64(proj.Value[f*tc.c+c]) * float64(b.X[r*n+(c*tc.h+oy*tc.stride)*tc.w+ox*tc.stride])
								}
							}
							if g := float64(y[r*on+(f*ho+oy)*wo+ox]); math.Abs(g-want) > 1e-5*(1+math.Abs(want)) {
								t.Fatalf("row %d (%d,%d,%d) = %v, want %v", r, f, oy, ox, g, want)
							}
						}
					}
				}
			}
		})
	}
}

func TestImageSpecJSONShortForms(t *testing.T) {
	in := `{"num_inputs": 64, "input_shape": [1, 8, 8], "layers": [
		{"conv": 4, "kernel": 3, "padding": "same", "activation": "relu"}, {"max_pool": 2},
		{"type": "residual", "filters": 4, "norm": "batch_norm"}, {"avg_pool": 2, "stride": 1},
		{"global_avg_pool": true}],
		"heads": [{"kind": "softmax", "classes": 3}]}`
	var s Spec
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	want := []LayerSpec{
		{Type: LayerConv, Filters: 4, Kernel: 3, Padding: PaddingSame, Activation: "relu"}, {Type: LayerMaxPool, Kernel: 2},
		{Type: LayerResidual, Filters: 4, Norm: LayerBatchNorm}, {Type: LayerAvgPool, Kernel: 2, Stride: 1}, {Type: LayerGlobalAvgPool},
	}
	if len(s.Layers) != len(want) {
		t.Fatalf("%d layers, want %d", len(s.Layers), len(want))
	}
	for i, w := range want {
		if s.Layers[i] != w {
			t.Errorf("layer %d = %+v, want %+v", i, s.Layers[i], w)
		}
	}
	var flat Spec
	if err := json.Unmarshal([]byte(`{"num_inputs": 4, "input_shape": [1, 2, 2], "layers": [{"flatten": true}], "heads": [{"kind": "softmax", "classes": 2}]}`), &flat); err != nil {
		t.Fatal(err)
	}
	if flat.Layers[0].Type != LayerFlatten {
		t.Fatalf("flatten short form gave %+v", flat.Layers[0])
	}
	m := mustBuild(t, s)
	if out := m.Summary().Rows[len(m.layers)-1].Output; len(out) != 1 || out[0] != 4 {
		t.Fatalf("global_avg_pool output %v, want [4]", out)
	}
}
