package search

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
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

// TestZoomTrialsLeavesOutPruned checks which trials define the next region: the best of the
// completed ones by value, however far the pruned ones got; and, while fewer than 2
// completed, the ranking of every trial that did not fail (pruned ones by epochs reached).
func TestZoomTrialsLeavesOutPruned(t *testing.T) {
	s := mustSpace(t, `u = { uniform = [0.0, 10.0] }`, nil)
	trial := func(i int, st Status, epochs int, value, u float64) TrialResult {
		return TrialResult{Trial: Trial{Index: i, Params: Params{"u": u}}, Status: st, Epochs: epochs, Value: value}
	}
	// Pruned trials far from the completed ones, with better partial values and more
	// epochs than some completed ones: they must not widen the region.
	results := []TrialResult{
		trial(0, Pruned, 30, 0.10, 0.5),
		trial(1, Completed, 12, 0.40, 4.0),
		trial(2, Pruned, 30, 0.20, 9.5),
		trial(3, Completed, 90, 0.30, 5.0),
		trial(4, Failed, 3, math.NaN(), 2.0),
		trial(5, Completed, 90, math.NaN(), 8.0), // diverged: no value
		trial(6, Pruned, 10, 0.50, 1.0),
		trial(7, Pruned, 10, 0.60, 6.0),
		trial(8, Pruned, 3, 0.05, 7.0),
		trial(9, Pruned, 3, 0.70, 3.0),
	}
	for _, c := range []struct {
		name    string
		results []TrialResult
		top     float64
		want    []int // positions in results, best first
		lo, hi  float64
	}{
		// 2 completed with a value: the best max(2, ⌈0.25·2⌉) = 2 of them, trials 3 and 1.
		// (Ranking all 9 trials that did not fail would take 3, with pruned trial 0.)
		{"completed only", results, 0, []int{3, 1}, 3, 6},
		// q = 1: still only the completed trials with a value.
		{"top 1", results, 1, []int{3, 1}, 3, 6},
		// One completed with a value (trial 1 left out): the ranking of the 8 trials that
		// did not fail, of which the best 2: completed trial 3, then the pruned ones by
		// epochs reached (0 and 2 at 30, by value: 0).
		{"fallback", append(results[:1:1], results[2:]...), 0, []int{2, 0}, 0, 6},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Config{Space: s, Trials: 10, Rounds: 2, Zoom: ZoomConfig{Top: c.top}}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.zoomTrials(c.results); !reflect.DeepEqual(got, c.want) {
				t.Errorf("zoom trials = %v, want %v", got, c.want)
			}
			r := cfg.zoomAfter(s.Region(), c.results).Ranges["u"]
			if !near(r.Lo, c.lo, 1e-12) || !near(r.Hi, c.hi, 1e-12) {
				t.Errorf("u = [%g, %g], want [%g, %g] (the span of the zoom trials widened by 1)", r.Lo, r.Hi, c.lo, c.hi)
			}
		})
	}
}

// prunedSynthetic is an objective whose reports are the synthetic objective plus a learning
// curve and noise that shrinks with the epoch, from the trial's seed: partial values rank
// trials poorly, as on a real objective whose val loss is noisy early, so that ASHA prunes
// most trials on little evidence. Its Value is the synthetic objective plus small noise.
func prunedSynthetic(epochs int) Objective {
	return func(ctx context.Context, t Trial, report Report) (Result, error) {
		rng := rand.New(rand.NewPCG(t.Seed, 7))
		f := synthetic(t.Params)
		for e := 1; e <= epochs; e++ {
			v := f + 3/float64(e) + 4*rng.NormFloat64()/float64(e)
			cont, err := report(e, v)
			if err != nil {
				return Result{}, err
			}
			if !cont {
				return Result{Value: v}, nil
			}
		}
		return Result{Value: f + 0.05*rng.NormFloat64()}, nil
	}
}

// TestZoomWithPruning is the synthetic objective of TestZoomFindsOptimum searched with ASHA
// on noisy learning curves: most trials are pruned, and the next region must still narrow
// around the completed trials' optimum. With pruned trials in the top set (the rule before
// this test) the last round's lr range spanned 0.66 of the full log width on average and the
// best trial's true objective averaged 0.81; with completed trials only, 0.21 and 0.54.
func TestZoomWithPruning(t *testing.T) {
	s := mustSpace(t, syntheticSpace, nil)
	const trials, seeds, epochs = 60, 30, 8
	var lrWidth, bestTrue, prunedShare float64
	for seed := uint64(1); seed <= seeds; seed++ {
		out, err := Run(context.Background(), Config{Space: s, Trials: trials, Rounds: 3, Seed: seed,
			Prune: PruneConfig{Method: PruneASHA, MinEpochs: 1, Reduction: 3}, Workers: 4}, prunedSynthetic(epochs))
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range out.Trials {
			if tr.Status == Pruned {
				prunedShare += 1.0 / trials / seeds
			}
		}
		best, _ := out.BestTrial()
		bestTrue += synthetic(best.Params) / seeds
		last := out.Regions[2]
		lrWidth += math.Log(last.Ranges["lr"].Hi/last.Ranges["lr"].Lo) / math.Log(1e5) / seeds
	}
	t.Logf("over %d seeds: %.2f of the trials pruned; last round's lr range %.2f of the full log width; best trial's true objective %.4f",
		seeds, prunedShare, lrWidth, bestTrue)
	if prunedShare < 0.6 {
		t.Fatalf("only %.2f of the trials were pruned: the test does not exercise pruning", prunedShare)
	}
	if lrWidth > 0.5 {
		t.Errorf("the last round's lr range spans %.2f of the full log width on average, want ≤ 0.5: pruned trials widened the region", lrWidth)
	}
	if bestTrue > 0.7 {
		t.Errorf("the best trial's true objective is %.4f on average, want ≤ 0.7", bestTrue)
	}
}
