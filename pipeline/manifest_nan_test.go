package pipeline

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// TestNonFiniteValuesKeepTheManifestValid: a stage that reports a NaN metric and NaN/Inf info
// still gets a readable manifest; the metric becomes a note that says so and the info keeps
// its printed value. (JSON has no NaN: before, the manifest failed to encode and a stale one
// was left behind while the run reported success.)
func TestNonFiniteValuesKeepTheManifestValid(t *testing.T) {
	reg := testRegistry()
	reg.MustRegister(KindSpec{Kind: "nanny", Outputs: func(*StageConfig) []Port { return nil },
		New: func(c *StageConfig) (Stage, error) {
			return StageFunc(func(ctx context.Context, sc *StageContext) error {
				sc.Metrics.Set("val_auc", math.NaN())
				sc.Metrics.Set("val_loss", math.Inf(1))
				sc.Metrics.Set("val_accuracy", 0.5)
				sc.SetInfo("ratio", math.NaN())
				sc.SetInfo("per_round", []float64{1, math.Inf(-1)})
				sc.SetInfo("rows", 7)
				return nil
			}), nil
		}})
	p, err := Parse([]byte("[stages.n]\nkind = \"nanny\"\n"), "t.toml", ".", reg, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "r")
	res, err := Run(context.Background(), p, RunOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Status != StatusSucceeded {
		t.Errorf("status %s", res.Manifest.Status)
	}
	m := readManifest(t, dir)
	s := m.Stages["n"]
	if s.Metrics["val_accuracy"] != 0.5 {
		t.Errorf("finite metric lost: %v", s.Metrics)
	}
	if _, ok := s.Metrics["val_auc"]; ok {
		t.Errorf("NaN metric kept in metrics: %v", s.Metrics)
	}
	notes := strings.Join(s.Notes, "\n")
	for _, want := range []string{"metric val_auc is NaN", "metric val_loss is +Inf"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes %q lack %q", notes, want)
		}
	}
	if s.Info["ratio"] != "NaN" || s.Info["per_round"] != "[1 -Inf]" || s.Info["rows"] != float64(7) {
		t.Errorf("info %v", s.Info)
	}
}
