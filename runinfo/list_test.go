package runinfo

import (
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
)

// listFixture writes a runs directory with one run of every status and things that are not
// runs, and returns it with the runs it expects List to find, each with its start time (the
// unreadable run's: its manifest's modification time).
func listFixture(t *testing.T) (string, map[string]time.Time) {
	t.Helper()
	root := t.TempDir()
	src := stage{name: "load", kind: "dataset", status: pipeline.StatusSucceeded, cached: true, key: strings.Repeat("a", 64)}
	model := stage{name: "model", kind: "train", status: pipeline.StatusSucceeded, metrics: map[string]float64{"val_accuracy": 0.8}, cached: true}
	eval := stage{name: "eval", kind: "evaluate", status: pipeline.StatusSucceeded, metrics: map[string]float64{"test_accuracy": 0.9, "val_accuracy": 0.85, "test_logloss": 0.3}}
	failedModel := model
	failedModel.status, failedModel.cached = pipeline.StatusFailed, false
	skipped := stage{name: "eval", kind: "evaluate", status: pipeline.StatusSkipped}

	starts := map[string]time.Time{}
	add := func(f fixtureRun, start time.Time) {
		writeRun(t, root, f)
		starts[f.id] = start
	}
	add(fixtureRun{pipeline: "digits", id: "ok", m: manifest("digits", "ok", pipeline.StatusSucceeded, t0.Add(3*time.Hour), 61.5, src, model, eval)}, t0.Add(3*time.Hour))
	failed := manifest("digits", "failed", pipeline.StatusFailed, t0.Add(2*time.Hour), 4, src, failedModel, skipped)
	failed.Error = `stage "model": NaN loss`
	add(fixtureRun{pipeline: "digits", id: "failed", m: failed}, t0.Add(2*time.Hour))
	canceled := manifest("iris", "canceled", pipeline.StatusCanceled, t0.Add(time.Hour), 9, src)
	canceled.Error = "canceled by SIGTERM"
	add(fixtureRun{pipeline: "iris", id: "canceled", m: canceled}, t0.Add(time.Hour))
	// Crashed: the manifest still says running, a lock file is there and nobody holds it.
	crashed := manifest("digits", "crashed", pipeline.StatusRunning, t0.Add(4*time.Hour), 0, src, model)
	hb := t0.Add(4*time.Hour + 30*time.Second)
	crashed.HeartbeatAt, crashed.HeartbeatSeconds = &hb, 10
	add(fixtureRun{pipeline: "digits", id: "crashed", m: crashed, lockFile: true}, t0.Add(4*time.Hour))
	add(fixtureRun{pipeline: "digits", id: "damaged", raw: `{"format_version": 1, "status": "succ`}, time.Time{})

	// Not runs: the store, a pipeline directory's lock, a directory without a manifest.
	must(t, os.MkdirAll(filepath.Join(root, ".store", "stages", "x"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "digits", pipeline.LockFile), nil, 0o644))
	must(t, os.MkdirAll(filepath.Join(root, "digits", "starting"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "notes.txt"), []byte("x"), 0o644))

	fi, err := os.Stat(filepath.Join(root, "digits", "damaged", "manifest.json"))
	must(t, err)
	starts["damaged"] = fi.ModTime()
	return root, starts
}

