package report

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/pipeline"
)

// searchRun writes a search stage's run: trials.csv and the manifest's info as the stage
// writes them (decoded from JSON, as Build reads them).
func searchRun(t *testing.T, trials string) string {
	t.Helper()
	var info map[string]any
	err := json.Unmarshal([]byte(`{
		"objective": "val_logloss", "maximize": false, "best_trial": 2,
		"space": [
			{"name": "layers.*.dropout", "dist": "uniform", "lo": 0, "hi": 0.5},
			{"name": "optimizer.lr", "dist": "log_uniform", "lo": 0.001, "hi": 0.03},
			{"name": "optimizer.momentum", "dist": "uniform", "lo": 0.8, "hi": 0.99},
			{"name": "optimizer.name", "dist": "choice", "labels": ["adam", "sgd"]}],
		"regions": [
			{"round": 0, "ranges": {"optimizer.lr": [0.001, 0.03]}, "weights": {"optimizer.name": [0.5, 0.5]}},
			{"round": 1, "ranges": {"optimizer.lr": [0.002, 0.01]}, "weights": {"optimizer.name": [0.75, 0.25]}}]}`), &info)
	if err != nil {
		t.Fatal(err)
	}
	m := &pipeline.Manifest{StageOrder: []string{"tune"}, Stages: map[string]*pipeline.StageManifest{"tune": stageManifest("search", "trials")}}
	m.Stages["tune"].Info = info
	return writeRun(t, m, "", map[string]string{"stages/tune/" + TrialsFile: trials})
}

const searchTrialsCSV = `trial,round,status,layers.*.dropout,optimizer.lr,optimizer.momentum,optimizer.name,epochs_run,best_epoch,objective,seconds,start_seconds,error
0,0,completed,0.25,0.01,,adam,9,7,0.5,1.5,0,
1,0,pruned,0.1,0.002,0.9,sgd,1,1,0.4,0.2,0.1,
2,1,completed,0.3,0.005,,adam,9,9,0.3,1.25,1.5,
3,1,failed,0.2,0.02,,adam,0,,,0.01,1.7,diverged
`

// TestSearchSection: a search stage's section holds its trials, the best objective so far
// among the completed trials (a pruned trial's partial value does not count, a failed trial
// has none), each parameter against the objective (a choice at its label's index, a trial
// without the parameter left out), the parallel coordinates with null where a trial lacks a
// parameter, and the zoom rounds' regions.
func TestSearchSection(t *testing.T) {
	r, err := Build(searchRun(t, searchTrialsCSV))
	if err != nil {
		t.Fatal(err)
	}
	sr := r.Stages[0].Search
	if sr == nil {
		t.Fatalf("no search section: %+v", r.Stages[0])
	}
	if sr.Objective != "val_logloss" || sr.Maximize || sr.Best != 2 || len(sr.Trials) != 4 {
		t.Fatalf("search %+v", sr)
	}
	if names := []string{sr.Params[0].Name, sr.Params[1].Name, sr.Params[3].Name}; !reflect.DeepEqual(names, []string{"layers.*.dropout", "optimizer.lr", "optimizer.name"}) ||
		!sr.Params[1].Log() || sr.Params[0].Log() || !reflect.DeepEqual(sr.Params[3].Labels, []string{"adam", "sgd"}) {
		t.Errorf("params %+v", sr.Params)
	}
	t1, t3 := sr.Trials[1], sr.Trials[3]
	if t1.Status != "pruned" || *t1.Objective != 0.4 || t1.EpochsRun != 1 || t1.Params["optimizer.momentum"] != "0.9" || t1.Start != 0.1 || t1.Seconds != 0.2 {
		t.Errorf("trial 1 %+v", t1)
	}
	if _, has := sr.Trials[0].Params["optimizer.momentum"]; has || t3.Objective != nil || t3.Error != "diverged" || t3.BestEpoch != 0 {
		t.Errorf("trial 0 params %v; trial 3 %+v", sr.Trials[0].Params, t3)
	}
	nearAll(t, "objective", sr.BestSoFar.Series[0].Values, []float64{0.5, 0.4, 0.3, math.NaN()})
	nearAll(t, "best so far", sr.BestSoFar.Series[1].Values, []float64{0.5, 0.5, 0.3, 0.3})
	nearAll(t, "trials", sr.BestSoFar.X, []float64{0, 1, 2, 3})

	name := sr.Effects[3]
	want := []EffectPoint{{Trial: 0, X: 0, Objective: 0.5, Status: "completed"}, {Trial: 1, X: 1, Objective: 0.4, Status: "pruned"}, {Trial: 2, X: 0, Objective: 0.3, Status: "completed"}}
	if name.Param != "optimizer.name" || !reflect.DeepEqual(name.Points, want) {
		t.Errorf("optimizer.name against the objective: %+v, want %+v", name, want)
	}
	if m := sr.Effects[2]; len(m.Points) != 1 || m.Points[0].Trial != 1 || m.Points[0].X != 0.9 {
		t.Errorf("momentum against the objective: %+v (only trial 1 has it)", m)
	}

	axes := sr.Parallel.Axes
	if len(axes) != 5 || !axes[1].Log || axes[3].Hi != 1 || !reflect.DeepEqual(axes[3].Labels, []string{"adam", "sgd"}) || axes[4].Name != "val_logloss" || axes[4].Lo != 0.3 || axes[4].Hi != 0.5 {
		t.Errorf("axes %+v", axes)
	}
	if lines := sr.Parallel.Lines; len(lines) != 3 || lines[0].Values[2] != nil || *lines[1].Values[2] != 0.9 || *lines[2].Values[4] != 0.3 {
		t.Errorf("lines %+v: the failed trial is no line, trial 0 has no momentum", lines)
	}
	if len(sr.Rounds) != 2 || sr.Rounds[1].Ranges["optimizer.lr"] != [2]float64{0.002, 0.01} || !reflect.DeepEqual(sr.Rounds[1].Weights["optimizer.name"], []float64{0.75, 0.25}) {
		t.Errorf("rounds %+v", sr.Rounds)
	}
	// The section encodes to JSON (a NaN would not).
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
}

// TestSearchSectionBadFile: a trials.csv with a bad cell leaves the section out with a
// warning naming the file, line and column.
func TestSearchSectionBadFile(t *testing.T) {
	bad := strings.Replace(searchTrialsCSV, "0,0,completed,0.25,0.01,,adam,9,7,0.5", "0,0,completed,0.25,0.01,,adam,9,7,half", 1)
	r, err := Build(searchRun(t, bad))
	if err != nil {
		t.Fatal(err)
	}
	st := r.Stages[0]
	if st.Search != nil || len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "stages/tune/trials.csv") || !strings.Contains(st.Warnings[0], `line 2, column "objective": "half"`) {
		t.Errorf("search %v, warnings %q", st.Search, st.Warnings)
	}
}
