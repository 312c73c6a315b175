package search

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const noisySpace = `
lr = { log_uniform = [1e-5, 1.0] }
dropout = { uniform = [0.0, 0.5] }
units = { log_int = [4, 512] }
act = { choice = ["relu", "tanh", "gelu", "elu"] }
"optimizer.momentum" = { uniform = [0.8, 0.99], when = { act = "relu" } }
`

// noisyObjective trains nothing: its value at epoch e is the synthetic objective plus a decay
// in e and noise from the trial's seed, so it depends on the trial only. Some trials fail,
// one panics. delay(i, e) is slept before each report (it may vary between runs).
func noisyObjective(epochs int, delay func(i, e int) time.Duration, firstReports *orderLog) Objective {
	return func(ctx context.Context, t Trial, report Report) (Result, error) {
		rng := rand.New(rand.NewPCG(t.Seed, 1))
		base := synthetic(t.Params)
		best := math.Inf(1)
		for e := 1; e <= epochs; e++ {
			if err := sleepCtx(ctx, delay(t.Index, e)); err != nil {
				return Result{}, err
			}
			if t.Params["act"] == "elu" && e == 2 && t.Index%2 == 0 {
				return Result{}, fmt.Errorf("diverged at epoch %d", e)
			}
			if t.Params["act"] == "elu" && e == 3 && t.Index%4 == 1 {
				panic("broken invariant")
			}
			v := base + 2/float64(e) + 0.05*rng.NormFloat64()
			best = math.Min(best, v)
			if e == 1 && firstReports != nil {
				firstReports.add(t.Index)
			}
			cont, err := report(e, v)
			if err != nil {
				return Result{}, err
			}
			if !cont {
				break
			}
		}
		return Result{Value: best, Metrics: map[string]float64{"base": base}}, nil
	}
}

// orderLog records the order of events by trial index.
type orderLog struct {
	mu    sync.Mutex
	order []int
}

func (o *orderLog) add(i int) {
	o.mu.Lock()
	o.order = append(o.order, i)
	o.mu.Unlock()
}

// outOfOrder reports whether a trial was logged before a trial with a lower index.
func (o *orderLog) outOfOrder() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k := 1; k < len(o.order); k++ {
		if o.order[k] < o.order[k-1] {
			return true
		}
	}
	return false
}

// comparable returns the outcome without what may differ between runs (seconds), with NaN
// values made comparable.
func comparable(o Outcome) Outcome {
	c := o
	c.Trials = make([]TrialResult, len(o.Trials))
	for i, t := range o.Trials {
		t.Seconds, t.WaitSeconds = 0, 0
		if math.IsNaN(t.Value) {
			t.Value = -12345
		}
		if t.Repeats != nil {
			reps := make([]Repeat, len(t.Repeats))
			for k, r := range t.Repeats {
				r.Seconds = 0
				if math.IsNaN(r.Value) {
					r.Value = -12345
				}
				reps[k] = r
			}
			t.Repeats = reps
		}
		if math.IsNaN(t.Confirmed) {
			t.Confirmed = -12345
		}
		c.Trials[i] = t
	}
	return c
}

// jitter returns random per-epoch delays of up to max, from a generator of its own (seeded
// per run, so that each run's arrival order differs).
func jitter(seed uint64, maxDelay time.Duration) func(i, e int) time.Duration {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	return func(i, e int) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return time.Duration(rng.Int64N(int64(maxDelay)))
	}
}

// searchVariants are the configs the determinism tests run: the zoom sampler with each
// pruner, and the TPE sampler with ASHA and without pruning.
func searchVariants(s *Space, rounds int) []struct {
	name string
	cfg  Config
} {
	var out []struct {
		name string
		cfg  Config
	}
	for _, prune := range []PruneConfig{{Method: PruneASHA, MinEpochs: 1, Reduction: 3}, {Method: PruneMedian, MinEpochs: 2, MinTrials: 3}, {Method: PruneNone}} {
		out = append(out, struct {
			name string
			cfg  Config
		}{prune.Method, Config{Space: s, Trials: 24, Rounds: rounds, Seed: 42, Prune: prune}})
	}
	for _, prune := range []PruneConfig{{Method: PruneASHA, MinEpochs: 1, Reduction: 3}, {Method: PruneNone}} {
		out = append(out, struct {
			name string
			cfg  Config
		}{"tpe " + prune.Method, Config{Space: s, Trials: 24, Sampler: SamplerTPE, TPE: TPEConfig{Startup: 4, Parallel: 3}, Seed: 42, Prune: prune}})
	}
	return out
}

