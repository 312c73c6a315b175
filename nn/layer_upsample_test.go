package nn

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpsampleForwardMatchesDefinition: y[r][c][oy][ox] = x[r][c][oy/f][ox/f], for factors 1,
// 2 and 3 on odd, even and non-square planes.
func TestUpsampleForwardMatchesDefinition(t *testing.T) {
	for _, tc := range []struct{ c, h, w, f int }{{2, 3, 3, 2}, {1, 4, 5, 3}, {3, 2, 2, 1}, {2, 1, 3, 2}} {
		m := mustBuild(t, imageSpec(tc.c, tc.h, tc.w, LayerSpec{Type: LayerUpsample, Factor: tc.f}, LayerSpec{Type: LayerFlatten}))
		l := m.layers[0]
		const rows = 3
		l.alloc(rows)
		rng := rand.New(rand.NewPCG(5, uint64(tc.f)))
		x := make([]float32, rows*l.inWidth())
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		y := l.forward(&m.rc, x, rows)
		ho, wo := tc.h*tc.f, tc.w*tc.f
		if len(y) != rows*tc.c*ho*wo || l.outWidth() != tc.c*ho*wo {
			t.Fatalf("%+v: output has %d values, want %d", tc, len(y), rows*tc.c*ho*wo)
		}
		for r := range rows {
			for c := range tc.c {
				for oy := range ho {
					for ox := range wo {
						got := y[((r*tc.c+c)*ho+oy)*wo+ox]
						want := x[((r*tc.c+c)*tc.h+oy/tc.f)*tc.w+ox/tc.f]
						if got != want {
							t.Fatalf("%+v: y[%d][%d][%d][%d] = %v, want %v", tc, r, c, oy, ox, got, want)
						}
					}
				}
			}
		}
	}
}

// TestUpsampleInputGradients checks dL/dx of upsample by central differences on the input, for
// L = Σ y·g with a fixed random g (L is linear in x, so the difference is exact up to float32).
func TestUpsampleInputGradients(t *testing.T) {
	for _, tc := range []struct{ c, h, w, f int }{{2, 3, 3, 2}, {1, 2, 5, 3}, {2, 4, 2, 1}} {
		rng := rand.New(rand.NewPCG(4, 4))
		m := mustBuild(t, imageSpec(tc.c, tc.h, tc.w, LayerSpec{Type: LayerUpsample, Factor: tc.f}))
		l := m.layers[0]
		const rows = 2
		l.alloc(rows)
		x := make([]float32, rows*l.inWidth())
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		g := make([]float32, rows*l.outWidth())
		for i := range g {
			g[i] = float32(rng.NormFloat64())
		}
		loss := func() float64 {
			var s float64
			for i, v := range l.forward(&m.rc, x, rows) {
				s += float64(v) * float64(g[i])
			}
			return s
		}
		loss()
		dx := append([]float32(nil), l.backward(&m.rc, append([]float32(nil), g...), rows, true)...)
		for i := range x {
			num := centralDiff(x, i, 1e-2, loss)
			if math.Abs(num-float64(dx[i])) > 1e-3*(1+math.Abs(num)) {
				t.Fatalf("%+v: dx[%d] = %v, numeric %v", tc, i, dx[i], num)
			}
		}
	}
}

// TestGradCheckUpsample: the params below and above an upsample layer (a conv decoder's
// upsample + conv) get the finite-difference gradients.
func TestGradCheckUpsample(t *testing.T) {
	conv := func(f int) LayerSpec {
		return LayerSpec{Type: LayerConv, Filters: f, Kernel: 3, Padding: PaddingSame, Activation: "tanh"}
	}
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"conv_upsample2_conv", imageSpec(2, 3, 3, conv(3), LayerSpec{Type: LayerUpsample}, conv(2), LayerSpec{Type: LayerFlatten})},
		{"conv_upsample3_odd", imageSpec(1, 3, 2, conv(2), LayerSpec{Type: LayerUpsample, Factor: 3}, LayerSpec{Type: LayerFlatten})},
		{"pool_upsample_conv", imageSpec(2, 6, 6, conv(3), LayerSpec{Type: LayerAvgPool}, LayerSpec{Type: LayerUpsample}, conv(2), LayerSpec{Type: LayerFlatten})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 11))
			m, err := Build(tc.spec, rng)
			if err != nil {
				t.Fatal(err)
			}
			b := randomBatch(rng, m.Spec(), 4)
			res, err := GradCheck(m, b, randomTargets(rng, m.Spec(), 4, 0), GradCheckOptions{MaxCoords: 40})
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != countTrainable(m) {
				t.Fatalf("checked %d tensors, model has %d trainable", len(res), countTrainable(m))
			}
			for _, r := range res {
				if r.RelError > 2e-2 {
					t.Errorf("%s[%d]: analytic %.6g numeric %.6g rel %.3g > 2e-2", r.Param, r.Coord, r.Analytic, r.Numeric, r.RelError)
				}
			}
		})
	}
}

