package graphmodel

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"

	"github.com/pipe-ml/pipe/nn"
)

type activation func(*gorgonia.Node) (*gorgonia.Node, error)

// denseNode adds x·W + b with learnables W (in×out) and b (out) named W<tag>, b<tag>.
func denseNode(g *gorgonia.ExprGraph, x *gorgonia.Node, out int, tag string, rng *rand.Rand) (*gorgonia.Node, error) {
	in := x.Shape()[1]
	w := gorgonia.NewMatrix(g, gorgonia.Float32, gorgonia.WithShape(in, out), gorgonia.WithName("W"+tag), gorgonia.WithInit(GlorotUniform(rng)))
	b := gorgonia.NewVector(g, gorgonia.Float32, gorgonia.WithShape(out), gorgonia.WithName("b"+tag), gorgonia.WithInit(Normal(rng, 0.1)))
	xw, err := gorgonia.Mul(x, w)
	if err != nil {
		return nil, err
	}
	return gorgonia.BroadcastAdd(xw, b, nil, []byte{0})
}

// mlpBlock is x → act1(x·W1 + b1) → act2(·W2 + b2).
func mlpBlock(hidden, out int, act1, act2 activation) BuildFunc {
	return func(g *gorgonia.ExprGraph, x *gorgonia.Node, rng *rand.Rand) (*gorgonia.Node, error) {
		h, err := denseNode(g, x, hidden, "1", rng)
		if err != nil {
			return nil, err
		}
		if h, err = act1(h); err != nil {
			return nil, err
		}
		y, err := denseNode(g, h, out, "2", rng)
		if err != nil {
			return nil, err
		}
		return act2(y)
	}
}

// gatedBlock is tanh(x·Wa + ba) ⊙ sigmoid(x·Wg + bg), a gated linear unit.
func gatedBlock(units int) BuildFunc {
	return func(g *gorgonia.ExprGraph, x *gorgonia.Node, rng *rand.Rand) (*gorgonia.Node, error) {
		a, err := denseNode(g, x, units, "a", rng)
		if err != nil {
			return nil, err
		}
		gate, err := denseNode(g, x, units, "g", rng)
		if err != nil {
			return nil, err
		}
		if a, err = gorgonia.Tanh(a); err != nil {
			return nil, err
		}
		if gate, err = gorgonia.Sigmoid(gate); err != nil {
			return nil, err
		}
		return gorgonia.HadamardProd(a, gate)
	}
}

var _ = registerTestBlocks()

// registerTestBlocks registers the test blocks once per process (tests may run with -count).
func registerTestBlocks() error {
	blocks := map[string]BuildFunc{
		"gg_test_mlp_relu_tanh": mlpBlock(16, 8, gorgonia.Rectify, gorgonia.Tanh),
		"gg_test_gated":         gatedBlock(6),
		// A block that builds different learnables once the batch size is not the probe's.
		"gg_test_changes_with_rows": func(g *gorgonia.ExprGraph, x *gorgonia.Node, rng *rand.Rand) (*gorgonia.Node, error) {
			y, err := denseNode(g, x, 3, "1", rng)
			if err == nil && x.Shape()[0] != probeRows {
				_, err = denseNode(g, x, 3, "extra", rng)
			}
			return y, err
		},
		// A block whose builder panics (gorgonia.Must on a shape error) for 5 rows.
		"gg_test_panics_on_5_rows": func(g *gorgonia.ExprGraph, x *gorgonia.Node, rng *rand.Rand) (*gorgonia.Node, error) {
			y, err := denseNode(g, x, 3, "1", rng)
			if x.Shape()[0] == 5 {
				gorgonia.Must(gorgonia.Mul(x, x))
			}
			return y, err
		},
	}
	for name, build := range blocks {
		if err := Register(name, build, Options{}); err != nil {
			panic(err)
		}
	}
	return nil
}

func randomInputs(rng *rand.Rand, rows, in, classes int) (nn.Batch, nn.Targets) {
	x := make([]float32, rows*in)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	labels := make([]int32, rows)
	for i := range labels {
		labels[i] = int32(rng.IntN(classes))
	}
	return nn.Batch{Rows: rows, X: x}, nn.Targets{Heads: []nn.HeadTargets{{Labels: labels}}}
}

