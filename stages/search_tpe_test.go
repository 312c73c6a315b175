package stages

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/internal/storetest"
	"github.com/pipe-ml/pipe/pipeline"
)

// searchTuneTPE is searchTune with the TPE sampler: from trial 5 on (3 trials to start, each
// drawn from the trials up to 2 below it), trials are drawn by TPE.
var searchTuneTPE = strings.Replace(searchTune, "rounds = 2\n", "sampler = \"tpe\"\ntpe = { startup = 3, parallel = 2 }\n", 1)

// TestSearchTPE runs the TPE search with one worker and with three: the trials table, the
// best trial and the metrics are the same; every trial is in round 0; no two trials drew the
// same learning rate; the manifest names the sampler. (What TPE draws is tested in the
// search package.)
func TestSearchTPE(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	src := searchDigits + searchTuneTPE
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
	if len(r1) != 8 {
		t.Fatalf("%d trials, want 8", len(r1))
	}
	if !reflect.DeepEqual(withoutTimes(h1, r1), withoutTimes(h3, r3)) {
		t.Errorf("trials differ between 1 and 3 workers:\n%v\n%v", withoutTimes(h1, r1), withoutTimes(h3, r3))
	}
	if rounds := strings.Join(column(t, h1, r1, trialsColRound), " "); rounds != "0 0 0 0 0 0 0 0" {
		t.Errorf("rounds %q: the TPE search has none", rounds)
	}
	lrs := column(t, h1, r1, "optimizer.lr")
	seen := map[string]bool{}
	for _, v := range lrs {
		seen[v] = true
	}
	if len(seen) != len(lrs) {
		t.Errorf("optimizer.lr repeats across trials: %v", lrs)
	}
	i1, i3 := m1.Stages["tune"].Info, m3.Stages["tune"].Info
	if i1["sampler"] != "tpe" {
		t.Errorf("info sampler %v, want tpe", i1["sampler"])
	}
	for _, k := range []string{"best_params", "best_trial", "best_value", "best_epoch", "trials"} {
		if !reflect.DeepEqual(i1[k], i3[k]) {
			t.Errorf("info %s: %v with 1 worker, %v with 3", k, i1[k], i3[k])
		}
	}
	if !reflect.DeepEqual(m1.Stages["tune"].Metrics, m3.Stages["tune"].Metrics) {
		t.Errorf("metrics: %v with 1 worker, %v with 3", m1.Stages["tune"].Metrics, m3.Stages["tune"].Metrics)
	}
}

// TestSearchTPETrialsRunApart runs the TPE search as an engine that spreads its trials over
// workers does (TestSearchTrialsRunApart): its trials, metrics and model are the local run's.
func TestSearchTPETrialsRunApart(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	src := searchDigits + searchTuneTPE
	ref, refDir, err := spreadRun(t, src, pipeline.RunOptions{Store: storetest.New()})
	if err != nil {
		t.Fatal(err)
	}
	m, dir, segments, paused, _ := runSearchApart(t, src, 8, 80)
	t.Logf("%d segments, %d paused", segments, paused)
	sameSearch(t, m, dir, ref, refDir, 8)
}

// TestResumedSearchTPE interrupts a TPE search after 3 trials: the resumed run (2 workers)
// trains only the 5 others and ends with the trials of an uninterrupted one.
func TestResumedSearchTPE(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	checkResumedSearch(t, searchDigits+strings.Replace(searchTuneTPE, "trials = 8\n", "trials = 8\nworkers = 1\n", 1), 3, 8)
}

// TestSearchTPEConfigErrors: rounds or zoom with the TPE sampler, tpe without it, and a tpe
// setting out of range are errors at the key, each saying what to do.
func TestSearchTPEConfigErrors(t *testing.T) {
	checkSearchConfigErrors(t, searchL2Head, []searchConfigError{
		{"rounds", "sampler = \"tpe\"\nrounds = 3\n", "rounds", "the tpe sampler has no rounds"},
		{"zoom", "sampler = \"tpe\"\nzoom = { top = 0.2 }\n", "zoom", "leave zoom out, or set sampler = \"zoom\""},
		{"tpe without", "tpe = { parallel = 2 }\n", "tpe", "add sampler = \"tpe\""},
		{"parallel", "sampler = \"tpe\"\ntpe = { parallel = 0 }\n", "tpe.parallel", "minimum 1"},
		{"unknown key", "sampler = \"tpe\"\ntpe = { lag = 2 }\n", "tpe.lag", "lag"},
		{"sampler", "sampler = \"bayes\"\n", "sampler", "tpe"},
	})
	// rounds = 1 is allowed with tpe.
	if _, err := pipeline.Parse([]byte(searchL2Head+"sampler = \"tpe\"\nrounds = 1\n"), "tune.toml", ".", registry(t), pipeline.LoadOptions{}); err != nil {
		t.Errorf("sampler tpe with rounds = 1: %v", err)
	}
}
