package search

import (
	"context"
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

func TestZoomRanges(t *testing.T) {
	s := mustSpace(t, `
u = { uniform = [0.0, 10.0] }
l = { log_uniform = [1e-4, 1.0] }
i = { int = [1, 10] }
c = { choice = ["a", "b", "c"] }
cond = { uniform = [0.0, 1.0], when = { c = "c" } }
condc = { choice = [1, 2], when = { c = "c" } }
`, nil)
	full := s.Region()
	top := []Params{
		{"u": 4.0, "l": 1e-3, "i": int64(3), "c": "a"},
		{"u": 5.0, "l": 1e-2, "i": int64(3), "c": "a"},
		{"u": 4.5, "l": 5e-3, "i": int64(3), "c": "b"},
	}
	z := s.Zoom(full, top, ZoomConfig{})
	// u: span [4, 5] widened by 0.1 × 10 on each side.
	if r := z.Ranges["u"]; !near(r.Lo, 3, 1e-12) || !near(r.Hi, 6, 1e-12) {
		t.Errorf("u = [%g, %g], want [3, 6]", r.Lo, r.Hi)
	}
	// l: on the log axis, span [ln 1e-3, ln 1e-2] widened by 0.1 × ln(1e4) on each side.
	m := 0.1 * math.Log(1e4)
	if r := z.Ranges["l"]; !near(r.Lo, 1e-3*math.Exp(-m), 1e-9) || !near(r.Hi, 1e-2*math.Exp(m), 1e-9) {
		t.Errorf("l = [%g, %g], want [%g, %g]", r.Lo, r.Hi, 1e-3*math.Exp(-m), 1e-2*math.Exp(m))
	}
	// i: 3 spans [2.5, 3.5] on the axis, widened by 0.1 × 10 (the axis of [1, 10] is [0.5,
	// 10.5]): [1.5, 4.5], that is integers' range [2, 4].
	if r := z.Ranges["i"]; !near(r.Lo, 2, 1e-12) || !near(r.Hi, 4, 1e-12) {
		t.Errorf("i = [%g, %g], want [2, 4]", r.Lo, r.Hi)
	}
	// c: counts (2, 1, 0) → weights (3, 2, 1)/6.
	if w := z.Weights["c"]; !near(w[0], 3.0/6, 1e-12) || !near(w[1], 2.0/6, 1e-12) || !near(w[2], 1.0/6, 1e-12) {
		t.Errorf("c weights = %v, want [1/2 1/3 1/6]", w)
	}
	// Parameters that no top trial has: the range stays, the choice goes back to equal weights.
	if z.Ranges["cond"] != full.Ranges["cond"] {
		t.Errorf("cond = %+v, want the previous %+v", z.Ranges["cond"], full.Ranges["cond"])
	}
	if w := z.Weights["condc"]; !near(w[0], 0.5, 1e-12) || !near(w[1], 0.5, 1e-12) {
		t.Errorf("condc weights = %v, want equal", w)
	}

	// A second zoom clips to the previous range: top trials at its edge.
	z2 := s.Zoom(z, []Params{{"u": 3.0}, {"u": 3.2}}, ZoomConfig{})
	if r := z2.Ranges["u"]; !near(r.Lo, 3, 1e-12) || !near(r.Hi, 3.2+0.1*3, 1e-12) {
		t.Errorf("second zoom u = [%g, %g], want [3, 3.5] (margin 0.1 × the previous width 3, clipped at 3)", r.Lo, r.Hi)
	}
}

func TestZoomMinWidth(t *testing.T) {
	s := mustSpace(t, `u = { uniform = [0.0, 10.0] }`, nil)
	full := s.Region()
	cases := []struct {
		name   string
		prev   Region
		top    []float64
		lo, hi float64
	}{
		// Margin 0 and one value: width 0, made 0.05 × 10 wide around it.
		{"centred", full, []float64{5, 5}, 4.75, 5.25},
		// At the edge: shifted inside the previous range.
		{"edge", full, []float64{0, 0}, 0, 0.5},
		{"upper edge", Region{Ranges: map[string]Range{"u": {Dist: Uniform, Lo: 2, Hi: 8}}}, []float64{8, 8}, 7.5, 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var top []Params
			for _, v := range c.top {
				top = append(top, Params{"u": v})
			}
			r := s.Zoom(c.prev, top, ZoomConfig{Margin: 1e-300}).Ranges["u"]
			if !near(r.Lo, c.lo, 1e-9) || !near(r.Hi, c.hi, 1e-9) {
				t.Errorf("u = [%g, %g], want [%g, %g]", r.Lo, r.Hi, c.lo, c.hi)
			}
		})
	}
}

