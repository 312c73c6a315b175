package stages

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/internal/storetest"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/report"
	"github.com/pipe-ml/pipe/search"
)

const searchDigits = `
[pipeline]
seed = 5
[stages.load]
kind = "dataset"
name = "digits"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
method = "minmax"
`

// searchTune is a small search: 8 trials in 2 rounds with ASHA, a conditional parameter and
// a parameter over every layer (the batch_norm layer takes no dropout).
const searchTune = `
[stages.tune]
kind = "search"
train = "scale.train"
val = "scale.val"
base = { layers = [ { dense = 32 }, { batch_norm = true }, { dense = 16 } ], epochs = 6 }
space = { "optimizer.lr" = { log_uniform = [1e-3, 3e-2] },
          "layers.*.dropout" = { uniform = [0.0, 0.5] },
          "optimizer.name" = { choice = ["adam", "sgd"] },
          "optimizer.momentum" = { uniform = [0.8, 0.99], when = { "optimizer.name" = "sgd" } } }
trials = 8
rounds = 2
prune = { method = "asha", min_epochs = 1, reduction = 2 }
[stages.eval]
kind = "evaluate"
models = ["tune.model"]
tables = ["scale.val"]
`

// readTrials reads a search stage's trials.csv: its header and rows.
func readTrials(t *testing.T, dir string) ([]string, [][]string) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "stages", "tune", report.TrialsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("trials.csv: %d rows, %v", len(rows), err)
	}
	return rows[0], rows[1:]
}

// column returns the values of a trials.csv column.
func column(t *testing.T, header []string, rows [][]string, name string) []string {
	t.Helper()
	for j, h := range header {
		if h == name {
			out := make([]string, len(rows))
			for i, r := range rows {
				out[i] = r[j]
			}
			return out
		}
	}
	t.Fatalf("trials.csv has no column %q: %v", name, header)
	return nil
}

// withoutTimes drops the columns that measure time.
func withoutTimes(header []string, rows [][]string) [][]string {
	var out [][]string
	for _, r := range append([][]string{header}, rows...) {
		var keep []string
		for j, v := range r {
			if header[j] != trialsColSeconds && header[j] != trialsColStart {
				keep = append(keep, v)
			}
		}
		out = append(out, keep)
	}
	return out
}

func parseNum(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return v
}

// TestSearchSameOutcomeForAnyWorkers: one trial at a time or three side by side, the trials
// (parameters, status, epochs, objective), the best trial and its parameters are the same.
func TestSearchSameOutcomeForAnyWorkers(t *testing.T) {
	src := searchDigits + searchTune
	m1, dir1, err := runTOML(t, ".", src, "tune.workers=1", "pipeline.workers=1")
	if err != nil {
		t.Fatal(err)
	}
	m3, dir3, err := runTOML(t, ".", src, "tune.workers=3", "pipeline.workers=3")
	if err != nil {
		t.Fatal(err)
	}
	if w := m3.Stages["tune"].Info["workers"]; w != 3.0 {
		t.Fatalf("workers %v, want 3 trials side by side", w)
	}
	h1, r1 := readTrials(t, dir1)
	h3, r3 := readTrials(t, dir3)
	if len(r1) != 8 {
		t.Fatalf("%d trials, want 8", len(r1))
	}
	if !reflect.DeepEqual(withoutTimes(h1, r1), withoutTimes(h3, r3)) {
		t.Errorf("trials differ between 1 and 3 workers:\n%v\n%v", withoutTimes(h1, r1), withoutTimes(h3, r3))
	}
	statuses := strings.Join(column(t, h1, r1, trialsColStatus), " ")
	rounds := strings.Join(column(t, h1, r1, trialsColRound), " ")
	if !strings.Contains(statuses, "pruned") || !strings.Contains(statuses, "completed") || rounds != "0 0 0 0 1 1 1 1" {
		t.Errorf("statuses %q, rounds %q: want pruned and completed trials in two rounds", statuses, rounds)
	}
	i1, i3 := m1.Stages["tune"].Info, m3.Stages["tune"].Info
	for _, k := range []string{"best_params", "best_trial", "best_value", "best_epoch", "best_config", "regions", "trials"} {
		if !reflect.DeepEqual(i1[k], i3[k]) {
			t.Errorf("info %s: %v with 1 worker, %v with 3", k, i1[k], i3[k])
		}
	}
	if !reflect.DeepEqual(m1.Stages["tune"].Metrics, m3.Stages["tune"].Metrics) {
		t.Errorf("metrics: %v with 1 worker, %v with 3", m1.Stages["tune"].Metrics, m3.Stages["tune"].Metrics)
	}
}