// TestBlockMatchesNative trains the same network as native nn layers and as a gorgonia block
// with the same weights, side by side with plain SGD, over batch sizes that exercise the graph
// cache: losses, every gradient, dL/dx (through a dense layer before the block) and the
// predictions must agree at every step. Halfway, the block's param slices are replaced (as a
// caller that assigns Param.Value would) to check the block rebinds them.
func TestBlockMatchesNative(t *testing.T) {
	const in, classes = 6, 3
	head := []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: classes}}
	pre := nn.LayerSpec{Type: nn.LayerDense, Name: "pre", Units: 5, Activation: "tanh"}
	native, err := nn.Build(nn.Spec{NumInputs: in, Layers: []nn.LayerSpec{pre,
		{Type: nn.LayerDense, Units: 16, Activation: "relu"}, {Type: nn.LayerDense, Units: 8, Activation: "tanh"}}, Heads: head}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	custom, err := nn.Build(nn.Spec{NumInputs: in, Layers: []nn.LayerSpec{pre, {Type: nn.LayerCustom, Custom: "gg_test_mlp_relu_tanh"}}, Heads: head}, rand.New(rand.NewPCG(2, 2)))
	if err != nil {
		t.Fatal(err)
	}
	pairs := map[string]string{"pre/W": "pre/W", "pre/b": "pre/b", "dense_2/W": "custom_1/W1", "dense_2/b": "custom_1/b1",
		"dense_3/W": "custom_1/W2", "dense_3/b": "custom_1/b2", "head_out/W": "head_out/W", "head_out/b": "head_out/b"}
	if len(custom.Params()) != len(pairs) {
		t.Fatalf("custom model has %d params, want %d", len(custom.Params()), len(pairs))
	}
	for a, b := range pairs {
		copy(custom.Param(b).Value, native.Param(a).Value)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	for step, rows := range []int{32, 7, 1, 32, 7, 13} {
		if step == 3 {
			for _, p := range custom.Params() {
				p.Value = append([]float32(nil), p.Value...)
			}
		}
		b, tg := randomInputs(rng, rows, in, classes)
		ln, err := native.TrainStep(b, tg)
		if err != nil {
			t.Fatal(err)
		}
		lc, err := custom.TrainStep(b, tg)
		if err != nil {
			t.Fatal(err)
		}
		if rel := math.Abs(ln.Total-lc.Total) / ln.Total; rel > 1e-5 {
			t.Errorf("step %d (%d rows): loss native %.8g, gorgonia %.8g", step, rows, ln.Total, lc.Total)
		}
		for a, bName := range pairs {
			if rel := maxRelError(custom.Param(bName).Grad, to64(native.Param(a).Grad)); rel > 1e-4 {
				t.Errorf("step %d (%d rows): gradient of %s differs from native %s: relative error %.2g", step, rows, bName, a, rel)
			}
		}
		on, err := native.Predict(b)
		if err != nil {
			t.Fatal(err)
		}
		oc, err := custom.Predict(b)
		if err != nil {
			t.Fatal(err)
		}
		if rel := maxRelError(oc.Heads[0], to64(on.Heads[0])); rel > 1e-5 {
			t.Errorf("step %d: predictions differ from native: relative error %.2g", step, rel)
		}
		for a, bName := range pairs {
			for _, m := range []struct {
				m    *nn.Model
				name string
			}{{native, a}, {custom, bName}} {
				p := m.m.Param(m.name)
				for i := range p.Value {
					p.Value[i] -= 0.1 * p.Grad[i]
				}
			}
		}
	}
}

// TestBlockGradCheck checks the block's gradients (params and dL/dx, through the dense layer
// before it) against central finite differences with nn's GradCheck.
func TestBlockGradCheck(t *testing.T) {
	spec := nn.Spec{NumInputs: 5, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 4, Activation: "tanh"}, {Type: nn.LayerCustom, Custom: "gg_test_gated", Units: 6}},
		Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}
	rng := rand.New(rand.NewPCG(4, 4))
	m, err := nn.Build(spec, rng)
	if err != nil {
		t.Fatal(err)
	}
	b, tg := randomInputs(rng, 9, 5, 3)
	res, err := nn.GradCheck(m, b, tg, nn.GradCheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	for _, r := range res {
		checked[r.Param] = true
		if r.RelError > 1e-2 {
			t.Errorf("%s: coordinate %d analytic %.6g numeric %.6g (relative error %.3g > 1e-2)", r.Param, r.Coord, r.Analytic, r.Numeric, r.RelError)
		}
	}
	for _, want := range []string{"dense_1/W", "custom_1/Wa", "custom_1/ba", "custom_1/Wg", "custom_1/bg"} {
		if !checked[want] {
			t.Errorf("GradCheck did not check %s", want)
		}
	}
}

