package stages

import (
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/report"
)

// searchConfirm is searchTune with the confirmation of its 3 best trials, one more seed each.
var searchConfirm = searchDigits + strings.Replace(searchTune, "trials = 8\n", "trials = 8\nconfirm = { top = 3, seeds = 1 }\n", 1)

// TestSearchConfirm: with confirm, the 3 best completed trials (by their own objective) are
// trained again with another seed; the trials table gives their mean over the 2 runs and the
// number of runs, the manifest every run's value; the best trial is the confirmed one with
// the best mean, and the model is that trial's own run (evaluate scores its own objective on
// val; checkSame would degrade the run otherwise); the outcome is the same for 1 and 3
// workers; the run report does not take the new columns for parameters.
func TestSearchConfirm(t *testing.T) {
	m, dir, err := runTOML(t, ".", searchConfirm, "tune.workers=1", "pipeline.workers=1")
	if err != nil {
		t.Fatal(err)
	}
	st := m.Stages["tune"]
	if m.Status != pipeline.StatusSucceeded || st.Status != pipeline.StatusSucceeded {
		t.Fatalf("run %s, stage %s (%v)", m.Status, st.Status, m.Warnings)
	}
	header, rows := readTrials(t, dir)
	objective, status := column(t, header, rows, trialsColObjective), column(t, header, rows, trialsColStatus)
	mean, runs := column(t, header, rows, trialsColConfirmMean), column(t, header, rows, trialsColConfirmRuns)
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
	leader := map[int]bool{}
	for _, i := range completed[:3] {
		leader[i] = true
	}
	chosen := -1
	for i := range rows {
		if !leader[i] {
			if mean[i] != "" || runs[i] != "" {
				t.Errorf("trial %d is not among the 3 best but has confirm_mean %q, confirm_runs %q", i, mean[i], runs[i])
			}
			continue
		}
		if runs[i] != "2" {
			t.Errorf("trial %d: confirm_runs %q, want 2", i, runs[i])
		}
		if chosen < 0 || parseNum(t, mean[i]) < parseNum(t, mean[chosen]) {
			chosen = i
		}
	}
	if bt := st.Info["best_trial"]; bt != float64(chosen) {
		t.Errorf("best_trial %v, want %d: the confirmed trial with the lowest mean (means %v)", bt, chosen, mean)
	}
	info, _ := st.Info["confirm"].(map[string]any)
	if info == nil || info["plain_best_trial"] != float64(completed[0]) || info["chosen_trial"] != float64(chosen) || info["repeats_trained"] != 3.0 {
		t.Fatalf("info.confirm %v: want plain best %d, chosen %d, 3 repeats trained", info, completed[0], chosen)
	}
	leaders, _ := info["leaders"].([]any)
	if len(leaders) != 3 {
		t.Fatalf("info.confirm.leaders %v, want 3", leaders)
	}
	for _, l := range leaders {
		l := l.(map[string]any)
		i := int(l["trial"].(float64))
		vals := l["values"].([]any)
		own, rep := vals[0].(float64), vals[1].(float64)
		if own != parseNum(t, objective[i]) || own == rep {
			t.Errorf("trial %d: values %v: want its own objective %s first, then another seed's, different", i, vals, objective[i])
		}
		if want := (own + rep) / 2; math.Abs(parseNum(t, mean[i])-want) > 1e-12 || l["mean"] != parseNum(t, mean[i]) {
			t.Errorf("trial %d: confirm_mean %s, info mean %v; want the mean of its runs %v", i, mean[i], l["mean"], want)
		}
	}
	if st.Metrics["confirm_val_logloss"] != parseNum(t, mean[chosen]) {
		t.Errorf("metric confirm_val_logloss %v, want the chosen trial's mean %s", st.Metrics["confirm_val_logloss"], mean[chosen])
	}
	// The model is the chosen trial's own run.
	own := parseNum(t, objective[chosen])
	if st.Metrics["val_logloss"] != own || math.Abs(m.Stages["eval"].Metrics["val_logloss"]-own) > 1e-9*math.Max(1, own) {
		t.Errorf("the model's val_logloss %v (evaluate: %v), want the chosen trial's own %v", st.Metrics["val_logloss"], m.Stages["eval"].Metrics["val_logloss"], own)
	}
	if !hasNote(st, "confirm: the 3 best trials trained 1 more times") || !strings.Contains(st.Info["best_config"].(string), "chosen on its mean val_logloss over 2 runs") {
		t.Errorf("notes %q, best_config %q: want the confirmation said", st.Notes, st.Info["best_config"])
	}

	rep, err := report.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range rep.Stages {
		if rs.Name == "tune" && (rs.Search == nil || len(rs.Search.Params) != 4) {
			t.Errorf("report's search section: %+v, want the 4 parameters", rs.Search)
		}
	}

	m3, dir3, err := runTOML(t, ".", searchConfirm, "tune.workers=3", "pipeline.workers=3")
	if err != nil {
		t.Fatal(err)
	}
	h3, r3 := readTrials(t, dir3)
	if !reflect.DeepEqual(withoutTimes(header, rows), withoutTimes(h3, r3)) {
		t.Errorf("trials differ between 1 and 3 workers:\n%v\n%v", withoutTimes(header, rows), withoutTimes(h3, r3))
	}
	i3, _ := m3.Stages["tune"].Info["confirm"].(map[string]any)
	if !reflect.DeepEqual(info["leaders"], i3["leaders"]) || !reflect.DeepEqual(st.Metrics, m3.Stages["tune"].Metrics) || st.Info["best_trial"] != m3.Stages["tune"].Info["best_trial"] {
		t.Errorf("1 worker: %v %v; 3 workers: %v %v", info, st.Metrics, i3, m3.Stages["tune"].Metrics)
	}
}