func TestZoomTopCount(t *testing.T) {
	for _, c := range []struct {
		q       float64
		n, want int
	}{
		{0.25, 20, 5}, {0.25, 21, 6}, {0.25, 4, 2}, {0.25, 1, 1}, {0, 40, 10}, {1, 7, 7}, {0.1, 10, 2},
	} {
		if got := (ZoomConfig{Top: c.q}).TopCount(c.n); got != c.want {
			t.Errorf("TopCount(q=%g, n=%d) = %d, want %d", c.q, c.n, got, c.want)
		}
	}
}

// synthetic is an objective to minimise with a known optimum: a shifted quadratic in
// log10(lr), one in a dropout rate, one in an integer width, and a penalty for every
// activation but tanh. Its minimum, 0, is at lr = 3e-3, dropout = 0.12, units = 37, tanh.
const syntheticSpace = `
lr = { log_uniform = [1e-5, 1.0] }
dropout = { uniform = [0.0, 0.5] }
units = { log_int = [4, 512] }
act = { choice = ["relu", "tanh", "gelu", "elu"] }
`

var actPenalty = 2.0

var syntheticOptimum = Params{"lr": 3e-3, "dropout": 0.12, "units": int64(37), "act": "tanh"}

func synthetic(p Params) float64 {
	lr := math.Log10(p["lr"].(float64)) - math.Log10(3e-3)
	d := (p["dropout"].(float64) - 0.12) / 0.5 * 5
	u := math.Log2(float64(p["units"].(int64))) - math.Log2(37)
	f := lr*lr + d*d + 0.5*u*u
	if p["act"] != "tanh" {
		f += actPenalty
	}
	return f
}

func syntheticObjective(_ context.Context, t Trial, _ Report) (Result, error) {
	return Result{Value: synthetic(t.Params)}, nil
}

func TestZoomFindsOptimum(t *testing.T) {
	s := mustSpace(t, syntheticSpace, nil)
	const trials, seeds = 60, 30
	var zoomSum, randomSum, lrWidth, tanhWeight float64
	zoomWins := 0
	for seed := uint64(1); seed <= seeds; seed++ {
		run := func(rounds int) Outcome {
			out, err := Run(context.Background(), Config{Space: s, Trials: trials, Rounds: rounds, Seed: seed, Prune: PruneConfig{Method: PruneNone}, Workers: 4}, syntheticObjective)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		zoomed, random := run(3), run(1)
		bz, _ := zoomed.BestTrial()
		br, _ := random.BestTrial()
		zoomSum += bz.Value
		randomSum += br.Value
		if bz.Value < br.Value {
			zoomWins++
		}
		if len(zoomed.Regions) != 3 {
			t.Fatalf("seed %d: %d regions, want one per round", seed, len(zoomed.Regions))
		}
		for r, region := range zoomed.Regions {
			for name, v := range syntheticOptimum {
				if !s.Contains(region, name, v) {
					t.Errorf("seed %d: round %d's region %+v does not contain the optimum's %s = %v", seed, r, region.Ranges[name], name, v)
				}
			}
		}
		last := zoomed.Regions[2]
		lrWidth += math.Log(last.Ranges["lr"].Hi/last.Ranges["lr"].Lo) / math.Log(1e5) / seeds
		tanhWeight += last.Weights["act"][1] / seeds
	}
	zoomMean, randomMean := zoomSum/seeds, randomSum/seeds
	t.Logf("over %d seeds, %d trials: mean best objective: zoom (3 rounds) %.4f, random %.4f; zoom better in %d seeds; last round: lr's range %.2f of the full log width, P(tanh) %.3f",
		seeds, trials, zoomMean, randomMean, zoomWins, lrWidth, tanhWeight)
	if zoomMean > 0.6*randomMean {
		t.Errorf("zoomed search's mean best %.4f is not under 0.6 × random search's %.4f", zoomMean, randomMean)
	}
	if zoomWins < seeds*3/4 {
		t.Errorf("zoomed search beat random search in %d of %d seeds, want at least %d", zoomWins, seeds, seeds*3/4)
	}
	if lrWidth > 0.75 {
		t.Errorf("the last round's lr range spans %.2f of the full log width on average: zoom did not narrow it", lrWidth)
	}
	// Equal weights would be 1/4; tanh, the best activation, gains weight.
	if tanhWeight < 0.32 {
		t.Errorf("the last round's P(tanh) is %.3f on average, want ≥ 0.32 (1/4 is no preference)", tanhWeight)
	}
}
