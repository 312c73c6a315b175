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
	if sp, _ := plan.Stage("tune"); sp.Parts != 8 || !sp.Stepped {
		t.Fatalf("the search's plan: %d parts, stepped %v; want 8 trials in steps", sp.Parts, sp.Stepped)
	}
	for _, name := range []string{"load", "split", "scale"} {
		if _, _, err := spreadRun(t, src, pipeline.RunOptions{Store: store, Only: []string{name}}); err != nil {
			t.Fatalf("stage %s: %v", name, err)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	paused, segments, outOfOrder := 0, 0, false
	last := -1
	for {
		ready, finished, err := pipeline.ReadyParts(context.Background(), p, opts, "tune", zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		if finished == 8 {
			if len(ready) > 0 {
				t.Fatalf("every trial finished, yet trials %v are ready", ready)
			}
			break
		}
		if len(ready) == 0 {
			t.Fatal("no trial is ready and the search is not done: it is stuck")
		}
		if segments++; segments > 60 {
			t.Fatal("more than 60 segments for 8 trials")
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
	if paused == 0 || !outOfOrder {
		t.Errorf("%d segments paused, trials out of index order: %v: the test did not exercise decisions that wait", paused, outOfOrder)
	}
	t.Logf("%d segments, %d paused", segments, paused)
	m, dir, err := spreadRun(t, src, pipeline.RunOptions{Store: store, Only: []string{"tune"}})
	if err != nil {
		t.Fatal(err)
	}
	st := m.Stages["tune"]
	if n := infoNumber(st, "trials_trained"); n != 0 || infoNumber(st, "restored_trials") != 8 {
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