func TestRunDeterministicAcrossWorkers(t *testing.T) {
	s := mustSpace(t, noisySpace, nil)
	for _, v := range searchVariants(s, 3) {
		prune := v.cfg.Prune
		t.Run(v.name, func(t *testing.T) {
			cfg := v.cfg
			const epochs = 9
			var ref Outcome
			anyOutOfOrder := false
			runs := []struct {
				name    string
				workers int
				delay   func(i, e int) time.Duration
			}{
				{"workers=1", 1, func(i, e int) time.Duration { return 0 }},
				{"workers=2 jitter", 2, jitter(2, 2*time.Millisecond)},
				{"workers=8 jitter", 8, jitter(8, 2*time.Millisecond)},
				// Later trials faster: they overtake the lower ones and wait for them.
				{"workers=8 reversed", 8, func(i, e int) time.Duration { return time.Duration(24-i) * 150 * time.Microsecond }},
				{"workers=24", 24, jitter(24, time.Millisecond)},
			}
			for k, r := range runs {
				c := cfg
				c.Workers = r.workers
				log := &orderLog{}
				out, err := Run(context.Background(), c, noisyObjective(epochs, r.delay, log))
				if err != nil {
					t.Fatalf("%s: %v", r.name, err)
				}
				anyOutOfOrder = anyOutOfOrder || log.outOfOrder()
				if k == 0 {
					ref = out
					checkReference(t, out, prune)
					if cfg.Sampler == SamplerTPE {
						checkTPE(t, out, cfg)
					} else {
						checkZoomed(t, out, cfg)
					}
					continue
				}
				if got, want := comparable(out), comparable(ref); !reflect.DeepEqual(got, want) {
					for i := range want.Trials {
						if i < len(got.Trials) && !reflect.DeepEqual(got.Trials[i], want.Trials[i]) {
							t.Errorf("%s: trial %d differs from workers=1:\n got  %+v\n want %+v", r.name, i, got.Trials[i], want.Trials[i])
						}
					}
					t.Fatalf("%s: the outcome differs from workers=1 (best %d vs %d)", r.name, got.Best, want.Best)
				}
			}
			if !anyOutOfOrder {
				t.Error("no run reported out of index order: the test did not exercise different arrival orders")
			}
		})
	}
}

// checkTPE checks that the reference outcome's later trials were drawn by TPE: the draws
// differ from the random draws of the same seeds.
func checkTPE(t *testing.T, out Outcome, cfg Config) {
	t.Helper()
	full, differ := cfg.Space.Region(), 0
	for _, tr := range out.Trials {
		if !reflect.DeepEqual(tr.Params, cfg.Space.Sample(full, sampleRand(tr.Seed))) {
			differ++
		}
	}
	if differ < len(out.Trials)/2 {
		t.Errorf("only %d of %d trials differ from random draws: TPE did not draw them", differ, len(out.Trials))
	}
}

// checkZoomed checks that the reference outcome's rounds zoomed (the regions, compared
// between worker counts with the rest of the Outcome, are not all the full space), and that
// with pruning a zoom was made from completed trials while pruned ones were there too.
func checkZoomed(t *testing.T, out Outcome, cfg Config) {
	t.Helper()
	if len(out.Regions) != cfg.Rounds || reflect.DeepEqual(out.Regions[1], out.Regions[0]) {
		t.Errorf("reference outcome: regions %+v: want %d, zoomed after round 0", out.Regions, cfg.Rounds)
	}
	sizes := RoundSizes(cfg.Trials, cfg.Rounds)
	var before []TrialResult
	for _, tr := range out.Trials {
		if tr.Round < cfg.Rounds-1 {
			before = append(before, tr)
		}
	}
	count := map[Status]int{}
	for _, tr := range before {
		count[tr.Status]++
	}
	if cfg.Prune.Method != PruneNone && (count[Completed] < 2 || count[Pruned] == 0) {
		t.Errorf("reference outcome: %v in the %d trials before the last round: want ≥ 2 completed and some pruned (the zoom from completed trials)", count, sizes[0]+sizes[1])
	}
}

