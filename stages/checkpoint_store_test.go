package stages

import (
	"testing"
	"time"

	"github.com/pipe-ml/pipe/nn/train"
)

// TestCheckpointStoreDue checks when a checkpoint is stored: the first at once, the next
// after checkpointEvery, or train.CheckpointGap times the last store's cost when that is
// longer. Each name keeps its own clock.
func TestCheckpointStoreDue(t *testing.T) {
	c := newCheckpoints(nil)
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	c.last["a"] = t0
	for _, tc := range []struct {
		cost, after time.Duration
		want        bool
	}{
		{time.Millisecond, checkpointEvery - time.Millisecond, false},
		{time.Millisecond, checkpointEvery, true},
		{time.Second, checkpointEvery, false}, // storing took 1s: the next waits 50s
		{time.Second, train.CheckpointGap * time.Second, true},
	} {
		c.storeCost["a"] = tc.cost
		if got := c.storeDueLocked("a", t0.Add(tc.after)); got != tc.want {
			t.Errorf("store that took %v, %v later: due %v, want %v", tc.cost, tc.after, got, tc.want)
		}
	}
	if !c.storeDueLocked("never", t0) {
		t.Error("a checkpoint never stored is not due")
	}
}
