package search

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// alwaysContinue is a Report that never stops a trial.
func alwaysContinue(int, float64) (bool, error) { return true, nil }

// checkConfirmed checks an outcome's confirmation against the objective run here on its
// own: every leader's repeats are the objective on the leader's parameters with the repeat
// seeds, its Confirmed value their mean with its own value, the leaders are the best
// completed trials by value, and the ranking starts with them by Confirmed value.
func checkConfirmed(t *testing.T, out Outcome, cfg Config, obj Objective) {
	t.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var leaders []int
	for p, tr := range out.Trials {
		if tr.Status == Completed {
			leaders = append(leaders, p)
		}
	}
	// The Top best completed by their own value, computed here without rankTrials.
	for a := range leaders {
		for b := a + 1; b < len(leaders); b++ {
			x, y := out.Trials[leaders[a]], out.Trials[leaders[b]]
			if better(y.Value, x.Value, cfg.Maximize) || (y.Value == x.Value && y.Index < x.Index) {
				leaders[a], leaders[b] = leaders[b], leaders[a]
			}
		}
	}
	leaders = leaders[:min(cfg.Confirm.Top, len(leaders))]
	if len(out.Confirmed) != len(leaders) || len(leaders) < 2 {
		t.Fatalf("%d trials confirmed, want the %d best completed (confirm top = %d), at least 2", len(out.Confirmed), len(leaders), cfg.Confirm.Top)
	}
	want := map[int]bool{}
	for _, p := range leaders {
		want[p] = true
	}
	for _, p := range out.Confirmed {
		if !want[p] {
			t.Errorf("trial %d was confirmed; the best completed are at %v", out.Trials[p].Index, leaders)
		}
	}
	if out.PlainBest != leaders[0] {
		t.Errorf("PlainBest = %d, want the best completed trial by value, %d", out.PlainBest, leaders[0])
	}
	for p, tr := range out.Trials {
		if !want[p] {
			if tr.Runs != 0 || tr.Repeats != nil {
				t.Errorf("trial %d was not a leader but has %d runs, %d repeats", tr.Index, tr.Runs, len(tr.Repeats))
			}
			continue
		}
		if tr.Runs != 1+cfg.Confirm.Seeds || len(tr.Repeats) != cfg.Confirm.Seeds {
			t.Fatalf("trial %d: %d runs, %d repeats, want %d and %d", tr.Index, tr.Runs, len(tr.Repeats), 1+cfg.Confirm.Seeds, cfg.Confirm.Seeds)
		}
		sum := tr.Value
		for k := 1; k <= cfg.Confirm.Seeds; k++ {
			seed := cfg.RepeatSeed(tr.Index, k)
			if seed == tr.Seed {
				t.Fatalf("trial %d: repeat %d has the trial's own seed", tr.Index, k)
			}
			res, err := obj(context.Background(), Trial{Index: tr.Index, Round: tr.Round, Params: tr.Params, Seed: seed, Repeat: k}, alwaysContinue)
			if err != nil {
				t.Fatal(err)
			}
			r := tr.Repeats[k-1]
			if r.Index != tr.Index || r.Repeat != k || r.Seed != seed || r.Value != res.Value {
				t.Errorf("trial %d repeat %d: %+v, want seed %d value %g", tr.Index, k, r, seed, res.Value)
			}
			sum += res.Value
		}
		if mean := sum / float64(1+cfg.Confirm.Seeds); math.Abs(tr.Confirmed-mean) > 1e-12*math.Abs(mean) {
			t.Errorf("trial %d: Confirmed %g, want the mean of its runs %g", tr.Index, tr.Confirmed, mean)
		}
	}
	for a := 1; a < len(out.Confirmed); a++ {
		x, y := out.Trials[out.Confirmed[a-1]].Confirmed, out.Trials[out.Confirmed[a]].Confirmed
		if better(y, x, cfg.Maximize) {
			t.Errorf("confirmed trials out of order: %g before %g", x, y)
		}
	}
	if !reflect.DeepEqual(out.Ranking[:len(out.Confirmed)], out.Confirmed) || out.Best != out.Confirmed[0] {
		t.Errorf("ranking %v, best %d: want it to start with the confirmed trials %v", out.Ranking, out.Best, out.Confirmed)
	}
	if len(out.Ranking) != len(rankTrials(out.Trials, cfg.Maximize)) {
		t.Errorf("ranking has %d trials, want every trial that did not fail", len(out.Ranking))
	}
}