// checkReference checks that the reference outcome exercises what the determinism test is
// about: failures, a panic, pruning (when on) and a conditional parameter.
func checkReference(t *testing.T, out Outcome, prune PruneConfig) {
	t.Helper()
	count := map[Status]int{}
	panicked := false
	for _, tr := range out.Trials {
		count[tr.Status]++
		if strings.HasPrefix(tr.Err, "panic: broken invariant (at run_test.go:") {
			panicked = true
		}
	}
	if count[Failed] == 0 || !panicked || count[Completed] == 0 {
		t.Errorf("reference outcome: %v, a panic: %v: want failures, a panic and completed trials", count, panicked)
	}
	if (count[Pruned] > 0) != (prune.Method != PruneNone) {
		t.Errorf("reference outcome: %v with pruning %q", count, prune.Method)
	}
	best, ok := out.BestTrial()
	if !ok || best.Status != Completed {
		t.Errorf("best trial %+v: want a completed one", best)
	}
	for _, tr := range out.Trials {
		if tr.Status == Completed && tr.Value < best.Value {
			t.Errorf("trial %d (%g) is better than the best, trial %d (%g)", tr.Index, tr.Value, best.Index, best.Value)
		}
	}
}

func TestRunNoDeadlock(t *testing.T) {
	s := mustSpace(t, `x = { uniform = [0.0, 1.0] }`, nil)
	const n, epochs = 30, 10
	curves := make([][]float64, n)
	for i := range curves {
		rng := rand.New(rand.NewPCG(uint64(i), 3))
		for range epochs {
			curves[i] = append(curves[i], rng.Float64())
		}
	}
	// Higher indices run faster: nearly every judgement waits on a lower trial.
	delay := func(i, e int) time.Duration { return time.Duration(n-i) * 30 * time.Microsecond }
	for _, prune := range []PruneConfig{{Method: PruneASHA, MinEpochs: 1, Reduction: 2}, {Method: PruneMedian, MinTrials: 1}} {
		for _, workers := range []int{1, 2, 3, 7, 16, 64} {
			t.Run(fmt.Sprintf("%s/workers=%d", prune.Method, workers), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				out, err := Run(ctx, Config{Space: s, Trials: n, Rounds: 2, Workers: workers, Prune: prune}, scripted(curves, false, delay))
				if err != nil {
					t.Fatalf("%v (a deadlock ends with the timeout)", err)
				}
				if len(out.Trials) != n {
					t.Fatalf("%d trials, want %d", len(out.Trials), n)
				}
			})
		}
	}
}

func TestRunCancelStopsPromptly(t *testing.T) {
	s := mustSpace(t, `x = { uniform = [0.0, 1.0] }`, nil)
	t.Run("running trials", func(t *testing.T) {
		var started atomic.Int32
		obj := func(ctx context.Context, tr Trial, report Report) (Result, error) {
			started.Add(1)
			for e := 1; e <= 100000; e++ {
				if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
					return Result{}, err
				}
				if _, err := report(e, tr.Params["x"].(float64)); err != nil {
					return Result{}, err
				}
			}
			return Result{}, nil
		}
		checkCancel(t, s, obj, &started, 4)
	})
	t.Run("trials waiting on a lower one", func(t *testing.T) {
		var reported atomic.Int32
		obj := func(ctx context.Context, tr Trial, report Report) (Result, error) {
			if tr.Index == 0 {
				// The lowest trial takes an hour to reach its first rung.
				return Result{}, sleepCtx(ctx, time.Hour)
			}
			reported.Add(1)
			_, err := report(1, 0.5) // waits for trial 0
			return Result{}, err
		}
		checkCancel(t, s, obj, &reported, 3)
	})
}

// checkCancel runs a search on 4 workers, waits until want trials are under way, cancels,
// and checks that Run returns the cancellation promptly with no trial finished (goleak in
// TestMain checks that no goroutine is left).
func checkCancel(t *testing.T, s *Space, obj Objective, under *atomic.Int32, want int32) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		out Outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := Run(ctx, Config{Space: s, Trials: 20, Workers: 4, Prune: PruneConfig{MinEpochs: 1}}, obj)
		done <- result{out, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for under.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d trials under way", under.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	cancel()
	start := time.Now()
	select {
	case r := <-done:
		if el := time.Since(start); el > time.Second {
			t.Errorf("Run returned %v after the cancellation", el)
		}
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", r.err)
		}
		if len(r.out.Trials) != 0 || r.out.Best != -1 {
			t.Errorf("a cancelled search returned %d finished trials, best %d", len(r.out.Trials), r.out.Best)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of the cancellation")
	}
}

