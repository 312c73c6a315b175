package search

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// ConfirmConfig sets the confirmation of the leaders: after the last round, the Top best
// completed trials are each run Seeds more times with other seeds, and the trials are chosen
// on the mean of their runs rather than on their single value. The zero value is off.
//
// Why: a trial's value is one draw of a noisy objective (a network's val loss depends on its
// seed), and the best of many draws is partly luck: its value overstates what its config does
// on average, and a trial whose config is a little worse but drew well can beat a better one.
// Averaging the leaders over more seeds makes the choice among them less a matter of luck.
type ConfirmConfig struct {
	// Top is how many of the best completed trials are confirmed; 0: off. The leaders are
	// the first Top completed trials with a value of the ranking (the package doc); pruned
	// trials are never confirmed (their value is partial).
	Top int
	// Seeds is how many more runs each leader gets (its repeats 1..Seeds), ≥ 1 when Top > 0.
	Seeds int
}

// On reports whether the confirmation is on.
func (c ConfirmConfig) On() bool { return c.Top > 0 }

// Validate checks the fields' ranges.
func (c ConfirmConfig) Validate() error {
	switch {
	case c.Top < 0:
		return fmt.Errorf("search: confirm top = %d: must be ≥ 0 (0: off)", c.Top)
	case c.Top > 0 && c.Seeds < 1:
		return fmt.Errorf("search: confirm seeds = %d: must be ≥ 1", c.Seeds)
	}
	return nil
}

// Repeat is one run of a confirmed trial with another seed.
type Repeat struct {
	// Index is the trial's index.
	Index int
	// Repeat numbers the trial's repeats from 1 (0 is the trial's own run).
	Repeat int
	// Seed is the repeat's seed: Config.RepeatSeed(Index, Repeat).
	Seed uint64
	// Value is the objective's Result.Value; NaN when the repeat failed.
	Value float64
	// Metrics are the Result's Metrics.
	Metrics map[string]float64
	// Epochs is the last epoch the repeat reported.
	Epochs int
	// Err is a failed repeat's error.
	Err string
	// Seconds is the objective's wall time (for a restored repeat, the recorded one).
	Seconds float64
}

// DeriveRepeatSeed is the default seed of a trial's repeat: a SplitMix64 mix of the trial's
// seed and the repeat number, a stream apart from every trial's seed.
func DeriveRepeatSeed(trialSeed uint64, repeat int) uint64 {
	return splitmix(splitmix(trialSeed^0x7265706561742d31) ^ uint64(repeat)*0x9e3779b97f4a7c15)
}

// confirmMean is the mean of a trial's value and its repeats' values: NaN when any is NaN
// (a failed repeat disqualifies the trial's confirmed value: it ranks after the others).
func confirmMean(t TrialResult) float64 {
	sum := t.Value
	for _, r := range t.Repeats {
		sum += r.Value
	}
	return sum / float64(1+len(t.Repeats))
}

