package stages

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/pipeline"
)

// streamSrc trains on digits, evaluates on its test split and predicts it, under a memory
// budget and a worker count.
const streamSrc = `
[pipeline]
seed = 3
workers = %d
memory_budget = %q
[stages.load]
kind = "dataset"
name = "digits"
peer_split = true
[stages.split]
kind = "split"
input = "load"
split_column = "split"
[stages.normalize]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
method = "standard"
[stages.model]
kind = "train"
train = "normalize.train"
val = "normalize.val"
target = "target"
layers = [ { dense = 32, dropout = 0.1 } ]
optimizer = { name = "adam", lr = 1e-3 }
epochs = 4
[stages.eval]
kind = "evaluate"
models = ["model.model"]
tables = ["normalize.test"]
[stages.pred]
kind = "predict"
model = "model.model"
input = "normalize.test"
`

func dataPath(t *testing.T, m *pipeline.Manifest, stage, role string) string {
	t.Helper()
	v, ok := m.Stages[stage].Info["data_path_"+role].(map[string]any)
	if !ok {
		t.Fatalf("stage %s records no data path for %s (info %v)", stage, role, m.Stages[stage].Info)
	}
	return fmt.Sprint(v["path"])
}

// A memory budget too small for the dense copies makes train, evaluate and predict read
// through mapped files (recorded in the manifest), with the dense path's metrics, for any
// worker count; the files are gone after the run.
func TestTrainStreamsOverBudget(t *testing.T) {
	run := func(workers int, budget string) (*pipeline.Manifest, string) {
		m, dir, err := runTOML(t, ".", fmt.Sprintf(streamSrc, workers, budget))
		if err != nil {
			t.Fatal(err)
		}
		return m, dir
	}
	dense, _ := run(2, "1GiB")
	for _, role := range []string{"train", "val"} {
		if p := dataPath(t, dense, "model", role); p != pathDense {
			t.Errorf("1GiB budget: %s data path %s, want dense", role, p)
		}
	}
	mapped, dir := run(2, "64KiB")
	// The source's batches are sized for the budget: 256 rows, not one batch of all 1,797.
	if _, ok := dense.Stages["load"].Info["batch_rows"]; ok {
		t.Errorf("1GiB budget: the source's batch rows were lowered (%v)", dense.Stages["load"].Info["batch_rows"])
	}
	if br := fmt.Sprint(mapped.Stages["load"].Info["batch_rows"]); br != "256" || mapped.Stages["load"].Batches < 7 {
		t.Errorf("64KiB budget: source batch rows %s, %d batches; want 256 rows, 8 batches", br, mapped.Stages["load"].Batches)
	}
	for _, c := range []struct{ stage, role string }{{"model", "train"}, {"model", "val"}, {"eval", "eval_normalize.test"}, {"pred", "predict"}} {
		if p := dataPath(t, mapped, c.stage, c.role); p != pathMapped {
			t.Errorf("64KiB budget: %s %s data path %s, want mapped", c.stage, c.role, p)
		}
	}
	// The training rows were read with at most one system call each (one io_uring_enter a
	// chunk of rows where the kernel allows it), all mini-batches but each epoch's first
	// read ahead (some of them on read-ahead goroutines, as the machine allowed).
	if info, _ := mapped.Stages["model"].Info["data_path_train"].(map[string]any); info != nil {
		read, _ := info["rows_read"].(float64)
		ahead, _ := info["rows_read_ahead"].(float64)
		bg, _ := info["rows_read_in_background"].(float64)
		calls, _ := info["read_system_calls"].(float64)
		rows := float64(mapped.Stages["split"].RowsOut) // an upper bound of the train rows
		if !(ahead > 0 && ahead < read && bg <= ahead && read <= 4*rows+8192 && calls > 0 && calls <= read) {
			t.Errorf("train reads: %v rows read in %v system calls, %v read ahead, %v in the background", info["rows_read"], calls, info["rows_read_ahead"], info["rows_read_in_background"])
		}
	}
	if !strings.Contains(strings.Join(mapped.Stages["model"].Notes, "\n"), "file mapping") {
		t.Errorf("model notes do not say the data is mapped: %v", mapped.Stages["model"].Notes)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "spill"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "rows-") {
			t.Errorf("mapped file %s left in the spill directory", e.Name())
		}
	}
	one, _ := run(1, "64KiB")
	for _, k := range []struct{ stage, metric string }{{"model", "val_loss"}, {"model", "val_accuracy"}, {"eval", "test_accuracy"}, {"eval", "test_logloss"}} {
		d, mp, o := dense.Stages[k.stage].Metrics[k.metric], mapped.Stages[k.stage].Metrics[k.metric], one.Stages[k.stage].Metrics[k.metric]
		if math.IsNaN(d) || d == 0 && k.metric != "val_loss" {
			t.Fatalf("%s %s: %v is not a metric", k.stage, k.metric, d)
		}
		if math.Abs(d-mp) > 1e-9*max(1, math.Abs(d)) {
			t.Errorf("%s %s: mapped %v, dense %v", k.stage, k.metric, mp, d)
		}
		if o != mp {
			t.Errorf("%s %s: mapped with 1 worker %v, with 2 %v", k.stage, k.metric, o, mp)
		}
	}
	if dense.Stages["pred"].RowsOut != mapped.Stages["pred"].RowsOut || mapped.Stages["pred"].RowsOut == 0 {
		t.Errorf("predict rows: mapped %d, dense %d", mapped.Stages["pred"].RowsOut, dense.Stages["pred"].RowsOut)
	}
}