func TestRunFailures(t *testing.T) {
	s := mustSpace(t, `x = { uniform = [0.0, 1.0] }`, nil)
	t.Run("some fail", func(t *testing.T) {
		obj := func(ctx context.Context, tr Trial, report Report) (Result, error) {
			switch tr.Index % 3 {
			case 0:
				return Result{}, errors.New("out of memory")
			case 1:
				var idx []int
				_ = idx[tr.Index] // an index-out-of-range panic
			}
			return Result{Value: tr.Params["x"].(float64)}, nil
		}
		out, err := Run(context.Background(), Config{Space: s, Trials: 9, Workers: 3}, obj)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range out.Trials {
			switch tr.Index % 3 {
			case 0:
				if tr.Status != Failed || tr.Err != "out of memory" || !math.IsNaN(tr.Value) {
					t.Errorf("trial %d: %s %q %g, want failed with its error and a NaN value", tr.Index, tr.Status, tr.Err, tr.Value)
				}
			case 1:
				if tr.Status != Failed || !strings.HasPrefix(tr.Err, fmt.Sprintf("panic: runtime error: index out of range [%d] with length 0 (at run_test.go:", tr.Index)) {
					t.Errorf("trial %d: %s %q, want failed with the panic and where it happened", tr.Index, tr.Status, tr.Err)
				}
			default:
				if tr.Status != Completed {
					t.Errorf("trial %d: %s, want completed", tr.Index, tr.Status)
				}
			}
		}
		best, _ := out.BestTrial()
		if best.Index%3 != 2 {
			t.Errorf("best = trial %d, a failed one", best.Index)
		}
		for _, tr := range out.Trials {
			if tr.Status == Completed && tr.Value < best.Value {
				t.Errorf("trial %d (%g) beats the best (%g)", tr.Index, tr.Value, best.Value)
			}
		}
	})
	t.Run("all fail", func(t *testing.T) {
		obj := func(ctx context.Context, tr Trial, report Report) (Result, error) {
			return Result{}, fmt.Errorf("bad config %d", tr.Index)
		}
		out, err := Run(context.Background(), Config{Space: s, Trials: 5, Workers: 2}, obj)
		if err == nil || !strings.Contains(err.Error(), "all 5 trials failed") || !strings.Contains(err.Error(), "trial 0: bad config 0") {
			t.Errorf("error %v, want one that says all trials failed, with the first error", err)
		}
		if len(out.Trials) != 5 {
			t.Errorf("%d trials recorded, want 5", len(out.Trials))
		}
	})
	t.Run("epochs must increase", func(t *testing.T) {
		var repErr error
		obj := func(ctx context.Context, tr Trial, report Report) (Result, error) {
			if _, err := report(2, 1); err != nil {
				return Result{}, err
			}
			_, repErr = report(2, 0.5)
			return Result{Value: 1}, nil
		}
		out, err := Run(context.Background(), Config{Space: s, Trials: 1, Prune: PruneConfig{Method: PruneNone}}, obj)
		if err != nil {
			t.Fatal(err)
		}
		if repErr == nil || !strings.Contains(repErr.Error(), "report of epoch 2 after epoch 2") {
			t.Errorf("second report of epoch 2: error %v", repErr)
		}
		if h := out.Trials[0].History; len(h) != 1 || h[0] != (Point{2, 1}) {
			t.Errorf("history %v: the bad report was recorded", h)
		}
	})
}

