package search

import (
	"fmt"
	"math"
	"sort"
)

// Pruning methods of PruneConfig.Method.
const (
	// PruneASHA is asynchronous successive halving, made deterministic (see the package doc).
	PruneASHA = "asha"
	// PruneMedian is median stopping.
	PruneMedian = "median"
	// PruneNone runs every trial to its end.
	PruneNone = "none"
)

// Defaults of PruneConfig.
const (
	DefaultMinEpochs       = 1
	DefaultReduction       = 3
	DefaultMedianMinTrials = 5
)

// PruneConfig sets how trials are stopped early. The zero value is ASHA with the defaults.
type PruneConfig struct {
	// Method is PruneASHA (default, also ""), PruneMedian or PruneNone.
	Method string
	// MinEpochs is, for ASHA, the epoch of the first rung; for median stopping, the first
	// epoch at which a trial may be stopped. Default 1.
	MinEpochs int
	// Reduction is ASHA's η: rungs at epochs MinEpochs·η^k (k = 0, 1, …), and at a rung a
	// trial continues only if it is in the top 1/η of the trials judged there. Default 3;
	// at least 2.
	Reduction int
	// MinTrials is, for median stopping, the fewest other trials whose values at an epoch
	// are needed before a trial may be stopped there (Optuna's n_startup_trials). Default 5.
	MinTrials int
}

func (p PruneConfig) withDefaults() PruneConfig {
	if p.Method == "" {
		p.Method = PruneASHA
	}
	if p.MinEpochs == 0 {
		p.MinEpochs = DefaultMinEpochs
	}
	if p.Reduction == 0 {
		p.Reduction = DefaultReduction
	}
	if p.MinTrials == 0 {
		p.MinTrials = DefaultMedianMinTrials
	}
	return p
}

// Validate checks the method and the ranges (zero values stand for the defaults).
func (p PruneConfig) Validate() error {
	p = p.withDefaults()
	switch {
	case p.Method != PruneASHA && p.Method != PruneMedian && p.Method != PruneNone:
		return fmt.Errorf("search: prune method %q: must be %q, %q or %q", p.Method, PruneASHA, PruneMedian, PruneNone)
	case p.MinEpochs < 1:
		return fmt.Errorf("search: prune min_epochs = %d: must be ≥ 1", p.MinEpochs)
	case p.Reduction < 2:
		return fmt.Errorf("search: prune reduction = %d: must be ≥ 2", p.Reduction)
	case p.MinTrials < 1:
		return fmt.Errorf("search: prune min_trials = %d: must be ≥ 1", p.MinTrials)
	}
	return nil
}

// Rungs returns ASHA's rung epochs up to maxEpoch: MinEpochs·Reduction^k.
func (p PruneConfig) Rungs(maxEpoch int) []int {
	p = p.withDefaults()
	var out []int
	for e := p.MinEpochs; e <= maxEpoch; e *= p.Reduction {
		out = append(out, e)
		if e > math.MaxInt/p.Reduction {
			break
		}
	}
	return out
}

// rungEpoch returns the epoch of rung k, or math.MaxInt when it overflows.
func (p PruneConfig) rungEpoch(k int) int {
	e := p.MinEpochs
	for range k {
		if e > math.MaxInt/p.Reduction {
			return math.MaxInt
		}
		e *= p.Reduction
	}
	return e
}

// better reports whether a is a better objective than b. NaN is worse than any number.
func better(a, b float64, maximize bool) bool {
	switch {
	case math.IsNaN(a):
		return false
	case math.IsNaN(b):
		return true
	case maximize:
		return a > b
	}
	return a < b
}

// ashaContinue decides a trial at a rung: with n = len(others)+1 trials judged there (the
// others and itself), it continues when fewer than max(1, ⌊n/η⌋) others are strictly better,
// that is when it is among the best ⌊n/η⌋ (ties in its favour), or the best when n < η (as
// Optuna's successive halving does).
func ashaContinue(own float64, others []float64, reduction int, maximize bool) bool {
	keep := max(1, (len(others)+1)/reduction)
	betterCount := 0
	for _, o := range others {
		if better(o, own, maximize) {
			betterCount++
		}
	}
	return betterCount < keep
}

// medianOf returns the median of vs (the mean of the middle two for an even count), NaN
// counting as the worst value; NaN when the middle holds a NaN.
func medianOf(vs []float64, maximize bool) float64 {
	s := append([]float64(nil), vs...)
	sort.SliceStable(s, func(i, j int) bool { return better(s[i], s[j], maximize) })
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// medianContinue decides median stopping: a trial stops when its value is strictly worse
// than the median of the others'.
func medianContinue(own float64, others []float64, maximize bool) bool {
	return !better(medianOf(others, maximize), own, maximize)
}
