package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/report"
	"github.com/pipe-ml/pipe/stages"
)

// updateGolden rewrites testdata/small_run.golden.json (the report's data for smallRun).
var updateGolden = flag.Bool("update-golden", false, "rewrite report/testdata/small_run.golden.json")

const goldenFile = "testdata/small_run.golden.json"

// smallRun exercises every section of the report on the embedded datasets, in a second: the
// digits (images) with an MLP trained with lr = "auto" and monitoring (it stops early after 4
// epochs and restores the third's weights), an ensemble of two members, and a search of 4
// trials in 2 zoom rounds; breast cancer (binary: ROC and PR) with masked labels and two pseudo-label rounds;
// diabetes (regression).
const smallRun = `
[pipeline]
name = "report-small"
seed = 3

[stages.digits]
kind = "dataset"
name = "digits"
peer_split = true

[stages.dsplit]
kind = "split"
input = "digits"
split_column = "split"

[stages.dscale]
kind = "normalize"
fit = "dsplit.train"
apply = ["dsplit.train", "dsplit.val", "dsplit.test"]

[stages.mlp]
kind = "train"
train = "dscale.train"
val = "dscale.val"
layers = [ { dense = 16 } ]
optimizer = { name = "adam", lr = "auto" }
epochs = 8
early_stopping = { patience = 1 }
monitor_every = 10

[stages.bag]
kind = "ensemble"
train = "dscale.train"
val = "dscale.val"
members = 2
member = { layers = [ { dense = 8 } ], epochs = 2 }

[stages.tune]
kind = "search"
train = "dscale.train"
val = "dscale.val"
base = { layers = [ { dense = 8 } ], epochs = 2 }
space = { "optimizer.lr" = { log_uniform = [1e-3, 3e-2] },
          "optimizer.name" = { choice = ["adam", "sgd"] },
          "optimizer.momentum" = { uniform = [0.8, 0.99], when = { "optimizer.name" = "sgd" } } }
trials = 4
rounds = 2
prune = { method = "asha", min_epochs = 1, reduction = 2 }

[stages.deval]
kind = "evaluate"
models = ["mlp.model", "bag.ensemble"]
tables = ["dscale.test"]
worst_k = 4

[stages.cancer]
kind = "dataset"
name = "breast_cancer"

[stages.csplit]
kind = "split"
input = "cancer"

[stages.cfew]
kind = "mask_labels"
input = "csplit.train"
per_class = 40
val_per_class = 20

[stages.cscale]
kind = "normalize"
fit = "cfew.train"
apply = ["cfew.train", "cfew.val", "csplit.test"]

[stages.csup]
kind = "train"
train = "cscale.train"
val = "cscale.val"
layers = [ { dense = 8 } ]
epochs = 3

[stages.cpseudo]
kind = "pseudo_label"
model = "csup.model"
train = "cscale.train"
val = "cscale.val"
threshold = 0.6
rounds = 2
epochs = 1

[stages.ceval]
kind = "evaluate"
models = ["cpseudo.model"]
tables = ["csplit.test"]
worst_k = 3

[stages.diabetes]
kind = "dataset"
name = "diabetes"
peer_split = true

[stages.rsplit]
kind = "split"
input = "diabetes"
split_column = "split"

[stages.reg]
kind = "train"
train = "rsplit.train"
val = "rsplit.val"
task = "regression"
layers = [ { dense = 8 } ]
epochs = 3

[stages.reval]
kind = "evaluate"
models = ["reg.model"]
tables = ["rsplit.train", "rsplit.test"]
worst_k = 3
`

// runPipeline runs src with the built-in stages into a new run directory and returns it with
// the run's error; the run's Arrow memory is checked.
func runPipeline(t *testing.T, src string, overrides ...string) (string, error) {
	t.Helper()
	reg := pipeline.NewRegistry()
	if err := stages.Register(reg); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Parse([]byte(src), "small.toml", ".", reg, pipeline.LoadOptions{Overrides: overrides})
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := filepath.Join(t.TempDir(), "run")
	res, err := pipeline.Run(context.Background(), p, pipeline.RunOptions{Dir: dir, Mem: mem})
	if res == nil {
		t.Fatalf("no result: %v", err)
	}
	return dir, err
}