func TestConfirmDeterministicAcrossWorkers(t *testing.T) {
	s := mustSpace(t, noisySpace, nil)
	cfg := Config{Space: s, Trials: 30, Rounds: 3, Seed: 42, Prune: PruneConfig{Method: PruneASHA, MinEpochs: 1, Reduction: 3},
		Confirm: ConfirmConfig{Top: 3, Seeds: 2}}
	const epochs = 9
	var ref Outcome
	for k, r := range []struct {
		name    string
		workers int
		delay   func(i, e int) time.Duration
	}{
		{"workers=1", 1, func(i, e int) time.Duration { return 0 }},
		{"workers=3 jitter", 3, jitter(3, 2*time.Millisecond)},
		{"workers=8 jitter", 8, jitter(8, 2*time.Millisecond)},
	} {
		c := cfg
		c.Workers = r.workers
		out, err := Run(context.Background(), c, noisyObjective(epochs, r.delay, nil))
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		if k == 0 {
			ref = out
			checkConfirmed(t, out, cfg, noisyObjective(epochs, func(int, int) time.Duration { return 0 }, nil))
			if out.ConfirmEpochs == 0 {
				t.Error("ConfirmEpochs = 0: the repeats reported no epoch")
			}
			continue
		}
		if got, want := comparable(out), comparable(ref); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: the outcome differs from workers=1 (best %d vs %d, confirmed %v vs %v)", r.name, got.Best, want.Best, got.Confirmed, want.Confirmed)
		}
	}
}

// noisyFinal is the synthetic objective with noise of standard deviation sigma from the
// trial's seed, as a network's val loss varies with its seed: the value a search sees is one
// draw, synthetic(params) is the truth.
func noisyFinal(sigma float64) Objective {
	return func(_ context.Context, t Trial, report Report) (Result, error) {
		rng := rand.New(rand.NewPCG(t.Seed, 3))
		v := synthetic(t.Params) + sigma*rng.NormFloat64()
		if _, err := report(1, v); err != nil {
			return Result{}, err
		}
		return Result{Value: v}, nil
	}
}

// TestConfirmPicksTrulyBetter searches the synthetic objective seen through noise (σ = 0.4,
// about the spread of the best trials' true values after the zoom) and compares, in the
// same search, the trial that confirmation chooses with the one its own value alone would
// choose (Outcome.PlainBest), on their true objective. The best single draw is partly luck
// (its value is far below its truth); the mean over 4 runs of the 5 leaders is less so.
// Over 60 seeds the measured mean true objective is 0.538 with confirmation against 0.609
// without (the best single value overstates its truth by 0.40), better in 11 seeds, worse in
// 5, the same trial in 44; the test asks for a margin of at least 0.035 (half the measured
// one) and more wins than losses. Without confirmation both choices are the same trial.
func TestConfirmPicksTrulyBetter(t *testing.T) {
	s := mustSpace(t, syntheticSpace, nil)
	const seeds, sigma = 60, 0.4
	var trueConfirmed, truePlain, luck float64
	wins, losses := 0, 0
	for seed := uint64(1); seed <= seeds; seed++ {
		out, err := Run(context.Background(), Config{Space: s, Trials: 60, Rounds: 3, Seed: seed, Prune: PruneConfig{Method: PruneNone}, Workers: 4,
			Confirm: ConfirmConfig{Top: 5, Seeds: 3}}, noisyFinal(sigma))
		if err != nil {
			t.Fatal(err)
		}
		chosen, plain := out.Trials[out.Best], out.Trials[out.PlainBest]
		tc, tp := synthetic(chosen.Params), synthetic(plain.Params)
		trueConfirmed += tc / seeds
		truePlain += tp / seeds
		luck += (tp - plain.Value) / seeds
		switch {
		case tc < tp:
			wins++
		case tc > tp:
			losses++
		}
	}
	t.Logf("over %d seeds: true objective of the confirmed choice %.4f, of the best single value %.4f (which overstated its truth by %.4f); confirmation better in %d, worse in %d",
		seeds, trueConfirmed, truePlain, luck, wins, losses)
	if luck < 0.1 {
		t.Fatalf("the best single value overstates its truth by only %.4f on average: the test's noise does not make the plain choice lucky", luck)
	}
	if trueConfirmed > truePlain-0.035 {
		t.Errorf("confirmation's choice has true objective %.4f on average, the plain best %.4f: want it lower by ≥ 0.035", trueConfirmed, truePlain)
	}
	if wins <= losses {
		t.Errorf("confirmation chose the truly better trial in %d seeds and the worse in %d: want more wins", wins, losses)
	}
}

