package stages

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/internal/storetest"
	"github.com/pipe-ml/pipe/pipeline"
)

var _ pipeline.SteppedStage = (*searchStage)(nil)

// TestSearchTrialsRunApart runs a search as an engine that spreads it over workers does: the
// stages before it alone, then its trials as parts, in an order drawn at random among those
// ReadyParts lists (so that trials overtake lower ones and pause at their rungs), then the
// stage alone. The stage trains no trial itself, and its trials, metrics and model are those
// of a local run, bit for bit.
func TestSearchTrialsRunApart(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	src := searchDigits + searchTune
	ref, refDir, err := spreadRun(t, src, pipeline.RunOptions{Store: storetest.New()})
	if err != nil {
		t.Fatal(err)
	}
	m, dir, segments, paused, outOfOrder := runSearchApart(t, src, 8, 60)
	if paused == 0 || !outOfOrder {
		t.Errorf("%d segments paused, trials out of index order: %v: the test did not exercise decisions that wait", paused, outOfOrder)
	}
	t.Logf("%d segments, %d paused", segments, paused)
	sameSearch(t, m, dir, ref, refDir, 8)
	h1, r1 := readTrials(t, dir)
	h2, r2 := readTrials(t, refDir)
	// Start times count from the first segment (the search header's clock): the segments ran
	// one after another, so the trials that started later have later starts.
	later := 0
	for _, v := range column(t, h1, r1, trialsColStart) {
		x := parseNum(t, v)
		if x < 0 {
			t.Errorf("start_seconds %v < 0", x)
		}
		if x > 0 {
			later++
		}
	}
	if later == 0 {
		t.Errorf("every trial's start_seconds is 0: the report's timeline would be empty")
	}
	if s := strings.Join(column(t, h2, r2, trialsColStatus), " "); !strings.Contains(s, "pruned") {
		t.Errorf("statuses %q: the local search pruned nothing, so the test checks no decision", s)
	}
}

// TestSearchEnsembleTrialsRunApart: a search of ensembles (model = "ensemble") splits into
// one part per trial too, so that an engine spreads its trials over workers; run as parts in
// a random ready order (the second round's trials wait for the first round's region), then
// the stage alone, it gives the local search's trials, metrics and model, bit for bit.
func TestSearchEnsembleTrialsRunApart(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	src := searchDigits + searchEnsembleTune
	ref, refDir, err := spreadRun(t, src, pipeline.RunOptions{Store: storetest.New()})
	if err != nil {
		t.Fatal(err)
	}
	m, dir, segments, paused, outOfOrder := runSearchApart(t, src, 5, 5)
	if paused != 0 || segments != 5 {
		t.Errorf("%d segments, %d paused: an ensemble's trial runs in one segment", segments, paused)
	}
	if !outOfOrder {
		t.Errorf("the trials ran in index order: the test did not exercise a random order")
	}
	sameSearch(t, m, dir, ref, refDir, 5)
}

// searchEnsembleTune is a small search of ensembles: 5 trials in 2 rounds (zoom: round 1
// draws from the region round 0 decides).
const searchEnsembleTune = `
[stages.tune]
kind = "search"
model = "ensemble"
train = "scale.train"
val = "scale.val"
objective = "val_accuracy"
base = { members = 2, member = { layers = [ { dense = 16 } ], epochs = 2 } }
space = { "member.optimizer.lr" = { log_uniform = [1e-3, 3e-2] }, bootstrap = { choice = [true, false] } }
trials = 5
rounds = 2
[stages.eval]
kind = "evaluate"
models = ["tune.model"]
tables = ["scale.val"]
`