// build reads a run's report with a checked allocator and a fixed clock.
func build(t *testing.T, dir string) *report.Report {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r, err := report.BuildWith(dir, report.BuildOptions{Mem: mem, Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var hexHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// configObjective is the objective at the end of a search's best config's first line.
var configObjective = regexp.MustCompile(`\A[^\n]*= ([-+0-9.eE]+)\n`)

// stable is the report's JSON with what differs between runs of the same config taken out:
// the clock (generated, started, seconds, durations, a search's trial times), the run id and directory, the config
// hash (checked for its form), the overrides, pipe's version and the machine (go version,
// GEMM kernel, host, workers).
func stable(t *testing.T, r *report.Report, dir string) []byte {
	t.Helper()
	c := *r
	c.Generated = time.Time{}
	c.Run.RunID, c.Run.StartedAt, c.Run.Seconds, c.Run.PipeVersion, c.Run.Overrides = "<run-id>", time.Time{}, 0, "", nil
	if !hexHash.MatchString(c.Run.ConfigHash) {
		t.Errorf("config hash %q", c.Run.ConfigHash)
	}
	c.Run.ConfigHash = "<config-hash>"
	extra := map[string]string{}
	for k, v := range c.Run.Extra {
		switch k {
		case "go_version", "gemm", "host", "workers":
		default:
			extra[k] = v
		}
	}
	c.Run.Extra = extra
	c.Run.Durations = append([]report.StageDuration(nil), c.Run.Durations...)
	for i := range c.Run.Durations {
		c.Run.Durations[i].Seconds, c.Run.Durations[i].Waited = 0, 0
	}
	c.Stages = append([]report.Stage(nil), c.Stages...)
	for i := range c.Stages {
		c.Stages[i].Seconds = 0
		if sr := c.Stages[i].Search; sr != nil {
			sc := *sr
			sc.Trials = append([]report.SearchTrial(nil), sr.Trials...)
			for j := range sc.Trials {
				sc.Trials[j].Start, sc.Trials[j].Seconds = 0, 0
			}
			// The objective in the config's first line, to 6 digits as the numbers are compared.
			if m := configObjective.FindStringSubmatchIndex(sc.BestConfig); m != nil {
				if v, err := strconv.ParseFloat(sc.BestConfig[m[2]:m[3]], 64); err == nil {
					sc.BestConfig = sc.BestConfig[:m[2]] + strconv.FormatFloat(v, 'g', 6, 64) + sc.BestConfig[m[3]:]
				}
			}
			c.Stages[i].Search = &sc
		}
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte(dir), []byte("<run>"))
	return append(b, '\n')
}

// TestSmallRunGolden: the report's data for a small fixed run equals the golden file (numbers
// within 1e-6 relative: a GEMM kernel of another CPU may round differently), and is the same,
// byte for byte, with 1 and with 2 workers. Rewrite the golden file with -update-golden.
func TestSmallRunGolden(t *testing.T) {
	dir1, err := runPipeline(t, smallRun, "pipeline.workers=1")
	if err != nil {
		t.Fatal(err)
	}
	dir2, err := runPipeline(t, smallRun, "pipeline.workers=2")
	if err != nil {
		t.Fatal(err)
	}
	got := stable(t, build(t, dir1), dir1)
	if got2 := stable(t, build(t, dir2), dir2); !bytes.Equal(got, got2) {
		t.Errorf("the report's data differs between 1 and 2 workers:\n%s", firstDiff(got, got2))
	}
	if *updateGolden {
		if err := os.WriteFile(goldenFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", goldenFile, len(got))
		return
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v: run go test ./report -run TestSmallRunGolden -update-golden", err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: %v", goldenFile, err)
	}
	var diffs []string
	compareJSON("", g, w, &diffs)
	if len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
		}
		t.Errorf("the report's data differs from %s (rewrite it with -update-golden if the change is intended):\n%s", goldenFile, strings.Join(diffs, "\n"))
	}
}

// compareJSON collects the differences between two decoded JSON values: numbers within 1e-6
// relative (or 1e-9 absolute), everything else exactly.
func compareJSON(path string, got, want any, diffs *[]string) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			*diffs = append(*diffs, fmt.Sprintf("%s: got %T, want an object", path, got))
			return
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			gv, gok := g[k]
			wv, wok := w[k]
			if gok != wok {
				*diffs = append(*diffs, fmt.Sprintf("%s.%s: present %v, want %v", path, k, gok, wok))
				continue
			}
			compareJSON(path+"."+k, gv, wv, diffs)
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			*diffs = append(*diffs, fmt.Sprintf("%s: got %d elements, want %d", path, len(g), len(w)))
			return
		}
		for i := range w {
			compareJSON(fmt.Sprintf("%s[%d]", path, i), g[i], w[i], diffs)
		}
	case float64:
		g, ok := got.(float64)
		if !ok || math.Abs(g-w) > math.Max(1e-9, 1e-6*math.Abs(w)) {
			*diffs = append(*diffs, fmt.Sprintf("%s: got %v, want %v", path, got, w))
		}
	default:
		if got != want {
			*diffs = append(*diffs, fmt.Sprintf("%s: got %.80v, want %.80v", path, got, want))
		}
	}
}

