package stages

import (
	"testing"
	"time"
)

// TestCheckpointDue checks when the epoch hook takes a checkpoint and when one is stored:
// the first at once; the next taken once checkpointGap times the last one's cost has passed
// (so a checkpoint that costs a tenth of an epoch is taken every fifth epoch, and one that
// costs nothing every epoch); the next stored after checkpointEvery, or checkpointGap times
// the last store's cost when that is longer. Each name keeps its own clock.
func TestCheckpointDue(t *testing.T) {
	c := newCheckpoints(nil)
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	if !c.takeDue("a", t0) {
		t.Fatal("the first checkpoint is not taken")
	}
	c.taken["a"] = timing{at: t0, cost: 10 * time.Millisecond}
	for _, tc := range []struct {
		after time.Duration
		want  bool
	}{{0, false}, {100 * time.Millisecond, false}, {499 * time.Millisecond, false}, {500 * time.Millisecond, true}, {time.Second, true}} {
		if got := c.takeDue("a", t0.Add(tc.after)); got != tc.want {
			t.Errorf("taken 10ms-checkpoint, %v later: due %v, want %v", tc.after, got, tc.want)
		}
	}
	if !c.takeDue("b", t0) {
		t.Error("another name waits on a's clock")
	}
	c.taken["b"] = timing{at: t0}
	if !c.takeDue("b", t0.Add(time.Microsecond)) {
		t.Error("a checkpoint that cost nothing is not taken at the next epoch")
	}

	c.last["a"] = t0
	for _, tc := range []struct {
		cost, after time.Duration
		want        bool
	}{
		{time.Millisecond, checkpointEvery - time.Millisecond, false},
		{time.Millisecond, checkpointEvery, true},
		{time.Second, checkpointEvery, false}, // storing took 1s: the next waits 50s
		{time.Second, checkpointGap * time.Second, true},
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
