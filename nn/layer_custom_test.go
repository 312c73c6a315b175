package nn

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn/optim"
)

// scaledTanh is a pure-Go custom block for the extension-point tests: y = s ⊙ tanh(x·W), W
// [in, out], s [out]. failRows makes Forward (or Backward, with failBackward) fail on batches of
// that many rows.
type scaledTanh struct {
	in, out      int
	w, s         *optim.Param
	x, t, y, dx  []float32
	failRows     int
	failBackward bool
}

func newScaledTanh(cfg CustomConfig, rng *rand.Rand, failRows int, failBackward bool) *scaledTanh {
	out := cfg.Units
	if out == 0 {
		out = 4
	}
	b := &scaledTanh{in: cfg.InWidth, out: out, failRows: failRows, failBackward: failBackward,
		w: &optim.Param{Name: "W", Shape: []int{cfg.InWidth, out}, Value: make([]float32, cfg.InWidth*out), Grad: make([]float32, cfg.InWidth*out)},
		s: &optim.Param{Name: "s", Shape: []int{out}, Value: make([]float32, out), Grad: make([]float32, out), NoDecay: true}}
	for i := range b.w.Value {
		b.w.Value[i] = float32(rng.NormFloat64() / math.Sqrt(float64(cfg.InWidth)))
	}
	for i := range b.s.Value {
		b.s.Value[i] = float32(0.5 + rng.Float64())
	}
	return b
}

func (b *scaledTanh) OutWidth() int          { return b.out }
func (b *scaledTanh) Params() []*optim.Param { return []*optim.Param{b.w, b.s} }

func (b *scaledTanh) Forward(x []float32, rows int, _ bool) ([]float32, error) {
	if rows == b.failRows && !b.failBackward {
		return nil, fmt.Errorf("scaled_tanh: refusing %d rows", rows)
	}
	b.x = append(b.x[:0], x...)
	b.t = grow(b.t, rows*b.out)
	b.y = grow(b.y, rows*b.out)
	for r := 0; r < rows; r++ {
		for j := 0; j < b.out; j++ {
			var z float64
			for i := 0; i < b.in; i++ {
				z += float64(x[r*b.in+i]) * float64(b.w.Value[i*b.out+j])
			}
			b.t[r*b.out+j] = float32(math.Tanh(z))
			b.y[r*b.out+j] = b.s.Value[j] * b.t[r*b.out+j]
		}
	}
	return b.y, nil
}

func (b *scaledTanh) Backward(dy []float32, rows int, needDX bool) ([]float32, error) {
	if rows == b.failRows && b.failBackward {
		return nil, fmt.Errorf("scaled_tanh: refusing to differentiate %d rows", rows)
	}
	clear(b.w.Grad) // the test models never freeze this block
	clear(b.s.Grad)
	b.dx = grow(b.dx, rows*b.in)
	clear(b.dx)
	for r := 0; r < rows; r++ {
		for j := 0; j < b.out; j++ {
			t := b.t[r*b.out+j]
			g := dy[r*b.out+j]
			b.s.Grad[j] += g * t
			dz := g * b.s.Value[j] * (1 - t*t)
			for i := 0; i < b.in; i++ {
				b.w.Grad[i*b.out+j] += b.x[r*b.in+i] * dz
				b.dx[r*b.in+i] += b.w.Value[i*b.out+j] * dz
			}
		}
	}
	if !needDX {
		return nil, nil
	}
	return b.dx, nil
}

var _ = registerTestBlocks()

// registerTestBlocks registers the test blocks once per process (tests may run with -count).
func registerTestBlocks() error {
	blocks := map[string]CustomFactory{
		"test_scaled_tanh": func(cfg CustomConfig, rng *rand.Rand) (CustomLayer, error) {
			return newScaledTanh(cfg, rng, -1, false), nil
		},
		"test_fails_on_3_rows": func(cfg CustomConfig, rng *rand.Rand) (CustomLayer, error) {
			return newScaledTanh(cfg, rng, 3, false), nil
		},
		"test_backward_fails_on_3_rows": func(cfg CustomConfig, rng *rand.Rand) (CustomLayer, error) {
			return newScaledTanh(cfg, rng, 3, true), nil
		},
		"test_factory_error": func(CustomConfig, *rand.Rand) (CustomLayer, error) {
			return nil, errors.New("no GPU found")
		},
	}
	for name, f := range blocks {
		if err := RegisterCustom(name, f); err != nil {
			panic(err)
		}
	}
	return nil
}

func customSpec(block string, units int) Spec {
	return Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerCustom, Custom: block, Units: units}, {Type: LayerDense, Units: 4, Activation: "tanh"}},
		Heads: softmaxHead(3)}
}

