package train

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// blobs is a synthetic 3-class problem: Gaussian clusters in 6 dimensions.
func blobs(seed uint64, rows int) Dataset {
	rng := rand.New(rand.NewPCG(seed, 99))
	d := Dataset{NumInputs: 6}
	var labels []int32
	for i := 0; i < rows; i++ {
		c := rng.IntN(3)
		for j := 0; j < 6; j++ {
			center := 0.0
			if j%3 == c {
				center = 2
			}
			d.X = append(d.X, float32(center+rng.NormFloat64()))
		}
		labels = append(labels, int32(c))
	}
	d.Targets = []Target{{Labels: labels}}
	return d
}

// richSpec exercises every random and stateful layer (dropout, noise, batch norm).
func richSpec() nn.Spec {
	return nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{
		{Type: nn.LayerGaussianNoise, Stddev: 0.05},
		{Type: nn.LayerDense, Units: 48, Activation: "relu", Dropout: 0.1},
		{Type: nn.LayerBatchNorm},
		{Type: nn.LayerDense, Units: 40, Activation: "tanh"},
	}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}
}

func weightsOf(m *nn.Model) [][]float32 {
	var out [][]float32
	for _, p := range append(append([]*optim.Param(nil), m.Params()...), m.Buffers()...) {
		out = append(out, append([]float32(nil), p.Value...))
	}
	return out
}

func sameWeights(t *testing.T, a, b [][]float32) {
	t.Helper()
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				t.Fatalf("tensor %d value %d differs: %v vs %v", i, j, a[i][j], b[i][j])
			}
		}
	}
}

func TestDeterministic(t *testing.T) {
	train, val := blobs(1, 600), blobs(2, 200)
	run := func(workers int) [][]float32 {
		m := buildModel(t, richSpec())
		cfg := Config{Epochs: 4, BatchSize: 200, Seed: 5, Workers: workers, EarlyStopping: EarlyStopping{Disabled: true}}
		if _, err := Fit(context.Background(), m, train, val, cfg); err != nil {
			t.Fatal(err)
		}
		return weightsOf(m)
	}
	w1 := run(1)
	for _, tc := range []struct {
		name    string
		workers int
	}{{"same_seed_again", 1}, {"workers_2", 2}, {"workers_3", 3}} {
		t.Run(tc.name, func(t *testing.T) { sameWeights(t, w1, run(tc.workers)) })
	}
	t.Run("different_seed_differs", func(t *testing.T) {
		m := buildModel(t, richSpec())
		if _, err := Fit(context.Background(), m, train, val, Config{Epochs: 4, BatchSize: 200, Seed: 6, EarlyStopping: EarlyStopping{Disabled: true}}); err != nil {
			t.Fatal(err)
		}
		w := weightsOf(m)
		if w[1][0] == w1[1][0] && w[1][1] == w1[1][1] {
			t.Fatal("seed 6 gave the same weights as seed 5")
		}
	})
}

func TestResumeBitIdentical(t *testing.T) {
	train, val := blobs(1, 500), blobs(2, 150)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"adam_constant", Config{Epochs: 6, BatchSize: 50, Seed: 3}},
		{"sgd_momentum_cosine_ema_plateau_growth", Config{Epochs: 6, BatchSize: 32, Seed: 4, EMADecay: 0.9,
			Optimizer: optim.Config{Name: "sgd", Momentum: 0.9, LR: 0.05}, Schedule: optim.ScheduleConfig{Name: "cosine", WarmupSteps: 5},
			BatchGrowth: BatchGrowth{EveryEpochs: 2, Max: 128}}},
		{"rmsprop_plateau", Config{Epochs: 6, BatchSize: 40, Seed: 5, Optimizer: optim.Config{Name: "rmsprop"}, Schedule: optim.ScheduleConfig{Name: "plateau", Patience: 1}}},
		{"adam_augment", Config{Epochs: 6, BatchSize: 50, Seed: 6, Augment: jitter(0.3)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full := buildModel(t, richSpec())
			path := filepath.Join(t.TempDir(), "epoch2.ckpt")
			hook := OnEpochEnd("checkpoint", 0, func(e *EpochInfo) error {
				if e.Epoch == 2 {
					c, err := e.Checkpoint()
					if err != nil {
						return err
					}
					return c.Save(path)
				}
				return nil
			})
			resFull, err := Fit(context.Background(), full, train, val, tc.cfg, hook)
			if err != nil {
				t.Fatal(err)
			}
			c, err := LoadCheckpoint(path)
			if err != nil {
				t.Fatal(err)
			}
			// A fresh model with different initial weights: everything must come from the checkpoint.
			resumed, err := nn.Build(richSpec(), rand.New(rand.NewPCG(77, 78)))
			if err != nil {
				t.Fatal(err)
			}
			cfg := tc.cfg
			cfg.Resume = c
			resRes, err := Fit(context.Background(), resumed, train, val, cfg)
			if err != nil {
				t.Fatal(err)
			}
			sameWeights(t, weightsOf(full), weightsOf(resumed))
			if len(resFull.History.Epochs) != len(resRes.History.Epochs) {
				t.Fatalf("history lengths %d vs %d", len(resFull.History.Epochs), len(resRes.History.Epochs))
			}
			for i, e := range resFull.History.Epochs {
				if e["val_loss"] != resRes.History.Epochs[i]["val_loss"] {
					t.Fatalf("epoch %d val_loss %v vs %v", i, e["val_loss"], resRes.History.Epochs[i]["val_loss"])
				}
			}
		})
	}
}

