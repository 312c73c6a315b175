package search

import (
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
)

// draws samples n points of the region with one seeded generator.
func draws(s *Space, r Region, n int, seed uint64) []Params {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]Params, n)
	for i := range out {
		out[i] = s.Sample(r, rng)
	}
	return out
}

func floats(ps []Params, name string) []float64 {
	var out []float64
	for _, p := range ps {
		if v, ok := p[name]; ok {
			x, _ := number(v)
			out = append(out, x)
		}
	}
	sort.Float64s(out)
	return out
}

func TestSampleContinuousScales(t *testing.T) {
	s := mustSpace(t, `
u = { uniform = [-2.0, 6.0] }
l = { log_uniform = [1e-5, 1e-1] }
`, nil)
	ps := draws(s, s.Region(), 40000, 1)
	for _, p := range ps {
		if _, ok := p["u"].(float64); !ok {
			t.Fatalf("u = %T, want float64", p["u"])
		}
	}
	u, l := floats(ps, "u"), floats(ps, "l")
	if u[0] < -2 || u[len(u)-1] > 6 || l[0] < 1e-5 || l[len(l)-1] > 1e-1 {
		t.Fatalf("out of bounds: u in [%g, %g], l in [%g, %g]", u[0], u[len(u)-1], l[0], l[len(l)-1])
	}
	// Empirical quantiles: linear for uniform, linear in log10 for log_uniform.
	for _, q := range []float64{0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99} {
		gu := u[int(q*float64(len(u)))]
		if want := -2 + q*8; math.Abs(gu-want) > 0.02*8 {
			t.Errorf("uniform quantile %g = %.4f, want %.4f ± %.2f", q, gu, want, 0.02*8)
		}
		gl := math.Log10(l[int(q*float64(len(l)))])
		if want := -5 + q*4; math.Abs(gl-want) > 0.02*4 {
			t.Errorf("log_uniform quantile %g: log10 = %.4f, want %.4f ± %.2f", q, gl, want, 0.02*4)
		}
	}
	// Bounds are approached: the extremes sit within 0.1% of the range's ends.
	if u[0] > -2+0.001*8 || u[len(u)-1] < 6-0.001*8 {
		t.Errorf("uniform extremes %g, %g: the ends of [-2, 6] are never reached", u[0], u[len(u)-1])
	}
}

// counts returns the frequency of each integer drawn for name.
func counts(t *testing.T, ps []Params, name string) map[int64]float64 {
	t.Helper()
	c := map[int64]float64{}
	for _, p := range ps {
		k, ok := p[name].(int64)
		if !ok {
			t.Fatalf("%s = %T, want int64", name, p[name])
		}
		c[k] += 1 / float64(len(ps))
	}
	return c
}

func TestSampleIntFairShare(t *testing.T) {
	s := mustSpace(t, `
i = { int = [-1, 4] }
k = { log_int = [1, 100] }
`, nil)
	ps := draws(s, s.Region(), 120000, 2)
	ci := counts(t, ps, "i")
	if len(ci) != 6 {
		t.Errorf("int [-1, 4] drew %d distinct values, want 6: %v", len(ci), ci)
	}
	for k := int64(-1); k <= 4; k++ {
		if math.Abs(ci[k]-1.0/6) > 0.006 {
			t.Errorf("int: P(%d) = %.4f, want 1/6 ± 0.006 (the end values get a full share)", k, ci[k])
		}
	}
	ck := counts(t, ps, "k")
	total := 0.0
	for k, f := range ck {
		if k < 1 || k > 100 {
			t.Errorf("log_int drew %d outside [1, 100]", k)
		}
		total += f
	}
	// log_int: integer k has the share of [k−½, k+½] on the log axis over [½, 100½].
	norm := math.Log(100.5 / 0.5)
	for _, k := range []int64{1, 2, 3, 5, 10, 30, 100} {
		want := math.Log((float64(k)+0.5)/(float64(k)-0.5)) / norm
		if math.Abs(ck[k]-want) > 4*math.Sqrt(want*(1-want)/float64(len(ps)))+1e-4 {
			t.Errorf("log_int: P(%d) = %.5f, want %.5f", k, ck[k], want)
		}
	}
}

func TestSampleZoomedIntRange(t *testing.T) {
	s := mustSpace(t, `i = { int = [0, 20] }`, nil)
	// A zoomed range with fractional ends: x in [2.1, 7.9) rounds to 2 … 8; 2 and 8 get
	// 0.4/5.8 of the draws each, 3 … 7 1/5.8.
	r := Region{Ranges: map[string]Range{"i": {Dist: Int, Lo: 2.6, Hi: 7.4}}}
	c := counts(t, draws(s, r, 100000, 3), "i")
	for k := int64(2); k <= 8; k++ {
		want := 1 / 5.8
		if k == 2 || k == 8 {
			want = 0.4 / 5.8
		}
		if math.Abs(c[k]-want) > 0.006 {
			t.Errorf("P(%d) = %.4f, want %.4f", k, c[k], want)
		}
		if !r.Ranges["i"].Contains(float64(k)) {
			t.Errorf("the range does not contain %d, which it draws", k)
		}
	}
	if len(c) != 7 {
		t.Errorf("drew %v, want only 2 … 8", c)
	}
	if r.Ranges["i"].Contains(1) || r.Ranges["i"].Contains(9) {
		t.Error("the range contains 1 or 9, which it never draws")
	}
}

