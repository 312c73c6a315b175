package train

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn/optim"
)

// beta1DecayConfig is Adam with beta1_decay = 0.5 on a linear schedule over 5 epochs whose
// decay starts at epoch decayStart (0-based).
func beta1DecayConfig(decayStart int) Config {
	return Config{Epochs: 5, BatchSize: 16, Seed: 5, EarlyStopping: EarlyStopping{Disabled: true},
		Optimizer: optim.Config{Name: optim.NameAdam, LR: 0.01, Beta1Decay: 0.5},
		Schedule:  optim.ScheduleConfig{Name: optim.ScheduleLinear, DecayStart: decayStart}}
}

// TestFitBeta1DecayFollowsTheSchedule: the trainer puts Adam in the decay phase on the linear
// schedule's epochs from decay_start on, and only there: with decay_start = epochs (no epoch
// in the phase) the weights equal those of Adam without beta1_decay bit for bit, with
// decay_start = 2 they differ; a run resumed from its checkpoint after epoch 2 (0-based, the
// first in the phase) ends with the uninterrupted run's weights, which needs the phase's step
// count from the checkpoint; another schedule is refused.
func TestFitBeta1DecayFollowsTheSchedule(t *testing.T) {
	train, val := blobs(1, 160), blobs(2, 64)
	fit := func(cfg Config, hooks ...Hook) [][]float32 {
		t.Helper()
		m := buildModel(t, richSpec())
		if _, err := Fit(context.Background(), m, train, val, cfg, hooks...); err != nil {
			t.Fatal(err)
		}
		return weightsOf(m)
	}
	plainCfg := beta1DecayConfig(5)
	plainCfg.Optimizer.Beta1Decay = 0
	plain := fit(plainCfg)
	sameWeights(t, fit(beta1DecayConfig(5)), plain)

	var c *Checkpoint
	decayed := fit(beta1DecayConfig(2), checkpointAt(2, &c))
	differs := false
	for i := range decayed {
		for j := range decayed[i] {
			differs = differs || math.Float32bits(decayed[i][j]) != math.Float32bits(plain[i][j])
		}
	}
	if !differs {
		t.Fatal("beta1_decay = 0.5 from epoch 2 on changed no weight")
	}
	if c == nil {
		t.Fatal("no checkpoint after epoch 2")
	}
	cfg := beta1DecayConfig(2)
	cfg.Resume = c
	sameWeights(t, fit(cfg), decayed)

	bad := beta1DecayConfig(2)
	bad.Schedule = optim.ScheduleConfig{Name: optim.ScheduleCosine}
	m := buildModel(t, richSpec())
	if _, err := Fit(context.Background(), m, train, val, bad); err == nil || !strings.Contains(err.Error(), "linear") {
		t.Errorf("beta1_decay with a cosine schedule: err %v, want one that names the linear schedule", err)
	}
}
