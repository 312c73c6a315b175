package runinfo

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/pipeline"
)

const configA = `[pipeline]
name = 'digits'
seed = 1

[stages]
[stages.load]
kind = 'dataset'
name = 'digits'

[stages.model]
epochs = 10
kind = 'train'
tables = ['a', 'b']

[stages.model.optimizer]
lr = 0.001
name = 'adam'

[[stages.model.layers]]
dense = 128

[[stages.model.layers]]
dense = 64
dropout = 0.1
`

// configB differs from configA in a nested key, a key of an array of tables, a key removed
// from it, a list of values, one more layer, the seed and one more stage.
const configB = `[pipeline]
name = 'digits'
seed = 2

[stages]
[stages.load]
kind = 'dataset'
name = 'digits'

[stages.model]
epochs = 10
kind = 'train'
tables = ['a', 'c']

[stages.model.optimizer]
lr = 0.0003
name = 'adam'

[[stages.model.layers]]
dense = 256

[[stages.model.layers]]
dense = 64

[[stages.model.layers]]
dense = 10

[stages.eval]
kind = 'evaluate'
models = ['model.model']
`

func TestCompare(t *testing.T) {
	root := t.TempDir()
	load := stage{name: "load", kind: "dataset", status: pipeline.StatusSucceeded, cached: true}
	ma := manifest("digits", "a", pipeline.StatusSucceeded, t0, 10, load,
		stage{name: "model", kind: "train", status: pipeline.StatusSucceeded, metrics: map[string]float64{"val_accuracy": 0.9, "val_loss": 0.4}})
	loadB := load
	loadB.cached = false
	mb := manifest("digits", "b", pipeline.StatusFailed, t0, 12, loadB,
		stage{name: "model", kind: "train", status: pipeline.StatusSucceeded, metrics: map[string]float64{"val_accuracy": 0.93, "val_best_epoch": 7}},
		stage{name: "eval", kind: "evaluate", status: pipeline.StatusFailed})
	mb.Seed = 2
	a := writeRun(t, root, fixtureRun{pipeline: "digits", id: "a", m: ma, config: configA})
	b := writeRun(t, root, fixtureRun{pipeline: "digits", id: "b", m: mb, config: configB})

	c, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ConfigChange{}
	var paths []string
	for _, cc := range c.Config {
		got[cc.Path] = cc
		paths = append(paths, cc.Path)
	}
	want := []ConfigChange{
		{Path: "eval.kind", Change: Added, B: `"evaluate"`},
		{Path: "eval.models", Change: Added, B: `["model.model"]`},
		{Path: "model.layers[0].dense", Change: Changed, A: "128", B: "256"},
		{Path: "model.layers[1].dropout", Change: Removed, A: "0.1"},
		{Path: "model.layers[2].dense", Change: Added, B: "10"},
		{Path: "model.optimizer.lr", Change: Changed, A: "0.001", B: "0.0003"},
		{Path: "model.tables", Change: Changed, A: `["a", "b"]`, B: `["a", "c"]`},
		{Path: "pipeline.seed", Change: Changed, A: "1", B: "2"},
	}
	if len(c.Config) != len(want) {
		t.Errorf("config changes %v, want %d", paths, len(want))
	}
	for i, w := range want {
		if got[w.Path] != w {
			t.Errorf("config change %s: %+v, want %+v", w.Path, got[w.Path], w)
		}
		if i < len(c.Config) && c.Config[i].Path != w.Path {
			t.Errorf("config change %d is %s, want %s (sorted by path)", i, c.Config[i].Path, w.Path)
		}
	}

	// Metrics: every key of either run; the delta where both have it.
	metrics := map[string]MetricChange{}
	for _, mc := range c.Metrics {
		metrics[mc.Stage+":"+mc.Key] = mc
	}
	if len(c.Metrics) != 3 {
		t.Errorf("%d metrics, want 3: %+v", len(c.Metrics), c.Metrics)
	}
	acc := metrics["model:val_accuracy"]
	if acc.A == nil || acc.B == nil || acc.Delta == nil || math.Abs(*acc.Delta-(0.93-0.9)) > 1e-12 {
		t.Errorf("val_accuracy: %+v", acc)
	}
	if l := metrics["model:val_loss"]; l.A == nil || *l.A != 0.4 || l.B != nil || l.Delta != nil {
		t.Errorf("val_loss (in A only): %+v", l)
	}
	if e := metrics["model:val_best_epoch"]; e.A != nil || e.B == nil || *e.B != 7 {
		t.Errorf("val_best_epoch (in B only): %+v", e)
	}

	// Stages: load cached in A only; eval in B only.
	if len(c.Stages) != 2 || c.Stages[0] != (StageChange{Stage: "load", AStatus: "succeeded", BStatus: "succeeded", ACached: true}) ||
		c.Stages[1] != (StageChange{Stage: "eval", BStatus: "failed"}) {
		t.Errorf("stage changes %+v", c.Stages)
	}
	if c.A.Seed != 1 || c.B.Seed != 2 || c.B.Status != pipeline.StatusFailed || c.A.ID != "a" {
		t.Errorf("sides %+v %+v", c.A, c.B)
	}
	// The JSON form has no null where a list is empty.
	same, err := Compare(a, a)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(same)
	if !strings.Contains(string(js), `"config":[]`) || !strings.Contains(string(js), `"stages":[]`) {
		t.Errorf("a run against itself: %s", js)
	}
	for _, mc := range same.Metrics {
		if mc.Delta == nil || *mc.Delta != 0 {
			t.Errorf("a run against itself: %+v", mc)
		}
	}
}

func TestCompareNamesMissingFiles(t *testing.T) {
	root := t.TempDir()
	a := writeRun(t, root, fixtureRun{pipeline: "p", id: "a", m: manifest("p", "a", pipeline.StatusSucceeded, t0, 1)})
	b := writeRun(t, root, fixtureRun{pipeline: "p", id: "b", m: manifest("p", "b", pipeline.StatusSucceeded, t0, 1), config: configA})
	if _, err := Compare(a, b); err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), "pipeline.toml") {
		t.Errorf("a run without pipeline.toml: %v", err)
	}
	if _, err := Compare(b, root); err == nil || !strings.Contains(err.Error(), "manifest.json") {
		t.Errorf("a directory that is not a run: %v", err)
	}
}

func TestTOMLTextKeepsTypesApart(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{int64(1), "1"}, {1.0, "1.0"}, {0.5, "0.5"}, {1e-7, "1e-07"}, {math.NaN(), "nan"}, {math.Inf(-1), "-inf"},
		{"a\"b", `"a\"b"`}, {true, "true"}, {[]any{int64(1), "x"}, `[1, "x"]`},
		{map[string]any{"b": int64(2), "a.c": int64(1)}, `{ "a.c" = 1, b = 2 }`},
	} {
		if got := tomlText(c.v); got != c.want {
			t.Errorf("tomlText(%#v) = %s, want %s", c.v, got, c.want)
		}
	}
}
