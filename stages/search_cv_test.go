package stages

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/internal/storetest"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/search"
)

// cvData writes a two-feature binary dataset to dir/cv.csv: train rows first, then val rows
// (so that train and val together are the file's rows in order), labelled by the sign of
// x1 + x2/2; with flipVal, every val row lies at least 1 from the boundary and has the wrong
// label (a tiny, misleading val split). It returns the labels of all rows in file order.
func cvData(t *testing.T, dir string, seed uint64, trainRows, valRows int, flipVal bool) []string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	var b strings.Builder
	b.WriteString("x1,x2,label,split\n")
	var labels []string
	for i := range trainRows + valRows {
		x1, x2 := rng.NormFloat64(), rng.NormFloat64()
		for flipVal && i >= trainRows && math.Abs(x1+x2/2) < 1 {
			x1, x2 = rng.NormFloat64(), rng.NormFloat64() // flipped rows far from the boundary
		}
		label := "a"
		if x1+x2/2 > 0 {
			label = "b"
		}
		split := "train"
		if i >= trainRows {
			split = "val"
			if flipVal {
				label = map[string]string{"a": "b", "b": "a"}[label]
			}
		}
		labels = append(labels, label)
		fmt.Fprintf(&b, "%.6f,%.6f,%s,%s\n", x1, x2, label, split)
	}
	if err := os.WriteFile(filepath.Join(dir, "cv.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return labels
}

const cvHead = `
[pipeline]
seed = 1
[stages.load]
kind = "csv"
path = "cv.csv"
[stages.split]
kind = "split"
input = "load"
split_column = "split"
`

// TestSearchCVChoosesOnFolds: the val split (8 rows, every label flipped) prefers a model
// that learnt nothing (l2 = 30: weights near 0, near-uniform predictions) to one that learnt
// the rule (l2 = 1e-5: confident, so wrong with a high log-loss on the flipped rows);
// cross-validation over train and val together (8 flipped rows of 208) prefers the one that
// learnt. On three seeds the search without cv chooses l2 = 30, with cv = 5 l2 = 1e-5; with
// cv the trials table
// has each fold's objective, their mean is the objective and their deviation cv_std.
func TestSearchCVChoosesOnFolds(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	const tune = `
[stages.tune]
kind = "search"
train = "split.train"
val = "split.val"
base = { target = "label", layers = [], epochs = 60, optimizer = { lr = 0.1 }, early_stopping = { enabled = false } }
space = { l2 = { choice = [1e-5, 30.0] } }
trials = 6
rounds = 1
`
	for _, seed := range []uint64{1, 2, 3} {
		dir := t.TempDir()
		cvData(t, dir, seed, 200, 8, true)
		src := cvHead + tune
		chosen := map[string]float64{}
		for _, cv := range []string{"0", "5"} {
			m, runDir, err := runTOML(t, dir, src, "pipeline.seed="+strconv.FormatUint(seed, 10), "tune.cv="+cv)
			if err != nil {
				t.Fatal(err)
			}
			st := m.Stages["tune"]
			chosen[cv] = st.Info["best_params"].(map[string]any)["l2"].(float64)
			header, rows := readTrials(t, runDir)
			l2s := strings.Join(column(t, header, rows, "l2"), " ")
			t.Logf("seed %d cv %s: l2 %s, objective %s", seed, cv, l2s, strings.Join(column(t, header, rows, trialsColObjective), " "))
			if !strings.Contains(l2s, "1e-05") || !strings.Contains(l2s, "30") {
				t.Fatalf("seed %d: the trials drew l2 %s: the test needs both values", seed, l2s)
			}
			if cv == "0" {
				if strings.Contains(strings.Join(header, ","), trialsColCVStd) {
					t.Errorf("without cv the trials table has %v", header)
				}
				continue
			}
			obj := column(t, header, rows, trialsColObjective)
			std := column(t, header, rows, trialsColCVStd)
			for i := range rows {
				folds := make([]float64, 5)
				for f := range folds {
					folds[f] = parseNum(t, column(t, header, rows, cvMetricFold(f))[i])
				}
				mean, sd := 0.0, 0.0
				for _, v := range folds {
					mean += v / 5
				}
				for _, v := range folds {
					sd += (v - mean) * (v - mean) / 4
				}
				if got := parseNum(t, obj[i]); math.Abs(got-mean) > 1e-12*math.Max(1, mean) {
					t.Errorf("seed %d trial %d: objective %v, the folds' mean %v", seed, i, got, mean)
				}
				if got := parseNum(t, std[i]); math.Abs(got-math.Sqrt(sd)) > 1e-9 {
					t.Errorf("seed %d trial %d: cv_std %v, the folds' %v", seed, i, got, math.Sqrt(sd))
				}
			}
			if cvInfo, _ := st.Info["cv"].(map[string]any); cvInfo == nil || cvInfo["folds"] != 5.0 || cvInfo["rows"] != 208.0 {
				t.Errorf("seed %d: info cv %v, want 5 folds of 208 rows", seed, st.Info["cv"])
			}
		}
		if chosen["0"] != 30 || chosen["5"] != 1e-5 {
			t.Errorf("seed %d: l2 chosen on val %v, with cv %v; want 30 (the misleading val) and 1e-5", seed, chosen["0"], chosen["5"])
		}
	}
}

// TestSearchCVObjectiveIsTheFoldsMean: a cross-validated trial's objective is the mean of
// the val log-loss of k train stages, each trained separately on the file's rows with one
// fold as val (the folds drawn as the stage draws them: search.Folds, stratified, from the
// stage's seed). The model is a logistic regression with l2 trained on full batches to
// convergence, so the two trainings (other seeds) reach the same optimum within a tolerance.
func TestSearchCVObjectiveIsTheFoldsMean(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	const k, runSeed = 4, 7
	dir := t.TempDir()
	labels := cvData(t, dir, 11, 90, 30, false)
	const model = `layers = [], epochs = 400, batch_size = 512, l2 = 1e-2, optimizer = { lr = 0.05 }, early_stopping = { enabled = false }`
	src := cvHead + `
[stages.tune]
kind = "search"
train = "split.train"
val = "split.val"
base = { target = "label", ` + model + ` }
space = { l2 = { choice = [1e-2] } }
trials = 1
cv = 4
`
	m, runDir, err := runTOML(t, dir, src, "pipeline.seed="+strconv.Itoa(runSeed))
	if err != nil {
		t.Fatal(err)
	}
	got := m.Stages["tune"].Metrics["cv_val_logloss"]
	if bv := m.Stages["tune"].Info["best_value"]; bv != got {
		t.Errorf("metric cv_val_logloss %v, info best_value %v", got, bv)
	}
	header, trows := readTrials(t, runDir)

	strata := make([]int, len(labels))
	for i, l := range labels {
		if l == "b" {
			strata[i] = 1
		}
	}
	folds, err := search.Folds(strata, k, pipeline.NewRand(pipeline.DeriveSeed(pipeline.DeriveSeed(runSeed, "tune"), cvFoldsLabel)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "cv.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	mean := 0.0
	for f, rows := range folds {
		in := map[int]bool{}
		for _, i := range rows {
			in[i] = true
		}
		var b strings.Builder
		b.WriteString(lines[0] + "\n")
		for i, line := range lines[1:] {
			cells := strings.Split(line, ",")
			cells[3] = "train"
			if in[i] {
				cells[3] = "val"
			}
			b.WriteString(strings.Join(cells, ",") + "\n")
		}
		fdir := t.TempDir()
		if err := os.WriteFile(filepath.Join(fdir, "cv.csv"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		fm, _, err := runTOML(t, fdir, cvHead+"[stages.model]\nkind = \"train\"\ntrain = \"split.train\"\nval = \"split.val\"\ntarget = \"label\"\n"+strings.ReplaceAll(model, ", ", "\n")+"\n")
		if err != nil {
			t.Fatalf("fold %d: %v", f, err)
		}
		v := fm.Stages["model"].Metrics["val_logloss"]
		if v == 0 || math.IsNaN(v) {
			t.Fatalf("fold %d: val_logloss %v (metrics %v)", f, v, fm.Stages["model"].Metrics)
		}
		t.Logf("fold %d: %v apart, %s in the search", f, v, column(t, header, trows, cvMetricFold(f))[0])
		mean += v / k
	}
	if math.Abs(got-mean) > 2e-3*mean {
		t.Errorf("cv objective %v, the mean of %d separately trained folds %v", got, k, mean)
	}
}

// searchCV is a small cross-validated search on digits: 6 trials of 3-fold cv in 2 rounds.
const searchCV = `
[stages.tune]
kind = "search"
train = "scale.train"
val = "scale.val"
base = { layers = [ { dense = 8 } ], epochs = 2 }
space = { "optimizer.lr" = { log_uniform = [1e-3, 3e-2] }, l2 = { log_uniform = [1e-6, 1e-2] } }
trials = 6
rounds = 2
cv = 3
[stages.eval]
kind = "evaluate"
models = ["tune.model"]
tables = ["scale.val"]
`

// TestSearchCVSameForAnyWorkers: with cv, one trial at a time or three side by side give the
// same trials (each fold's objective too), best trial and metrics.
func TestSearchCVSameForAnyWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	src := searchDigits + searchCV
	m1, dir1, err := runTOML(t, ".", src, "tune.workers=1", "pipeline.workers=1")
	if err != nil {
		t.Fatal(err)
	}
	m3, dir3, err := runTOML(t, ".", src, "tune.workers=3", "pipeline.workers=3")
	if err != nil {
		t.Fatal(err)
	}
	h1, r1 := readTrials(t, dir1)
	h3, r3 := readTrials(t, dir3)
	if len(r1) != 6 || column(t, h1, r1, cvMetricFold(2))[0] == "" {
		t.Fatalf("trials %v %v: want 6 with 3 folds' objectives", h1, r1)
	}
	if !reflect.DeepEqual(withoutTimes(h1, r1), withoutTimes(h3, r3)) {
		t.Errorf("trials differ between 1 and 3 workers:\n%v\n%v", withoutTimes(h1, r1), withoutTimes(h3, r3))
	}
	for _, k := range []string{"best_params", "best_trial", "best_value", "best_epoch", "cv"} {
		if !reflect.DeepEqual(m1.Stages["tune"].Info[k], m3.Stages["tune"].Info[k]) {
			t.Errorf("info %s: %v with 1 worker, %v with 3", k, m1.Stages["tune"].Info[k], m3.Stages["tune"].Info[k])
		}
	}
	if !reflect.DeepEqual(m1.Stages["tune"].Metrics, m3.Stages["tune"].Metrics) {
		t.Errorf("metrics: %v with 1 worker, %v with 3", m1.Stages["tune"].Metrics, m3.Stages["tune"].Metrics)
	}
	if m1.Stages["tune"].Status != pipeline.StatusSucceeded {
		t.Errorf("stage %s: %v", m1.Stages["tune"].Status, m1.Warnings)
	}
}

// TestSearchCVTrialsRunApart: a cross-validated search spreads as parts (one per trial, in a
// random ready order, each in one segment) and gives the local search's trials, metrics and
// model.
func TestSearchCVTrialsRunApart(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	src := searchDigits + searchCV
	ref, refDir, err := spreadRun(t, src, pipeline.RunOptions{Store: storetest.New()})
	if err != nil {
		t.Fatal(err)
	}
	m, dir, segments, paused, _ := runSearchApart(t, src, 6, 6)
	if paused != 0 || segments != 6 {
		t.Errorf("%d segments, %d paused: a cross-validated trial runs in one segment", segments, paused)
	}
	sameSearch(t, m, dir, ref, refDir, 6)
}

// TestResumeSearchCV: a cross-validated search interrupted after 2 trials resumes without
// training them again, and ends with the trials of an uninterrupted run.
func TestResumeSearchCV(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	checkResumedSearch(t, searchDigits+strings.Replace(searchCV, "cv = 3\n", "cv = 3\nworkers = 1\n", 1), 2, 6)
}

// TestSearchCVConfigErrors: cv's errors name the key, at load or, for what depends on the
// data, before any trial trains.
func TestSearchCVConfigErrors(t *testing.T) {
	checkSearchConfigErrors(t, searchL2Head, []searchConfigError{
		{"one fold", "cv = 1\n", "cv", "no cross-validation"},
		{"negative", "cv = -2\n", "cv", "below the minimum"},
		{"prune", "cv = 3\nprune = { method = \"asha\" }\n", "prune.method", "not pruned"},
		{"top_k", "cv = 3\ntop_k = 2\n", "top_k", "choose one"},
	})
	t.Run("more folds than a class has rows", func(t *testing.T) {
		dir := t.TempDir()
		cvData(t, dir, 1, 30, 6, false)
		src := cvHead + "[stages.tune]\nkind = \"search\"\ntrain = \"split.train\"\nval = \"split.val\"\nbase = { target = \"label\", layers = [], epochs = 1 }\nspace = { l2 = { log_uniform = [1e-6, 1e-2] } }\ntrials = 1\ncv = 30\n"
		_, _, err := runTOML(t, dir, src)
		ces := pipeline.ConfigErrors(err)
		if len(ces) != 1 || ces[0].Key != "cv" || ces[0].Line == 0 || !strings.Contains(ces[0].Error(), "every fold needs a row of every class") || !strings.Contains(ces[0].Error(), "give cv at most") {
			t.Fatalf("got %v, want an error at cv saying a class has too few rows", err)
		}
	})
}

// TestSearchCVRefit: with cv and refit, the model is the chosen config trained on train and
// val together for the folds' mean best epoch (the trials table's best_epoch of that trial),
// and the stage notes no cv comparison (the refit has no val metric of its own).
func TestSearchCVRefit(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	src := searchDigits + strings.Replace(strings.Replace(searchCV, "epochs = 2", "epochs = 4, early_stopping = { patience = 1 }", 1), "cv = 3\n", "cv = 3\nrefit = true\n", 1)
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	st := m.Stages["tune"]
	header, rows := readTrials(t, dir)
	best := int(st.Info["best_trial"].(float64))
	bestEpoch := parseNum(t, column(t, header, rows, trialsColBestEpoch)[best])
	refit, _ := st.Info["refit"].(map[string]any)
	split := m.Stages["split"].Metrics
	if refit == nil || refit["epochs"] != bestEpoch || refit["rows"] != split["train_rows"]+split["val_rows"] {
		t.Fatalf("refit %v: want %v epochs (the chosen trial's mean best epoch over its folds) on %v rows", refit, bestEpoch, split["train_rows"]+split["val_rows"])
	}
	if st.Metrics["cv_val_logloss"] != st.Info["best_value"] {
		t.Errorf("cv_val_logloss %v, best_value %v", st.Metrics["cv_val_logloss"], st.Info["best_value"])
	}
}