// TestSearchBestModelIsTheBestTrial: the model output scores, on val, the objective recorded
// for the best trial (the trial trained again is that trial's model); the best trial is the
// trials table's best row; a parameter over every layer set every layer that takes it; a
// conditional parameter is null where its condition failed; the best config, pasted into a
// pipeline as a train stage, loads.
func TestSearchBestModelIsTheBestTrial(t *testing.T) {
	m, dir, err := runTOML(t, ".", searchDigits+searchTune)
	if err != nil {
		t.Fatal(err)
	}
	st := m.Stages["tune"]
	best := st.Metrics["val_logloss"]
	if got := m.Stages["eval"].Metrics["val_logloss"]; math.Abs(got-best) > 1e-9*math.Max(1, best) {
		t.Errorf("the model's val_logloss %v, the best trial's %v", got, best)
	}
	if m.Status != pipeline.StatusSucceeded || st.Status != pipeline.StatusSucceeded {
		t.Errorf("run %s, stage %s (%v): the best trial trained again should score the trial's objective", m.Status, st.Status, m.Warnings)
	}
	header, rows := readTrials(t, dir)
	objective := column(t, header, rows, trialsColObjective)
	status := column(t, header, rows, trialsColStatus)
	bestRow := -1
	for i := range rows {
		if status[i] == "completed" && (bestRow < 0 || parseNum(t, objective[i]) < parseNum(t, objective[bestRow])) {
			bestRow = i
		}
	}
	if bt := st.Info["best_trial"]; bt != float64(bestRow) || parseNum(t, objective[bestRow]) != best {
		t.Errorf("best trial %v (%v), the table's best completed row %d (%s)", bt, best, bestRow, objective[bestRow])
	}

	// Conditional: momentum exists exactly where the optimizer is sgd, and both occur.
	names, momentum := column(t, header, rows, "optimizer.name"), column(t, header, rows, "optimizer.momentum")
	seen := map[string]bool{}
	for i := range rows {
		seen[names[i]] = true
		if (names[i] == "sgd") != (momentum[i] != "") {
			t.Errorf("trial %d: optimizer %s, momentum %q", i, names[i], momentum[i])
		}
	}
	if !seen["sgd"] || !seen["adam"] {
		t.Errorf("optimizers drawn: %v, want both", seen)
	}

	// layers.*.dropout: every dense layer of the model has the best trial's dropout.
	params := st.Info["best_params"].(map[string]any)
	dropout := params["layers.*.dropout"].(float64)
	p0, err := bundle.Load(filepath.Join(dir, "stages", "tune", bundleDir), features.Decoders())
	if err != nil {
		t.Fatal(err)
	}
	b, ok := p0.(*bundle.Bundle)
	if !ok {
		t.Fatalf("the model is a %T", p0)
	}
	dense := 0
	for _, l := range b.Model.Spec().Layers {
		if l.Type == nn.LayerDense {
			dense++
			if float64(float32(l.Dropout)) != float64(float32(dropout)) {
				t.Errorf("layer %s: dropout %v, want %v", l.Name, l.Dropout, dropout)
			}
		}
	}
	if dense != 2 {
		t.Errorf("%d dense layers, want 2", dense)
	}

	// The run report reads the trials back: the best so far ends at the best objective.
	rep, err := report.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range rep.Stages {
		if rs.Name != "tune" {
			continue
		}
		sr := rs.Search
		if sr == nil || len(sr.Trials) != 8 || float64(sr.Best) != st.Info["best_trial"] || len(sr.Params) != 4 || len(sr.Parallel.Lines) != 8 {
			t.Fatalf("report's search section: %+v", sr)
		}
		bsf := sr.BestSoFar.Series[1].Values
		if bsf[len(bsf)-1] != best || rs.Training == nil {
			t.Errorf("report: best so far ends at %v, want %v; training curves %v", bsf[len(bsf)-1], best, rs.Training)
		}
	}

	// The best config as a train stage: it loads, with the best parameters.
	snippet := st.Info["best_config"].(string)
	p, err := pipeline.Parse([]byte(searchDigits+snippet), "pasted.toml", ".", registry(t), pipeline.LoadOptions{})
	if err != nil {
		t.Fatalf("the pasted config does not load: %v\n%s", err, snippet)
	}
	c, ok := p.Stage("model")
	if !ok || c.Kind != "train" {
		t.Fatalf("pasted stage: %v\n%s", c, snippet)
	}
	if c.Table("optimizer")["name"] != params["optimizer.name"] || c.Table("optimizer")["lr"] != params["optimizer.lr"] {
		t.Errorf("pasted optimizer %v, best params %v", c.Table("optimizer"), params)
	}
	layers := c.List("layers")
	if len(layers) != 3 || layers[0].(map[string]any)["dropout"] != dropout || layers[1].(map[string]any)["dropout"] != nil {
		t.Errorf("pasted layers %v, want dropout %v on the dense layers", layers, dropout)
	}
}

