package search

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"
)

func TestASHAContinue(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		own      float64
		others   []float64
		eta      int
		maximize bool
		want     bool
	}{
		{5, nil, 3, false, true},                       // alone: continues
		{5, []float64{4}, 3, false, false},             // n = 2 < η: only the best continues
		{4, []float64{4}, 3, false, true},              // a tie is in its favour
		{3, []float64{4, 5}, 3, false, true},           // n = 3: top 1
		{4, []float64{3, 5}, 3, false, false},          //
		{4, []float64{3, 5, 6, 7, 8}, 3, false, true},  // n = 6: top 2, one better
		{5, []float64{3, 4, 6, 7, 8}, 3, false, false}, // two better
		{5, []float64{3, 4, 6, 7, 8}, 2, false, true},  // η = 2: top 3
		{5, []float64{3, 4, 6, 7, 8}, 3, true, false},  // maximise: 6, 7, 8 are better
		{7, []float64{3, 4, 6, 5, 8}, 3, true, true},   // maximise: only 8 is better
		{nan, []float64{1, 2, 3}, 2, false, false},     // NaN is the worst
		{1, []float64{nan, nan}, 3, false, true},
	} {
		if got := ashaContinue(c.own, c.others, c.eta, c.maximize); got != c.want {
			t.Errorf("ashaContinue(%g, %v, η=%d, max=%v) = %v, want %v", c.own, c.others, c.eta, c.maximize, got, c.want)
		}
	}
}

func TestMedianContinue(t *testing.T) {
	for _, c := range []struct {
		own      float64
		others   []float64
		maximize bool
		want     bool
	}{
		{4, []float64{3, 5, 9}, false, true},      // median 5
		{6, []float64{3, 5, 9}, false, false},     //
		{4.5, []float64{3, 4, 5, 9}, false, true}, // median 4.5: equal continues
		{4.6, []float64{3, 4, 5, 9}, false, false},
		{4.6, []float64{3, 4, 5, 9}, true, true}, // maximise
		{4.4, []float64{3, 4, 5, 9}, true, false},
	} {
		if got := medianContinue(c.own, c.others, c.maximize); got != c.want {
			t.Errorf("medianContinue(%g, %v, max=%v) = %v, want %v", c.own, c.others, c.maximize, got, c.want)
		}
	}
}

