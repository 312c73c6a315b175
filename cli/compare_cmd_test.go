package cli

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/runinfo"
)

const compareConfig = `[pipeline]
name = 'digits'
seed = 1

[stages]
[stages.model]
epochs = 50
kind = 'train'

[stages.model.optimizer]
lr = 0.001
name = 'adam'
`

// TestCompareTwoRuns: two runs that differ in one nested key and one metric, and in the
// cache use of one stage.
func TestCompareTwoRuns(t *testing.T) {
	root := t.TempDir()
	ma := fixtureManifest("digits", "a", pipeline.StatusSucceeded, fixtureStart, 60)
	mb := fixtureManifest("digits", "b", pipeline.StatusSucceeded, fixtureStart.Add(24*60*60e9), 50)
	mb.ConfigHash = strings.Repeat("0", 64)
	mb.Stages["model"].Cached = true
	const accA, accB = 0.9815, 0.9741
	ma.Stages["eval"].Metrics["test_accuracy"], mb.Stages["eval"].Metrics["test_accuracy"] = accA, accB
	a := writeFixtureRun(t, root, "digits", "a", ma, "", compareConfig)
	b := writeFixtureRun(t, root, "digits", "b", mb, "", strings.Replace(compareConfig, "lr = 0.001", "lr = 0.0003", 1))

	code, out, errOut := runCLI("compare", a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkGolden(t, "compare.golden", root, out)
	for _, want := range []string{"changed  model.optimizer.lr  0.001 → 0.0003", "model  A: succeeded  B: succeeded, cached", "seed          1 (same)"} {
		if !strings.Contains(out, want) {
			t.Errorf("comparison lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = runCLI("compare", a, b, "--format", "json")
	if code != 0 {
		t.Fatalf("json: exit %d: %s", code, errOut)
	}
	checkGolden(t, "compare.json.golden", root, out)
	var c runinfo.Comparison
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Config) != 1 || c.Config[0] != (runinfo.ConfigChange{Path: "model.optimizer.lr", Change: runinfo.Changed, A: "0.001", B: "0.0003"}) {
		t.Errorf("config differences %+v", c.Config)
	}
	var changed []runinfo.MetricChange
	for _, m := range c.Metrics {
		if m.Delta == nil || *m.Delta != 0 {
			changed = append(changed, m)
		}
	}
	if len(changed) != 1 || changed[0].Stage != "eval" || changed[0].Key != "test_accuracy" || math.Abs(*changed[0].Delta-(accB-accA)) > 1e-12 {
		t.Errorf("metric differences %+v, want eval test_accuracy %v", changed, accB-accA)
	}
	if len(c.Stages) != 1 || c.Stages[0].Stage != "model" || c.Stages[0].ACached || !c.Stages[0].BCached {
		t.Errorf("stage differences %+v, want model cached in B only", c.Stages)
	}

	// Not a run: exit 2, naming it.
	code, _, errOut = runCLI("compare", a, filepath.Join(root, "digits"))
	if code != pipeline.ExitConfig || !strings.Contains(errOut, filepath.Join(root, "digits")) {
		t.Errorf("a directory that is not a run: exit %d, %s", code, errOut)
	}
	if code, _, _ := runCLI("compare", a); code != pipeline.ExitConfig {
		t.Errorf("one run: exit %d", code)
	}
}
