package search

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// Trial is one point of the search that the objective trains and scores.
type Trial struct {
	// Index numbers the trials of the whole search from 0, round after round.
	Index int
	// Round is the zoom round the trial belongs to, from 0.
	Round int
	// Params are the trial's parameter values.
	Params Params
	// Seed is for the objective's own randomness (weights, batches): Config.TrialSeed(Index),
	// or for a repeat Config.RepeatSeed(Index, Repeat).
	Seed uint64
	// Repeat is 0 for the trial's own run, k ≥ 1 for its k-th repeat with another seed
	// (Config.Confirm): the same Params, never pruned.
	Repeat int
}

// Result is what an objective returns for a trial that ran to its end or was told to stop.
type Result struct {
	// Value is the trial's objective: for a trainer that restores its best epoch, the value
	// at that epoch. It ranks the trials (NaN ranks last).
	Value float64
	// Metrics are other figures of the trial, kept in its TrialResult (optional).
	Metrics map[string]float64
}

// Report is how an objective reports the objective's value at the end of an epoch (epochs
// from 1, increasing; they need not be consecutive). It returns false when the trial is to
// stop (pruned): the objective then returns its Result at once. It may block while the
// decision waits on trials with a lower index, and returns an error when the search's context
// ends, or for an epoch that does not increase (that report is not recorded). A report after
// the trial was told to stop returns false and is not recorded. One trial's reports must not
// be made concurrently.
type Report func(epoch int, value float64) (continueTraining bool, err error)

// Objective trains and scores one trial. It must depend only on the trial (its Params and
// Seed), never on timing, so that the search's results do not depend on Config.Workers; it
// should stop promptly when ctx ends. An error records the trial as failed and the search
// goes on.
type Objective func(ctx context.Context, trial Trial, report Report) (Result, error)

// Status is how a trial ended.
type Status string

// The statuses of a finished trial.
const (
	Completed Status = "completed" // the objective returned without being told to stop
	Pruned    Status = "pruned"    // a report told it to stop; its partial history is kept
	Failed    Status = "failed"    // the objective returned an error (or panicked)
)

// Point is one report: the objective's value at the end of an epoch.
type Point struct {
	Epoch int
	Value float64
}

// TrialResult is the record of a finished trial.
type TrialResult struct {
	Trial
	Status Status
	// Epochs is the last epoch reported (0 when none was).
	Epochs int
	// Value is Result.Value; NaN for a failed trial.
	Value float64
	// Metrics are Result.Metrics.
	Metrics map[string]float64
	// History holds every recorded report, in order (a pruned trial's partial history).
	History []Point
	// PrunedAt is the epoch of the report that told the trial to stop; 0 unless Pruned.
	PrunedAt int
	// Err is a failed trial's error.
	Err string
	// Seconds is the objective's wall time (for a restored trial, the recorded one).
	Seconds float64
	// WaitSeconds is the part of Seconds that the trial spent blocked in Report, waiting for
	// trials with a lower index to reach the epoch it was judged at (its worker idled).
	WaitSeconds float64
	// Repeats are a confirmed trial's repeats with other seeds (Config.Confirm), repeat k at
	// k-1; nil for a trial that was not confirmed.
	Repeats []Repeat
	// Runs is the number of runs that Confirmed averages (1 + the repeats); 0 for a trial
	// that was not confirmed.
	Runs int
	// Confirmed is the mean of Value and the repeats' values (NaN when a repeat failed); set
	// only when Runs > 0. Value stays the trial's own run's.
	Confirmed float64
}

// Outcome is the result of a search.
type Outcome struct {
	// Trials holds every finished trial, by index (all of them unless Run returned an error).
	Trials []TrialResult
	// Best is the index in Trials of the best trial: the first of the ranking (see the
	// package doc), so a completed trial whenever one completed; -1 when there is none.
	Best int
	// Ranking holds the positions in Trials of the trials that did not fail, best first (the
	// ranking of the package doc; with Config.Confirm, the confirmed trials first by their
	// Confirmed value); Ranking[0] == Best.
	Ranking []int
	// PlainBest is the best trial by its own value alone (Best without the confirmation).
	PlainBest int
	// Confirmed holds the positions in Trials of the confirmed trials, best Confirmed value
	// first; nil when the confirmation is off or fewer than 2 trials completed.
	Confirmed []int
	// ConfirmEpochs is the total of the repeats' epochs (not in Epochs).
	ConfirmEpochs int
	// Regions[r] is the region that round r sampled.
	Regions []Region
	// Epochs is the total of the trials' epochs.
	Epochs int
}

