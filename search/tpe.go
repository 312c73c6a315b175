package search

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
)

// The samplers of Config.Sampler.
const (
	// SamplerZoom draws each round at random from a region that narrows round by round
	// around the best trials so far (see Zoom). The default.
	SamplerZoom = "zoom"
	// SamplerTPE draws each round's trials by the tree-structured Parzen estimator from
	// every trial of the rounds before (see TPEConfig).
	SamplerTPE = "tpe"
)

// TPEConfig sets the TPE sampler (Config.Sampler = SamplerTPE). The zero value is the
// documented default of every field; they are Optuna's defaults (TPESampler, version 3.1).
type TPEConfig struct {
	// Candidates is how many values each parameter draws from the good trials' density l;
	// the one with the highest l(x)/g(x) is taken. Default 24; at least 1.
	Candidates int
	// Startup is the fewest finished trials (failed ones left out) from which TPE draws;
	// below that every parameter is drawn at random from its full range. Default 10; at
	// least 1.
	Startup int
	// Parallel is how many trials may run at once: trial i is drawn from trials
	// 0 … i−Parallel and starts once they have finished, whatever the number of workers, so
	// that no draw depends on timing (it leaves out the Parallel−1 trials just before it, as
	// Optuna with n_jobs = Parallel leaves out the trials running). Workers beyond it idle.
	// Default 4; at least 1 (1: one trial after another, each drawn from all before it).
	Parallel int
	// PriorWeight is the weight of the prior (the whole range, or every choice alike) in each
	// density, against 1 for a recent trial. Default 1; > 0.
	PriorWeight float64
}

// Defaults of TPEConfig.
const (
	DefaultTPECandidates  = 24
	DefaultTPEStartup     = 10
	DefaultTPEPriorWeight = 1.0
	DefaultTPEParallel    = 4
)

func (c TPEConfig) withDefaults() TPEConfig {
	if c.Candidates == 0 {
		c.Candidates = DefaultTPECandidates
	}
	if c.Startup == 0 {
		c.Startup = DefaultTPEStartup
	}
	if c.PriorWeight == 0 {
		c.PriorWeight = DefaultTPEPriorWeight
	}
	if c.Parallel == 0 {
		c.Parallel = DefaultTPEParallel
	}
	return c
}

// Validate checks the fields' ranges (zero values stand for the defaults).
func (c TPEConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Candidates < 1:
		return fmt.Errorf("search: tpe candidates = %d: must be ≥ 1", c.Candidates)
	case c.Startup < 1:
		return fmt.Errorf("search: tpe startup = %d: must be ≥ 1", c.Startup)
	case c.Parallel < 1:
		return fmt.Errorf("search: tpe parallel = %d: must be ≥ 1", c.Parallel)
	case !(c.PriorWeight > 0) || math.IsInf(c.PriorWeight, 0):
		return fmt.Errorf("search: tpe prior_weight = %g: must be > 0", c.PriorWeight)
	}
	return nil
}

// tpeGood returns how many of n trials make up the good set: min(⌈n/10⌉, 25), Optuna's
// default gamma.
func tpeGood(n int) int {
	return min((n+9)/10, 25)
}

// tpeWeights returns the weights of n trials in index order (oldest first): 1 each while
// n < 25; otherwise the 25 newest weigh 1 and the older ones rise linearly from 1/n,
// Optuna's default_weights.
func tpeWeights(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1
	}
	if n >= 25 {
		ramp := n - 25
		for i := range ramp {
			if ramp == 1 {
				w[i] = 1 / float64(n)
				continue
			}
			w[i] = 1/float64(n) + (1-1/float64(n))*float64(i)/float64(ramp-1)
		}
	}
	return w
}

// tpeModel holds, per parameter of the space, the two densities TPE compares: l over the
// good trials, g over the others. A parameter with fewer than Startup trials has none (nil).
type tpeModel struct {
	space *Space
	cfg   TPEConfig
	l, g  []*parzen // by parameter position in space.params
}