func TestBlockSaveLoad(t *testing.T) {
	spec := nn.Spec{NumInputs: 5, Layers: []nn.LayerSpec{{Type: nn.LayerCustom, Name: "glu", Custom: "gg_test_gated"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}
	rng := rand.New(rand.NewPCG(5, 5))
	m, err := nn.Build(spec, rng)
	if err != nil {
		t.Fatal(err)
	}
	b, tg := randomInputs(rng, 12, 5, 3)
	for range 2 {
		if _, err := m.TrainStep(b, tg); err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Params() {
			for i := range p.Value {
				p.Value[i] -= 0.5 * p.Grad[i]
			}
		}
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := nn.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.Predict(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := loaded.Predict(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.Heads[0] {
		if math.Float32bits(want.Heads[0][i]) != math.Float32bits(got.Heads[0][i]) {
			t.Fatalf("prediction %d: %v after load, want %v", i, got.Heads[0][i], want.Heads[0][i])
		}
	}

	js, err := os.ReadFile(filepath.Join(dir, nn.SpecFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, nn.SpecFile), []byte(strings.Replace(string(js), `"gg_test_gated"`, `"gated_from_elsewhere"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = nn.Load(dir)
	if err == nil || !strings.Contains(err.Error(), `custom block "gated_from_elsewhere" is not registered`) || !strings.Contains(err.Error(), "graphmodel.Register") {
		t.Errorf("Load with an unregistered block: error %v, want one naming the block and how to register it", err)
	}
}

// TestBlockDeterministic: the same seed gives bit-identical weights at build and after training
// steps (over rebuilt graphs for new batch sizes); another seed gives other weights.
func TestBlockDeterministic(t *testing.T) {
	spec := nn.Spec{NumInputs: 4, Layers: []nn.LayerSpec{{Type: nn.LayerCustom, Custom: "gg_test_mlp_relu_tanh"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 2}}}
	train := func(seed uint64) *nn.Model {
		m, err := nn.Build(spec, rand.New(rand.NewPCG(seed, 1)))
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(6, 6))
		for _, rows := range []int{8, 5, 8} {
			b, tg := randomInputs(rng, rows, 4, 2)
			if _, err := m.TrainStep(b, tg); err != nil {
				t.Fatal(err)
			}
			for _, p := range m.Params() {
				for i := range p.Value {
					p.Value[i] -= 0.1 * p.Grad[i]
				}
			}
		}
		return m
	}
	a, b, c := train(1), train(1), train(2)
	for _, p := range a.Params() {
		q := b.Param(p.Name)
		for i := range p.Value {
			if math.Float32bits(p.Value[i]) != math.Float32bits(q.Value[i]) {
				t.Fatalf("%s[%d]: %v vs %v with the same seed", p.Name, i, p.Value[i], q.Value[i])
			}
		}
	}
	if a.Param("custom_1/W1").Value[0] == c.Param("custom_1/W1").Value[0] {
		t.Error("seeds 1 and 2 gave the same custom_1/W1[0]")
	}
}

// TestBlockDirect drives a Block without nn: its output against a naive float64 evaluation,
// inputs and weights left untouched by both passes, frozen params' Grad left alone, and the
// graph cache evicting and rebuilding (MaxGraphs 2) without changing results.
func TestBlockDirect(t *testing.T) {
	const in, hidden, out = 3, 4, 2
	blk, err := New(in, mlpBlock(hidden, out, gorgonia.Tanh, func(n *gorgonia.Node) (*gorgonia.Node, error) { return n, nil }), Options{MaxGraphs: 2}, rand.New(rand.NewPCG(7, 7)))
	if err != nil {
		t.Fatal(err)
	}
	if blk.OutWidth() != out || len(blk.Params()) != 4 {
		t.Fatalf("OutWidth %d, %d params; want %d and 4", blk.OutWidth(), len(blk.Params()), out)
	}
	ps := blk.Params()
	for i, want := range []struct {
		name    string
		noDecay bool
	}{{"W1", false}, {"b1", true}, {"W2", false}, {"b2", true}} {
		if ps[i].Name != want.name || ps[i].NoDecay != want.noDecay {
			t.Errorf("param %d: %s NoDecay=%v, want %s NoDecay=%v", i, ps[i].Name, ps[i].NoDecay, want.name, want.noDecay)
		}
	}
	naive := func(x []float32, rows int) []float64 {
		w1, b1, w2, b2 := ps[0].Value, ps[1].Value, ps[2].Value, ps[3].Value
		y := make([]float64, rows*out)
		for r := 0; r < rows; r++ {
			h := make([]float64, hidden)
			for j := range h {
				s := float64(b1[j])
				for i := 0; i < in; i++ {
					s += float64(x[r*in+i]) * float64(w1[i*hidden+j])
				}
				h[j] = math.Tanh(s)
			}
			for k := 0; k < out; k++ {
				s := float64(b2[k])
				for j := range h {
					s += h[j] * float64(w2[j*out+k])
				}
				y[r*out+k] = s
			}
		}
		return y
	}
	rng := rand.New(rand.NewPCG(8, 8))
	ps[0].Frozen = true
	for i := range ps[0].Grad {
		ps[0].Grad[i] = 42
	}
	first := map[int][]float32{}
	for _, rows := range []int{3, 4, 5, 3, 4} {
		x := make([]float32, rows*in)
		if first[rows] != nil {
			x = first[rows]
		} else {
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			first[rows] = x
		}
		xCopy := append([]float32(nil), x...)
		var before [][]float32
		for _, p := range ps {
			before = append(before, append([]float32(nil), p.Value...))
		}
		y, err := blk.Forward(x, rows, true)
		if err != nil {
			t.Fatal(err)
		}
		if rel := maxRelError(y, naive(x, rows)); rel > 1e-5 {
			t.Errorf("%d rows: output differs from the naive evaluation by %.2g", rows, rel)
		}
		dy := make([]float32, rows*out)
		for i := range dy {
			dy[i] = float32(rng.NormFloat64())
		}
		dx, err := blk.Backward(dy, rows, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(dx) != rows*in {
			t.Fatalf("%d rows: dx has %d values, want %d", rows, len(dx), rows*in)
		}
		for i := range x {
			if x[i] != xCopy[i] {
				t.Fatalf("%d rows: the block modified its input", rows)
			}
		}
		for pi, p := range ps {
			for i := range p.Value {
				if p.Value[i] != before[pi][i] {
					t.Fatalf("%d rows: the block modified %s", rows, p.Name)
				}
			}
		}
		for _, g := range ps[0].Grad {
			if g != 42 {
				t.Fatalf("%d rows: frozen W1's Grad was written", rows)
			}
		}
	}
	if len(blk.graphs) != 2 {
		t.Errorf("%d graphs cached, want MaxGraphs = 2", len(blk.graphs))
	}
	if _, err := blk.Backward(make([]float32, 6*out), 6, false); err == nil {
		t.Error("Backward for a batch size other than the last Forward's succeeded")
	}
}

func TestBlockErrors(t *testing.T) {
	named := func(name string) gorgonia.NodeConsOpt { return gorgonia.WithName(name) }
	build := []struct {
		name  string
		build BuildFunc
		want  string
	}{
		{"builder_error", func(*gorgonia.ExprGraph, *gorgonia.Node, *rand.Rand) (*gorgonia.Node, error) {
			return nil, errors.New("bad hyper-parameter")
		}, "bad hyper-parameter"},
		{"unnamed_learnable", func(g *gorgonia.ExprGraph, x *gorgonia.Node, rng *rand.Rand) (*gorgonia.Node, error) {
			w := gorgonia.NewMatrix(g, gorgonia.Float32, gorgonia.WithShape(3, 2), gorgonia.WithInit(GlorotUniform(rng)))
			return gorgonia.Mul(x, w)
		}, "has no name"},
		{"no_initial_value", func(g *gorgonia.ExprGraph, x *gorgonia.Node, _ *rand.Rand) (*gorgonia.Node, error) {
			w := gorgonia.NewMatrix(g, gorgonia.Float32, gorgonia.WithShape(3, 2), named("W"))
			return gorgonia.Mul(x, w)
		}, "no initial value"},
		{"dropout", func(g *gorgonia.ExprGraph, x *gorgonia.Node, rng *rand.Rand) (*gorgonia.Node, error) {
			y, err := denseNode(g, x, 2, "1", rng)
			if err != nil {
				return nil, err
			}
			return gorgonia.Dropout(y, 0.5)
		}, "random or has a train/eval mode"},
		{"vector_output", func(g *gorgonia.ExprGraph, x *gorgonia.Node, _ *rand.Rand) (*gorgonia.Node, error) {
			return gorgonia.Sum(x, 1)
		}, "want (2, k)"},
		{"unused_learnable", func(g *gorgonia.ExprGraph, x *gorgonia.Node, rng *rand.Rand) (*gorgonia.Node, error) {
			gorgonia.NewVector(g, gorgonia.Float32, gorgonia.WithShape(2), named("unused"), gorgonia.WithInit(Normal(rng, 1)))
			return gorgonia.Tanh(x)
		}, "differentiate"},
	}
	for _, tc := range build {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(3, tc.build, Options{}, rand.New(rand.NewPCG(1, 1)))
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	// Errors at training time, for a batch size first seen after Build, reach TrainStep.
	runtime := []struct{ block, want string }{
		{"gg_test_changes_with_rows", "same learnables"},
		{"gg_test_panics_on_5_rows", "panicked"},
	}
	for _, tc := range runtime {
		t.Run(tc.block, func(t *testing.T) {
			m, err := nn.Build(nn.Spec{NumInputs: 3, Layers: []nn.LayerSpec{{Type: nn.LayerCustom, Custom: tc.block}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}},
				rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			b, tg := randomInputs(rand.New(rand.NewPCG(2, 2)), 5, 3, 3)
			_, err = m.TrainStep(b, tg)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.block) {
				t.Errorf("TrainStep error = %v, want one naming the block and containing %q", err, tc.want)
			}
		})
	}
}