// BestTrial returns the best trial.
func (o Outcome) BestTrial() (TrialResult, bool) {
	if o.Best < 0 || o.Best >= len(o.Trials) {
		return TrialResult{}, false
	}
	return o.Trials[o.Best], true
}

// Config configures Run. The zero value of every field but Space is its documented default.
type Config struct {
	// Space is the search space (required).
	Space *Space
	// Trials is the number of trials of the whole search; default 20.
	Trials int
	// Rounds is the number of zoom rounds, at most Trials; default 1 (pure random search).
	// Round r gets ⌊Trials/Rounds⌋ trials, one more when r < Trials mod Rounds.
	Rounds int
	// Maximize makes a larger objective better; default false (smaller is better).
	Maximize bool
	// Sampler is how trials are drawn: SamplerZoom (default, also "") at random from a region
	// that narrows round by round, or SamplerTPE, each trial by the tree-structured Parzen
	// estimator from the trials before it (TPEConfig.Parallel; Rounds must be 1).
	Sampler string
	// Zoom sets how each round's region narrows (SamplerZoom).
	Zoom ZoomConfig
	// TPE sets the TPE sampler (SamplerTPE).
	TPE TPEConfig
	// Prune sets how trials are stopped early; default ASHA.
	Prune PruneConfig
	// Workers is the number of trials run at the same time; default runtime.GOMAXPROCS(0).
	// Results do not depend on it.
	Workers int
	// Seed seeds the default TrialSeed (and is otherwise unused).
	Seed uint64
	// TrialSeed gives trial i's Seed; default DeriveTrialSeed(Seed, i). Trial i's parameters
	// are drawn from a stream derived from that seed too, so the seeds determine the whole
	// search. A stage sets it to derive the seed from (run seed, stage, trial).
	TrialSeed func(index int) uint64
	// Restore holds the records of trials that finished in an earlier, interrupted run of the
	// same search (same space, config and seeds), as OnTrialDone handed them out: those trials
	// are not run again. Completed and pruned records are used; failed ones run again. A record
	// whose Round or Seed disagrees with the search is an error.
	Restore []TrialResult
	// OnTrialDone, when set, is called with each trial's record as it finishes (in finishing
	// order, which depends on timing; never for a restored trial, never concurrently with
	// itself). It must not block for long: trials wait for it.
	OnTrialDone func(TrialResult)
	// Confirm runs the best trials again with other seeds after the last round and chooses
	// on the mean of their runs (see ConfirmConfig); off by default.
	Confirm ConfirmConfig
	// RepeatSeed gives the seed of repeat k ≥ 1 of trial i; default
	// DeriveRepeatSeed(TrialSeed(i), k). A stage sets it to derive the seed from (run seed,
	// stage, trial, repeat).
	RepeatSeed func(index, repeat int) uint64
	// RestoreRepeats holds the records of repeats that finished in an earlier, interrupted
	// run of the same search, as OnRepeatDone handed them out: they are not run again (failed
	// ones are). A record whose Seed disagrees with RepeatSeed is an error.
	RestoreRepeats []Repeat
	// OnRepeatDone, when set, is called with each repeat's record as it finishes (as
	// OnTrialDone).
	OnRepeatDone func(Repeat)
}

// Default of Config.Trials.
const DefaultTrials = 20