// fitTPE builds the TPE model from the finished trials before (any order; their Params
// set), as Optuna's TPESampler.sample_independent does: the trials that did not fail are
// ranked as the search ranks trials (completed by Value, then pruned ones by epochs reached);
// with n of them, fewer than Startup leave every parameter to be drawn at random, otherwise
// the best tpeGood(n) make up the good set and the rest the bad set, and a parameter's l and
// g are fitted to the trials of each set that have it (a conditional parameter: where its
// condition held; a set without any has the prior alone).
func (c Config) fitTPE(results []TrialResult) *tpeModel {
	cfg := c.TPE.withDefaults()
	m := &tpeModel{space: c.Space, cfg: cfg, l: make([]*parzen, len(c.Space.params)), g: make([]*parzen, len(c.Space.params))}
	ranked := rankTrials(results, c.Maximize)
	if len(ranked) < cfg.Startup {
		return m
	}
	nGood := tpeGood(len(ranked))
	for k, p := range c.Space.params {
		var good, bad []int // positions in results
		for r, i := range ranked {
			if _, ok := results[i].Params[p.Name]; !ok {
				continue
			}
			if r < nGood {
				good = append(good, i)
			} else {
				bad = append(bad, i)
			}
		}
		byIndex := func(s []int) {
			sort.Slice(s, func(a, b int) bool { return results[s[a]].Index < results[s[b]].Index })
		}
		byIndex(good)
		byIndex(bad)
		m.l[k] = newParzen(p, results, good, cfg.PriorWeight)
		m.g[k] = newParzen(p, results, bad, cfg.PriorWeight)
	}
	return m
}

// sample draws one trial's Params. Like Space.Sample it draws every parameter, in name order,
// whether or not its condition holds, then drops those whose conditions do not hold. A
// parameter with a model draws Candidates values from l and keeps the first with the highest
// log l(x) − log g(x); without one (fewer than Startup trials) it is drawn uniformly from its
// full range (or choices).
func (m *tpeModel) sample(rng *rand.Rand) Params {
	full := m.space.Region()
	vals := make([]any, len(m.space.params))
	for k, p := range m.space.params {
		l, g := m.l[k], m.g[k]
		if l == nil {
			u := rng.Float64()
			if p.Dist == Choice {
				vals[k] = copyValue(p.Choices[pick(full.weightsOf(p), u)])
			} else {
				vals[k] = drawNumber(p, full.rangeOf(p), u)
			}
			continue
		}
		var best, bestScore float64
		for c := range m.cfg.Candidates {
			x := l.draw(rng)
			if s := l.logPDF(x) - g.logPDF(x); c == 0 || s > bestScore {
				best, bestScore = x, s
			}
		}
		if p.Dist == Choice {
			vals[k] = copyValue(p.Choices[int(best)])
		} else {
			vals[k] = l.value(best)
		}
	}
	present := m.space.present(vals)
	out := make(Params, len(vals))
	for k, p := range m.space.params {
		if present[k] {
			out[p.Name] = vals[k]
		}
	}
	return out
}

// parzen is a Parzen estimator of one parameter: a mixture of the trials' kernels and a
// prior, with weights w (summing to 1).
//
// A numeric parameter's kernels are normal distributions on its sampling axis (ln x for the
// log distributions), truncated to the full range's interval [a, b] there (for integers
// [lo−½, hi+½]); the prior is centred on the interval with σ = b − a. A trial's kernel is
// centred on its value; its σ is the larger of the distances to its neighbours among the
// sorted centres (the prior's included; the range's ends are neighbours too, except that
// the lowest and highest centres take the distance to their one inner neighbour), clipped to
// [(b − a)/min(100, 1 + centres), b − a]. An integer value's density is the mass of its
// [k−½, k+½] (on the log axis for log_int).
//
// A choice's kernel of a trial puts weight 1 + prior/(n+1) on the trial's value and
// prior/(n+1) on each other value (n trials), normalised; the prior's kernel is uniform.
type parzen struct {
	p      Param
	a, b   float64   // the axis interval (numeric)
	w      []float64 // component weights, the prior's last
	mu, sd []float64 // numeric components
	logZ   []float64 // log of each numeric component's mass inside [a, b]
	probs  []float64 // choice: the mixture's probability of each value
}