func TestEarlyStoppingRestoresBest(t *testing.T) {
	// A tiny noisy training set and a large LR: validation loss gets worse after a few epochs.
	train, val := blobs(1, 60), blobs(2, 300)
	for _, tc := range []struct {
		name   string
		metric string
	}{{"val_loss", ""}, {"val_accuracy", "val_accuracy"}} {
		t.Run(tc.name, func(t *testing.T) {
			m := buildModel(t, nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 64, Activation: "relu"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
			var atBest [][]float32
			var bestSeen float64
			cfg := Config{Epochs: 200, BatchSize: 8, Seed: 1, Optimizer: optim.Config{LR: 0.01}, EarlyStopping: EarlyStopping{Metric: tc.metric, Patience: 5}}
			key := cfg.EarlyStopping.Metric
			if key == "" {
				key = "val_loss"
			}
			better := func(a, b float64) bool {
				if maximize(key) {
					return a > b
				}
				return a < b
			}
			first := true
			hook := OnEpochEnd("track", 0, func(e *EpochInfo) error {
				if v := e.Metrics[key]; first || better(v, bestSeen) {
					first, bestSeen, atBest = false, v, weightsOf(e.Model)
				}
				return nil
			})
			res, err := Fit(context.Background(), m, train, val, cfg, hook)
			if err != nil {
				t.Fatal(err)
			}
			if !res.StoppedEarly || res.Epochs >= 200 {
				t.Fatalf("did not stop early (%d epochs)", res.Epochs)
			}
			if res.Epochs != res.BestEpoch+1+5 {
				t.Errorf("stopped after %d epochs, best epoch %d, patience 5", res.Epochs, res.BestEpoch)
			}
			if res.BestMetric != bestSeen {
				t.Errorf("best metric %v, hook saw %v", res.BestMetric, bestSeen)
			}
			sameWeights(t, atBest, weightsOf(m))
		})
	}
}

func TestCarvesValidation(t *testing.T) {
	train := blobs(1, 200)
	m := buildModel(t, nn.Spec{NumInputs: 6, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
	res, err := Fit(context.Background(), m, train, Dataset{}, Config{Epochs: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !res.CarvedValidation || len(res.ValRows) != 20 {
		t.Fatalf("carved %v, %d rows; want 20 (10%% of 200)", res.CarvedValidation, len(res.ValRows))
	}
	seen := map[int]bool{}
	for _, r := range res.ValRows {
		if r < 0 || r >= 200 || seen[r] {
			t.Fatalf("bad or repeated validation row %d", r)
		}
		seen[r] = true
	}
	// Training saw 180 rows per epoch: steps = ceil(180/64) per epoch.
	if res.Steps != 2*3 {
		t.Errorf("%d steps, want 6 (2 epochs × ceil(180/64))", res.Steps)
	}
}

func TestNonFiniteStopsWithLayer(t *testing.T) {
	train, val := blobs(1, 128), blobs(2, 64)
	m := buildModel(t, nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 8, Activation: "relu"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
	// Poison one input value: the loss and every gradient of the first step become non-finite.
	train.X = append([]float32(nil), train.X...)
	train.X[5*6+2] = float32(math.Inf(1))
	before := weightsOf(m)
	_, err := Fit(context.Background(), m, train, val, Config{Epochs: 3, BatchSize: 128, Seed: 1})
	if err == nil {
		t.Fatal("no error for a non-finite input")
	}
	msg := err.Error()
	for _, want := range []string{"epoch 0", "step 0", "non-finite"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if !strings.Contains(msg, "layer head_out") && !strings.Contains(msg, "layer dense_1") {
		t.Errorf("error %q does not name a layer", msg)
	}
	sameWeights(t, before, weightsOf(m)) // the bad step was not applied
}

func TestContextCancelStopsWithinAStep(t *testing.T) {
	train, val := blobs(1, 640), blobs(2, 64)
	m := buildModel(t, nn.Spec{NumInputs: 6, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
	ctx, cancel := context.WithCancel(context.Background())
	steps := 0
	hook := OnStep("cancel", 0, func(s *StepInfo) error {
		steps++
		if s.Step == 3 {
			cancel()
		}
		return nil
	})
	res, err := Fit(ctx, m, train, val, Config{Epochs: 50, BatchSize: 64, Seed: 1}, hook)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if steps != 4 || res.Steps != 4 {
		t.Fatalf("%d steps ran (result %d) after cancelling at step 3, want 4", steps, res.Steps)
	}
}

func TestHooksOrderedAndStop(t *testing.T) {
	train, val := blobs(1, 128), blobs(2, 64)
	m := buildModel(t, nn.Spec{NumInputs: 6, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
	var order []string
	mk := func(name string, prio int) Hook {
		return OnEpochEnd(name, prio, func(e *EpochInfo) error {
			order = append(order, name)
			if e.Epoch == 1 && name == "z" {
				return ErrStop
			}
			return nil
		})
	}
	res, err := Fit(context.Background(), m, train, val, Config{Epochs: 10, Seed: 1}, mk("z", 5), mk("b", 1), mk("a", 1), mk("first", -3))
	if err != nil {
		t.Fatal(err)
	}
	want := "first,a,b,z,first,a,b,z"
	if got := strings.Join(order, ","); got != want {
		t.Fatalf("hook order %s, want %s", got, want)
	}
	if res.Epochs != 2 {
		t.Fatalf("ran %d epochs after ErrStop at epoch 1", res.Epochs)
	}
}

func TestBatchGrowthAndClipping(t *testing.T) {
	train, val := blobs(1, 512), blobs(2, 64)
	m := buildModel(t, nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 16, Activation: "tanh"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
	sizes := map[int]int{}
	var clippedNorms []float64
	hook := OnStep("watch", 0, func(s *StepInfo) error {
		sizes[s.Epoch] = s.BatchSize
		// After clipping, the gradient norm must not exceed ClipNorm (the hook sees post-clip grads).
		clippedNorms = append(clippedNorms, optim.GradNorm(s.Model.Params()))
		return nil
	})
	cfg := Config{Epochs: 6, BatchSize: 16, Seed: 1, BatchGrowth: BatchGrowth{EveryEpochs: 2, Max: 48}, ClipNorm: 0.05, EarlyStopping: EarlyStopping{Disabled: true}}
	if _, err := Fit(context.Background(), m, train, val, cfg, hook); err != nil {
		t.Fatal(err)
	}
	want := map[int]int{0: 16, 1: 16, 2: 32, 3: 32, 4: 48, 5: 48}
	for e, bs := range want {
		if sizes[e] != bs {
			t.Errorf("epoch %d batch size %d, want %d", e, sizes[e], bs)
		}
	}
	for i, n := range clippedNorms {
		if n > 0.05*(1+1e-5) {
			t.Fatalf("step %d: gradient norm %g after clipping to 0.05", i, n)
		}
	}
}

func TestAutoLR(t *testing.T) {
	train, val := blobs(1, 512), blobs(2, 128)
	m := buildModel(t, nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 16, Activation: "relu"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
	init := weightsOf(m)
	var firstStep [][]float32
	hook := OnStep("first", 0, func(s *StepInfo) error {
		if s.Step == 0 {
			firstStep = weightsOf(s.Model)
		}
		return nil
	})
	res, err := Fit(context.Background(), m, train, val, Config{Epochs: 5, Seed: 1, AutoLR: true, RangeTest: optim.RangeTestConfig{Steps: 60}}, hook)
	if err != nil {
		t.Fatal(err)
	}
	if res.RangeTest == nil || res.BaseLR != res.RangeTest.Suggested || res.BaseLR <= 0 {
		t.Fatalf("range test %+v, base LR %g", res.RangeTest, res.BaseLR)
	}
	if res.BaseLR < 1e-5 || res.BaseLR > 1 {
		t.Errorf("suggested LR %g is implausible for Adam on standardised blobs", res.BaseLR)
	}
	// The sweep's weights were restored: the first real step started from the initial
	// weights, so it moved every weight by at most ~LR (Adam's step bound).
	for i := range init {
		for j := range init[i] {
			if d := math.Abs(float64(firstStep[i][j] - init[i][j])); d > 1.01*res.BaseLR+1e-7 {
				t.Fatalf("tensor %d value %d moved %g in the first step (LR %g): weights not restored after the range test", i, j, d, res.BaseLR)
			}
		}
	}
	if acc := res.History.Series("val_accuracy"); acc[len(acc)-1] < 0.8 {
		t.Errorf("val accuracy %.3f with the auto LR", acc[len(acc)-1])
	}
}

func TestEMAWeightsUsedAndReturned(t *testing.T) {
	train, val := blobs(1, 256), blobs(2, 64)
	spec := nn.Spec{NumInputs: 6, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}
	m := buildModel(t, spec)
	cfg := Config{Epochs: 3, Seed: 1, EMADecay: 0.9, EarlyStopping: EarlyStopping{Disabled: true}}
	live := buildModel(t, spec)
	if _, err := Fit(context.Background(), live, train, val, Config{Epochs: 3, Seed: 1, EarlyStopping: EarlyStopping{Disabled: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Fit(context.Background(), m, train, val, cfg); err != nil {
		t.Fatal(err)
	}
	// Without EMA the final weights are the live ones; with EMA they are an average, so they
	// must differ from the live run's final weights but stay close.
	lw, ew := weightsOf(live), weightsOf(m)
	var diff, norm float64
	for i := range lw {
		for j := range lw[i] {
			d := float64(lw[i][j] - ew[i][j])
			diff += d * d
			norm += float64(lw[i][j]) * float64(lw[i][j])
		}
	}
	if diff == 0 {
		t.Fatal("EMA run returned the live weights")
	}
	if math.Sqrt(diff) > 0.5*math.Sqrt(norm) {
		t.Fatalf("EMA weights are far from the live ones (|diff| %g, |w| %g)", math.Sqrt(diff), math.Sqrt(norm))
	}
}

func TestTargetNoiseLeavesDataAndChangesTraining(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	d := Dataset{NumInputs: 2}
	var y []float32
	for i := 0; i < 200; i++ {
		a, b := rng.NormFloat64(), rng.NormFloat64()
		d.X = append(d.X, float32(a), float32(b))
		y = append(y, float32(a-b))
	}
	d.Targets = []Target{{Values: y}}
	orig := append([]float32(nil), y...)
	spec := nn.Spec{NumInputs: 2, Heads: []nn.HeadSpec{{Kind: nn.HeadRegression}}}
	run := func(noise float64) [][]float32 {
		m := buildModel(t, spec)
		if _, err := Fit(context.Background(), m, d, Dataset{}, Config{Epochs: 3, Seed: 1, TargetNoise: noise, EarlyStopping: EarlyStopping{Disabled: true}}); err != nil {
			t.Fatal(err)
		}
		return weightsOf(m)
	}
	clean, noisy := run(0), run(0.5)
	for i := range y {
		if y[i] != orig[i] {
			t.Fatalf("target %d modified: %v -> %v", i, orig[i], y[i])
		}
	}
	if clean[0][0] == noisy[0][0] && clean[0][1] == noisy[0][1] {
		t.Fatal("target noise did not change training")
	}
	sameWeights(t, noisy, run(0.5))
}

func TestScheduleAndClipValue(t *testing.T) {
	train, val := blobs(1, 256), blobs(2, 64)
	m := buildModel(t, nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 8, Activation: "tanh"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
	const base, limit = 0.02, 1e-3
	hook := OnStep("check", 0, func(s *StepInfo) error {
		// Step schedule, gamma 0.5 every epoch: lr = base·0.5^epoch.
		if want := base * math.Pow(0.5, float64(s.Epoch)); math.Abs(s.LR-want) > 1e-15 {
			t.Errorf("epoch %d step %d: lr %g, want %g", s.Epoch, s.Step, s.LR, want)
		}
		for _, p := range s.Model.Params() {
			for _, g := range p.Grad {
				if math.Abs(float64(g)) > float64(float32(limit)) {
					t.Fatalf("step %d: %s has gradient %g beyond the clip value %g", s.Step, p.Name, g, limit)
				}
			}
		}
		return nil
	})
	cfg := Config{Epochs: 3, Seed: 1, ClipValue: limit, Optimizer: optim.Config{Name: "sgd", LR: base},
		Schedule: optim.ScheduleConfig{Name: "step", StepEpochs: 1, Gamma: 0.5}, EarlyStopping: EarlyStopping{Disabled: true}}
	res, err := Fit(context.Background(), m, train, val, cfg, hook)
	if err != nil {
		t.Fatal(err)
	}
	if lr := res.History.Series("lr"); lr[2] != base*0.25 {
		t.Errorf("history lr %v", lr)
	}
}

func TestBalancedClassWeightsFromTrainingRows(t *testing.T) {
	d := blobs(1, 300)
	// Make class 2 rare in the training view: keep every class-2 row only one time in five.
	var pos []int
	for i, l := range d.Targets[0].Labels {
		if l != 2 || i%5 == 0 {
			pos = append(pos, i)
		}
	}
	train := d.Subset(pos)
	m := buildModel(t, nn.Spec{NumInputs: 6, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3, ClassWeight: "balanced"}}})
	if _, err := Fit(context.Background(), m, train, blobs(2, 60), Config{Epochs: 1, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	counts := [3]float64{}
	for _, p := range pos {
		counts[d.Targets[0].Labels[p]]++
	}
	n := float64(len(pos))
	got := m.ClassWeights("out")
	for c := range counts {
		if want := n / (3 * counts[c]); math.Abs(got[c]-want) > 1e-6*want {
			t.Fatalf("class %d weight %v, want n/(k·count) = %v", c, got[c], want)
		}
	}
}

// jitter is an augmentation that adds Gaussian noise to every input.
func jitter(std float64) func(*nn.Batch, *nn.Targets, *rand.Rand) {
	return func(b *nn.Batch, _ *nn.Targets, rng *rand.Rand) {
		for i := range b.X {
			b.X[i] += float32(rng.NormFloat64() * std)
		}
	}
}

func TestAugmentIsFreshEachStepAndLeavesDataAlone(t *testing.T) {
	train, val := blobs(1, 300), blobs(2, 100)
	orig := append([]float32(nil), train.X...)
	var calls, rows int
	seen := map[float32]bool{}
	aug := func(b *nn.Batch, tg *nn.Targets, rng *rand.Rand) {
		calls++
		rows += b.Rows
		jitter(0.3)(b, tg, rng)
		seen[b.X[0]] = true
	}
	cfg := Config{Epochs: 4, BatchSize: 64, Seed: 9, Augment: aug, EarlyStopping: EarlyStopping{Disabled: true}}
	m := buildModel(t, richSpec())
	res, err := Fit(context.Background(), m, train, val, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if calls != res.Steps || rows != 4*300 {
		t.Errorf("augment called %d times on %d rows; want %d steps, 1200 rows", calls, rows, res.Steps)
	}
	if len(seen) < calls-1 {
		t.Errorf("augmented batches repeat: %d distinct first values in %d calls", len(seen), calls)
	}
	for i := range orig {
		if train.X[i] != orig[i] {
			t.Fatalf("dataset modified at %d", i)
		}
	}
	// Deterministic, and it changes training.
	again := buildModel(t, richSpec())
	cfg.Augment = jitter(0.3)
	if _, err := Fit(context.Background(), again, train, val, cfg); err != nil {
		t.Fatal(err)
	}
	sameWeights(t, weightsOf(m), weightsOf(again))
	plain := buildModel(t, richSpec())
	cfg.Augment = nil
	if _, err := Fit(context.Background(), plain, train, val, cfg); err != nil {
		t.Fatal(err)
	}
	if weightsOf(plain)[0][0] == weightsOf(m)[0][0] {
		t.Error("augmentation did not change training")
	}
}

// TestAugmentSoftTargets: every step hands the augmenter empty soft-target room of the right
// capacity (not the previous step's targets), and the step trains on what it puts there:
// one-hot soft targets train like the labels (same weights and train loss within float32
// rounding), shifted ones teach the shifted classes.
func TestAugmentSoftTargets(t *testing.T) {
	train, val := blobs(1, 300), blobs(2, 100)
	const k = 3
	softAug := func(shift int32) func(*nn.Batch, *nn.Targets, *rand.Rand) {
		return func(b *nn.Batch, tg *nn.Targets, _ *rand.Rand) {
			ht := &tg.Heads[0]
			if len(ht.Soft) != 0 || cap(ht.Soft) < b.Rows*k {
				t.Fatalf("soft room: len %d cap %d, want empty with capacity ≥ %d", len(ht.Soft), cap(ht.Soft), b.Rows*k)
			}
			ht.Soft = ht.Soft[:b.Rows*k]
			clear(ht.Soft)
			for i, l := range ht.Labels[:b.Rows] {
				ht.Soft[i*k+int((l+shift)%k)] = 1
			}
		}
	}
	fit := func(aug func(*nn.Batch, *nn.Targets, *rand.Rand)) (*nn.Model, Result) {
		m := buildModel(t, richSpec())
		cfg := Config{Epochs: 3, BatchSize: 64, Seed: 4, Augment: aug, EarlyStopping: EarlyStopping{Disabled: true}}
		res, err := Fit(context.Background(), m, train, val, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return m, res
	}
	plain, plainRes := fit(nil)
	t.Run("one_hot_equals_labels", func(t *testing.T) {
		m, res := fit(softAug(0))
		a, b := weightsOf(plain), weightsOf(m)
		for i := range a {
			for j := range a[i] {
				if d := math.Abs(float64(a[i][j] - b[i][j])); d > 1e-4 {
					t.Fatalf("tensor %d value %d: labels %v, one-hot soft %v", i, j, a[i][j], b[i][j])
				}
			}
		}
		for e, want := range plainRes.History.Series("loss") {
			if got := res.History.Series("loss")[e]; math.Abs(got-want) > 1e-5*max(1, want) {
				t.Errorf("epoch %d train loss %.7g with one-hot soft targets, %.7g with labels", e, got, want)
			}
		}
	})
	t.Run("shifted_soft_targets_are_learned", func(t *testing.T) {
		m, _ := fit(softAug(1))
		out := predictDataset(t, m, val)
		var hits int
		for i, l := range val.Targets[0].Labels {
			p := out.Heads[0][i*k : i*k+k]
			best := 0
			for j := range p {
				if p[j] > p[best] {
					best = j
				}
			}
			if int32(best) == (l+1)%k {
				hits++
			}
		}
		if acc := float64(hits) / float64(val.Len()); acc < 0.8 {
			t.Errorf("accuracy on the shifted classes %.3f < 0.8: the step did not train on the soft targets", acc)
		}
	})
}

// TestCancelKeepsBestWeights cancels a long training in the middle of an epoch, after the
// validation loss has passed its best: the model holds the best epoch's weights, as after a
// finished run, and the result says it was interrupted. Before any epoch completed there is
// nothing to keep, and Interrupted stays false.
func TestCancelKeepsBestWeights(t *testing.T) {
	train, val := blobs(1, 60), blobs(2, 300)
	m := buildModel(t, nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 64, Activation: "relu"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var atBest [][]float32
	best := math.Inf(1)
	epochs := 0
	hooks := []Hook{
		OnEpochEnd("track", 0, func(e *EpochInfo) error {
			epochs++
			if v := e.Metrics["val_loss"]; v < best {
				best, atBest = v, weightsOf(e.Model)
			}
			return nil
		}),
		OnStep("cancel", 0, func(s *StepInfo) error {
			if epochs == 12 {
				cancel() // mid-epoch 13: the weights now are not any epoch's
			}
			return nil
		}),
	}
	res, err := Fit(ctx, m, train, val, Config{Epochs: 500, BatchSize: 8, Seed: 1, Optimizer: optim.Config{LR: 0.01},
		EarlyStopping: EarlyStopping{Patience: 400}}, hooks...)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !res.Interrupted || res.Epochs != 12 {
		t.Fatalf("interrupted %v after %d epochs, want true after 12", res.Interrupted, res.Epochs)
	}
	if res.BestMetric != best {
		t.Errorf("best metric %v, hook saw %v", res.BestMetric, best)
	}
	sameWeights(t, atBest, weightsOf(m))

	m2 := buildModel(t, nn.Spec{NumInputs: 6, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
	ctx2, cancel2 := context.WithCancel(context.Background())
	stop := OnStep("cancel", 0, func(s *StepInfo) error { cancel2(); return nil })
	res2, err := Fit(ctx2, m2, train, val, Config{Epochs: 5, BatchSize: 8, Seed: 1}, stop)
	if !errors.Is(err, context.Canceled) || res2.Interrupted {
		t.Errorf("cancelled in the first epoch: err %v, interrupted %v (nothing to keep)", err, res2.Interrupted)
	}
}
