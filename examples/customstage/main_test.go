package main

import (
	"context"
	"path/filepath"
	"testing"
)

func TestCustomStageRunsFromTOML(t *testing.T) {
	res, err := run(context.Background(), filepath.Join(t.TempDir(), "run"))
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	if m.Status != "succeeded" {
		t.Fatalf("status %s: %s", m.Status, m.Error)
	}
	if got := m.Stages["clip"].RowsOut; got != 150 {
		t.Errorf("clip rows_out = %d, want 150", got)
	}
	if acc := m.Stages["eval"].Metrics["test_accuracy"]; acc < 0.85 {
		t.Errorf("test accuracy %.3f below the floor 0.85", acc)
	}
}