// confirm runs the repeats of the leaders of out (Outcome.Ranking set) and ranks the leaders
// again by their mean over their runs: the leaders come first in the new ranking, by their
// Confirmed value (NaN last, ties in their old order), then the other trials in their old
// order. Repeats in restored are not run again. With fewer than 2 leaders there is nothing to
// choose between: nothing runs and the ranking stands.
func (s *searchRun) confirm(ctx context.Context, out *Outcome, restored map[[2]int]Repeat) error {
	c := s.cfg.Confirm
	out.PlainBest = out.Best
	var leaders []int // positions in out.Trials, in the old ranking's order
	for _, p := range out.Ranking {
		if len(leaders) == c.Top {
			break
		}
		if t := out.Trials[p]; t.Status == Completed && !math.IsNaN(t.Value) {
			leaders = append(leaders, p)
		}
	}
	if len(leaders) < 2 {
		return nil
	}
	type task struct{ pos, k int }
	var tasks []task
	for _, p := range leaders {
		out.Trials[p].Repeats = make([]Repeat, c.Seeds)
		for k := 1; k <= c.Seeds; k++ {
			tasks = append(tasks, task{p, k})
		}
	}
	done := make([]bool, len(tasks))
	for j, tk := range tasks {
		if rec, ok := restored[[2]int{out.Trials[tk.pos].Index, tk.k}]; ok {
			out.Trials[tk.pos].Repeats[tk.k-1], done[j] = rec, true
		}
	}
	slots := newSlots(s.cfg.Workers)
	var wg sync.WaitGroup
	for j, tk := range tasks {
		if done[j] {
			continue
		}
		if !slots.take(ctx) {
			break
		}
		wg.Go(func() {
			defer slots.give()
			rec, err := s.runRepeat(ctx, out.Trials[tk.pos], tk.k)
			if err != nil && ctx.Err() != nil {
				return // stopped by the search's end: not a finished repeat
			}
			out.Trials[tk.pos].Repeats[tk.k-1], done[j] = rec, true
			if s.cfg.OnRepeatDone != nil {
				s.doneMu.Lock()
				s.cfg.OnRepeatDone(rec)
				s.doneMu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		n := 0
		for _, d := range done {
			if d {
				n++
			}
		}
		return fmt.Errorf("search: stopped while confirming the %d best trials, with %d of %d repeats finished: %w", len(leaders), n, len(tasks), err)
	}
	for _, p := range leaders {
		t := &out.Trials[p]
		t.Runs, t.Confirmed = 1+len(t.Repeats), confirmMean(*t)
		for _, r := range t.Repeats {
			out.ConfirmEpochs += r.Epochs
		}
	}
	order := append([]int(nil), leaders...)
	maximize := s.cfg.Maximize
	sort.SliceStable(order, func(a, b int) bool {
		x, y := out.Trials[order[a]].Confirmed, out.Trials[order[b]].Confirmed
		if nx, ny := math.IsNaN(x), math.IsNaN(y); nx != ny {
			return ny
		}
		return better(x, y, maximize) && !better(y, x, maximize)
	})
	ranking := append([]int(nil), order...)
	for _, p := range out.Ranking {
		if out.Trials[p].Runs == 0 {
			ranking = append(ranking, p)
		}
	}
	out.Ranking, out.Best, out.Confirmed = ranking, ranking[0], order
	return nil
}

// runRepeat runs the objective on repeat k of trial t: the trial's parameters with the
// repeat's seed. It is never pruned: its reports only check the context.
func (s *searchRun) runRepeat(ctx context.Context, t TrialResult, k int) (Repeat, error) {
	tr := Trial{Index: t.Index, Round: t.Round, Params: t.Params, Seed: s.cfg.RepeatSeed(t.Index, k), Repeat: k}
	rec := Repeat{Index: t.Index, Repeat: k, Seed: tr.Seed}
	var mu sync.Mutex
	report := func(epoch int, _ float64) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		mu.Lock()
		rec.Epochs = max(rec.Epochs, epoch)
		mu.Unlock()
		return true, nil
	}
	start := time.Now()
	res, err := callObjective(ctx, s.objective, tr, report)
	mu.Lock()
	defer mu.Unlock()
	rec.Seconds = time.Since(start).Seconds()
	if err != nil {
		rec.Value, rec.Err = math.NaN(), err.Error()
		return rec, err
	}
	rec.Value, rec.Metrics = res.Value, res.Metrics
	return rec, nil
}

// restoreRepeats checks the repeat records of an interrupted run against the search's seeds
// and returns the finished ones by (trial, repeat); failed ones run again.
func (c Config) restoreRepeats() (map[[2]int]Repeat, error) {
	out := map[[2]int]Repeat{}
	for _, rec := range c.RestoreRepeats {
		switch {
		case rec.Index < 0 || rec.Index >= c.Trials:
			return nil, fmt.Errorf("search: restore: repeat of trial %d, outside the search's %d trials", rec.Index, c.Trials)
		case rec.Repeat < 1 || rec.Repeat > c.Confirm.Seeds:
			continue // a repeat this search does not run (confirm.seeds lowered): ignored
		case rec.Seed != c.RepeatSeed(rec.Index, rec.Repeat):
			return nil, fmt.Errorf("search: restore: repeat %d of trial %d has seed %d, not %d: the record comes from another search", rec.Repeat, rec.Index, rec.Seed, c.RepeatSeed(rec.Index, rec.Repeat))
		}
		if rec.Err == "" && !math.IsNaN(rec.Value) {
			out[[2]int{rec.Index, rec.Repeat}] = rec
		}
	}
	return out, nil
}
