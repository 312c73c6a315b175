package train

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// wideSparse is a synthetic click-through-like problem: fields categorical features with levels
// values each, one-hot encoded into fields*levels columns (so each row has fields ones among
// them), and a binary label drawn from a logistic model of a hidden weight per (field, level).
func wideSparse(seed uint64, rows, fields, levels int) Dataset {
	rng := rand.New(rand.NewPCG(seed, 7))
	truth := rand.New(rand.NewPCG(1234, 7)) // the same hidden weights for every seed
	w := make([]float64, fields*levels)
	for i := range w {
		w[i] = truth.NormFloat64()
	}
	dims := fields * levels
	d := Dataset{NumInputs: dims, X: make([]float32, rows*dims)}
	labels := make([]int32, rows)
	for r := 0; r < rows; r++ {
		z := 0.0
		for f := 0; f < fields; f++ {
			c := f*levels + rng.IntN(levels)
			d.X[r*dims+c] = 1
			z += w[c]
		}
		if rng.Float64() < 1/(1+math.Exp(-2*z/math.Sqrt(float64(fields)))) {
			labels[r] = 1
		}
	}
	d.Targets = []Target{{Labels: labels}}
	return d
}

func wideSpec(dims int) nn.Spec {
	return nn.Spec{NumInputs: dims, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 32, Activation: "relu"}},
		Heads: []nn.HeadSpec{{Kind: nn.HeadBinary}}}
}

func hogwildConfig(threads int) Config {
	return Config{Epochs: 6, BatchSize: 16, Seed: 3, EarlyStopping: EarlyStopping{Disabled: true},
		Optimizer: optim.Config{Name: optim.NameSGD, LR: 0.1, WeightDecay: 1e-4}, Hogwild: Hogwild{Threads: threads}}
}

// TestHogwildOneThreadIsSGD: with one thread and no random layers, Hogwild computes exactly the
// synchronous sgd steps (atomic loads and stores, but one writer), so the weights agree: with
// the sparse path (only the batch's non-zero input rows are read and updated) and, with an L2
// penalty on the weights and weight decay, the dense one.
func TestHogwildOneThreadIsSGD(t *testing.T) {
	train, val := wideSparse(1, 600, 6, 20), wideSparse(2, 200, 6, 20)
	for _, tc := range []struct{ l2, wd float64 }{{0, 0}, {1e-3, 1e-4}} {
		l2 := tc.l2
		spec := wideSpec(train.NumInputs)
		spec.L2 = l2
		run := func(threads int) [][]float32 {
			m := buildModel(t, spec)
			cfg := hogwildConfig(threads)
			cfg.Optimizer.WeightDecay = tc.wd
			if _, err := Fit(context.Background(), m, train, val, cfg); err != nil {
				t.Fatal(err)
			}
			return weightsOf(m)
		}
		sync, hw := run(0), run(1)
		var moved bool
		init := weightsOf(buildModel(t, spec))
		for i := range sync {
			for j := range sync[i] {
				if math.Abs(float64(sync[i][j]-hw[i][j])) > 1e-5 {
					t.Fatalf("l2 %g: tensor %d value %d: sync %v, hogwild(1) %v", l2, i, j, sync[i][j], hw[i][j])
				}
				moved = moved || hw[i][j] != init[i][j]
			}
		}
		if !moved {
			t.Fatal("hogwild did not change the weights")
		}
	}
}

