package train

import (
	"math"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// TestEarlyStoppingTieBreak feeds earlyStop a sequence of epochs whose accuracy ties: with a
// tie-break on the loss, an epoch with the best accuracy and a lower loss becomes the best
// epoch; without one, the first epoch of the tie stays the best.
func TestEarlyStoppingTieBreak(t *testing.T) {
	epochs := []map[string]float64{
		{"val_accuracy": 0.90, "val_loss": 0.40},
		{"val_accuracy": 0.95, "val_loss": 0.30},
		{"val_accuracy": 0.95, "val_loss": 0.20}, // ties on accuracy, lower loss
		{"val_accuracy": 0.95, "val_loss": 0.25}, // ties, higher loss than the best
		{"val_accuracy": 0.94, "val_loss": 0.10}, // worse accuracy: the loss does not count
	}
	for _, c := range []struct {
		tie      string
		wantBest int
		wantBad  int
	}{
		{"val_loss", 2, 2},
		{"", 1, 3},
	} {
		sched, err := optim.NewSchedule(optim.ScheduleConfig{})
		if err != nil {
			t.Fatal(err)
		}
		m := buildModel(t, nn.Spec{NumInputs: 2, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 2}}})
		r := &run{cfg: Config{EarlyStopping: EarlyStopping{Metric: "val_accuracy", TieBreak: c.tie, Patience: 10}}, m: m, sched: sched,
			bestMetric: math.Inf(-1), bestTie: math.Inf(1), bestEpoch: -1, bestWeights: snapshot(m)}
		for e, metrics := range epochs {
			r.epoch = e
			r.earlyStop(metrics)
		}
		if r.bestEpoch != c.wantBest || r.badEpochs != c.wantBad {
			t.Errorf("tie-break %q: best epoch %d, bad epochs %d; want %d, %d", c.tie, r.bestEpoch, r.badEpochs, c.wantBest, c.wantBad)
		}
	}
}