// TestResumeSearchConfirm interrupts a confirmed search after its first repeat: the resumed
// run trains no trial and only the repeats not finished, and ends with the model, trials and
// metrics of an uninterrupted run.
func TestResumeSearchConfirm(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	src := searchDigits + strings.Replace(searchTune, "trials = 8\n", "trials = 8\nworkers = 1\nconfirm = { top = 3, seeds = 2 }\n", 1)
	testResume(t, resumeCase{
		src:       src,
		stage:     "tune",
		cancelAt:  progressAt("tune", "repeats", 1),
		outputs:   []string{"bundle"},
		files:     []string{"history.csv"},
		resumed:   []string{"tune.workers=2", "pipeline.workers=2"},
		reference: []string{"tune.workers=3", "pipeline.workers=3"},
		checkResumed: func(t *testing.T, st *pipeline.StageManifest) {
			if n := infoNumber(st, "restored_repeats"); n != 1 || !hasNote(st, "1 finished repeats of the confirmation taken from an earlier") {
				t.Errorf("resumed stage: info restored_repeats %v, notes %q; want 1", st.Info["restored_repeats"], st.Notes)
			}
			info, _ := st.Info["confirm"].(map[string]any)
			if n := infoNumber(st, "trials_trained"); n != 0 || info == nil || info["repeats_trained"] != 5.0 {
				t.Errorf("the resumed run trained %v trials and %v repeats, want none and the 5 unfinished repeats", n, info["repeats_trained"])
			}
		},
	})
}

func TestSearchConfirmConfigErrors(t *testing.T) {
	checkSearchConfigErrors(t, searchL2Head, []searchConfigError{
		{"top > trials", "trials = 4\nconfirm = { top = 5 }\n", "confirm.top", "top = 5 is more than the 4 trials"},
		{"top 1", "confirm = { top = 1 }\n", "confirm.top", "below the minimum 2"},
		{"seeds 0", "confirm = { seeds = 0 }\n", "confirm.seeds", "below the minimum 1"},
		{"cv", "cv = 3\nprune = { method = \"none\" }\nconfirm = { top = 3 }\n", "confirm", "already the mean over 3 folds"},
		{"unknown key", "confirm = { top = 3, seed = 2 }\n", "confirm.seed", "seeds"},
	})
	// Defaults: top 5, seeds 2.
	p, err := pipeline.Parse([]byte(searchL2Head+"confirm = {}\n"), "tune.toml", ".", registry(t), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Stage("tune")
	s, err := newSearchStage(c)
	if err != nil || s.confirm.Top != 5 || s.confirm.Seeds != 2 {
		t.Errorf("confirm = {}: %+v, %v; want top 5, seeds 2", s.confirm, err)
	}
}