func TestConfirmFailedRepeatAndFewLeaders(t *testing.T) {
	s := mustSpace(t, `x = { uniform = [0.0, 1.0] }`, nil)
	// Repeat 1 of the trial with the best value fails: its confirmed value is NaN and it ranks
	// after the other leaders.
	base := func(_ context.Context, tr Trial, _ Report) (Result, error) {
		return Result{Value: tr.Params["x"].(float64)}, nil
	}
	cfg := Config{Space: s, Trials: 8, Seed: 5, Prune: PruneConfig{Method: PruneNone}, Workers: 2, Confirm: ConfirmConfig{Top: 3, Seeds: 2}}
	plain, err := Run(context.Background(), Config{Space: s, Trials: 8, Seed: 5, Prune: PruneConfig{Method: PruneNone}, Workers: 2}, base)
	if err != nil {
		t.Fatal(err)
	}
	first := plain.Trials[plain.Best].Index
	out, err := Run(context.Background(), cfg, func(ctx context.Context, tr Trial, r Report) (Result, error) {
		if tr.Index == first && tr.Repeat == 1 {
			return Result{}, errors.New("diverged")
		}
		return base(ctx, tr, r)
	})
	if err != nil {
		t.Fatal(err)
	}
	bad := out.Trials[plain.Best]
	if bad.Repeats[0].Err != "diverged" || !math.IsNaN(bad.Confirmed) {
		t.Fatalf("trial %d with a failed repeat: %+v, confirmed %g: want the error kept and NaN", first, bad.Repeats, bad.Confirmed)
	}
	if out.Confirmed[2] != plain.Best || out.Best == plain.Best || out.PlainBest != plain.Best {
		t.Errorf("confirmed %v, best %d, plain best %d: want trial %d last of the leaders", out.Confirmed, out.Best, out.PlainBest, first)
	}

	// Fewer than 2 completed trials: nothing to choose between, nothing runs.
	var repeats atomic.Int32
	one, err := Run(context.Background(), Config{Space: s, Trials: 3, Seed: 1, Prune: PruneConfig{Method: PruneNone}, Confirm: ConfirmConfig{Top: 3, Seeds: 2}},
		func(_ context.Context, tr Trial, _ Report) (Result, error) {
			if tr.Repeat > 0 {
				repeats.Add(1)
			}
			if tr.Index > 0 {
				return Result{}, errors.New("fails")
			}
			return Result{Value: 1}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if repeats.Load() != 0 || one.Confirmed != nil || one.Best != one.PlainBest {
		t.Errorf("one completed trial: %d repeats ran, confirmed %v: want none", repeats.Load(), one.Confirmed)
	}
}

func TestConfirmRestore(t *testing.T) {
	s := mustSpace(t, noisySpace, nil)
	cfg := Config{Space: s, Trials: 16, Rounds: 2, Seed: 7, Workers: 4, Prune: PruneConfig{MinEpochs: 1, Reduction: 2}, Confirm: ConfirmConfig{Top: 3, Seeds: 2}}
	var trials []TrialResult
	var repeats []Repeat
	full := cfg
	full.OnTrialDone = func(r TrialResult) { trials = append(trials, r) }
	full.OnRepeatDone = func(r Repeat) { repeats = append(repeats, r) } // never concurrently (-race checks it)
	want, err := Run(context.Background(), full, noisyObjective(6, jitter(1, time.Millisecond), nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(repeats) != 6 {
		t.Fatalf("OnRepeatDone called %d times, want 3 leaders × 2 seeds", len(repeats))
	}
	// Resume with every trial and the first repeat of each leader: only the second ones run.
	var keep []Repeat
	for _, r := range repeats {
		if r.Repeat == 1 {
			keep = append(keep, r)
		}
	}
	var mu sync.Mutex
	ran := map[[2]int]bool{}
	obj := noisyObjective(6, jitter(2, time.Millisecond), nil)
	resumed := cfg
	resumed.Restore, resumed.RestoreRepeats = trials, keep
	got, err := Run(context.Background(), resumed, func(ctx context.Context, tr Trial, report Report) (Result, error) {
		if tr.Repeat > 0 { // trials that failed run again too
			mu.Lock()
			ran[[2]int{tr.Index, tr.Repeat}] = true
			mu.Unlock()
		}
		return obj(ctx, tr, report)
	})
	if err != nil {
		t.Fatal(err)
	}
	for key := range ran {
		if key[1] != 2 {
			t.Errorf("trial %d repeat %d ran again; only the repeats 2 were not restored", key[0], key[1])
		}
	}
	if len(ran) != 3 {
		t.Errorf("%d repeats ran, want the 3 not restored", len(ran))
	}
	if !reflect.DeepEqual(comparable(got), comparable(want)) {
		t.Error("the resumed search's outcome differs from the uninterrupted one")
	}
	// A repeat record of another search is refused.
	bad := resumed
	bad.RestoreRepeats = []Repeat{{Index: keep[0].Index, Repeat: 1, Seed: keep[0].Seed + 1, Value: 1}}
	if _, err := Run(context.Background(), bad, obj); err == nil || !strings.Contains(err.Error(), "another search") {
		t.Errorf("restoring a repeat of another seed: error %v", err)
	}
}