func (c Config) withDefaults() (Config, error) {
	if c.Space == nil {
		return c, errors.New("search: no space")
	}
	if c.Trials == 0 {
		c.Trials = DefaultTrials
	}
	if c.Rounds == 0 {
		c.Rounds = 1
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	switch {
	case c.Trials < 1:
		return c, fmt.Errorf("search: trials = %d: must be ≥ 1", c.Trials)
	case c.Rounds < 1:
		return c, fmt.Errorf("search: rounds = %d: must be ≥ 1", c.Rounds)
	case c.Rounds > c.Trials:
		return c, fmt.Errorf("search: rounds = %d is more than trials = %d: every round needs a trial", c.Rounds, c.Trials)
	case c.Workers < 1:
		return c, fmt.Errorf("search: workers = %d: must be ≥ 1", c.Workers)
	}
	if err := c.Prune.Validate(); err != nil {
		return c, err
	}
	if err := c.Zoom.Validate(); err != nil {
		return c, err
	}
	switch c.Sampler {
	case "":
		c.Sampler = SamplerZoom
	case SamplerZoom, SamplerTPE:
	default:
		return c, fmt.Errorf("search: sampler %q: give %q or %q", c.Sampler, SamplerZoom, SamplerTPE)
	}
	if err := c.TPE.Validate(); err != nil {
		return c, err
	}
	if c.Sampler == SamplerTPE && c.Rounds > 1 {
		return c, fmt.Errorf("search: rounds = %d: the tpe sampler has no rounds (each trial is drawn from the trials before it); set rounds = 1", c.Rounds)
	}
	if err := c.Confirm.Validate(); err != nil {
		return c, err
	}
	if c.Confirm.Top > c.Trials {
		return c, fmt.Errorf("search: confirm top = %d is more than trials = %d", c.Confirm.Top, c.Trials)
	}
	c.Prune = c.Prune.withDefaults()
	c.Zoom = c.Zoom.withDefaults()
	c.TPE = c.TPE.withDefaults()
	if c.TrialSeed == nil {
		seed := c.Seed
		c.TrialSeed = func(i int) uint64 { return DeriveTrialSeed(seed, i) }
	}
	if c.RepeatSeed == nil {
		trialSeed := c.TrialSeed
		c.RepeatSeed = func(i, k int) uint64 { return DeriveRepeatSeed(trialSeed(i), k) }
	}
	return c, nil
}

// Validate checks a Config without running it.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// RoundSizes returns how many trials each round runs: ⌊trials/rounds⌋, plus one for the first
// trials mod rounds rounds.
func RoundSizes(trials, rounds int) []int {
	if rounds < 1 {
		return nil
	}
	out := make([]int, rounds)
	for r := range out {
		out[r] = trials / rounds
		if r < trials%rounds {
			out[r]++
		}
	}
	return out
}

// DeriveTrialSeed is the default trial seed: a SplitMix64 mix of (seed, index).
func DeriveTrialSeed(seed uint64, index int) uint64 {
	return splitmix(splitmix(seed) ^ uint64(index)*0x9e3779b97f4a7c15)
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// sampleRand is the generator that draws trial seed's parameters: a stream apart from the
// ones an objective builds from the same seed.
func sampleRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(splitmix(seed^0x73616d706c652d31), 0x7365617263682d70))
}

