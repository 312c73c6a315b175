package stages

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/report"
)

// The files and manifest entries the stages write for the run report (report.Build).

func readEvaluation(t *testing.T, dir, stage string) report.Evaluation {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "stages", stage, report.EvaluationFile))
	if err != nil {
		t.Fatal(err)
	}
	var e report.Evaluation
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func readCSVFile(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestEvaluationAggregates: evaluation.json holds, per model and table, aggregates that agree
// with the metrics the stage computed by other code: the confusion matrix's diagonal share is
// the accuracy, the ROC curve's area the AUC; a hard vote gets no calibration or curves; the
// bias/variance tables are there per model.
func TestEvaluationAggregates(t *testing.T) {
	src := `
[pipeline]
seed = 4
[stages.load]
kind = "dataset"
name = "breast_cancer"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
[stages.a]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 8 } ]
epochs = 3
[stages.b]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 4 } ]
epochs = 2
[stages.vote]
kind = "combine"
models = ["a.model", "b.model"]
method = "vote"
[stages.eval]
kind = "evaluate"
models = ["a.model", "vote.model"]
tables = ["scale.val", "scale.test"]
worst_k = 5
`
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	ev := readEvaluation(t, dir, "eval")
	if ev.FormatVersion != report.EvaluationVersion || len(ev.Tables) != 4 {
		t.Fatalf("version %d, %d entries, want 4 (2 models × 2 tables)", ev.FormatVersion, len(ev.Tables))
	}
	metrics := m.Stages["eval"].Metrics
	for _, e := range ev.Tables {
		key := e.Model + "/" + e.Split + "_"
		var total, diag int64
		for i, row := range e.Confusion {
			for j, n := range row {
				total += n
				if i == j {
					diag += n
				}
			}
		}
		var support int64
		for _, c := range e.PerClass {
			support += c.Support
		}
		if total == 0 || support != total {
			t.Errorf("%s: confusion total %d, support %d", key, total, support)
		}
		if acc := float64(diag) / float64(total); math.Abs(acc-metrics[key+"accuracy"]) > 1e-12 {
			t.Errorf("%s: confusion accuracy %v, metric %v", key, acc, metrics[key+"accuracy"])
		}
		if e.Metrics["accuracy"] != metrics[key+"accuracy"] {
			t.Errorf("%s: entry metrics %v", key, e.Metrics)
		}
		if e.Task != "binary" || len(e.Labels) != 2 {
			t.Errorf("%s: task %q, labels %v", key, e.Task, e.Labels)
		}
		if _, err := os.Stat(filepath.Join(dir, "stages", "eval", e.WorstFile)); e.WorstFile == "" || err != nil {
			t.Errorf("%s: worst file %q: %v", key, e.WorstFile, err)
		}
		if e.Model == "vote" {
			if e.Reliability != nil || e.ROC != nil || e.PR != nil || e.Metrics["ece"] != 0 {
				t.Errorf("%s: a hard vote has calibration or curves", key)
			}
			continue
		}
		if e.Reliability == nil || e.ROC == nil || e.PR == nil {
			t.Fatalf("%s: reliability %v, ROC %v, PR %v", key, e.Reliability != nil, e.ROC != nil, e.PR != nil)
		}
		var area float64
		y := e.ROC.Series[0].Values
		for i := 1; i < len(e.ROC.X); i++ {
			area += (e.ROC.X[i] - e.ROC.X[i-1]) * (y[i] + y[i-1]) / 2
		}
		if math.Abs(area-metrics[key+"auc"]) > 1e-6 {
			t.Errorf("%s: ROC area %v, auc %v", key, area, metrics[key+"auc"])
		}
	}
	if len(ev.BiasVar) != 2 || ev.BiasVar[0].Model != "a" || ev.BiasVar[1].Model != "vote" || len(ev.BiasVar[0].Diagnosis) == 0 {
		t.Errorf("bias/variance %+v", ev.BiasVar)
	}
}

// TestWorstRowsInSourceUnits: the worst rows carry the model's inputs in the data's own units
// (the bundle's normalize undone), here the digits' pixels of the raw table, which the bundle
// normalized itself before scoring.
func TestWorstRowsInSourceUnits(t *testing.T) {
	src := `
[pipeline]
seed = 2
[stages.load]
kind = "dataset"
name = "digits"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val"]
method = "standard"
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 8 } ]
epochs = 1
[stages.eval]
kind = "evaluate"
models = ["model.model"]
tables = ["split.test"]
worst_k = 6
`
	_, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := datasets.CSV("digits")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := rows[0]
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rd, err := tableio.OpenFile(filepath.Join(dir, "stages", "eval", "worst_test_out.parquet"), mem, tableio.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	checked := 0
	for rd.Next() {
		rec := rd.RecordBatch()
		s := rec.Schema()
		ids := rec.Column(s.FieldIndices("_row")[0]).(*array.Int64)
		for r := 0; r < int(rec.NumRows()); r++ {
			line := rows[ids.Value(r)+1] // _row counts the data rows from 0
			for j, name := range header {
				if !strings.HasPrefix(name, "pixel_") {
					continue
				}
				idx := s.FieldIndices(name)
				if idx == nil {
					t.Fatalf("worst rows lack input %s (columns %v)", name, s)
				}
				want, _ := strconv.ParseFloat(line[j], 64)
				got := rec.Column(idx[0]).(*array.Float64).Value(r)
				if math.Abs(got-want) > 1e-4 {
					t.Fatalf("_row %d, %s = %v, want the source's %v", ids.Value(r), name, got, want)
				}
				checked++
			}
		}
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	if checked != 6*64 {
		t.Errorf("checked %d pixels, want 6 rows × 64", checked)
	}
}

// TestTrainRecordsForTheReport: with lr = "auto" and monitoring, the train stage writes the LR
// range test's sweep (one row per step of the test, learning rates rising), monitor.csv with
// each layer's activation histogram (its counts add up to the batch's rows × the layer's
// units), and the restored epoch.
func TestTrainRecordsForTheReport(t *testing.T) {
	src := strings.Replace(summarySrc, "epochs = 1\n", "epochs = 3\nbatch_size = 16\nmonitor_every = 7\noptimizer = { name = \"adam\", lr = \"auto\" }\n", 1)
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	info := m.Stages["model"].Info
	rt, _ := info["lr_range_test"].(map[string]any)
	if rt["file"] != "lr_range_test.csv" {
		t.Fatalf("info.lr_range_test %v", rt)
	}
	sweep := readCSVFile(t, filepath.Join(dir, "stages", "model", "lr_range_test.csv"))
	if strings.Join(sweep[0], ",") != "step,lr,loss" || float64(len(sweep)-1) != rt["steps"].(float64) {
		t.Fatalf("sweep header %v, %d rows, info %v", sweep[0], len(sweep)-1, rt)
	}
	prev := 0.0
	for _, r := range sweep[1:] {
		lr, err := strconv.ParseFloat(r[1], 64)
		if err != nil || lr <= prev {
			t.Fatalf("row %v: learning rates must rise", r)
		}
		prev = lr
	}
	if info["restored_epoch"] != info["best_epoch"] {
		t.Errorf("restored_epoch %v, best_epoch %v", info["restored_epoch"], info["best_epoch"])
	}

	mon := readCSVFile(t, filepath.Join(dir, "stages", "model", "monitor.csv"))
	col := map[string]int{}
	for j, c := range mon[0] {
		col[c] = j
	}
	for _, c := range []string{"hist_min", "hist_max", "hist_counts"} {
		if _, ok := col[c]; !ok {
			t.Fatalf("monitor.csv lacks %s: %v", c, mon[0])
		}
	}
	width := map[string]int{"dense_1": 16}
	layers := 0
	for _, r := range mon[1:] {
		if r[col["kind"]] == "param" {
			if r[col["hist_counts"]] != "" {
				t.Errorf("param row with a histogram: %v", r)
			}
			continue
		}
		w, ok := width[r[col["name"]]]
		if !ok {
			continue
		}
		counts := strings.Fields(r[col["hist_counts"]])
		var sum int
		for _, c := range counts {
			n, err := strconv.Atoi(c)
			if err != nil {
				t.Fatalf("hist_counts %q", r[col["hist_counts"]])
			}
			sum += n
		}
		lo, _ := strconv.ParseFloat(r[col["hist_min"]], 64)
		hi, _ := strconv.ParseFloat(r[col["hist_max"]], 64)
		if len(counts) != 20 || sum == 0 || sum%w != 0 || sum > 16*w || lo > hi {
			t.Errorf("step %s: %d bins, %d values (want a multiple of %d up to %d), range [%v, %v]", r[col["step"]], len(counts), sum, w, 16*w, lo, hi)
		}
		layers++
	}
	if layers == 0 {
		t.Fatal("no dense_1 rows in monitor.csv")
	}
}

// TestEnsembleAndPseudoInfoForTheReport: the ensemble stage names the members' val metric and
// gives each member's value (the same as its member_NN metric), every combiner's score and
// the diversity; the pseudo_label stage records each round's mean confidence, which for the
// last round is the mean of pseudo_labels.csv's confidences.
func TestEnsembleAndPseudoInfoForTheReport(t *testing.T) {
	src := `
[pipeline]
seed = 6
[stages.load]
kind = "dataset"
name = "wine"
[stages.split]
kind = "split"
input = "load"
[stages.few]
kind = "mask_labels"
input = "split.train"
per_class = 10
val_per_class = 5
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "few.train", "few.val"]
[stages.members]
kind = "ensemble"
train = "scale.train"
val = "scale.val"
members = 3
member = { layers = [ { dense = 8 } ], epochs = 2 }
[stages.sup]
kind = "train"
train = "scale.train_2"
val = "scale.val_2"
layers = [ { dense = 8 } ]
epochs = 3
[stages.pseudo]
kind = "pseudo_label"
model = "sup.model"
train = "scale.train_2"
val = "scale.val_2"
threshold = 0.5
rounds = 2
epochs = 1
`
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	ens := m.Stages["members"]
	if ens.Info["val_metric"] != "accuracy" {
		t.Fatalf("val_metric %v", ens.Info["val_metric"])
	}
	members, _ := ens.Info["members"].([]any)
	if len(members) != 3 {
		t.Fatalf("members %v", ens.Info["members"])
	}
	for i, x := range members {
		mi := x.(map[string]any)
		want := ens.Metrics["member_0"+strconv.Itoa(i)+"/val_accuracy"]
		if got, ok := mi["val_metric"].(float64); !ok || got != want {
			t.Errorf("member %d: val_metric %v, metric %v", i, mi["val_metric"], want)
		}
	}
	combiners, _ := ens.Info["combiners"].([]any)
	if len(combiners) == 0 {
		t.Fatal("no info.combiners")
	}
	for _, x := range combiners {
		c := x.(map[string]any)
		name := c["combiner"].(string)
		if c["score"] != ens.Metrics[name+"/val_accuracy"] || c["metric"] != "accuracy" {
			t.Errorf("combiner %v, metric %v", c, ens.Metrics[name+"/val_accuracy"])
		}
	}
	div, _ := ens.Info["diversity"].([]any)
	if len(div) != 1 || div[0].(map[string]any)["value"] != ens.Metrics["val_diversity"] {
		t.Errorf("diversity %v, metric %v", ens.Info["diversity"], ens.Metrics["val_diversity"])
	}

	ps := m.Stages["pseudo"]
	rounds, _ := ps.Info["rounds"].([]any)
	if len(rounds) != 2 {
		t.Fatalf("rounds %v", ps.Info["rounds"])
	}
	labels := readCSVFile(t, filepath.Join(dir, "stages", "pseudo", "pseudo_labels.csv"))
	var sum float64
	for _, r := range labels[1:] {
		c, _ := strconv.ParseFloat(r[3], 64)
		sum += c
	}
	for i, x := range rounds {
		r := x.(map[string]any)
		mc, ok := r["mean_confidence"].(float64)
		if !ok || mc < 0.5 || mc > 1 {
			t.Errorf("round %d: mean_confidence %v (threshold 0.5)", i+1, r["mean_confidence"])
		}
		if ps.Metrics["round_"+strconv.Itoa(i+1)+"/mean_confidence"] != mc {
			t.Errorf("round %d: metric %v, info %v", i+1, ps.Metrics["round_"+strconv.Itoa(i+1)+"/mean_confidence"], mc)
		}
		if i == len(rounds)-1 {
			if want := sum / float64(len(labels)-1); math.Abs(mc-want) > 1e-6 {
				t.Errorf("last round: mean_confidence %v, pseudo_labels.csv's mean %v", mc, want)
			}
		}
	}
}
