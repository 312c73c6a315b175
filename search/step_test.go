package search

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// spreadSearch runs a search as an engine that spreads trials over workers does with Steps: a
// "store" holds finished records and the published progress of the trials in progress, and
// segments of trials run one after another in an order drawn from rng. A segment ends at a
// report whose decision waits on a trial below (paused), or when the trial ends; with
// probability lose, a segment is lost (its worker died) before it publishes anything, and
// runs again later from the last published state. The objective is deterministic, so a
// segment that continues a trial replays it from its start up to the published reports.
// It returns the records by index and how many segments paused and were lost.
func spreadSearch(t *testing.T, cfg Config, obj Objective, rng *rand.Rand, lose float64) (recs []TrialResult, paused, lost int) {
	t.Helper()
	s, err := NewSteps(cfg)
	if err != nil {
		t.Fatal(err)
	}
	finished := map[int]TrialResult{}
	progress := map[int]*TrialProgress{}
	view := func(j int) ([]Point, bool) {
		if rec, ok := finished[j]; ok {
			return rec.History, true
		}
		if p := progress[j]; p != nil {
			return p.History, false
		}
		return nil, false
	}
	for len(finished) < s.Trials() {
		// The trials that can run now: not finished, of a round whose region is known, and
		// not waiting on a decision that cannot be made yet.
		var ready []int
		for i := range s.Trials() {
			if _, done := finished[i]; done {
				continue
			}
			if _, ok := s.Trial(i, finished); !ok {
				continue
			}
			if p := progress[i]; p != nil {
				q := *p
				if decided, _ := s.Judge(i, &q, view); !decided {
					continue
				}
			}
			ready = append(ready, i)
		}
		if len(ready) == 0 {
			t.Fatalf("no trial can run with %d of %d finished: the search is stuck", len(finished), s.Trials())
		}
		i := ready[rng.IntN(len(ready))]
		trial, _ := s.Trial(i, finished)
		p := &TrialProgress{}
		if old := progress[i]; old != nil {
			*p = *old
			p.History = slices.Clone(old.History)
		}
		decided, cont := s.Judge(i, p, view)
		if !decided {
			t.Fatalf("trial %d was ready but its decision is not", i)
		}
		stored := len(p.History)
		prunedAt := 0
		if !cont {
			prunedAt = p.History[stored-1].Epoch
		}
		errPaused := errors.New("paused")
		k := 0
		report := func(epoch int, value float64) (bool, error) {
			if k < stored { // replay of a published report
				if p.History[k] != (Point{epoch, value}) {
					t.Fatalf("trial %d: replayed report %d is %v, published %v: the objective is not deterministic", i, k, Point{epoch, value}, p.History[k])
				}
				k++
				return k < stored || cont, nil
			}
			k++
			decided, c, err := s.Report(i, p, epoch, value, view)
			switch {
			case err != nil:
				return false, err
			case !decided:
				return false, errPaused
			case !c:
				prunedAt = epoch
			}
			return c, nil
		}
		res, err := callObjective(context.Background(), obj, trial, report)
		if rng.Float64() < lose {
			lost++
			continue
		}
		if errors.Is(err, errPaused) {
			paused++
			progress[i] = p
			continue
		}
		rec := TrialResult{Trial: trial, History: p.History}
		if n := len(p.History); n > 0 {
			rec.Epochs = p.History[n-1].Epoch
		}
		switch {
		case err != nil:
			rec.Status, rec.Value, rec.Err = Failed, math.NaN(), err.Error()
		case prunedAt > 0:
			rec.Status, rec.Value, rec.Metrics, rec.PrunedAt = Pruned, res.Value, res.Metrics, prunedAt
		default:
			rec.Status, rec.Value, rec.Metrics = Completed, res.Value, res.Metrics
		}
		finished[i] = rec
		delete(progress, i)
	}
	recs = make([]TrialResult, s.Trials())
	for i := range recs {
		recs[i] = finished[i]
	}
	return recs, paused, lost
}