// convAESpec is a small convolutional autoencoder's shape: 8×8 → 4×4 → 8×8.
func convAESpec() Spec {
	s := imageSpec(1, 8, 8,
		LayerSpec{Type: LayerConv, Filters: 4, Kernel: 3, Padding: PaddingSame, Activation: "relu"},
		LayerSpec{Type: LayerMaxPool},
		LayerSpec{Type: LayerUpsample},
		LayerSpec{Type: LayerConv, Filters: 1, Kernel: 3, Padding: PaddingSame})
	s.Heads = []HeadSpec{{Kind: HeadRegression, Outputs: 64}}
	return s
}

// TestTrainStepDoesNotAllocateUpsample (run by run.sh's zero-allocation step with the other
// TestTrainStepDoesNotAllocate tests): a model with an upsample layer allocates nothing per
// TrainStep in the steady state.
func TestTrainStepDoesNotAllocateUpsample(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool (used by the GEMM's packing buffers) drop items")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	m := mustBuild(t, convAESpec())
	b := randomBatch(rng, m.Spec(), 32)
	tg := randomTargets(rng, m.Spec(), 32, 0)
	if _, err := m.TrainStep(b, tg); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = m.TrainStep(b, tg) }); n != 0 {
		t.Fatalf("TrainStep allocates %v times per call in the steady state", n)
	}
}

// TestUpsampleSummarySpecAndErrors: the summary's output shape, the JSON short form and its
// default factor, a save/load round trip, and the errors of a bad factor or a missing image.
func TestUpsampleSummarySpecAndErrors(t *testing.T) {
	var s Spec
	in := `{"num_inputs": 64, "input_shape": [1, 8, 8], "layers": [
		{"conv": 4, "kernel": 3, "padding": "same"}, {"max_pool": 2}, {"upsample": 2},
		{"type": "upsample", "name": "up"}, {"upsample": 3}, {"flatten": true}],
		"heads": [{"kind": "regression", "outputs": 1}]}`
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	m := mustBuild(t, s)
	want := map[string][]int{"upsample_1": {4, 8, 8}, "up": {4, 16, 16}, "upsample_3": {4, 48, 48}, "flatten_1": {4 * 48 * 48}}
	for _, r := range m.Summary().Rows {
		if w, ok := want[r.Layer]; ok {
			if len(r.Output) != len(w) || r.Kind != LayerUpsample && r.Layer != "flatten_1" {
				t.Fatalf("summary row %+v, want output %v", r, w)
			}
			for i := range w {
				if r.Output[i] != w[i] {
					t.Fatalf("summary row %+v, want output %v", r, w)
				}
			}
			delete(want, r.Layer)
		}
	}
	if len(want) > 0 {
		t.Fatalf("summary lacks rows %v:\n%s", want, m.Summary())
	}
	if got := m.Spec().Layers[3].Factor; got != DefaultUpsampleFactor {
		t.Fatalf("type = upsample without factor got factor %d, want the default %d", got, DefaultUpsampleFactor)
	}
	dir := filepath.Join(t.TempDir(), "m")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.layers[4].(*upsample); got.f != 3 || got.h != 16 {
		t.Fatalf("loaded upsample_3 has factor %d on height %d, want 3 on 16", got.f, got.h)
	}
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"negative_factor", imageSpec(1, 4, 4, LayerSpec{Type: LayerUpsample, Factor: -1}), "upsample factor -1 must be >= 1"},
		{"no_image", Spec{NumInputs: 16, Layers: []LayerSpec{{Type: LayerUpsample}}, Heads: softmaxHead(2)}, "needs an image input"},
		{"after_flatten", imageSpec(1, 4, 4, LayerSpec{Type: LayerFlatten}, LayerSpec{Type: LayerUpsample}), "needs an image input"},
	} {
		if _, err := Build(tc.spec, rand.New(rand.NewPCG(1, 2))); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}