// TestListReportsEveryStatus: succeeded, failed, canceled, crashed and unreadable runs are all
// listed, newest first, with their status, duration, cached stages and headline metrics.
func TestListReportsEveryStatus(t *testing.T) {
	root, starts := listFixture(t)
	got, err := List(root, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wantOrder []string
	for id := range starts {
		wantOrder = append(wantOrder, id)
	}
	sort.Slice(wantOrder, func(i, j int) bool { return starts[wantOrder[i]].After(starts[wantOrder[j]]) })
	var order []string
	byID := map[string]Run{}
	for _, r := range got {
		order = append(order, r.ID)
		byID[r.ID] = r
	}
	if strings.Join(order, " ") != strings.Join(wantOrder, " ") {
		t.Fatalf("runs %v, want newest first %v", order, wantOrder)
	}
	for id, want := range map[string]string{
		"ok": pipeline.StatusSucceeded, "failed": pipeline.StatusFailed, "canceled": pipeline.StatusCanceled,
		"crashed": pipeline.StatusCrashed, "damaged": StatusUnreadable,
	} {
		if byID[id].Status != want {
			t.Errorf("%s: status %q, want %q", id, byID[id].Status, want)
		}
	}
	ok := byID["ok"]
	if ok.Stages != 3 || ok.Cached != 2 || ok.Seconds != 61.5 || ok.StartedAt == nil || !ok.StartedAt.Equal(starts["ok"]) {
		t.Errorf("succeeded run: %+v", ok)
	}
	if len(ok.Headline) != 1 || ok.Headline[0].Key != "test_accuracy" || ok.Headline[0].Stage != "eval" || ok.Headline[0].Value != 0.9 {
		t.Errorf("headline %+v, want eval's test_accuracy 0.9", ok.Headline)
	}
	if f := byID["failed"]; f.Error != `stage "model": NaN loss` || f.Cached != 1 || len(f.Headline) != 0 {
		t.Errorf("failed run: %+v", f)
	}
	// A crashed run's duration runs to its last heartbeat, and it has no end.
	c := byID["crashed"]
	if math.Abs(c.Seconds-30) > 1e-9 || c.FinishedAt != nil {
		t.Errorf("crashed run: seconds %v, finished %v; want 30 (to the last heartbeat), none", c.Seconds, c.FinishedAt)
	}
	d := byID["damaged"]
	if !strings.Contains(d.Error, filepath.Join(root, "digits", "damaged", "manifest.json")) || d.Pipeline != "digits" || d.Headline == nil {
		t.Errorf("unreadable run: %+v", d)
	}
	// The JSON form: an array whose elements carry the documented keys.
	b, err := json.Marshal(got)
	must(t, err)
	var arr []map[string]any
	must(t, json.Unmarshal(b, &arr))
	for _, key := range []string{"id", "pipeline", "dir", "status", "seconds", "stages", "cached", "headline"} {
		for _, e := range arr {
			if _, ok := e[key]; !ok {
				t.Errorf("JSON element %v lacks %q", e["id"], key)
			}
		}
	}
}

func TestListFiltersAndLimits(t *testing.T) {
	root, _ := listFixture(t)
	got, err := List(root, ListOptions{Pipeline: "iris"})
	if err != nil || len(got) != 1 || got[0].ID != "canceled" {
		t.Errorf("pipeline iris: %+v, %v", got, err)
	}
	// A pipeline's directory holds its unreadable runs too.
	got, _ = List(root, ListOptions{Pipeline: "digits"})
	if len(got) != 4 {
		t.Errorf("pipeline digits: %d runs, want 4", len(got))
	}
	all, _ := List(root, ListOptions{})
	got, _ = List(root, ListOptions{Limit: 2})
	if len(got) != 2 || got[0].ID != all[0].ID || got[1].ID != all[1].ID {
		t.Errorf("limit 2: %+v, want the first two of %+v", got, all)
	}
	if got, err := List(root, ListOptions{Pipeline: "nothing"}); err != nil || got == nil || len(got) != 0 {
		t.Errorf("an unknown pipeline: %v, %v (want an empty, non-nil list)", got, err)
	}
	if _, err := List(filepath.Join(root, "nope"), ListOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing runs directory: %v", err)
	}
}

// TestRunningDurationIsSoFar: a running run's duration is measured to now.
func TestRunningDurationIsSoFar(t *testing.T) {
	root := t.TempDir()
	start := time.Now().Add(-time.Hour).UTC()
	m := manifest("p", "r", pipeline.StatusRunning, start, 0)
	dir := writeRun(t, root, fixtureRun{pipeline: "p", id: "r", m: m}) // no lock file: the pid (ours) is alive
	now := start.Add(90 * time.Second)
	r := Read(dir, now)
	if r.Status != pipeline.StatusRunning || math.Abs(r.Seconds-90) > 1e-9 {
		t.Errorf("running run: %s, %v s; want running, 90 s", r.Status, r.Seconds)
	}
}

func TestHeadline(t *testing.T) {
	ev := func(ms map[string]float64) *pipeline.Manifest {
		return manifest("p", "r", pipeline.StatusSucceeded, t0, 1, stage{name: "eval", kind: "evaluate", metrics: ms})
	}
	for _, c := range []struct {
		name string
		m    *pipeline.Manifest
		want []string // stage:key
	}{
		{"classes: test before val", ev(map[string]float64{"val_accuracy": 1, "test_accuracy": 1, "test_auc": 1, "train_accuracy": 1}), []string{"eval:test_accuracy"}},
		{"classes: val without test", ev(map[string]float64{"val_accuracy": 1, "val_logloss": 1, "train_accuracy": 1}), []string{"eval:val_accuracy"}},
		{"regression: r2", ev(map[string]float64{"test_rmse": 1, "test_mae": 1, "test_r2": 1, "val_r2": 1}), []string{"eval:test_r2"}},
		{"several models", ev(map[string]float64{"b/test_accuracy": 1, "a/test_accuracy": 1, "a/val_accuracy": 1}), []string{"eval:a/test_accuracy", "eval:b/test_accuracy"}},
		{"several heads", ev(map[string]float64{"m/price/test_r2": 1, "m/kind/test_accuracy": 1, "m/kind/val_accuracy": 1}), []string{"eval:m/kind/test_accuracy", "eval:m/price/test_r2"}},
		{"train_dev is not test", ev(map[string]float64{"train_dev_accuracy": 1}), nil},
		{"only evaluate stages", manifest("p", "r", pipeline.StatusSucceeded, t0, 1,
			stage{name: "model", kind: "train", metrics: map[string]float64{"val_accuracy": 1}},
			stage{name: "z", kind: "evaluate", metrics: map[string]float64{"test_r2": 1}},
			stage{name: "a", kind: "evaluate", metrics: map[string]float64{"test_accuracy": 1}}), []string{"z:test_r2", "a:test_accuracy"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, h := range Headline(c.m) {
				got = append(got, h.Stage+":"+h.Key)
				if h.Stage != "" && h.Key != h.Key[:strings.LastIndex(h.Key, "/")+1]+h.Split+"_"+h.Metric {
					t.Errorf("%+v: key, split and metric disagree", h)
				}
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("headline %v, want %v", got, c.want)
			}
		})
	}
}