// Run runs a search: round by round, it samples the round's trials from the region (the full
// space in round 0), runs them with the objective on Config.Workers goroutines with pruning,
// waits for all of them, and zooms the region around the best trials so far. With the TPE
// sampler it draws each trial from the trials before it instead, as they finish (runTPE). With
// Config.Confirm it then runs the leaders again with other seeds and ranks them by their mean.
// It returns every trial and the best.
//
// The Outcome (everything but the trials' Seconds) is the same for any Workers: see the
// package doc for how the pruning decisions are made independent of timing.
//
// Run returns an error when the config is invalid, when every trial failed, or when ctx ends
// (with the trials that finished before); it waits for every trial it started before it
// returns.
func Run(ctx context.Context, cfg Config, objective Objective) (Outcome, error) {
	out := Outcome{Best: -1, PlainBest: -1}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return out, err
	}
	restoredRepeats, err := cfg.restoreRepeats()
	if err != nil {
		return out, err
	}
	sizes := RoundSizes(cfg.Trials, cfg.Rounds)
	roundOf := make([]int, cfg.Trials)
	for r, i := 0, 0; r < len(sizes); r++ {
		for range sizes[r] {
			roundOf[i] = r
			i++
		}
	}
	restored := map[int]TrialResult{}
	for _, rec := range cfg.Restore {
		i := rec.Index
		switch {
		case i < 0 || i >= cfg.Trials:
			return out, fmt.Errorf("search: restore: trial %d is outside the search's %d trials", i, cfg.Trials)
		case rec.Round != roundOf[i]:
			return out, fmt.Errorf("search: restore: trial %d is in round %d, not %d: the record comes from another search", i, roundOf[i], rec.Round)
		case rec.Seed != cfg.TrialSeed(i):
			return out, fmt.Errorf("search: restore: trial %d has seed %d, not %d: the record comes from another search", i, cfg.TrialSeed(i), rec.Seed)
		}
		if rec.Status == Completed || rec.Status == Pruned {
			restored[i] = rec
		}
	}

	s := &searchRun{cfg: cfg, objective: objective, board: newBoard(cfg.Trials), results: make([]TrialResult, cfg.Trials), finished: make([]bool, cfg.Trials)}
	d := cfg.firstDrawer()
	first := 0
	if cfg.Sampler == SamplerTPE {
		out.Regions = append(out.Regions, d.region)
		s.runTPE(ctx, restored)
		if err := ctx.Err(); err != nil {
			s.collect(&out)
			return out, fmt.Errorf("search: stopped with %d of %d trials finished: %w", countTrue(s.finished), cfg.Trials, err)
		}
		sizes = nil
	}
	for r, n := range sizes {
		out.Regions = append(out.Regions, d.region)
		trials := make([]Trial, n)
		for k := range trials {
			trials[k] = d.trial(first+k, r)
		}
		s.runRound(ctx, trials, restored)
		first += n
		if err := ctx.Err(); err != nil {
			s.collect(&out)
			return out, fmt.Errorf("search: stopped in round %d of %d with %d of %d trials finished: %w", r+1, len(sizes), countTrue(s.finished), cfg.Trials, err)
		}
		if r+1 < len(sizes) {
			d = cfg.nextDrawer(d, s.results[:first])
		}
	}
	s.collect(&out)
	ranked := rankTrials(out.Trials, cfg.Maximize)
	if len(ranked) == 0 {
		return out, fmt.Errorf("search: all %d trials failed; the first: trial %d: %s", len(out.Trials), out.Trials[0].Index, out.Trials[0].Err)
	}
	out.Best, out.PlainBest, out.Ranking = ranked[0], ranked[0], ranked
	if cfg.Confirm.On() {
		if err := s.confirm(ctx, &out, restoredRepeats); err != nil {
			return out, err
		}
	}
	return out, nil
}

// drawer draws the trials of one round of the zoom sampler, at random from region.
type drawer struct {
	cfg    Config
	region Region
}

// firstDrawer is the drawer of round 0: the full space.
func (c Config) firstDrawer() drawer { return drawer{cfg: c, region: c.Space.Region()} }

// nextDrawer returns the drawer of the round after d's, given every trial of the rounds so
// far (by index, their Params set): the region zoomed around the best of them.
func (c Config) nextDrawer(d drawer, results []TrialResult) drawer {
	d.region = c.zoomAfter(d.region, results)
	return d
}

// trial draws trial i of round from the stream of its seed.
func (d drawer) trial(i, round int) Trial {
	seed := d.cfg.TrialSeed(i)
	return Trial{Index: i, Round: round, Seed: seed, Params: d.cfg.Space.Sample(d.region, sampleRand(seed))}
}

// zoomAfter returns the region of the round after the given trials (every trial of the rounds
// so far, by index, their Params set), zoomed from region around the best of them: the trials
// that zoomTrials picks.
func (c Config) zoomAfter(region Region, results []TrialResult) Region {
	var top []Params
	for _, i := range c.zoomTrials(results) {
		top = append(top, results[i].Params)
	}
	if len(top) > 0 {
		region = c.Space.Zoom(region, top, c.Zoom)
	}
	return region
}