// firstDiff shows where two texts part.
func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n  %s\n  %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d lines against %d", len(al), len(bl))
}

// TestFailedRun: a stage that fails shows its error and no training; the stages it feeds
// are skipped; the run says failed.
func TestFailedRun(t *testing.T) {
	src := `
[pipeline]
name = "report-failed"
seed = 1
[stages.load]
kind = "dataset"
name = "iris"
[stages.split]
kind = "split"
input = "load"
[stages.model]
kind = "train"
train = "split.train"
val = "split.val"
target = "species_nope"
epochs = 1
[stages.eval]
kind = "evaluate"
models = ["model.model"]
tables = ["split.val"]
`
	dir, err := runPipeline(t, src)
	if err == nil {
		t.Fatal("the run succeeded; want the train stage to fail")
	}
	r := build(t, dir)
	if r.Run.Status != pipeline.StatusFailed || r.Run.Error == "" {
		t.Errorf("run status %q, error %q", r.Run.Status, r.Run.Error)
	}
	st := map[string]report.Stage{}
	for _, s := range r.Stages {
		st[s.Name] = s
	}
	model := st["model"]
	if model.Status != pipeline.StatusFailed || model.Training != nil || len(model.Warnings) == 0 ||
		!strings.HasPrefix(model.Warnings[0], "error: ") || !strings.Contains(model.Warnings[0], "species_nope") {
		t.Errorf("model: status %q, training %v, warnings %q", model.Status, model.Training != nil, model.Warnings)
	}
	if s := st["eval"]; s.Status != pipeline.StatusSkipped || s.Evaluation != nil {
		t.Errorf("eval: status %q, evaluation %v", s.Status, s.Evaluation)
	}
	edges := map[string]string{}
	for _, e := range r.Graph.Edges {
		edges[e.To] += e.From
	}
	if edges["model.train"] != "split.train" || edges["eval.models"] != "model.model" {
		t.Errorf("edges %v", r.Graph.Edges)
	}
}