// TestHogwildMatchesSynchronousMetric: two threads reach the synchronous trainer's validation
// loss and accuracy within a tolerance on the wide sparse problem (and run race-free: the race
// detector checks this test in CI).
func TestHogwildMatchesSynchronousMetric(t *testing.T) {
	train, val := wideSparse(1, 3000, 8, 64), wideSparse(2, 1000, 8, 64)
	metrics := func(threads int) map[string]float64 {
		m := buildModel(t, wideSpec(train.NumInputs))
		res, err := Fit(context.Background(), m, train, val, hogwildConfig(threads))
		if err != nil {
			t.Fatal(err)
		}
		if res.Steps != 6*((3000+15)/16) {
			t.Fatalf("threads %d: %d steps, want %d", threads, res.Steps, 6*((3000+15)/16))
		}
		return res.History.Epochs[len(res.History.Epochs)-1]
	}
	sync, hw := metrics(0), metrics(2)
	t.Logf("sync val_loss %.4f val_accuracy %.4f; hogwild(2) val_loss %.4f val_accuracy %.4f", sync["val_loss"], sync["val_accuracy"], hw["val_loss"], hw["val_accuracy"])
	if sync["val_accuracy"] < 0.7 {
		t.Fatalf("the synchronous trainer reaches only %.3f: the problem is not learnable as set up", sync["val_accuracy"])
	}
	if d := math.Abs(hw["val_accuracy"] - sync["val_accuracy"]); d > 0.02 {
		t.Errorf("hogwild val_accuracy %.4f vs sync %.4f: differ by %.4f > 0.02", hw["val_accuracy"], sync["val_accuracy"], d)
	}
	if r := hw["val_loss"] / sync["val_loss"]; r > 1.05 || r < 0.95 {
		t.Errorf("hogwild val_loss %.4f vs sync %.4f: ratio %.3f outside [0.95, 1.05]", hw["val_loss"], sync["val_loss"], r)
	}
}

func TestHogwildConfigErrors(t *testing.T) {
	train, val := blobs(1, 100), blobs(2, 50)
	plain := nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 8}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}
	sgd := optim.Config{Name: optim.NameSGD}
	for _, tc := range []struct {
		name string
		spec nn.Spec
		cfg  Config
		want string
	}{
		{"default_adam", plain, Config{}, "optimizer adam (the default)"},
		{"rmsprop", plain, Config{Optimizer: optim.Config{Name: "rmsprop"}}, "optimizer rmsprop"},
		{"svrg", plain, Config{Optimizer: optim.Config{Name: "svrg"}}, "optimizer svrg"},
		{"momentum", plain, Config{Optimizer: optim.Config{Name: "sgd", Momentum: 0.9}}, "momentum"},
		{"ema", plain, Config{Optimizer: sgd, EMADecay: 0.99}, "EMA"},
		{"augment", plain, Config{Optimizer: sgd, Augment: jitter(0.1)}, "augmentation"},
		{"target_noise", plain, Config{Optimizer: sgd, TargetNoise: 0.1}, "target noise"},
		{"batch_norm", richSpec(), Config{Optimizer: sgd}, "batch normalisation"},
		{"negative", plain, Config{Optimizer: sgd, Hogwild: Hogwild{Threads: -1}}, "threads -1"},
		{"semi", plain, Config{Optimizer: sgd, Semi: &Semi{Method: SemiPi}}, "semi-supervised training"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Hogwild.Threads == 0 {
				cfg.Hogwild.Threads = 2
			}
			cfg.Epochs = 1
			_, err := Fit(context.Background(), buildModel(t, tc.spec), train, val, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestHogwildLogsNotReproducible: the log says that a Hogwild run is not reproducible.
func TestHogwildLogsNotReproducible(t *testing.T) {
	train, val := wideSparse(1, 200, 4, 8), wideSparse(2, 50, 4, 8)
	var log bytes.Buffer
	cfg := hogwildConfig(2)
	cfg.Epochs, cfg.Logger = 1, zerolog.New(&log)
	if _, err := Fit(context.Background(), buildModel(t, wideSpec(train.NumInputs)), train, val, cfg); err != nil {
		t.Fatal(err)
	}
	if s := log.String(); !strings.Contains(s, `"level":"warn"`) || !strings.Contains(s, "not reproducible bit for bit") {
		t.Fatalf("log lacks the warning: %s", s)
	}
}