// zoomTrials returns the positions in results (the finished trials of the rounds so far) of
// the trials whose parameters define the next round's region, best first. When at least 2
// trials completed with a value (not NaN), they are the best max(2, ⌈q·n⌉) of those n
// completed trials by Value (q = Zoom.Top), and pruned trials take no part. Otherwise
// (fewer than 2 completed) they are the best max(2, ⌈q·n⌉) of the n trials that did not
// fail, in the ranking of the package doc (completed first, then pruned ones by epochs
// reached), so that a round whose trials were nearly all pruned still narrows around the
// trials that went furthest.
//
// Why pruned trials are left out: a pruner stops a trial because it ranked below most of the
// others at some epoch, so it carries the pruner's own evidence that it is not among the best;
// its Value is a partial one, not comparable with a completed trial's; and on a noisy
// objective the ranking among pruned trials (by epochs reached) is close to random, so that
// counting them spreads the top set over the whole space and the zoom hardly narrows.
func (c Config) zoomTrials(results []TrialResult) []int {
	ranked := rankTrials(results, c.Maximize)
	// The ranking puts the completed trials with a value first.
	done := 0
	for done < len(ranked) && results[ranked[done]].Status == Completed && !math.IsNaN(results[ranked[done]].Value) {
		done++
	}
	if done >= 2 {
		ranked = ranked[:done]
	}
	return ranked[:c.Zoom.TopCount(len(ranked))]
}