// TestStepsSameAsRun: a search spread with Steps, in random orders with paused and lost
// segments, makes exactly the trials and decisions of Run, and Run restoring its records
// returns Run's outcome.
func TestStepsSameAsRun(t *testing.T) {
	s := mustSpace(t, noisySpace, nil)
	for _, v := range searchVariants(s, 2) {
		prune := v.cfg.Prune
		t.Run(v.name, func(t *testing.T) {
			cfg := v.cfg
			cfg.Workers = 1
			const epochs = 9
			obj := noisyObjective(epochs, func(i, e int) time.Duration { return 0 }, nil)
			ref, err := Run(context.Background(), cfg, obj)
			if err != nil {
				t.Fatal(err)
			}
			checkReference(t, ref, prune)
			totalPaused, totalLost := 0, 0
			for seed := range uint64(4) {
				recs, paused, lost := spreadSearch(t, cfg, obj, rand.New(rand.NewPCG(seed, 7)), 0.15)
				totalPaused += paused
				totalLost += lost
				for i, want := range comparable(ref).Trials {
					got := comparable(Outcome{Trials: []TrialResult{recs[i]}}).Trials[0]
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("order %d: trial %d differs from Run's:\n got  %+v\n want %+v", seed, i, got, want)
					}
				}
				c := cfg
				c.Restore = recs
				out, err := Run(context.Background(), c, obj)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := comparable(out), comparable(ref); !reflect.DeepEqual(got, want) {
					t.Fatalf("order %d: Run restoring the spread records: best %d, Run's %d; outcomes differ", seed, got.Best, want.Best)
				}
			}
			if prune.Method != PruneNone && totalPaused == 0 {
				t.Error("no segment paused: the test did not exercise decisions that wait")
			}
			if totalLost == 0 {
				t.Error("no segment was lost: the test did not exercise segments run again")
			}
		})
	}
}

func TestStepsTrialWaitsForEarlierRounds(t *testing.T) {
	s := mustSpace(t, noisySpace, nil)
	st, err := NewSteps(Config{Space: s, Trials: 6, Rounds: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	finished := map[int]TrialResult{}
	if _, ok := st.Trial(2, finished); !ok {
		t.Error("a trial of round 0 must not wait")
	}
	for i := range 2 {
		finished[i] = TrialResult{Status: Completed, Value: float64(i)}
	}
	if _, ok := st.Trial(3, finished); ok {
		t.Error("trial 3 (round 1) is ready while trial 2 (round 0) has not finished")
	}
	finished[2] = TrialResult{Status: Failed, Value: math.NaN()}
	if _, ok := st.Trial(3, finished); !ok {
		t.Error("trial 3 is not ready with every trial of round 0 finished")
	}
}

func TestStepsReportOrder(t *testing.T) {
	s := mustSpace(t, noisySpace, nil)
	st, err := NewSteps(Config{Space: s, Trials: 3, Seed: 1, Prune: PruneConfig{Method: PruneASHA, MinEpochs: 1, Reduction: 2}})
	if err != nil {
		t.Fatal(err)
	}
	nothing := func(int) ([]Point, bool) { return nil, false }
	p := &TrialProgress{}
	if decided, _, err := st.Report(1, p, 1, 0.5, nothing); err != nil || decided {
		t.Fatalf("trial 1 decided (%v, %v) with trial 0 unknown", decided, err)
	}
	if _, _, err := st.Report(1, p, 2, 0.5, nothing); err == nil {
		t.Error("a report while one waits for its decision is not an error")
	}
	q := &TrialProgress{History: []Point{{Epoch: 3}}}
	if _, _, err := st.Report(0, q, 3, 0.5, nothing); err == nil {
		t.Error("a report of an epoch that does not increase is not an error")
	}
}

// TestStepsDrawable checks that Drawable lists exactly the trials Trial can draw, with the
// same Params, for the zoom and the TPE sampler, on finished sets with gaps.
func TestStepsDrawable(t *testing.T) {
	s := mustSpace(t, noisySpace, nil)
	for _, v := range searchVariants(s, 3) {
		t.Run(v.name, func(t *testing.T) {
			cfg := v.cfg
			cfg.Workers = 1
			ref, err := Run(context.Background(), cfg, noisyObjective(5, func(i, e int) time.Duration { return 0 }, nil))
			if err != nil {
				t.Fatal(err)
			}
			steps, err := NewSteps(cfg)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(9, 9))
			sawSome, sawGap := false, false
			for round := range 20 {
				finished := map[int]TrialResult{}
				upTo := rng.IntN(cfg.Trials + 1)
				for i := range upTo {
					if rng.Float64() < 0.9 {
						finished[i] = ref.Trials[i]
					}
				}
				got := steps.Drawable(finished)
				for i := range cfg.Trials {
					want, ok := steps.Trial(i, finished)
					g, has := got[i]
					if ok != has || (ok && !reflect.DeepEqual(g, want)) {
						t.Fatalf("case %d: trial %d: Drawable %v %+v, Trial %v %+v", round, i, has, g, ok, want)
					}
					if ok && i > 0 {
						sawSome = true
					}
					if !ok {
						sawGap = true
					}
				}
			}
			if !sawSome || !sawGap {
				t.Errorf("the cases drew no later trial (%v) or left none undrawable (%v)", sawSome, sawGap)
			}
		})
	}
}
