package train

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// svrgConfig uses SVRG with a snapshot every 2 epochs, a step schedule and clipping.
func svrgConfig(workers int) Config {
	return Config{Epochs: 5, BatchSize: 40, Seed: 9, Workers: workers, EarlyStopping: EarlyStopping{Disabled: true},
		Optimizer: optim.Config{Name: optim.NameSVRG, Inner: optim.NameSGD, Momentum: 0.5, SnapshotEpochs: 2, LR: 0.05},
		Schedule:  optim.ScheduleConfig{Name: optim.ScheduleStep, StepEpochs: 2, Gamma: 0.5}, ClipNorm: 5}
}

func TestSVRGDeterministicAcrossWorkers(t *testing.T) {
	train, val := blobs(1, 400), blobs(2, 100)
	run := func(workers int) ([][]float32, Result) {
		m := buildModel(t, richSpec())
		res, err := Fit(context.Background(), m, train, val, svrgConfig(workers))
		if err != nil {
			t.Fatal(err)
		}
		return weightsOf(m), res
	}
	w1, res := run(1)
	// 3 snapshots (epochs 0, 2, 4) of 400 rows and 5 epochs of 2 evaluations per row.
	if got, want := res.History.Epochs[4]["grad_evals"], float64(3*400+5*2*400); got != want {
		t.Fatalf("grad_evals after 5 epochs %v, want %v", got, want)
	}
	if got := res.History.Epochs[0]["grad_evals"]; got != 400+2*400 {
		t.Fatalf("grad_evals after epoch 0 %v, want 1200", got)
	}
	for _, workers := range []int{2, 3} {
		w, _ := run(workers)
		sameWeights(t, w1, w)
	}
	// The correction changes training: plain sgd with the same settings ends elsewhere.
	m := buildModel(t, richSpec())
	cfg := svrgConfig(1)
	cfg.Optimizer.Name, cfg.Optimizer.Inner, cfg.Optimizer.SnapshotEpochs = optim.NameSGD, "", 0
	if _, err := Fit(context.Background(), m, train, val, cfg); err != nil {
		t.Fatal(err)
	}
	if w := weightsOf(m); w[1][0] == w1[1][0] && w[1][1] == w1[1][1] {
		t.Fatal("svrg gave the same weights as plain sgd")
	}
}

// TestSVRGResumeBitIdentical resumes from the checkpoint taken after epoch 1 (0-based; the
// resumed run takes the snapshot due at epoch 2) and from the one after epoch 2 (epoch 3 is not
// due a snapshot: it must use the checkpointed w~ and mu~), on 2 workers instead of 1.
func TestSVRGResumeBitIdentical(t *testing.T) {
	train, val := blobs(1, 300), blobs(2, 100)
	for _, at := range []int{1, 2} {
		full := buildModel(t, richSpec())
		path := filepath.Join(t.TempDir(), "svrg.ckpt")
		hook := OnEpochEnd("checkpoint", 0, func(e *EpochInfo) error {
			if e.Epoch == at {
				c, err := e.Checkpoint()
				if err != nil {
					return err
				}
				return c.Save(path)
			}
			return nil
		})
		resFull, err := Fit(context.Background(), full, train, val, svrgConfig(1), hook)
		if err != nil {
			t.Fatal(err)
		}
		c, err := LoadCheckpoint(path)
		if err != nil {
			t.Fatal(err)
		}
		resumed, err := nn.Build(richSpec(), rand.New(rand.NewPCG(77, 78)))
		if err != nil {
			t.Fatal(err)
		}
		cfg := svrgConfig(2)
		cfg.Resume = c
		resRes, err := Fit(context.Background(), resumed, train, val, cfg)
		if err != nil {
			t.Fatal(err)
		}
		sameWeights(t, weightsOf(full), weightsOf(resumed))
		last := len(resFull.History.Epochs) - 1
		if a, b := resFull.History.Epochs[last]["grad_evals"], resRes.History.Epochs[last]["grad_evals"]; a != b {
			t.Fatalf("checkpoint at epoch %d: grad_evals %v vs %v", at, a, b)
		}
		// A checkpoint of svrg does not resume plain sgd.
		other := buildModel(t, richSpec())
		cfg.Optimizer = optim.Config{Name: optim.NameSGD, LR: 0.05}
		if _, err := Fit(context.Background(), other, train, val, cfg); err == nil {
			t.Fatal("an svrg checkpoint resumed a plain sgd run")
		}
	}
}