func countTrue(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

// searchRun is the state of one Run.
type searchRun struct {
	cfg       Config
	objective Objective
	board     *board
	results   []TrialResult // by index
	finished  []bool        // results[i] holds a finished trial
	doneMu    sync.Mutex    // serialises OnTrialDone
}

func (s *searchRun) collect(out *Outcome) {
	out.Trials = out.Trials[:0]
	out.Epochs = 0
	for i, ok := range s.finished {
		if ok {
			out.Trials = append(out.Trials, s.results[i])
			out.Epochs += s.results[i].Epochs
		}
	}
}

// runRound runs one round's trials and waits for all of them. Trials start in index order,
// each on a free worker slot, and hold it until they end: so every trial below a running
// trial has started, and the lowest unfinished trial never waits. That is what keeps the
// waits of the pruning decisions free of deadlock for any number of workers.
func (s *searchRun) runRound(ctx context.Context, trials []Trial, restored map[int]TrialResult) {
	for _, t := range trials {
		if rec, ok := restored[t.Index]; ok {
			s.restoreTrial(t, rec)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slots := newSlots(s.cfg.Workers)
	var wg sync.WaitGroup
	for _, t := range trials {
		if _, ok := restored[t.Index]; ok {
			continue
		}
		if !slots.take(ctx) {
			break
		}
		wg.Go(func() {
			defer slots.give()
			s.finishTrial(ctx, t)
		})
	}
	wg.Wait()
}

// restoreTrial records rec, a finished trial of an earlier run, as trial t's result.
func (s *searchRun) restoreTrial(t Trial, rec TrialResult) {
	rec.Trial = t
	s.results[t.Index], s.finished[t.Index] = rec, true
	s.board.restore(t.Index, rec.History, s.cfg.Maximize)
}

// slots are the worker slots: a trial (or a repeat) holds one while it runs.
type slots chan struct{}

func newSlots(n int) slots { return make(slots, n) }

// take waits for a free slot and holds it; false when ctx ends first.
func (s slots) take(ctx context.Context) bool {
	select {
	case s <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// give frees a slot.
func (s slots) give() { <-s }

// finishTrial runs trial t and records it, unless the search's end stopped it.
func (s *searchRun) finishTrial(ctx context.Context, t Trial) {
	rec, err := s.runTrial(ctx, t)
	if err != nil && ctx.Err() != nil {
		return // stopped by the search's end: not a finished trial
	}
	s.results[t.Index], s.finished[t.Index] = rec, true
	if s.cfg.OnTrialDone != nil {
		s.doneMu.Lock()
		s.cfg.OnTrialDone(rec)
		s.doneMu.Unlock()
	}
}

// trialRun is one trial's reporting state.
type trialRun struct {
	s        *searchRun
	ctx      context.Context
	index    int
	mu       sync.Mutex
	history  []Point
	stopped  bool
	prunedAt int
	nextRung int           // ASHA: the next rung to judge
	waited   time.Duration // blocked in board.others
}

// runTrial runs the objective on t and records how it ended.
func (s *searchRun) runTrial(ctx context.Context, t Trial) (rec TrialResult, err error) {
	tr := &trialRun{s: s, ctx: ctx, index: t.Index}
	start := time.Now()
	res, err := callObjective(ctx, s.objective, t, tr.report)
	s.board.finish(t.Index)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	rec = TrialResult{Trial: t, History: tr.history, Seconds: time.Since(start).Seconds(), WaitSeconds: tr.waited.Seconds()}
	if n := len(tr.history); n > 0 {
		rec.Epochs = tr.history[n-1].Epoch
	}
	switch {
	case err != nil:
		rec.Status, rec.Value, rec.Err = Failed, math.NaN(), err.Error()
	case tr.stopped:
		rec.Status, rec.Value, rec.Metrics, rec.PrunedAt = Pruned, res.Value, res.Metrics, tr.prunedAt
	default:
		rec.Status, rec.Value, rec.Metrics = Completed, res.Value, res.Metrics
	}
	return rec, err
}

// callObjective runs the objective, turning a panic into an error.
func callObjective(ctx context.Context, obj Objective, t Trial, report Report) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v%s", p, panicSite())
		}
	}()
	return obj(ctx, t, report)
}

// panicSite returns " (at file:line)" for the frame that panicked: the first frame below the
// runtime's panic machinery. A full stack is not kept, since its goroutine ids and argument
// addresses would make the records differ between runs.
func panicSite() string {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if f.Function != "" && !strings.HasPrefix(f.Function, "runtime.") {
			return fmt.Sprintf(" (at %s:%d in %s)", filepath.Base(f.File), f.Line, f.Function)
		}
		if !more {
			return ""
		}
	}
}

func (tr *trialRun) report(epoch int, value float64) (bool, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.stopped {
		return false, nil
	}
	if err := tr.ctx.Err(); err != nil {
		return false, err
	}
	if n := len(tr.history); (n > 0 && epoch <= tr.history[n-1].Epoch) || epoch < 1 {
		last := 0
		if n > 0 {
			last = tr.history[n-1].Epoch
		}
		return false, fmt.Errorf("search: trial %d: report of epoch %d after epoch %d: epochs start at 1 and increase", tr.index, epoch, last)
	}
	tr.history = append(tr.history, Point{Epoch: epoch, Value: value})
	b, cfg := tr.s.board, tr.s.cfg
	b.add(tr.index, epoch, value, cfg.Maximize)
	cont, err := tr.judge(epoch)
	if err != nil {
		return false, err
	}
	if !cont {
		tr.stopped, tr.prunedAt = true, epoch
		b.finish(tr.index)
	}
	return cont, nil
}

// judge makes the pruning decisions due at a report of epoch.
func (tr *trialRun) judge(epoch int) (bool, error) {
	p, maximize, b := tr.s.cfg.Prune, tr.s.cfg.Maximize, tr.s.board
	switch p.Method {
	case PruneASHA:
		for {
			e := p.rungEpoch(tr.nextRung)
			if e > epoch {
				return true, nil
			}
			others, waited, err := b.others(tr.ctx, tr.index, e)
			tr.waited += waited
			if err != nil {
				return false, err
			}
			if !ashaContinue(b.own(tr.index, e), others, p.Reduction, maximize) {
				return false, nil
			}
			tr.nextRung++
		}
	case PruneMedian:
		if epoch < p.MinEpochs || tr.index < p.MinTrials {
			return true, nil
		}
		others, waited, err := b.others(tr.ctx, tr.index, epoch)
		tr.waited += waited
		if err != nil {
			return false, err
		}
		if len(others) < p.MinTrials {
			return true, nil
		}
		return medianContinue(b.own(tr.index, epoch), others, maximize), nil
	}
	return true, nil
}

// rankTrials orders the trials that did not fail, best first, and returns their positions in
// trials: completed trials by Value, then pruned ones by epochs reached (more first), then by
// Value; a trial whose Value is NaN after every other; ties by index.
func rankTrials(trials []TrialResult, maximize bool) []int {
	var idx []int
	for i, t := range trials {
		if t.Status == Completed || t.Status == Pruned {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := trials[idx[a]], trials[idx[b]]
		if nx, ny := math.IsNaN(x.Value), math.IsNaN(y.Value); nx != ny {
			return ny
		}
		if x.Status != y.Status {
			return x.Status == Completed
		}
		if x.Status == Pruned && x.Epochs != y.Epochs {
			return x.Epochs > y.Epochs
		}
		if better(x.Value, y.Value, maximize) != better(y.Value, x.Value, maximize) {
			return better(x.Value, y.Value, maximize)
		}
		return x.Index < y.Index
	})
	return idx
}
