package ensemble

import (
	"context"
	"math"
	"testing"

	"github.com/pipe-ml/pipe/nn/train"
)

// TestReportKeepsEachMembersHistory: every member's report holds its per-epoch history, one
// row per epoch it ran, and its best epoch is the row of the best early-stopping metric, so a
// user can see where early stopping cut a member short.
func TestReportKeepsEachMembersHistory(t *testing.T) {
	data := blobs(200, 5, 3, 7)
	trainSet, val := data.Subset(seq(0, 150)), data.Subset(seq(150, 200))
	cfg := bagConfig(5, 3, 4)
	cfg.Base.Train.Epochs = 200
	cfg.Base.Train.EarlyStopping = train.EarlyStopping{Patience: 3}
	_, rep, err := Train(context.Background(), cfg, trainSet, val, 5, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := 0
	for _, m := range rep.Members {
		h := m.History
		if m.Epochs == 0 || len(h.Epochs) != m.Epochs {
			t.Errorf("member %d: %d history rows, ran %d epochs", m.Index, len(h.Epochs), m.Epochs)
			continue
		}
		series := h.Series(m.Metric)
		best := 0
		for i, v := range series {
			if v < series[best] {
				best = i
			}
		}
		if m.BestEpoch != best || math.Abs(series[best]-m.BestMetric) > 1e-12 {
			t.Errorf("member %d: best epoch %d (%s %v), the history's best is epoch %d (%v)", m.Index, m.BestEpoch, m.Metric, m.BestMetric, best, series[best])
		}
		if m.StoppedEarly {
			stopped++
			if m.Epochs >= cfg.Base.Train.Epochs || m.Epochs-1-m.BestEpoch != 3 {
				t.Errorf("member %d stopped early after %d epochs, best %d, patience 3", m.Index, m.Epochs, m.BestEpoch)
			}
		}
	}
	if stopped == 0 {
		t.Errorf("no member stopped early in 200 epochs with patience 3: the test proves nothing")
	}
}
