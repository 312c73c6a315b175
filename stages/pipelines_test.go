package stages

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/pipeline"
)

// pipelineFloors states, per example pipeline, the overrides that keep CI fast and the metric
// floors the run must reach. Every file in pipelines/ must be listed: an unlisted one fails.
var pipelineFloors = map[string]struct {
	overrides []string
	floors    map[string]float64 // "stage:metric" → minimum
	ceilings  map[string]float64 // "stage:metric" → maximum
}{
	"digits-mlp.toml": {
		floors: map[string]float64{"eval:test_accuracy": 0.96, "eval:val_accuracy": 0.94},
	},
	"credit.toml": {
		floors: map[string]float64{"eval:test_accuracy": 0.78, "eval:test_auc": 0.80},
	},
	"diabetes.toml": {
		floors:   map[string]float64{"eval:test_r2": 0.38},
		ceilings: map[string]float64{"eval:test_rmse": 62},
	},
	"digits-ensemble.toml": {
		overrides: []string{"members.member.epochs=25"},
		floors:    map[string]float64{"eval:mean/test_accuracy": 0.96, "eval:vote/test_accuracy": 0.95, "members:oob_accuracy": 0.93},
	},
	"mnist-semisupervised.toml": {
		// Scaled down: the first 6,000 MNIST rows on the peers' split, 20 + 5 labels per class,
		// short schedules. The full study's figures are in the issue notes; the claim "DAE +
		// pseudo-labels beats supervised-only" is asserted over seeds by pretrain's
		// TestMNISTPretrainingBeatsSupervised. Lowest values over pipeline seeds 1-3 (weight 0.3):
		// supervised .794, finetuned .780, pseudo .821, round-1 pseudo-label accuracy .995.
		overrides: []string{"load.limit=6000", "load.peer_split=true", "split.split_column=split", "few.per_class=20", "few.val_per_class=5",
			"dae.epochs=2", "supervised.epochs=25", "finetuned.epochs=25", "pseudo.rounds=2", "pseudo.epochs=5"},
		floors: map[string]float64{"compare:supervised/test_accuracy": 0.70, "compare:finetuned/test_accuracy": 0.70, "compare:pseudo/test_accuracy": 0.75,
			"pseudo:round_1/pseudo_label_accuracy": 0.85},
	},
	"mnist-ensemble.toml": {
		overrides: []string{"load.limit=4000", "members.members=4", "members.member.epochs=4"},
		floors:    map[string]float64{"eval:mean/test_accuracy": 0.88, "eval:vote/test_accuracy": 0.85},
	},
}

func registry(t *testing.T) *pipeline.Registry {
	t.Helper()
	r := pipeline.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestExamplePipelines(t *testing.T) {
	files, err := filepath.Glob("../pipelines/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example pipelines: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		want, ok := pipelineFloors[name]
		if !ok {
			t.Errorf("%s has no entry in pipelineFloors: every example pipeline must be run by this test", name)
			continue
		}
		t.Run(strings.TrimSuffix(name, ".toml"), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			p, err := pipeline.Load(f, registry(t), pipeline.LoadOptions{Overrides: want.overrides})
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "run")
			res, err := pipeline.Run(context.Background(), p, pipeline.RunOptions{Dir: dir, Mem: mem})
			if err != nil {
				t.Fatal(err)
			}
			m := res.Manifest
			if m.Status != pipeline.StatusSucceeded {
				t.Fatalf("status %s: %s", m.Status, m.Error)
			}
			for key, floor := range want.floors {
				stage, metric, _ := strings.Cut(key, ":")
				got, ok := m.Stages[stage].Metrics[metric]
				if !ok {
					t.Errorf("%s: no metric %s (have %v)", stage, metric, keys(m.Stages[stage].Metrics))
					continue
				}
				t.Logf("%s %s = %.4f (floor %.4f)", stage, metric, got, floor)
				if got < floor {
					t.Errorf("%s %s = %.4f, below the floor %.4f", stage, metric, got, floor)
				}
			}
			for key, ceil := range want.ceilings {
				stage, metric, _ := strings.Cut(key, ":")
				if got := m.Stages[stage].Metrics[metric]; got > ceil {
					t.Errorf("%s %s = %.4f, above the ceiling %.4f", stage, metric, got, ceil)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
				t.Error(err)
			}
		})
	}
}

func keys(m map[string]float64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