// TestSearchRefit: with refit, the model is the best trial's config trained on train and val
// together for the best trial's best epoch count, and says so.
func TestSearchRefit(t *testing.T) {
	m, dir, err := runTOML(t, ".", searchDigits+strings.Replace(searchTune, "trials = 8\n", "trials = 8\nrefit = true\n", 1))
	if err != nil {
		t.Fatal(err)
	}
	st := m.Stages["tune"]
	refit, _ := st.Info["refit"].(map[string]any)
	split := m.Stages["split"].Metrics
	if refit == nil || refit["rows"] != split["train_rows"]+split["val_rows"] || refit["epochs"] != st.Info["best_epoch"] {
		t.Fatalf("refit %v: want %v + %v rows for %v epochs", refit, split["train_rows"], split["val_rows"], st.Info["best_epoch"])
	}
	hist, err := os.ReadFile(filepath.Join(dir, "stages", "tune", "history.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(hist), "\n") - 1; float64(lines) != st.Info["best_epoch"] {
		t.Errorf("the refit trained %d epochs, want the best trial's %v", lines, st.Info["best_epoch"])
	}
	if header, _, _ := strings.Cut(string(hist), "\n"); strings.Contains(header, "val_") || !strings.Contains(header, "loss") {
		t.Errorf("the refit's history has columns %s: its val rows were trained on, so no val_ metric", header)
	}
	var meta struct {
		Refit bool `json:"refit"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "stages", "tune", bundleDir, "bundle.json"))
	if err != nil || json.Unmarshal(raw, &meta) != nil || !meta.Refit {
		t.Errorf("bundle.json does not say refit: %v %s", err, raw)
	}
}

// TestConcatDatasets: the refit's training set holds the rows of train (through its index),
// then those of val, with their targets and inputs.
func TestConcatDatasets(t *testing.T) {
	a := train.Dataset{X: []float32{0, 1, 2, 3, 4, 5}, NumInputs: 2, Cat: [][]int32{{7, 8, 9}},
		Targets: []train.Target{{Labels: []int32{0, 1, 2}}, {Values: []float32{.5, .6, .7}}}, Index: []int{2, 0}}
	b := train.Dataset{X: []float32{10, 11}, NumInputs: 2, Cat: [][]int32{{6}}, Targets: []train.Target{{Labels: []int32{1}}, {Values: []float32{.9}}}}
	got := concatDatasets(a, b)
	want := train.Dataset{X: []float32{4, 5, 0, 1, 10, 11}, NumInputs: 2, Cat: [][]int32{{9, 7, 6}},
		Targets: []train.Target{{Labels: []int32{2, 0, 1}}, {Values: []float32{.7, .5, .9}}}}
	if !reflect.DeepEqual(got, want) || got.Len() != a.Len()+b.Len() {
		t.Errorf("concat = %+v, want %+v", got, want)
	}
}

// TestSearchSpaceErrorsAtLoad: every problem of a space is a config error at its line and
// column when the pipeline is loaded: a path base's kind does not take, a bound or a choice
// its key refuses, a distribution that cannot draw the key's type, a key that decides the
// data, a condition on nothing.
func TestSearchSpaceErrorsAtLoad(t *testing.T) {
	src := searchDigits + `
[stages.tune]
kind = "search"
train = "scale.train"
val = "scale.val"
base = { layers = [ { dense = 32 }, { batch_norm = true } ], epochs = 6 }
[stages.tune.space]
"optimizer.lrr" = { log_uniform = [1e-4, 1e-2] }
"layers.*.dropout" = { uniform = [0.0, 1.0] }
"layers.0.dense" = { choice = [16, 0] }
"layers.1.dropout" = { uniform = [0.0, 0.3] }
"optimizer.name" = { choice = ["adam", "sgdd"] }
epochs = { uniform = [3, 9] }
target = { choice = ["a", "b"] }
`
	_, err := pipeline.Parse([]byte(src), "tune.toml", ".", registry(t), pipeline.LoadOptions{})
	if err == nil {
		t.Fatal("want config errors")
	}
	lineOf := func(part string) int {
		for i, l := range strings.Split(src, "\n") {
			if strings.HasPrefix(l, part) {
				return i + 1
			}
		}
		t.Fatalf("no line %q", part)
		return 0
	}
	want := []struct{ key, line, msg string }{
		{"space.optimizer.lrr", `"optimizer.lrr"`, `optimizer has no key "lrr" (did you mean "optimizer.lr"?)`},
		{"space.layers.*.dropout.uniform[1]", `"layers.*.dropout"`, "the upper bound 1.0: base.layers[0].dropout: 1 must be below 1"},
		{"space.layers.0.dense.choice[1]", `"layers.0.dense"`, "the value 0: base.layers[0].dense: 0 is below the minimum 1"},
		{"space.layers.1.dropout", `"layers.1.dropout"`, "layers.1 is a batch_norm layer, which takes no dropout"},
		{"space.optimizer.name.choice[1]", `"optimizer.name"`, `the value "sgdd": base.optimizer.name: "sgdd" is not one of`},
		{"space.epochs.uniform", `epochs`, "epochs takes an integer, and uniform draws fractions (use int or log_int)"},
		{"space.target", `target`, "target decides how the data is read"},
	}
	ces := pipeline.ConfigErrors(err)
	for _, w := range want {
		found := false
		for _, ce := range ces {
			if ce.Key == w.key {
				found = true
				if ce.Line != lineOf(w.line) || ce.Col < 1 || ce.Stage != "tune" || !strings.Contains(ce.Error(), w.msg) {
					t.Errorf("%s: %s (at %d:%d), want line %d and %q", w.key, ce, ce.Line, ce.Col, lineOf(w.line), w.msg)
				}
			}
		}
		if !found {
			t.Errorf("no error at %s; got:\n%v", w.key, err)
		}
	}
	if len(ces) != len(want) {
		t.Errorf("%d errors, want %d:\n%v", len(ces), len(want), err)
	}
}

// TestSearchSpaceSyntaxErrorsAtLoad: the search package's own checks of a space (here a
// condition on nothing) are config errors at their line and column. They come first: the
// paths and values are checked once the space parses.
func TestSearchSpaceSyntaxErrorsAtLoad(t *testing.T) {
	src := searchDigits + `
[stages.tune]
kind = "search"
train = "scale.train"
val = "scale.val"
[stages.tune.space]
"optimizer.name" = { choice = ["adam", "sgd"] }
"optimizer.momentum" = { uniform = [0.8, 0.99], when = { "optimizer.nam" = "sgd" } }
"optimizer.lr" = { log_uniform = [0, 1e-2] }
`
	_, err := pipeline.Parse([]byte(src), "tune.toml", ".", registry(t), pipeline.LoadOptions{})
	ces := pipeline.ConfigErrors(err)
	lines := strings.Split(src, "\n")
	want := []struct {
		key  string
		line int
		msg  string
	}{
		{"space.optimizer.momentum.when.optimizer.nam", len(lines) - 2, `names "optimizer.nam", which is neither a parameter of the space nor a value of the base config (did you mean "optimizer.name"?)`},
		{"space.optimizer.lr.log_uniform", len(lines) - 1, "the lower bound 0 is not positive"},
	}
	if len(ces) != len(want) {
		t.Fatalf("got %v, want %d errors", err, len(want))
	}
	for i, w := range want {
		if ce := ces[i]; ce.Key != w.key || ce.Line != w.line || ce.Col < 1 || !strings.Contains(ce.Error(), w.msg) {
			t.Errorf("error %d: %s (at %d:%d), want %s at line %d with %q", i, ce, ce.Line, ce.Col, w.key, w.line, w.msg)
		}
	}
}

// TestSearchStageConfigErrors: the base is checked as a stage of its kind, and settings that
// do not fit the search are refused.
// searchConfigError is a search stage's table (after head) with one error, at key, whose
// message holds msg.
type searchConfigError struct{ name, body, key, msg string }

// searchErrorHead is a search stage's head without a space.
const searchErrorHead = searchDigits + "[stages.tune]\nkind = \"search\"\ntrain = \"scale.train\"\nval = \"scale.val\"\n"

// searchL2Head is searchErrorHead with a one-parameter space.
const searchL2Head = searchErrorHead + "space = { l2 = { log_uniform = [1e-6, 1e-2] } }\n"

// checkSearchConfigErrors loads head + each case's body and checks that it fails with that
// one error, at the key and a line.
func checkSearchConfigErrors(t *testing.T, head string, cases []searchConfigError) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := pipeline.Parse([]byte(head+c.body), "tune.toml", ".", registry(t), pipeline.LoadOptions{})
			ces := pipeline.ConfigErrors(err)
			if len(ces) != 1 || ces[0].Key != c.key || ces[0].Line == 0 || !strings.Contains(ces[0].Error(), c.msg) {
				t.Fatalf("got %v, want one error at %s with %q", err, c.key, c.msg)
			}
		})
	}
}

func TestSearchStageConfigErrors(t *testing.T) {
	head := searchErrorHead
	const space, memberSpace = "space = { l2 = { log_uniform = [1e-6, 1e-2] } }\n", "space = { \"member.l2\" = { log_uniform = [1e-6, 1e-2] } }\n"
	cases := []searchConfigError{
		{"base key", space + "base = { layers = [ { dense = 0 } ] }\n", "base.layers[0].dense", "below the minimum 1"},
		{"base misplaced", space + "base = { workers = 2 }\n", "base.workers", "set workers on the search stage"},
		{"base layer", space + "base = { layers = [ { dense = 8, batch_norm = true } ] }\n", "base.layers[0]", "a layer has one type"},
		{"objective", space + "objective = \"accuracy\"\n", "objective", "is not a val metric"},
		{"rounds", space + "trials = 2\nrounds = 3\n", "rounds", "3 rounds need at least 3 trials"},
		{"ensemble prune", memberSpace + "model = \"ensemble\"\nprune = { method = \"asha\" }\n", "prune.method", "cannot be pruned"},
		{"ensemble refit", memberSpace + "model = \"ensemble\"\nrefit = true\n", "refit", "does not apply to an ensemble"},
		{"ensemble loss", memberSpace + "model = \"ensemble\"\nobjective = \"val_loss\"\n", "objective", "no loss of its own"},
		{"ensemble member key", memberSpace + "model = \"ensemble\"\nbase = { member = { epochs = 0 } }\n", "base.member.epochs", "below the minimum 1"},
		{"ensemble path", space + "model = \"ensemble\"\n", "space.l2", `base has no key "l2"`},
		{"top_k refit", space + "top_k = 3\nrefit = true\n", "top_k", "choose one"},
		{"top_k trials", space + "trials = 4\ntop_k = 5\n", "top_k", "more than the 4 trials"},
	}
	checkSearchConfigErrors(t, head, cases)
	// Without rounds, a search of 2 trials runs 2 rounds (min(3, trials)).
	if _, err := pipeline.Parse([]byte(head+space+"trials = 2\n"), "tune.toml", ".", registry(t), pipeline.LoadOptions{}); err != nil {
		t.Errorf("trials = 2 without rounds: %v", err)
	}
}

// TestApplyParams: parameters land at their paths in a copy of base, shorter paths first and
// a wildcard before the paths it covers; * skips the layers that do not take the key.
func TestApplyParams(t *testing.T) {
	base := map[string]any{"layers": []any{map[string]any{"dense": int64(8)}, map[string]any{"batch_norm": true}, map[string]any{"type": "dense", "units": int64(4)}}}
	got, err := applyParams(base, search.Params{
		"layers.0.dropout": 0.1, "layers.*.dropout": 0.3, "optimizer.lr": 0.01, "optimizer": map[string]any{"name": "sgd", "momentum": 0.9}, "l2": 1e-4,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"layers":    []any{map[string]any{"dense": int64(8), "dropout": 0.1}, map[string]any{"batch_norm": true}, map[string]any{"type": "dense", "units": int64(4), "dropout": 0.3}},
		"optimizer": map[string]any{"name": "sgd", "momentum": 0.9, "lr": 0.01}, "l2": 1e-4,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("applied:\n%v\nwant:\n%v", got, want)
	}
	if _, has := base["l2"]; has || len(base["layers"].([]any)[0].(map[string]any)) != 1 {
		t.Errorf("base was modified: %v", base)
	}
	// A choice of layer lists may draw [] (no hidden layer): * then sets nothing, where a list
	// whose layers all refuse the key is still an error.
	got, err = applyParams(base, search.Params{"layers": []any{}, "layers.*.dropout": 0.3})
	if err != nil || !reflect.DeepEqual(got["layers"], []any{}) {
		t.Errorf("layers = [] with layers.*.dropout: %v, %v; want no layers and no error", got, err)
	}
	for _, bad := range []search.Params{{"layers.5.dropout": 0.1}, {"layers.1.batch_norm.x": 1.0},
		{"layers": []any{map[string]any{"batch_norm": true}}, "layers.*.dropout": 0.3}} {
		if _, err := applyParams(base, bad); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

// TestSearchDepthChoiceWithLinear: a choice over whole layer lists that holds [] (a linear
// model) with a parameter over every layer's dropout: the trials without hidden layers train
// (they failed before: "no element of layers takes dropout"), with no dropout anywhere, and
// those with layers get the drawn dropout.
func TestSearchDepthChoiceWithLinear(t *testing.T) {
	src := searchDigits + `
[stages.tune]
kind = "search"
train = "scale.train"
val = "scale.val"
base = { layers = [ { dense = 16 } ], epochs = 2 }
space = { "layers" = { choice = [ [], [ { dense = 16 } ], [ { dense = 16 }, { dense = 8 } ] ] },
          "layers.*.dropout" = { uniform = [0.1, 0.5] } }
trials = 6
rounds = 1
prune = { method = "none" }
[stages.eval]
kind = "evaluate"
models = ["tune.model"]
tables = ["scale.val"]
`
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	header, rows := readTrials(t, dir)
	status, layers := column(t, header, rows, trialsColStatus), column(t, header, rows, "layers")
	depths := map[int]int{}
	for i := range rows {
		if status[i] != "completed" {
			t.Errorf("trial %d (layers %s): %s", i, layers[i], status[i])
		}
		depths[strings.Count(layers[i], "dense")]++
	}
	if depths[0] == 0 || depths[0] == len(rows) {
		t.Fatalf("layers drawn %v: want trials with and without hidden layers", layers)
	}
	if info := m.Stages["tune"].Info; info["trials"].(map[string]any)["failed"] != float64(0) {
		t.Errorf("trials %v: want none failed", info["trials"])
	}
	// A trial's config: the linear one has no layers, the others the drawn dropout on each.
	for _, l := range [][]any{{}, {map[string]any{"dense": int64(16)}, map[string]any{"dense": int64(8)}}} {
		got, err := applyParams(map[string]any{"layers": []any{map[string]any{"dense": int64(16)}}}, search.Params{"layers": l, "layers.*.dropout": 0.25})
		if err != nil || len(got["layers"].([]any)) != len(l) {
			t.Fatalf("layers %v: %v, %v", l, got, err)
		}
		for _, e := range got["layers"].([]any) {
			if e.(map[string]any)["dropout"] != 0.25 {
				t.Errorf("layers %v: layer %v has no dropout 0.25", l, e)
			}
		}
	}
}

// TestSearchEnsembleBase: with model = "ensemble" each trial is an ensemble, scored combined
// by mean; the model output is the best trial's ensemble and scores its objective.
func TestSearchEnsembleBase(t *testing.T) {
	src := searchDigits + `
[stages.tune]
kind = "search"
model = "ensemble"
train = "scale.train"
val = "scale.val"
objective = "val_accuracy"
base = { members = 2, member = { layers = [ { dense = 16 } ], epochs = 3 } }
space = { "member.optimizer.lr" = { log_uniform = [1e-3, 3e-2] }, bootstrap = { choice = [true, false] } }
trials = 3
rounds = 1
[stages.eval]
kind = "evaluate"
models = ["tune.model"]
tables = ["scale.val"]
`
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	st := m.Stages["tune"]
	if got, want := m.Stages["eval"].Metrics["val_accuracy"], st.Metrics["val_accuracy"]; got != want || want < 0.5 {
		t.Errorf("the ensemble's val_accuracy %v, the best trial's %v", got, want)
	}
	header, rows := readTrials(t, dir)
	if s := strings.Join(column(t, header, rows, trialsColStatus), " "); s != "completed completed completed" {
		t.Errorf("statuses %q: an ensemble's trials are not pruned", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "stages", "tune", "members", "member_01", "history.csv")); err != nil {
		t.Errorf("the best ensemble's member histories: %v", err)
	}

	// top_k = 2: the model holds the members of the two best trials (by val_accuracy, ties by
	// index), and its val_accuracy is what evaluate measures through the bundle.
	m2, dir2, err := runTOML(t, ".", strings.Replace(src, "rounds = 1\n", "rounds = 1\ntop_k = 2\n", 1))
	if err != nil {
		t.Fatal(err)
	}
	objective := column(t, header, rows, trialsColObjective)
	order := []int{0, 1, 2}
	sort.SliceStable(order, func(a, b int) bool { return parseNum(t, objective[order[a]]) > parseNum(t, objective[order[b]]) })
	var want []string
	for _, i := range order[:2] {
		want = append(want, fmt.Sprintf("trial_%03d_member_00", i), fmt.Sprintf("trial_%03d_member_01", i))
	}
	p, err := bundle.Load(filepath.Join(dir2, "stages", "tune", bundleDir), features.Decoders())
	if err != nil {
		t.Fatal(err)
	}
	if eb, ok := p.(*bundle.EnsembleBundle); !ok || !reflect.DeepEqual(eb.Ens.Names(), want) {
		t.Fatalf("top_k model %T %v, want members %v", p, p, want)
	}
	st2 := m2.Stages["tune"]
	if got, want := m2.Stages["eval"].Metrics["val_accuracy"], st2.Metrics["val_accuracy"]; got != want || m2.Status != pipeline.StatusSucceeded {
		t.Errorf("top_k: evaluate's val_accuracy %v, the stage's %v; run %s %v", got, want, m2.Status, m2.Warnings)
	}
	if _, err := os.Stat(filepath.Join(dir2, "stages", "tune", "members", "member_03", "history.csv")); err != nil {
		t.Errorf("top_k: member 3's history: %v", err)
	}
}

// searchOneAtATime is searchDigits+searchTune training one trial at a time (workers is not in
// the cache key: a run with other workers resumes it).
var searchOneAtATime = searchDigits + strings.Replace(searchTune, "trials = 8\n", "trials = 8\nworkers = 1\n", 1)

// TestResumeSearchStage interrupts a search when 3 of its 8 trials have finished (one at a
// time): the resumed run (other worker counts) does not train them again, and ends with the
// model, trials and metrics of an uninterrupted run (yet other worker counts).
func TestResumeSearchStage(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	testResume(t, resumeCase{
		src:       searchOneAtATime,
		stage:     "tune",
		cancelAt:  progressAt("tune", "trials", 3),
		outputs:   []string{"bundle"},
		files:     []string{"history.csv"},
		resumed:   []string{"tune.workers=2", "pipeline.workers=2"},
		reference: []string{"tune.workers=3", "pipeline.workers=3"},
		checkResumed: func(t *testing.T, st *pipeline.StageManifest) {
			if n := infoNumber(st, "restored_trials"); n != 3 || !hasNote(st, "3 finished trials taken from an earlier") {
				t.Errorf("resumed stage: info restored_trials %v, notes %q; want 3", st.Info["restored_trials"], st.Notes)
			}
			if n := infoNumber(st, "trials_trained"); n != 5 {
				t.Errorf("the resumed run trained %v trials, want the 5 unfinished ones", n)
			}
		},
	})
}

// TestResumedSearchTrialsEqual: the resumed search's trials table is an uninterrupted one's
// (times aside).
func TestResumedSearchTrialsEqual(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	checkResumedSearch(t, searchOneAtATime, 3, 8)
}

// checkResumedSearch interrupts the search of src (one trial at a time) once `after` of its
// trials have finished, resumes it with 2 workers, and checks that the resumed run took those
// trials from the store, trained only the others, and ends with an uninterrupted run's trials
// table (times aside).
func checkResumedSearch(t *testing.T, src string, after, trials int) {
	t.Helper()
	store := storetest.New()
	if _, _, err := resumeRun(t, store, src, progressAt("tune", "trials", int64(after))); err == nil {
		t.Fatal("the interrupted run did not stop")
	}
	m2, dir2, err := resumeRun(t, store, src, nil, "tune.workers=2")
	if err != nil {
		t.Fatal(err)
	}
	st := m2.Stages["tune"]
	if r, n := infoNumber(st, "restored_trials"), infoNumber(st, "trials_trained"); r != float64(after) || n != float64(trials-after) {
		t.Errorf("the resumed run restored %v trials and trained %v, want %d and %d", r, n, after, trials-after)
	}
	_, dir3, err := resumeRun(t, storetest.New(), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	h2, r2 := readTrials(t, dir2)
	h3, r3 := readTrials(t, dir3)
	if !reflect.DeepEqual(withoutTimes(h2, r2), withoutTimes(h3, r3)) {
		t.Errorf("resumed trials:\n%v\nuninterrupted:\n%v", withoutTimes(h2, r2), withoutTimes(h3, r3))
	}
}

// TestSearchTasksNameATarget: a parameter under tasks.<target> names a target of the data,
// checked before any trial trains.
func TestSearchTasksNameATarget(t *testing.T) {
	src := searchDigits + `
[stages.tune]
kind = "search"
train = "scale.train"
val = "scale.val"
space = { "tasks.digit.loss_weight" = { uniform = [0.5, 1.0] } }
`
	_, _, err := runTOML(t, ".", src)
	if err == nil || !strings.Contains(err.Error(), "tasks.digit names no target (targets: target)") {
		t.Fatalf("got %v", err)
	}
}

// TestSearchIsCached: a second run with the same stage store reads the search back (its model
// through the bundle loader, for the evaluation that reads it) instead of running it.
func TestSearchIsCached(t *testing.T) {
	store := storetest.New()
	src := searchDigits + searchTune
	m1, _, err := resumeRun(t, store, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	m2, dir2, err := resumeRun(t, store, src, nil, "eval.worst_k=3")
	if err != nil {
		t.Fatal(err)
	}
	if st := m2.Stages["tune"]; !st.Cached || m2.Stages["eval"].Cached {
		t.Fatalf("tune cached %v, eval cached %v: want the search read back and the evaluation run", st.Cached, m2.Stages["eval"].Cached)
	}
	if !reflect.DeepEqual(m1.Stages["tune"].Metrics, m2.Stages["tune"].Metrics) || !reflect.DeepEqual(m1.Stages["eval"].Metrics, m2.Stages["eval"].Metrics) {
		t.Errorf("metrics differ: %v / %v, %v / %v", m1.Stages["tune"].Metrics, m2.Stages["tune"].Metrics, m1.Stages["eval"].Metrics, m2.Stages["eval"].Metrics)
	}
	if _, rows := readTrials(t, dir2); len(rows) != 8 {
		t.Errorf("the cached run's trials.csv has %d rows", len(rows))
	}
}

// TestSearchKindExampleLoads: the kind's example in the reference is a valid stage.
func TestSearchKindExampleLoads(t *testing.T) {
	if _, err := pipeline.Parse([]byte(searchDigits+searchKind().Example), "example.toml", ".", registry(t), pipeline.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestSearchTopK: with top_k, the model is an ensemble of the top_k best completed trials
// (the trials table's best rows, best first), each the trial's own model (checkSame would
// degrade the run otherwise); its val log-loss, which evaluate recomputes through the bundle,
// is at most the mean of its members' (log-loss is convex in the probabilities), and the
// outcome is the same for 1 and 3 workers.
func TestSearchTopK(t *testing.T) {
	src := searchDigits + strings.Replace(searchTune, "trials = 8\n", "trials = 8\ntop_k = 3\n", 1)
	m, dir, err := runTOML(t, ".", src, "tune.workers=1", "pipeline.workers=1")
	if err != nil {
		t.Fatal(err)
	}
	st := m.Stages["tune"]
	if m.Status != pipeline.StatusSucceeded || st.Status != pipeline.StatusSucceeded {
		t.Fatalf("run %s, stage %s (%v): every member trained again should score its trial's objective", m.Status, st.Status, m.Warnings)
	}
	header, rows := readTrials(t, dir)
	objective, status := column(t, header, rows, trialsColObjective), column(t, header, rows, trialsColStatus)
	var completed []int
	for i := range rows {
		if status[i] == "completed" {
			completed = append(completed, i)
		}
	}
	sort.SliceStable(completed, func(a, b int) bool {
		return parseNum(t, objective[completed[a]]) < parseNum(t, objective[completed[b]])
	})
	if len(completed) < 3 {
		t.Fatalf("%d trials completed; the test needs 3", len(completed))
	}
	p, err := bundle.Load(filepath.Join(dir, "stages", "tune", bundleDir), features.Decoders())
	if err != nil {
		t.Fatal(err)
	}
	eb, ok := p.(*bundle.EnsembleBundle)
	if !ok {
		t.Fatalf("the model is a %T, want an ensemble bundle", p)
	}
	var want []string
	meanMember := 0.0
	for _, i := range completed[:3] {
		want = append(want, fmt.Sprintf("trial_%03d", i))
		meanMember += parseNum(t, objective[i]) / 3
	}
	if got := eb.Ens.Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("members %v, want the three best completed trials %v", got, want)
	}
	avg := st.Metrics["val_logloss"]
	if ev := m.Stages["eval"].Metrics["val_logloss"]; math.Abs(ev-avg) > 1e-9*math.Max(1, avg) {
		t.Errorf("evaluate scores the model's val_logloss %v, the stage recorded %v", ev, avg)
	}
	if !(avg <= meanMember+1e-9) {
		t.Errorf("the average's val_logloss %v exceeds its members' mean %v", avg, meanMember)
	}
	info, _ := st.Info["top_k"].(map[string]any)
	if info == nil || info["value"] != avg || info["best_trial_value"] != parseNum(t, objective[completed[0]]) {
		t.Errorf("info.top_k %v, want value %v and the best trial's %v", info, avg, objective[completed[0]])
	}
	if _, err := os.Stat(filepath.Join(dir, "stages", "tune", memberHistoryFile(2))); err != nil {
		t.Errorf("member 2's history: %v", err)
	}

	m3, _, err := runTOML(t, ".", src, "tune.workers=3", "pipeline.workers=3")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.Metrics, m3.Stages["tune"].Metrics) || !reflect.DeepEqual(info, m3.Stages["tune"].Info["top_k"]) {
		t.Errorf("1 worker: %v %v; 3 workers: %v %v", st.Metrics, info, m3.Stages["tune"].Metrics, m3.Stages["tune"].Info["top_k"])
	}
}