func TestCustomLayerGradCheck(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
	}{
		{"custom_then_dense", customSpec("test_scaled_tanh", 0)},
		{"dense_then_custom_with_dropout_and_l2", Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"},
			{Type: LayerCustom, Custom: "test_scaled_tanh", Units: 3, Dropout: 0.2, L2: 0.05}}, Heads: softmaxHead(2)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			m, err := Build(tc.spec, rng)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"custom_1/W", "custom_1/s"} {
				if m.Param(want) == nil {
					t.Fatalf("model lacks param %s", want)
				}
			}
			b := randomBatch(rng, m.Spec(), 7)
			res, err := GradCheck(m, b, randomTargets(rng, m.Spec(), 7, 0), GradCheckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.RelError > 1e-2 {
					t.Errorf("%s: coordinate %d analytic %.6g numeric %.6g (rel error %.3g)", r.Param, r.Coord, r.Analytic, r.Numeric, r.RelError)
				}
			}
		})
	}
}

func TestCustomLayerSaveLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m, err := Build(customSpec("test_scaled_tanh", 0), rng)
	if err != nil {
		t.Fatal(err)
	}
	b := randomBatch(rng, m.Spec(), 10)
	if _, err := m.TrainStep(b, randomTargets(rng, m.Spec(), 10, 0)); err != nil {
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
	o1, err := m.Predict(b)
	if err != nil {
		t.Fatal(err)
	}
	o2, err := got.Predict(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range o1.Heads[0] {
		if math.Float32bits(o1.Heads[0][i]) != math.Float32bits(o2.Heads[0][i]) {
			t.Fatalf("output %d: %v after load, want %v", i, o2.Heads[0][i], o1.Heads[0][i])
		}
	}

	// The same model naming a block this program never registered.
	js, err := os.ReadFile(filepath.Join(dir, SpecFile))
	if err != nil {
		t.Fatal(err)
	}
	js = []byte(strings.Replace(string(js), `"test_scaled_tanh"`, `"block_from_another_program"`, 1))
	if err := os.WriteFile(filepath.Join(dir, SpecFile), js, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(dir)
	if err == nil {
		t.Fatal("Load of a model with an unregistered block succeeded")
	}
	for _, want := range []string{`"block_from_another_program" is not registered`, "import the package that registers it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestCustomLayerErrorsSurface checks that a failing Forward or Backward is returned by the
// Model method that ran it, and that the next pass starts clean.
func TestCustomLayerErrorsSurface(t *testing.T) {
	for _, block := range []string{"test_fails_on_3_rows", "test_backward_fails_on_3_rows"} {
		t.Run(block, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 1))
			m, err := Build(customSpec(block, 0), rng)
			if err != nil {
				t.Fatal(err)
			}
			bad := randomBatch(rng, m.Spec(), 3)
			badT := randomTargets(rng, m.Spec(), 3, 0)
			if _, err := m.TrainStep(bad, badT); err == nil || !strings.Contains(err.Error(), "refusing") || !strings.Contains(err.Error(), `layer "custom_1"`) {
				t.Errorf("TrainStep error = %v, want the block's error naming the layer", err)
			}
			forwardFails := block == "test_fails_on_3_rows"
			_, err = m.EvalLoss(bad, badT)
			if (err != nil) != forwardFails {
				t.Errorf("EvalLoss error = %v, want error: %v", err, forwardFails)
			}
			_, err = m.Predict(bad)
			if (err != nil) != forwardFails {
				t.Errorf("Predict error = %v, want error: %v", err, forwardFails)
			}
			good := randomBatch(rng, m.Spec(), 4)
			if _, err := m.TrainStep(good, randomTargets(rng, m.Spec(), 4, 0)); err != nil {
				t.Errorf("TrainStep after a failed step: %v", err)
			}
		})
	}
}

func TestCustomLayerSpec(t *testing.T) {
	t.Run("json_short_form", func(t *testing.T) {
		var s Spec
		if err := json.Unmarshal([]byte(`{"num_inputs": 5, "layers": [{"custom": "test_scaled_tanh", "units": 3, "dropout": 0.25}], "heads": [{"kind": "softmax", "classes": 2}]}`), &s); err != nil {
			t.Fatal(err)
		}
		if got := s.Layers[0]; got.Type != LayerCustom || got.Custom != "test_scaled_tanh" || got.Units != 3 || got.Dropout != 0.25 {
			t.Fatalf("short form parsed as %+v", got)
		}
		m, err := Build(s, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		if m.Spec().Layers[0].Name != "custom_1" || m.Param("custom_1/W").Shape[1] != 3 {
			t.Errorf("layer %q, W shape %v; want custom_1 and 3 outputs", m.Spec().Layers[0].Name, m.Param("custom_1/W").Shape)
		}
		if rows := m.Summary().Rows; len(rows) < 2 || rows[1].Layer != "custom_1_dropout" {
			t.Errorf("summary rows %+v: want the inline dropout custom_1_dropout after custom_1", rows)
		}
	})
	bad := []struct {
		name  string
		layer LayerSpec
		want  string
	}{
		{"no_block", LayerSpec{Type: LayerCustom}, "needs \"custom\""},
		{"activation", LayerSpec{Type: LayerCustom, Custom: "test_scaled_tanh", Activation: "relu"}, "do not apply"},
		{"unregistered", LayerSpec{Type: LayerCustom, Custom: "nope"}, `"nope" is not registered`},
		{"factory_error", LayerSpec{Type: LayerCustom, Custom: "test_factory_error"}, "no GPU found"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(Spec{NumInputs: 3, Layers: []LayerSpec{tc.layer}, Heads: softmaxHead(2)}, rand.New(rand.NewPCG(1, 2)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("units_mismatch", func(t *testing.T) {
		// The test block honours Units, so check the width check with a factory that does not.
		name := "test_fixed_width_" + t.Name()
		_ = RegisterCustom(name, func(cfg CustomConfig, rng *rand.Rand) (CustomLayer, error) {
			return newScaledTanh(CustomConfig{InWidth: cfg.InWidth, Units: 2}, rng, -1, false), nil
		})
		_, err := Build(Spec{NumInputs: 3, Layers: []LayerSpec{{Type: LayerCustom, Custom: name, Units: 5}}, Heads: softmaxHead(2)}, rand.New(rand.NewPCG(1, 2)))
		if err == nil || !strings.Contains(err.Error(), "output width 2 but the spec says units = 5") {
			t.Errorf("Build error = %v, want the width mismatch", err)
		}
	})
	t.Run("register_errors", func(t *testing.T) {
		f := func(CustomConfig, *rand.Rand) (CustomLayer, error) { return nil, nil }
		for _, tc := range []struct {
			name string
			f    CustomFactory
			want string
		}{{"", f, "empty name"}, {"x_nil_factory", nil, "nil factory"}, {"test_scaled_tanh", f, "already registered"}} {
			if err := RegisterCustom(tc.name, tc.f); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("RegisterCustom(%q) error = %v, want %q", tc.name, err, tc.want)
			}
		}
	})
}

// TestCustomLayerFreezeAndPenalty checks that name-based model features reach custom params:
// Freeze by layer pattern, and a layer L2 penalty (2·L2·w added to the gradient of W, not of
// the NoDecay scale s).
func TestCustomLayerFreezeAndPenalty(t *testing.T) {
	spec := customSpec("test_scaled_tanh", 0)
	spec.Layers[0].L2 = 0.25
	build := func() *Model {
		m, err := Build(spec, rand.New(rand.NewPCG(9, 9)))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m, ref := build(), build()
	n, err := m.Freeze("custom_1/.*")
	if err != nil || n != 2 {
		t.Fatalf("Freeze(custom_1/.*) = %d, %v; want 2 params", n, err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	b := randomBatch(rng, spec, 6)
	tg := randomTargets(rng, spec, 6, 0)
	noPen := spec
	noPen.Layers = append([]LayerSpec(nil), spec.Layers...)
	noPen.Layers[0].L2 = 0
	plain, err := Build(noPen, rand.New(rand.NewPCG(9, 9)))
	if err != nil {
		t.Fatal(err)
	}
	for _, mm := range []*Model{ref, plain} {
		if _, err := mm.TrainStep(b, tg); err != nil {
			t.Fatal(err)
		}
	}
	w, wPlain := ref.Param("custom_1/W"), plain.Param("custom_1/W")
	for i := range w.Grad {
		want := wPlain.Grad[i] + 2*0.25*w.Value[i]
		if math.Abs(float64(w.Grad[i]-want)) > 1e-5*(1+math.Abs(float64(want))) {
			t.Fatalf("custom_1/W Grad[%d] = %v, want plain %v + 2·L2·w = %v", i, w.Grad[i], wPlain.Grad[i], want)
		}
	}
	if s, sPlain := ref.Param("custom_1/s"), plain.Param("custom_1/s"); s.Grad[0] != sPlain.Grad[0] {
		t.Errorf("custom_1/s (NoDecay) Grad[0] = %v with L2, %v without: the penalty must not apply", s.Grad[0], sPlain.Grad[0])
	}
}
