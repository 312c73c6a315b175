package search

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"
)

// completed returns finished trials with the given params and values, indices from 0.
func completed(params []Params, values []float64) []TrialResult {
	out := make([]TrialResult, len(params))
	for i := range params {
		out[i] = TrialResult{Trial: Trial{Index: i, Params: params[i]}, Status: Completed, Value: values[i]}
	}
	return out
}

// parzenCases are estimators of every distribution, fitted on a few trials (and on none).
func parzenCases(t *testing.T) map[string]*parzen {
	s := mustSpace(t, `
u = { uniform = [-2.0, 6.0] }
lu = { log_uniform = [1e-4, 1.0] }
i = { int = [1, 9] }
li = { log_int = [2, 300] }
c = { choice = ["a", "b", "c", "d"] }
`, nil)
	params := []Params{
		{"u": 5.9, "lu": 3e-3, "i": int64(1), "li": int64(2), "c": "b"},
		{"u": 0.5, "lu": 2e-3, "i": int64(4), "li": int64(17), "c": "b"},
		{"u": 0.7, "lu": 0.5, "i": int64(4), "li": int64(300), "c": "d"},
		{"u": -2.0, "lu": 1e-4, "i": int64(9), "li": int64(40), "c": "a"},
	}
	res := completed(params, []float64{1, 2, 3, 4})
	out := map[string]*parzen{}
	for _, p := range s.params {
		out[p.Name] = newParzen(p, res, []int{0, 1, 2, 3}, 1)
		out[p.Name+" (no trials)"] = newParzen(p, res, nil, 1)
	}
	return out
}

// TestParzenIsADensity checks that every estimator is a probability distribution over the
// parameter's values: a numeric density integrates to 1 over its axis interval, integer cells'
// masses and choices' probabilities sum to 1.
func TestParzenIsADensity(t *testing.T) {
	for name, z := range parzenCases(t) {
		total := 0.0
		switch {
		case z.p.Dist == Choice:
			for c := range z.p.Choices {
				total += math.Exp(z.logPDF(float64(c)))
			}
		case z.p.Dist.integer():
			for k := z.p.Lo; k <= z.p.Hi; k++ {
				a, b := valueAxis(z.p.Dist, k)
				total += math.Exp(z.logPDF((a + b) / 2))
			}
		default: // Simpson's rule
			const n = 20000
			h := (z.b - z.a) / n
			for k := 0; k <= n; k++ {
				w := 2.0
				switch {
				case k == 0 || k == n:
					w = 1
				case k%2 == 1:
					w = 4
				}
				total += w * math.Exp(z.logPDF(z.a+float64(k)*h))
			}
			total *= h / 3
		}
		if math.Abs(total-1) > 1e-6 {
			t.Errorf("%s: the distribution sums to %.9f, want 1", name, total)
		}
	}
}

// TestParzenDrawsFollowDensity checks that draw samples the distribution logPDF describes:
// the share of 100,000 draws in each of 16 cells of the axis (each integer, each choice) is
// within 0.006 of the cell's probability.
func TestParzenDrawsFollowDensity(t *testing.T) {
	const n = 100000
	for name, z := range parzenCases(t) {
		rng := rand.New(rand.NewPCG(3, 4))
		var want []float64
		var cell func(x float64) int
		switch {
		case z.p.Dist == Choice:
			for c := range z.p.Choices {
				want = append(want, math.Exp(z.logPDF(float64(c))))
			}
			cell = func(x float64) int { return int(x) }
		case z.p.Dist.integer():
			for k := z.p.Lo; k <= z.p.Hi; k++ {
				a, b := valueAxis(z.p.Dist, k)
				want = append(want, math.Exp(z.logPDF((a+b)/2)))
			}
			cell = func(x float64) int {
				v, _ := number(z.value(x))
				return int(v - z.p.Lo)
			}
		default:
			const cells = 16
			h := (z.b - z.a) / cells
			for c := range cells {
				p := 0.0
				for k := range 200 { // midpoint rule inside the cell
					p += math.Exp(z.logPDF(z.a+(float64(c)+(float64(k)+0.5)/200)*h)) * h / 200
				}
				want = append(want, p)
			}
			cell = func(x float64) int { return min(int((x-z.a)/h), cells-1) }
		}
		got := make([]float64, len(want))
		for range n {
			x := z.draw(rng)
			if z.p.Dist != Choice && (x < z.a || x > z.b) {
				t.Fatalf("%s: draw %g outside the axis interval [%g, %g]", name, x, z.a, z.b)
			}
			got[cell(x)] += 1.0 / n
		}
		for c := range want {
			if math.Abs(got[c]-want[c]) > 0.006 {
				t.Errorf("%s: cell %d drew %.4f of the draws, its probability is %.4f", name, c, got[c], want[c])
			}
		}
	}
}

