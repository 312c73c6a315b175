package train

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCheckpointDue checks when OnCheckpoint takes a large model's checkpoint: the first at
// once, the next once CheckpointGap times the last one's cost has passed (10ms: every
// 500ms).
func TestCheckpointDue(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	if !checkpointDue(time.Time{}, time.Hour, t0) {
		t.Fatal("the first checkpoint is not taken")
	}
	for _, tc := range []struct {
		after time.Duration
		want  bool
	}{{0, false}, {100 * time.Millisecond, false}, {499 * time.Millisecond, false}, {500 * time.Millisecond, true}, {time.Second, true}} {
		if got := checkpointDue(t0, 10*time.Millisecond, t0.Add(tc.after)); got != tc.want {
			t.Errorf("10ms checkpoint, %v later: due %v, want %v", tc.after, got, tc.want)
		}
	}
}

// TestOnCheckpointEveryCheapEpoch trains a small model (under checkpointSmall values) with an
// OnCheckpoint hook: it gets every epoch's checkpoint, in order (its Epoch is the epoch that
// ended), however long taking them takes; an error of fn stops training with it.
func TestOnCheckpointEveryCheapEpoch(t *testing.T) {
	lab, unl := semiBlobs()
	cfg := semiConfig(SemiPi, unl, 1)
	cfg.Semi, cfg.EarlyStopping.Disabled = nil, true
	var epochs []int
	m := buildModel(t, richSpec())
	if _, err := Fit(context.Background(), m, lab, blobs(2, 60), cfg, OnCheckpoint("ck", func(c *Checkpoint, err error) error {
		if err != nil {
			return err
		}
		epochs = append(epochs, c.Epoch)
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	if len(epochs) != cfg.Epochs {
		t.Fatalf("checkpoints of epochs %v, want one per epoch of %d", epochs, cfg.Epochs)
	}
	for i, e := range epochs {
		if e != i+1 {
			t.Fatalf("checkpoints of epochs %v, want 1..%d", epochs, cfg.Epochs)
		}
	}
	boom := errors.New("boom")
	_, err := Fit(context.Background(), buildModel(t, richSpec()), lab, blobs(2, 60), cfg, OnCheckpoint("ck", func(*Checkpoint, error) error { return boom }))
	if !errors.Is(err, boom) {
		t.Fatalf("fn's error: Fit returned %v", err)
	}
}