func TestSampleChoiceWeights(t *testing.T) {
	s := mustSpace(t, `act = { choice = ["relu", "tanh", "gelu"] }`, nil)
	full := draws(s, s.Region(), 60000, 4)
	w := []float64{0.7, 0.2, 0.1}
	zoomed := draws(s, Region{Weights: map[string][]float64{"act": w}}, 60000, 5)
	for i, v := range []string{"relu", "tanh", "gelu"} {
		f, z := 0.0, 0.0
		for k := range full {
			if full[k]["act"] == v {
				f++
			}
			if zoomed[k]["act"] == v {
				z++
			}
		}
		f, z = f/float64(len(full)), z/float64(len(zoomed))
		if math.Abs(f-1.0/3) > 0.01 || math.Abs(z-w[i]) > 0.01 {
			t.Errorf("P(%s) = %.3f (full) and %.3f (weights %v), want 1/3 and %.1f", v, f, z, w, w[i])
		}
	}
}

func TestSampleConditionals(t *testing.T) {
	s := mustSpace(t, `
"optimizer.name" = { choice = ["adam", "sgd"] }
"optimizer.nesterov" = { choice = [true, false], when = { "optimizer.name" = "sgd" } }
"optimizer.momentum" = { uniform = [0.8, 0.99], when = { "optimizer.name" = "sgd", "optimizer.nesterov" = false } }
"l2" = { log_uniform = [1e-6, 1e-2], when = { "model.kind" = "mlp" } }
`, map[string]any{"model": map[string]any{"kind": "mlp"}})
	seen := map[[3]bool]int{}
	for _, p := range draws(s, s.Region(), 4000, 6) {
		_, hasN := p["optimizer.nesterov"]
		_, hasM := p["optimizer.momentum"]
		sgd := p["optimizer.name"] == "sgd"
		if hasN != sgd {
			t.Fatalf("%v: nesterov present = %v with optimizer %v", p, hasN, p["optimizer.name"])
		}
		if wantM := sgd && p["optimizer.nesterov"] == false; hasM != wantM {
			t.Fatalf("%v: momentum present = %v, want %v (nested condition)", p, hasM, wantM)
		}
		if _, ok := p["l2"]; !ok {
			t.Fatalf("%v: l2 is absent, but its fixed condition holds", p)
		}
		seen[[3]bool{sgd, hasN, hasM}]++
	}
	// adam; sgd with nesterov; sgd without nesterov (with momentum): each about 1/2, 1/4, 1/4.
	for k, want := range map[[3]bool]float64{{false, false, false}: 0.5, {true, true, false}: 0.25, {true, true, true}: 0.25} {
		if got := float64(seen[k]) / 4000; math.Abs(got-want) > 0.04 {
			t.Errorf("case %v: %.3f of the draws, want %.2f", k, got, want)
		}
	}
}

func TestSampleDeterministicAndCopies(t *testing.T) {
	s := mustSpace(t, `
lr = { log_uniform = [1e-4, 1e-1] }
layers = { choice = [ [ { dense = 64 } ], [ { dense = 128 }, { dense = 64 } ] ] }
`, nil)
	a, b := draws(s, s.Region(), 50, 9), draws(s, s.Region(), 50, 9)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed drew different params")
	}
	if c := draws(s, s.Region(), 50, 10); reflect.DeepEqual(a, c) {
		t.Fatal("another seed drew the same params")
	}
	// A sampled table is a copy: changing it leaves the space's choices alone.
	layers := a[0]["layers"].([]any)
	layers[0].(map[string]any)["dense"] = int64(-1)
	p, _ := s.Param("layers")
	for _, c := range p.Choices {
		if c.([]any)[0].(map[string]any)["dense"] == int64(-1) {
			t.Fatal("changing a sampled value changed the space's choice")
		}
	}
}

func TestSampleDrawsDoNotDependOnPresence(t *testing.T) {
	// A parameter's draw takes the same position in the random stream whether or not an
	// earlier parameter exists, so lr's draws are the same in both spaces.
	with := mustSpace(t, `
a = { choice = ["x", "y"] }
b = { uniform = [0, 1], when = { a = "y" } }
lr = { log_uniform = [1e-4, 1e-1] }
`, nil)
	without := mustSpace(t, `
a = { choice = ["x", "y"] }
b = { uniform = [0, 1] }
lr = { log_uniform = [1e-4, 1e-1] }
`, nil)
	pa, pb := draws(with, with.Region(), 200, 11), draws(without, without.Region(), 200, 11)
	absent := 0
	for i := range pa {
		if pa[i]["lr"] != pb[i]["lr"] {
			t.Fatalf("draw %d: lr = %v with a conditional b, %v without", i, pa[i]["lr"], pb[i]["lr"])
		}
		if _, ok := pa[i]["b"]; !ok {
			absent++
		}
	}
	if absent == 0 {
		t.Fatal("b was never absent: the test checks nothing")
	}
}

func TestParamsString(t *testing.T) {
	p := Params{"optimizer.lr": 0.003, "layers": []any{map[string]any{"dense": int64(64)}}, "act": "relu", "epochs": int64(3), "w": 2.0}
	want := `act = "relu", epochs = 3, layers = [{ dense = 64 }], "optimizer.lr" = 0.003, w = 2.0`
	if got := p.String(); got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}