// TestOlderRunDegrades: a run written before the stages recorded the report's files (no
// evaluation.json, no lr_range_test.csv, monitor.csv without histograms, none of the newer
// info keys) still builds: those parts are left out, and what older runs have (the
// bias/variance table in the manifest, the combiners' and members' metrics) fills in.
func TestOlderRunDegrades(t *testing.T) {
	dir, err := runPipeline(t, smallRun)
	if err != nil {
		t.Fatal(err)
	}
	full := build(t, dir)
	for _, f := range []string{"stages/deval/evaluation.json", "stages/ceval/evaluation.json", "stages/reval/evaluation.json", "stages/mlp/lr_range_test.csv"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	mon := filepath.Join(dir, "stages", "mlp", "monitor.csv")
	b, err := os.ReadFile(mon)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		lines = append(lines, strings.Join(strings.Split(l, ",")[:11], ","))
	}
	if err := os.WriteFile(mon, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := pipeline.ReadManifest(mb)
	if err != nil {
		t.Fatal(err)
	}
	delete(m.Stages["mlp"].Info, "restored_epoch")
	for _, k := range []string{"val_metric", "combiners", "diversity"} {
		delete(m.Stages["bag"].Info, k)
	}
	for _, x := range m.Stages["bag"].Info["members"].([]any) {
		delete(x.(map[string]any), "val_metric")
	}
	for _, x := range m.Stages["cpseudo"].Info["rounds"].([]any) {
		delete(x.(map[string]any), "mean_confidence")
	}
	if mb, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), mb, 0o644); err != nil {
		t.Fatal(err)
	}
	old := build(t, dir)
	idx := map[string]int{}
	for i, s := range full.Stages {
		idx[s.Name] = i
	}
	stage := func(r *report.Report, name string) report.Stage { return r.Stages[idx[name]] }

	mlpFull, mlpOld := stage(full, "mlp"), stage(old, "mlp")
	if mlpOld.Training == nil || mlpOld.Training.RangeTest != nil || len(mlpOld.Training.Curves) != len(mlpFull.Training.Curves) {
		t.Fatalf("mlp training %+v", mlpOld.Training)
	}
	// Without restored_epoch, an early stop marks the best epoch as restored: the same marks.
	if fmt.Sprint(mlpOld.Training.Curves[0].Marks) != fmt.Sprint(mlpFull.Training.Curves[0].Marks) {
		t.Errorf("marks %v, want %v", mlpOld.Training.Curves[0].Marks, mlpFull.Training.Curves[0].Marks)
	}
	if mlpOld.Monitoring == nil || mlpOld.Monitoring.Layers[0].Histogram != nil || len(mlpOld.Monitoring.Layers[0].Curves) == 0 || mlpFull.Monitoring.Layers[0].Histogram == nil {
		t.Errorf("monitoring without histograms: %+v", mlpOld.Monitoring)
	}
	for _, name := range []string{"deval", "ceval", "reval"} {
		f, o := stage(full, name), stage(old, name)
		if o.Evaluation != nil || len(o.BiasVar) != len(f.BiasVar) || len(o.Warnings) != 0 {
			t.Fatalf("%s: evaluation %v, %d bias/variance tables (want %d), warnings %q", name, o.Evaluation != nil, len(o.BiasVar), len(f.BiasVar), o.Warnings)
		}
		// The manifest keys its tables by model (with several models) or head: one each here.
		byModel := map[string]report.BiasVar{}
		for _, bv := range f.BiasVar {
			byModel[bv.Model] = bv
			if len(f.BiasVar) == 1 {
				byModel[bv.Head] = bv
			}
		}
		for _, ob := range o.BiasVar {
			fb, ok := byModel[ob.Model]
			if !ok || ob.Unit != fb.Unit || fmt.Sprint(ob.Errors) != fmt.Sprint(fb.Errors) || fmt.Sprint(ob.Chance) != fmt.Sprint(fb.Chance) || fmt.Sprint(ob.Diagnosis) != fmt.Sprint(fb.Diagnosis) {
				t.Errorf("%s: bias/variance from the manifest %+v, from evaluation.json %+v", name, ob, fb)
			}
		}
	}
	ef, eo := stage(full, "bag").Ensemble, stage(old, "bag").Ensemble
	if eo == nil || fmt.Sprint(eo.Combiners) != fmt.Sprint(ef.Combiners) || fmt.Sprint(eo.Diversity) != fmt.Sprint(ef.Diversity) || len(ef.Combiners) == 0 {
		t.Errorf("ensemble from metrics %+v, from info %+v", eo, ef)
	}
	for i := range ef.Members {
		if eo == nil || eo.Metric != ef.Metric || eo.Members[i].ValMetric != ef.Members[i].ValMetric || math.IsNaN(ef.Members[i].ValMetric) {
			t.Errorf("member %d: val metric from metrics %+v, from info %+v", i, eo, ef.Members[i])
			break
		}
	}
	rf, ro := stage(full, "cpseudo").Rounds, stage(old, "cpseudo").Rounds
	if len(ro) != len(rf) || ro[0].MeanConfidence != 0 || rf[0].MeanConfidence == 0 || ro[0].ValAccuracy != rf[0].ValAccuracy || ro[1].Added != rf[1].Added {
		t.Errorf("rounds %+v, want %+v without the mean confidence", ro, rf)
	}
	if _, err := json.Marshal(old); err != nil {
		t.Errorf("the older run's report does not encode: %v", err)
	}
}