// TestParzenBandwidths checks the kernels' centres and widths on a hand-made case, worked out
// from the rule in parzen's doc. Range [0, 10], trials at 1, 2, 2.5, 4 and 9: the prior's
// centre 5 joins them, so the sorted centres are 1, 2, 2.5, 4, 5, 9 with the ends 0 and 10.
// Each width is the larger gap to a neighbour: 1 → 1 (its inner gap only), 2 → max(1, 0.5) =
// 1, 2.5 → max(0.5, 1.5) = 1.5, 4 → max(1.5, 1) = 1.5, 9 → 4 (its inner gap only). The
// smallest width allowed is 10/min(100, 1+6) = 1.43, so 1 and 1 become 1.43; the prior's is 10.
func TestParzenBandwidths(t *testing.T) {
	s := mustSpace(t, `x = { uniform = [0.0, 10.0] }`, nil)
	var params []Params
	for _, x := range []float64{4, 1, 9, 2.5, 2} {
		params = append(params, Params{"x": x})
	}
	res := completed(params, []float64{0, 0, 0, 0, 0})
	z := newParzen(s.params[0], res, []int{0, 1, 2, 3, 4}, 1)
	minSig := 10.0 / 7
	wantMu := []float64{4, 1, 9, 2.5, 2, 5}
	wantSd := []float64{1.5, minSig, 4, 1.5, minSig, 10}
	for i := range wantMu {
		if math.Abs(z.mu[i]-wantMu[i]) > 1e-12 || math.Abs(z.sd[i]-wantSd[i]) > 1e-12 {
			t.Errorf("kernel %d: centre %g, width %g; want %g, %g", i, z.mu[i], z.sd[i], wantMu[i], wantSd[i])
		}
		if math.Abs(z.w[i]-1.0/6) > 1e-12 {
			t.Errorf("kernel %d: weight %g, want 1/6 (5 trials and the prior, each weight 1)", i, z.w[i])
		}
	}
}

// TestTPEWeightsAndGoodShare checks the good set's size, ⌈n/10⌉ up to 25, and the trials'
// weights: all 1 below 25 trials; from 25 on, the 25 newest weigh 1 and the older ones rise
// from 1/n, in index order.
func TestTPEWeightsAndGoodShare(t *testing.T) {
	for n, want := range map[int]int{1: 1, 10: 1, 11: 2, 20: 2, 21: 3, 240: 24, 241: 25, 1000: 25} {
		if got := tpeGood(n); got != want {
			t.Errorf("tpeGood(%d) = %d, want %d", n, got, want)
		}
	}
	for _, n := range []int{0, 1, 24} {
		for i, w := range tpeWeights(n) {
			if w != 1 {
				t.Errorf("tpeWeights(%d)[%d] = %g, want 1", n, i, w)
			}
		}
	}
	for _, n := range []int{25, 26, 27, 60} {
		w := tpeWeights(n)
		if len(w) != n {
			t.Fatalf("tpeWeights(%d) has %d weights", n, len(w))
		}
		for i := n - 25; i < n; i++ {
			if w[i] != 1 {
				t.Errorf("tpeWeights(%d)[%d] = %g: the 25 newest weigh 1", n, i, w[i])
			}
		}
		if n > 25 && math.Abs(w[0]-1/float64(n)) > 1e-12 {
			t.Errorf("tpeWeights(%d)[0] = %g, want 1/%d", n, w[0], n)
		}
		for i := 1; i < n; i++ {
			if w[i] < w[i-1] {
				t.Errorf("tpeWeights(%d) falls at %d: %g after %g", n, i, w[i], w[i-1])
			}
		}
	}
}