func newParzen(p Param, results []TrialResult, obs []int, priorWeight float64) *parzen {
	z := &parzen{p: p}
	tw := tpeWeights(len(obs))
	z.w = append(tw, priorWeight)
	total := 0.0
	for _, x := range z.w {
		total += x
	}
	for i := range z.w {
		z.w[i] /= total
	}
	if p.Dist == Choice {
		nc := len(p.Choices)
		n := len(obs)
		z.probs = make([]float64, nc)
		for k, i := range obs {
			at := choiceIndex(p, results[i].Params[p.Name])
			base := priorWeight / float64(n+1)
			norm := 1 + base*float64(nc)
			for c := range z.probs {
				pc := base
				if c == at {
					pc += 1
				}
				z.probs[c] += z.w[k] * pc / norm
			}
		}
		for c := range z.probs {
			z.probs[c] += z.w[len(obs)] / float64(nc)
		}
		return z
	}
	z.a, z.b = Range{Dist: p.Dist, Lo: p.Lo, Hi: p.Hi}.axis()
	mus := make([]float64, 0, len(obs)+1)
	for _, i := range obs {
		x, _ := number(results[i].Params[p.Name])
		if p.Dist.log() {
			x = math.Log(x)
		}
		mus = append(mus, x)
	}
	prior := (z.a + z.b) / 2
	withPrior := append(append([]float64(nil), mus...), prior)
	order := make([]int, len(withPrior))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool { return withPrior[order[x]] < withPrior[order[y]] })
	sorted := make([]float64, len(order)+2)
	sorted[0], sorted[len(sorted)-1] = z.a, z.b
	for r, i := range order {
		sorted[r+1] = withPrior[i]
	}
	sig := make([]float64, len(order)) // by rank
	for r := range sig {
		sig[r] = math.Max(sorted[r+1]-sorted[r], sorted[r+2]-sorted[r+1])
	}
	if len(sorted) >= 4 {
		sig[0] = sorted[2] - sorted[1]
		sig[len(sig)-1] = sorted[len(sorted)-2] - sorted[len(sorted)-3]
	}
	width := z.b - z.a
	minSig := width / math.Min(100, 1+float64(len(withPrior)))
	z.mu = withPrior
	z.sd = make([]float64, len(withPrior))
	for r, i := range order {
		z.sd[i] = math.Min(math.Max(sig[r], minSig), width)
	}
	z.sd[len(mus)] = width // the prior's
	z.logZ = make([]float64, len(z.mu))
	for i := range z.mu {
		z.logZ[i] = math.Log(phi((z.b-z.mu[i])/z.sd[i]) - phi((z.a-z.mu[i])/z.sd[i]))
	}
	return z
}

// choiceIndex returns the position of v among p's choices (0 if none matches, which a trial
// of the space cannot have).
func choiceIndex(p Param, v any) int {
	for i, c := range p.Choices {
		if equalValues(c, v) {
			return i
		}
	}
	return 0
}