// runSearchApart runs the search "tune" of src (trials trials) as an engine that spreads it
// does, in a store of its own: the stages before it alone, its trials as parts in an order
// drawn at random among those ReadyParts lists (at most maxSegments segments), then the stage
// alone. It returns the stage's run (manifest and directory), how many segments ran, how
// many of them paused, and whether a trial ran before a lower one.
func runSearchApart(t *testing.T, src string, trials, maxSegments int) (m *pipeline.Manifest, dir string, segments, paused int, outOfOrder bool) {
	t.Helper()
	store := storetest.New()
	p, err := pipeline.Parse([]byte(src), "spread.toml", ".", registry(t), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := pipeline.RunOptions{Store: store, Version: "test"}
	plan, err := pipeline.PlanStore(context.Background(), p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if sp, _ := plan.Stage("tune"); sp.Parts != trials || !sp.Stepped {
		t.Fatalf("the search's plan: %d parts, stepped %v; want %d trials in steps", sp.Parts, sp.Stepped, trials)
	}
	for _, name := range []string{"load", "split", "scale"} {
		if _, _, err := spreadRun(t, src, pipeline.RunOptions{Store: store, Only: []string{name}}); err != nil {
			t.Fatalf("stage %s: %v", name, err)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	last := -1
	for {
		ready, finished, err := pipeline.ReadyParts(context.Background(), p, opts, "tune", zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		if finished == trials {
			if len(ready) > 0 {
				t.Fatalf("every trial finished, yet trials %v are ready", ready)
			}
			break
		}
		if len(ready) == 0 {
			t.Fatal("no trial is ready and the search is not done: it is stuck")
		}
		if segments++; segments > maxSegments {
			t.Fatalf("more than %d segments for %d trials", maxSegments, trials)
		}
		i := ready[rng.IntN(len(ready))]
		outOfOrder = outOfOrder || i < last
		last = i
		var saved []string
		m, _, err := spreadRun(t, src, pipeline.RunOptions{Store: store, Only: []string{"tune"}, Part: &i,
			OnCheckpoint: func(stage, name, key string) { saved = append(saved, name) }})
		if err != nil || m.Stages["tune"].Status != pipeline.StatusSucceeded {
			t.Fatalf("trial %d: %v", i, err)
		}
		switch {
		case contains(saved, trialStateName(i)):
			paused++
		case !contains(saved, trialCheckpointName(i)):
			t.Fatalf("trial %d was ready, and its segment saved neither its record nor its state (%q)", i, saved)
		}
	}
	m, dir, err = spreadRun(t, src, pipeline.RunOptions{Store: store, Only: []string{"tune"}})
	if err != nil {
		t.Fatal(err)
	}
	return m, dir, segments, paused, outOfOrder
}

// sameSearch checks that the search "tune" of the spread run (m, dir) trained none of its
// trials trials itself and has the local run's (ref, refDir) metrics, info, trials table
// (times aside) and bundle, bit for bit.
func sameSearch(t *testing.T, m *pipeline.Manifest, dir string, ref *pipeline.Manifest, refDir string, trials int) {
	t.Helper()
	st := m.Stages["tune"]
	if n := infoNumber(st, "trials_trained"); n != 0 || infoNumber(st, "restored_trials") != float64(trials) {
		t.Errorf("the stage trained %v trials itself and restored %v: want every trial from its part", n, st.Info["restored_trials"])
	}
	if !reflect.DeepEqual(st.Metrics, ref.Stages["tune"].Metrics) {
		t.Errorf("metrics differ:\nspread %v\nlocal  %v", st.Metrics, ref.Stages["tune"].Metrics)
	}
	for _, key := range []string{"best_trial", "best_value", "best_params", "trials", "epochs_run", "regions"} {
		if !reflect.DeepEqual(st.Info[key], ref.Stages["tune"].Info[key]) {
			t.Errorf("info %s: spread %v, local %v", key, st.Info[key], ref.Stages["tune"].Info[key])
		}
	}
	h1, r1 := readTrials(t, dir)
	h2, r2 := readTrials(t, refDir)
	if a, b := withoutTimes(h1, r1), withoutTimes(h2, r2); !reflect.DeepEqual(a, b) {
		t.Errorf("trials spread:\n%v\nlocal:\n%v", a, b)
	}
	want := dirFiles(t, filepath.Join(refDir, "stages", "tune", "bundle"))
	got := dirFiles(t, filepath.Join(dir, "stages", "tune", "bundle"))
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("bundle: %d files spread, %d local", len(got), len(want))
	}
	for name, b := range want {
		if name != "bundle.json" && string(got[name]) != string(b) {
			t.Errorf("bundle/%s differs between the spread and the local search", name)
		}
	}
}