// TestTPEModelSplit checks which trials each density is fitted on, Optuna's rule: the
// trials that did not fail are ranked, completed first by value (maximised or minimised),
// then pruned ones; the best ⌈n/10⌉ of all n make up the good set. A parameter's l and g are
// fitted on the trials of each set that have it (a conditional one only where its condition
// held), so a conditional parameter's l may hold fewer than ⌈n/10⌉ trials, or none. Fewer
// than Startup trials in all: no parameter has a model.
func TestTPEModelSplit(t *testing.T) {
	s := mustSpace(t, `
x = { uniform = [0.0, 100.0] }
opt = { choice = ["adam", "sgd"] }
mom = { uniform = [0.0, 1.0], when = { opt = "sgd" } }
`, nil)
	var res []TrialResult
	for i := range 24 {
		p := Params{"x": float64(i), "opt": "adam"}
		if i%3 == 0 {
			p["opt"], p["mom"] = "sgd", float64(i)/100
		}
		r := TrialResult{Trial: Trial{Index: i, Params: p}, Status: Completed, Value: float64((i * 7) % 24)}
		switch i {
		case 5:
			r.Status, r.Value = Failed, math.NaN()
		case 6:
			r.Status, r.Epochs = Pruned, 3
			r.Value = -100 // a pruned trial's partial value never beats a completed one
		}
		res = append(res, r)
	}
	for _, maximize := range []bool{false, true} {
		cfg := Config{Space: s, Maximize: maximize, TPE: TPEConfig{Startup: 8}}
		m := cfg.fitTPE(res)
		// 23 trials (not 5), good = ⌈23/10⌉ = 3: the 3 best completed values.
		ranked := rankTrials(res, maximize)
		var wantGood, wantMomGood, wantMomBad []float64
		for r, i := range ranked {
			mom, sgd := res[i].Params["mom"].(float64)
			if r < 3 {
				wantGood = append(wantGood, res[i].Params["x"].(float64))
			}
			switch {
			case sgd && r < 3:
				wantMomGood = append(wantMomGood, mom)
			case sgd:
				wantMomBad = append(wantMomBad, mom)
			}
		}
		kx := paramIndex(s, "x")
		gotGood := m.l[kx].mu[:len(m.l[kx].mu)-1]
		if !sameSet(gotGood, wantGood) {
			t.Errorf("maximize %v: l of x is fitted on %v, want %v", maximize, gotGood, wantGood)
		}
		if len(m.g[kx].mu)-1 != 20 {
			t.Errorf("maximize %v: g of x has %d trials, want 20", maximize, len(m.g[kx].mu)-1)
		}
		for _, x := range gotGood {
			if x == 5 || x == 6 {
				t.Errorf("maximize %v: l holds the failed or the pruned trial (x = %g)", maximize, x)
			}
		}
		// mom: the sgd trials (0, 3, …, 21) of each set.
		k := paramIndex(s, "mom")
		gotL, gotG := m.l[k].mu[:len(m.l[k].mu)-1], m.g[k].mu[:len(m.g[k].mu)-1]
		if !sameSet(gotL, wantMomGood) || !sameSet(gotG, wantMomBad) {
			t.Errorf("maximize %v: mom's l and g are fitted on %v and %v, want %v and %v",
				maximize, gotL, gotG, wantMomGood, wantMomBad)
		}
		if len(wantMomGood)+len(wantMomBad) != 8 {
			t.Fatalf("the case should have 8 sgd trials, has %d", len(wantMomGood)+len(wantMomBad))
		}
	}
	// A set without the parameter: l of mom is the prior alone (weight 1, centred, width 1).
	var noSgdGood []TrialResult
	for _, r := range res {
		if _, sgd := r.Params["mom"]; sgd {
			r.Value = 1000 // every sgd trial ranks below the adam ones
		}
		noSgdGood = append(noSgdGood, r)
	}
	m := Config{Space: s, TPE: TPEConfig{Startup: 8}}.fitTPE(noSgdGood)
	if l := m.l[paramIndex(s, "mom")]; len(l.mu) != 1 || l.mu[0] != 0.5 || l.sd[0] != 1 || l.w[0] != 1 {
		t.Errorf("mom's l without a good sgd trial: centres %v, widths %v, weights %v; want the prior alone", l.mu, l.sd, l.w)
	}
	// Startup counts the finished trials of the search, not those having a parameter: with
	// Startup 23 (23 trials did not fail) both have a model, with 24 neither.
	for startup, want := range map[int]bool{23: true, 24: false} {
		m := Config{Space: s, TPE: TPEConfig{Startup: startup}}.fitTPE(res)
		if got := m.l[paramIndex(s, "mom")] != nil; got != want || (m.l[paramIndex(s, "x")] != nil) != want {
			t.Errorf("startup %d: models for mom %v and x %v, want %v", startup, got, m.l[paramIndex(s, "x")] != nil, want)
		}
	}
}