// phi is the standard normal CDF.
func phi(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

// phiInv is its inverse.
func phiInv(p float64) float64 { return -math.Sqrt2 * math.Erfcinv(2*p) }

// draw returns one draw of the mixture: a choice's index, or a point of the axis interval
// (for an integer parameter, the centre of its value's cell). It takes two rng.Float64.
func (z *parzen) draw(rng *rand.Rand) float64 {
	u, v := rng.Float64(), rng.Float64()
	if z.p.Dist == Choice {
		return float64(pick(z.probs, u))
	}
	k := pick(z.w, u)
	lo, hi := phi((z.a-z.mu[k])/z.sd[k]), phi((z.b-z.mu[k])/z.sd[k])
	x := z.mu[k] + z.sd[k]*phiInv(lo+v*(hi-lo))
	x = math.Min(math.Max(x, z.a), z.b)
	if z.p.Dist.integer() {
		n, _ := number(z.value(x))
		a, b := valueAxis(z.p.Dist, n)
		x = (a + b) / 2
	}
	return x
}

// value maps a point of the axis interval to the parameter's value.
func (z *parzen) value(x float64) any {
	full := Range{Dist: z.p.Dist, Lo: z.p.Lo, Hi: z.p.Hi}
	a, b := z.a, z.b
	u := 0.0
	if b > a {
		u = (x - a) / (b - a)
	}
	u = math.Min(math.Max(u, 0), math.Nextafter(1, 0))
	return drawNumber(z.p, full, u)
}

// logPDF returns the log density of the mixture at x (a choice's index, or an axis point as
// draw returns it; for an integer parameter the log mass of the value's cell, [k−½, k+½] on
// the log axis for log_int, as Optuna has it since optuna/optuna#6258 of 2025: Optuna 3.1
// took a log integer's density at ln k).
func (z *parzen) logPDF(x float64) float64 {
	if z.p.Dist == Choice {
		return math.Log(z.probs[int(x)])
	}
	terms := make([]float64, len(z.mu))
	if z.p.Dist.integer() {
		n, _ := number(z.value(x))
		ca, cb := valueAxis(z.p.Dist, n)
		ca, cb = math.Max(ca, z.a), math.Min(cb, z.b)
		for i := range z.mu {
			mass := phi((cb-z.mu[i])/z.sd[i]) - phi((ca-z.mu[i])/z.sd[i])
			terms[i] = math.Log(z.w[i]) + math.Log(math.Max(mass, 1e-300)) - z.logZ[i]
		}
		return logSumExp(terms)
	}
	for i := range z.mu {
		d := (x - z.mu[i]) / z.sd[i]
		terms[i] = math.Log(z.w[i]) - 0.5*d*d - math.Log(z.sd[i]*math.Sqrt(2*math.Pi)) - z.logZ[i]
	}
	return logSumExp(terms)
}

func logSumExp(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = math.Max(m, x)
	}
	if math.IsInf(m, -1) {
		return m
	}
	s := 0.0
	for _, x := range xs {
		s += math.Exp(x - m)
	}
	return m + math.Log(s)
}

// tpeTrial draws trial i by TPE from prior, the finished trials 0 … i−Parallel (by index,
// their Params set).
func (c Config) tpeTrial(i int, prior []TrialResult) Trial {
	seed := c.TrialSeed(i)
	return Trial{Index: i, Seed: seed, Params: c.fitTPE(prior).sample(sampleRand(seed))}
}

// tpeSees returns how many trials trial i is drawn from: i−Parallel+1, at least 0.
func (c Config) tpeSees(i int) int { return max(0, i-c.TPE.Parallel+1) }

// runTPE runs every trial of a TPE search. Trials are drawn and dispatched in index order:
// trial i waits, before it takes a worker slot, until trials 0 … i−Parallel have finished,
// then is drawn from them. A lower trial never waits on a higher one, so with the pruning
// waits (on lower trials only) nothing deadlocks.
func (s *searchRun) runTPE(ctx context.Context, restored map[int]TrialResult) {
	n := s.cfg.Trials
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make([]chan struct{}, n)
	for i := range done {
		done[i] = make(chan struct{})
	}
	slots := newSlots(s.cfg.Workers)
	var wg sync.WaitGroup
	waited := 0 // trials 0 … waited−1 are known finished
dispatch:
	for i := range n {
		for ; waited < s.cfg.tpeSees(i); waited++ {
			select {
			case <-done[waited]:
			case <-ctx.Done():
				break dispatch
			}
		}
		t := s.cfg.tpeTrial(i, s.results[:waited])
		if rec, ok := restored[i]; ok {
			s.restoreTrial(t, rec)
			close(done[i])
			continue
		}
		if !slots.take(ctx) {
			break
		}
		wg.Go(func() {
			defer slots.give()
			defer close(done[t.Index])
			s.finishTrial(ctx, t)
		})
	}
	wg.Wait()
}