func TestRungs(t *testing.T) {
	if got, want := (PruneConfig{MinEpochs: 3, Reduction: 3}).Rungs(60), []int{3, 9, 27}; !reflect.DeepEqual(got, want) {
		t.Errorf("rungs = %v, want %v", got, want)
	}
	if got, want := (PruneConfig{}).Rungs(10), []int{1, 3, 9}; !reflect.DeepEqual(got, want) {
		t.Errorf("default rungs = %v, want %v", got, want)
	}
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// scripted is an objective that reports curves[trial.Index] (the value at epoch e is
// curves[i][e-1]), sleeping delay(i, e) before each report, and returns the best value it
// reported.
func scripted(curves [][]float64, maximize bool, delay func(i, e int) time.Duration) Objective {
	return func(ctx context.Context, t Trial, report Report) (Result, error) {
		best := math.NaN()
		for e, v := range curves[t.Index] {
			if delay != nil {
				if err := sleepCtx(ctx, delay(t.Index, e+1)); err != nil {
					return Result{}, err
				}
			}
			if math.IsNaN(best) || better(v, best, maximize) {
				best = v
			}
			cont, err := report(e+1, v)
			if err != nil {
				return Result{}, err
			}
			if !cont {
				break
			}
		}
		return Result{Value: best}, nil
	}
}

// expectation is a trial's expected end: completed (prunedAt 0) or pruned at an epoch.
type expectation struct {
	prunedAt int
	epochs   int
}

func checkEnds(t *testing.T, out Outcome, curves [][]float64, want []expectation) {
	t.Helper()
	if len(out.Trials) != len(want) {
		t.Fatalf("%d trials, want %d", len(out.Trials), len(want))
	}
	for i, w := range want {
		tr := out.Trials[i]
		status := Completed
		if w.prunedAt > 0 {
			status = Pruned
		}
		if tr.Status != status || tr.PrunedAt != w.prunedAt || tr.Epochs != w.epochs {
			t.Errorf("trial %d: %s at epoch %d after %d epochs, want %s at %d after %d", i, tr.Status, tr.PrunedAt, tr.Epochs, status, w.prunedAt, w.epochs)
		}
		// The partial history is kept, as reported.
		if len(tr.History) != w.epochs {
			t.Errorf("trial %d: history of %d points, want %d", i, len(tr.History), w.epochs)
			continue
		}
		for e, p := range tr.History {
			if p.Epoch != e+1 || p.Value != curves[i][e] {
				t.Errorf("trial %d: history[%d] = %+v, want epoch %d value %g", i, e, p, e+1, curves[i][e])
			}
		}
	}
}

// arrivals are delays that make trials report in different orders: by index, in reverse (the
// highest index first, so that every judgement waits), and scrambled.
var arrivals = map[string]func(i, e int) time.Duration{
	"index order":   func(i, e int) time.Duration { return time.Duration(i) * 300 * time.Microsecond },
	"reverse order": func(i, e int) time.Duration { return time.Duration(8-i) * 2 * time.Millisecond },
	"scrambled":     func(i, e int) time.Duration { return time.Duration((i*7+e*3)%5) * time.Millisecond },
}

func TestASHADecisionsOnHandMadeHistories(t *testing.T) {
	// Minimise, η = 2, rungs at epochs 1, 2, 4; six epochs each. A trial's value at a rung is
	// its best so far. Derivation, by index:
	//  0: judged against nobody: completes.
	//  1: rung 1: 8 vs {9}: best of 2, continues; rung 2: 8 vs {8}: a tie continues;
	//     rung 4: 8 vs {6}: n = 2, keep 1, one better: pruned at 4.
	//  2: best so far 7: rung 1 vs {9, 8}: continues; rung 2 vs {8, 8}: continues;
	//     rung 4 vs {6, 8} (trial 1 reached epoch 4 before it was pruned): pruned at 4.
	//  3: rung 1: 10 vs {9, 8, 7}: n = 4, keep 2, three better: pruned at 1 (its later
	//     values, the best of all, are never seen).
	//  4: rung 1: 8.5 vs {9, 8, 7, 10}: n = 5, keep 2, two better (8, 7): pruned at 1.
	//  5: rung 1: 6 vs {9, 8, 7, 10, 8.5}: continues; rung 2: 6 vs {8, 8, 7} (3 and 4
	//     stopped before epoch 2): continues; rung 4: 6 vs {6, 8, 7}: a tie, continues.
	curves := [][]float64{
		{9, 8, 7, 6, 5, 4},
		{8, 8, 8, 8, 8, 8},
		{7, 9, 9, 9, 9, 9},
		{10, 3, 2, 1, 1, 1},
		{8.5, 7.5, 5, 5, 5, 5},
		{6, 6, 6, 6, 3, 3},
	}
	want := []expectation{{0, 6}, {4, 4}, {4, 4}, {1, 1}, {1, 1}, {0, 6}}
	s := mustSpace(t, `x = { uniform = [0.0, 1.0] }`, nil)
	for name, delay := range arrivals {
		for _, workers := range []int{1, 3, 6} {
			t.Run(fmt.Sprintf("%s/workers=%d", name, workers), func(t *testing.T) {
				out, err := Run(context.Background(), Config{Space: s, Trials: len(curves), Workers: workers,
					Prune: PruneConfig{Method: PruneASHA, MinEpochs: 1, Reduction: 2}}, scripted(curves, false, delay))
				if err != nil {
					t.Fatal(err)
				}
				checkEnds(t, out, curves, want)
				// The best completed trial: 5 (best value 3) over 0 (4).
				if out.Best != 5 {
					t.Errorf("best = trial %d, want 5", out.Best)
				}
				if got := out.Epochs; got != 6+4+4+1+1+6 {
					t.Errorf("epochs = %d, want 22", got)
				}
				// With one worker, every lower trial has finished: nothing waits. In reverse
				// order, the faster higher trials wait for the lower ones.
				wait := 0.0
				for _, tr := range out.Trials {
					wait += tr.WaitSeconds
				}
				if workers == 1 && wait != 0 {
					t.Errorf("waited %gs with one worker", wait)
				}
				if name == "reverse order" && workers == 6 && wait == 0 {
					t.Error("no trial waited, though higher trials report first")
				}
			})
		}
	}
}

func TestMedianDecisionsOnHandMadeHistories(t *testing.T) {
	// Minimise, min_epochs 2, min_trials 2: trials 0 and 1 have too few others to be judged.
	//  2: best so far 4, 4, 4, 4: epoch 2: median of {4, 5} is 4.5, continues; epoch 3:
	//     median of {3, 4} is 3.5, 4 is worse: stopped at 3.
	//  3: best so far 7, 3, 2, 1: epoch 2: median of {4, 5, 4} = 4, continues; epoch 3:
	//     median of {3, 4, 4} = 4, continues; epoch 4: {2, 3} (2 stopped at 3), median 2.5:
	//     continues.
	//  4: epoch 2: 5 against the median of {4, 5, 4, 3} = 4: stopped at 2.
	curves := [][]float64{
		{5, 4, 3, 2},
		{6, 5, 4, 3},
		{4, 6, 6, 6},
		{7, 3, 2, 1},
		{5, 5, 5, 5},
	}
	want := []expectation{{0, 4}, {0, 4}, {3, 3}, {0, 4}, {2, 2}}
	s := mustSpace(t, `x = { uniform = [0.0, 1.0] }`, nil)
	for name, delay := range arrivals {
		for _, workers := range []int{1, 2, 5} {
			t.Run(fmt.Sprintf("%s/workers=%d", name, workers), func(t *testing.T) {
				out, err := Run(context.Background(), Config{Space: s, Trials: len(curves), Workers: workers,
					Prune: PruneConfig{Method: PruneMedian, MinEpochs: 2, MinTrials: 2}}, scripted(curves, false, delay))
				if err != nil {
					t.Fatal(err)
				}
				checkEnds(t, out, curves, want)
			})
		}
	}
}

func TestASHAMaximizeAcrossRounds(t *testing.T) {
	// Maximise, η = 3, rungs 1 and 3; two rounds of three trials. Trials of round 1 are
	// judged against round 0's too (all lower indices).
	//  0: completes. 1: rung 1: 0.5 vs {0.4}: continues; rung 3: 0.5 vs {0.6}: pruned at 3.
	//  2: rung 1: 0.3 vs {0.4, 0.5}: n = 3, keep 1: pruned at 1.
	//  3 (round 1): rung 1: 0.45 vs {0.4, 0.5, 0.3}: n = 4, keep 1, 0.5 better: pruned at 1.
	//  4: rung 1: 0.7 vs {0.4, 0.5, 0.3, 0.45}: continues; rung 3: 0.7 vs {0.6, 0.5}:
	//     continues, completes.
	//  5: rung 1: 0.2: pruned at 1.
	curves := [][]float64{
		{0.4, 0.5, 0.6, 0.6},
		{0.5, 0.5, 0.5, 0.9},
		{0.3, 0.9, 0.9, 0.9},
		{0.45, 0.9, 0.9, 0.9},
		{0.7, 0.7, 0.7, 0.8},
		{0.2, 0.3, 0.4, 0.5},
	}
	want := []expectation{{0, 4}, {3, 3}, {1, 1}, {1, 1}, {0, 4}, {1, 1}}
	s := mustSpace(t, `x = { uniform = [0.0, 1.0] }`, nil)
	for _, workers := range []int{1, 4} {
		out, err := Run(context.Background(), Config{Space: s, Trials: 6, Rounds: 2, Workers: workers, Maximize: true,
			Prune: PruneConfig{MinEpochs: 1, Reduction: 3}}, scripted(curves, true, arrivals["reverse order"]))
		if err != nil {
			t.Fatal(err)
		}
		checkEnds(t, out, curves, want)
		if out.Best != 4 {
			t.Errorf("workers %d: best = trial %d, want 4 (0.8)", workers, out.Best)
		}
	}
}