func paramIndex(s *Space, name string) int {
	for k, p := range s.params {
		if p.Name == name {
			return k
		}
	}
	return -1
}

func sameSet(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[float64]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestTPESampleInBoundsAndConditions checks the values TPE draws: inside each parameter's
// bounds, integers whole, choices among the choices (copies), a conditional parameter present
// exactly when its condition holds; and the same rng state gives the same Params.
func TestTPESampleInBoundsAndConditions(t *testing.T) {
	s := mustSpace(t, noisySpace+`
width = { int = [1, 5] }
layers = { choice = [ [ { dense = 8 } ], [ { dense = 16 }, { dense = 8 } ] ] }
`, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	var res []TrialResult
	for i := range 40 {
		p := s.Sample(s.Region(), rng)
		res = append(res, TrialResult{Trial: Trial{Index: i, Params: p}, Status: Completed, Value: synthetic(p)})
	}
	m := Config{Space: s, TPE: TPEConfig{Startup: 5}}.fitTPE(res)
	full := s.Region()
	for k := range 500 {
		seed := uint64(k)
		p := m.sample(sampleRand(seed))
		if q := m.sample(sampleRand(seed)); !reflect.DeepEqual(p, q) {
			t.Fatalf("seed %d: two draws from the same stream differ: %v and %v", seed, p, q)
		}
		for _, name := range p.Names() {
			if !s.Contains(full, name, p[name]) {
				t.Errorf("seed %d: %s = %v is outside its space", seed, name, p[name])
			}
		}
		if _, ok := p["optimizer.momentum"]; ok != (p["act"] == "relu") {
			t.Errorf("seed %d: act = %v but optimizer.momentum present: %v", seed, p["act"], ok)
		}
		for _, name := range []string{"lr", "dropout", "units", "act", "width", "layers"} {
			if _, ok := p[name]; !ok {
				t.Errorf("seed %d: %s missing", seed, name)
			}
		}
		if _, ok := p["units"].(int64); !ok {
			t.Errorf("seed %d: units = %#v, want an int64", seed, p["units"])
		}
		if l, ok := p["layers"].([]any); ok {
			l[0].(map[string]any)["dense"] = int64(-1) // a copy: the space's choice is untouched
		}
	}
	if got := s.params[paramIndex(s, "layers")].Choices[0].([]any)[0].(map[string]any)["dense"]; got != int64(8) {
		t.Errorf("a drawn value aliases the space's choice: it now holds dense = %v", got)
	}
}

// TestTPEFindsOptimum runs TPE (the defaults: 4 trials at a time) against random search on
// the synthetic objective (minimum 0 at a known point), 60 trials, over 30 seeds: TPE's mean
// best must be under half of random search's, and TPE better in at least 3 seeds of 4. It
// logs the zoom sampler's figure beside them.
func TestTPEFindsOptimum(t *testing.T) {
	s := mustSpace(t, syntheticSpace, nil)
	const trials, seeds = 60, 30
	var tpeSum, randomSum, zoomSum float64
	wins := 0
	for seed := uint64(1); seed <= seeds; seed++ {
		run := func(sampler string, rounds int) float64 {
			out, err := Run(context.Background(), Config{Space: s, Trials: trials, Rounds: rounds, Sampler: sampler, Seed: seed, Prune: PruneConfig{Method: PruneNone}, Workers: 4}, syntheticObjective)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := out.BestTrial()
			return b.Value
		}
		tp, rd := run(SamplerTPE, 1), run(SamplerZoom, 1)
		tpeSum += tp / seeds
		randomSum += rd / seeds
		zoomSum += run(SamplerZoom, 3) / seeds
		if tp < rd {
			wins++
		}
	}
	t.Logf("over %d seeds, %d trials: mean best objective: TPE %.4f, random %.4f, zoom (3 rounds) %.4f; TPE better than random in %d seeds",
		seeds, trials, tpeSum, randomSum, zoomSum, wins)
	if tpeSum > 0.5*randomSum {
		t.Errorf("TPE's mean best %.4f is not under 0.5 × random search's %.4f", tpeSum, randomSum)
	}
	if wins < seeds*3/4 {
		t.Errorf("TPE beat random search in %d of %d seeds, want at least %d", wins, seeds, seeds*3/4)
	}
}

// TestTPEWaitsForTheTrialsItIsDrawnFrom checks the dispatch of a TPE search: trial i starts
// only once trials 0 … i−Parallel have finished, so that at most Parallel trials run at once
// however many workers there are.
func TestTPEWaitsForTheTrialsItIsDrawnFrom(t *testing.T) {
	s := mustSpace(t, syntheticSpace, nil)
	const trials, parallel = 30, 3
	var mu sync.Mutex
	running, most := map[int]bool{}, 0
	var violations []string
	obj := func(ctx context.Context, tr Trial, report Report) (Result, error) {
		mu.Lock()
		for j := 0; j <= tr.Index-parallel; j++ {
			if running[j] {
				violations = append(violations, fmt.Sprintf("trial %d started while trial %d ran", tr.Index, j))
			}
		}
		running[tr.Index] = true
		most = max(most, len(running))
		mu.Unlock()
		time.Sleep(time.Duration(1+(tr.Index*7)%5) * time.Millisecond)
		mu.Lock()
		delete(running, tr.Index)
		mu.Unlock()
		return Result{Value: synthetic(tr.Params)}, nil
	}
	out, err := Run(context.Background(), Config{Space: s, Trials: trials, Sampler: SamplerTPE, TPE: TPEConfig{Parallel: parallel, Startup: 3}, Seed: 5, Prune: PruneConfig{Method: PruneNone}, Workers: 8}, obj)
	if err != nil {
		t.Fatal(err)
	}
	if len(violations) > 0 {
		t.Errorf("%d trials started too early, the first: %s", len(violations), violations[0])
	}
	if most != parallel {
		t.Errorf("at most %d trials ran at once with 8 workers, want %d", most, parallel)
	}
	if len(out.Trials) != trials || len(out.Regions) != 1 {
		t.Errorf("%d trials, %d regions; want %d and 1", len(out.Trials), len(out.Regions), trials)
	}
}