func TestRunRestore(t *testing.T) {
	s := mustSpace(t, noisySpace, nil)
	cfg := Config{Space: s, Trials: 16, Rounds: 2, Seed: 7, Workers: 4, Prune: PruneConfig{MinEpochs: 1, Reduction: 2}}
	var records []TrialResult
	var calls int // not atomic: OnTrialDone is never called concurrently (-race checks it)
	full := cfg
	full.OnTrialDone = func(r TrialResult) {
		calls++
		records = append(records, r)
	}
	want, err := Run(context.Background(), full, noisyObjective(6, jitter(1, time.Millisecond), nil))
	if err != nil {
		t.Fatal(err)
	}
	if calls != 16 {
		t.Fatalf("OnTrialDone called %d times, want 16", calls)
	}
	// Resume with the records of the trials with an even index; the others run again.
	var restore []TrialResult
	kinds := map[Status]int{}
	for _, r := range records {
		if r.Index%2 == 0 {
			restore = append(restore, r)
			kinds[r.Status]++
		}
	}
	if kinds[Completed] == 0 || kinds[Pruned] == 0 || kinds[Failed] == 0 {
		t.Fatalf("restored records %v: want completed, pruned and failed ones", kinds)
	}
	var ran sync.Map
	obj := noisyObjective(6, jitter(2, time.Millisecond), nil)
	resumed := cfg
	resumed.Restore = restore
	got, err := Run(context.Background(), resumed, func(ctx context.Context, tr Trial, report Report) (Result, error) {
		ran.Store(tr.Index, true)
		return obj(ctx, tr, report)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range restore {
		_, rerun := ran.Load(r.Index)
		if rerun != (r.Status == Failed) {
			t.Errorf("trial %d (%s): ran again = %v, want %v (only failed trials run again)", r.Index, r.Status, rerun, r.Status == Failed)
		}
	}
	if !reflect.DeepEqual(comparable(got), comparable(want)) {
		t.Error("the resumed search's outcome differs from the uninterrupted one")
	}

	// Records of another search are refused.
	bad := cfg
	bad.Seed = 8
	bad.Restore = restore
	if _, err := Run(context.Background(), bad, obj); err == nil || !strings.Contains(err.Error(), "another search") {
		t.Errorf("restoring records of another seed: error %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	s := mustSpace(t, `x = { uniform = [0.0, 1.0] }`, nil)
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no space"},
		{Config{Space: s, Trials: 3, Rounds: 4}, "rounds = 4 is more than trials = 3"},
		{Config{Space: s, Trials: -1}, "trials = -1"},
		{Config{Space: s, Workers: -2}, "workers = -2"},
		{Config{Space: s, Prune: PruneConfig{Method: "hyperband"}}, `prune method "hyperband"`},
		{Config{Space: s, Prune: PruneConfig{Reduction: 1}}, "reduction = 1"},
		{Config{Space: s, Zoom: ZoomConfig{Top: 1.5}}, "zoom top = 1.5"},
		{Config{Space: s, Sampler: "bayes"}, `sampler "bayes": give "zoom" or "tpe"`},
		{Config{Space: s, Sampler: SamplerTPE, TPE: TPEConfig{Candidates: -1}}, "tpe candidates = -1"},
		{Config{Space: s, Sampler: SamplerTPE, TPE: TPEConfig{Startup: -3}}, "tpe startup = -3"},
		{Config{Space: s, Sampler: SamplerTPE, TPE: TPEConfig{PriorWeight: math.NaN()}}, "tpe prior_weight = NaN"},
		{Config{Space: s, Confirm: ConfirmConfig{Top: -1}}, "confirm top = -1"},
		{Config{Space: s, Confirm: ConfirmConfig{Top: 3}}, "confirm seeds = 0"},
		{Config{Space: s, Trials: 4, Confirm: ConfirmConfig{Top: 5, Seeds: 1}}, "confirm top = 5 is more than trials = 4"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error with %q", c.cfg, err, c.want)
		}
	}
	if err := (Config{Space: s}).Validate(); err != nil {
		t.Errorf("the zero config with a space: %v", err)
	}
}

func TestRoundSizes(t *testing.T) {
	for _, c := range []struct {
		trials, rounds int
		want           []int
	}{{60, 3, []int{20, 20, 20}}, {10, 3, []int{4, 3, 3}}, {5, 5, []int{1, 1, 1, 1, 1}}, {7, 1, []int{7}}} {
		if got := RoundSizes(c.trials, c.rounds); !reflect.DeepEqual(got, c.want) {
			t.Errorf("RoundSizes(%d, %d) = %v, want %v", c.trials, c.rounds, got, c.want)
		}
	}
}

func TestTrialSeeds(t *testing.T) {
	s := mustSpace(t, `x = { uniform = [0.0, 1.0] }`, nil)
	var mu sync.Mutex
	seen := map[int]uint64{}
	obj := func(ctx context.Context, tr Trial, report Report) (Result, error) {
		mu.Lock()
		seen[tr.Index] = tr.Seed
		mu.Unlock()
		return Result{Value: 1}, nil
	}
	// The stage's seeds are used as given.
	out, err := Run(context.Background(), Config{Space: s, Trials: 4, TrialSeed: func(i int) uint64 { return uint64(1000 + i) }}, obj)
	if err != nil {
		t.Fatal(err)
	}
	for i, tr := range out.Trials {
		if tr.Seed != uint64(1000+i) || seen[i] != tr.Seed {
			t.Errorf("trial %d: seed %d (objective saw %d), want %d", i, tr.Seed, seen[i], 1000+i)
		}
	}
	// The default seeds differ per trial and per search seed.
	a, _ := Run(context.Background(), Config{Space: s, Trials: 4, Seed: 1}, obj)
	b, _ := Run(context.Background(), Config{Space: s, Trials: 4, Seed: 2}, obj)
	distinct := map[uint64]bool{}
	for i := range 4 {
		distinct[a.Trials[i].Seed] = true
		distinct[b.Trials[i].Seed] = true
	}
	if len(distinct) != 8 {
		t.Errorf("default seeds repeat: %v", distinct)
	}
	if a.Trials[0].Params["x"] == b.Trials[0].Params["x"] {
		t.Error("two search seeds drew the same params")
	}
}
