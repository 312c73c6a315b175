package cli

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/runinfo"
)

// fixtureStart is the start of the first fixture run.
var fixtureStart = time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)

// fixtureManifest is a manifest of pipeline name with the stages load (a source, cached),
// model (train) and eval (evaluate), as a finished run of status that took secs.
func fixtureManifest(name, id, status string, start time.Time, secs float64) *pipeline.Manifest {
	host, _ := os.Hostname()
	m := &pipeline.Manifest{
		FormatVersion: pipeline.ManifestVersion, Pipeline: name, RunID: id, Status: status, ExitCode: pipeline.ExitCode(status),
		Seed: 1, ConfigHash: strings.Repeat("c0ffee", 10) + "abcd", PipeVersion: "v1.2.0", StartedAt: start, Seconds: secs,
		PID: 4242, Host: host, StageOrder: []string{"load", "model", "eval"},
		Stages: map[string]*pipeline.StageManifest{
			"load": {Kind: "dataset", Status: pipeline.StatusSucceeded, Seconds: 0.02, RowsOut: 1797, Batches: 1, Cached: true,
				CacheKey: strings.Repeat("ab", 32), Metrics: map[string]float64{},
				Outputs: map[string]pipeline.OutputInfo{"out": {Kind: "table", Rows: 1797, Batches: 1}}},
			"model": {Kind: "train", Status: pipeline.StatusSucceeded, Seconds: 12.5, WaitedSeconds: 0.25, RowsIn: 1122,
				CacheKey: strings.Repeat("cd", 32),
				Metrics:  map[string]float64{"val_accuracy": 0.95, "val_loss": 0.2, "val_best_epoch": 31},
				Outputs:  map[string]pipeline.OutputInfo{"model": {Kind: "artifact", Type: "bundle"}},
				Info:     map[string]any{"partial": false, "epochs_run": 46.0},
				Notes:    []string{"early stopping after epoch 46"},
				Attempts: []pipeline.Attempt{
					{StartedAt: start.Add(time.Second), Seconds: 0.5, Error: "read /mnt/data: input/output error"},
					{StartedAt: start.Add(3 * time.Second), Seconds: 12.5},
				}},
			"eval": {Kind: "evaluate", Status: pipeline.StatusSucceeded, Seconds: 0.3, RowsIn: 1797,
				Metrics: map[string]float64{"test_accuracy": 0.9815, "val_accuracy": 0.9667, "test_logloss": 0.07, "test_rows": 270}},
		},
	}
	if status != pipeline.StatusRunning {
		end := start.Add(time.Duration(secs * float64(time.Second)))
		m.FinishedAt = &end
	}
	return m
}

// writeFixtureRun writes m (or raw, when m is nil) as root/<pipe>/<id>/manifest.json, with
// config as its pipeline.toml when not empty, and returns the run directory.
func writeFixtureRun(t *testing.T, root, pipe, id string, m *pipeline.Manifest, raw, config string) string {
	t.Helper()
	dir := filepath.Join(root, pipe, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := []byte(raw)
	if m != nil {
		var err error
		if b, err = json.MarshalIndent(m, "", "  "); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "manifest.json"), string(b))
	if config != "" {
		writeFile(t, filepath.Join(dir, "pipeline.toml"), config)
	}
	return dir
}

// runsFixture writes a runs directory with a succeeded, a failed, a canceled, a crashed and an
// unreadable run, and things that are not runs.
func runsFixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeFixtureRun(t, root, "digits", "20261130T050000Z-aaaaaa", fixtureManifest("digits", "20261130T050000Z-aaaaaa", pipeline.StatusSucceeded, fixtureStart.Add(3*time.Hour), 125.25), "", "")

	failed := fixtureManifest("digits", "20261130T040000Z-bbbbbb", pipeline.StatusFailed, fixtureStart.Add(2*time.Hour), 3.5)
	failed.Error = `stage "model": loss is NaN at epoch 3`
	failed.Stages["model"].Status, failed.Stages["model"].Metrics = pipeline.StatusFailed, map[string]float64{}
	failed.Stages["eval"].Status, failed.Stages["eval"].Metrics = pipeline.StatusSkipped, map[string]float64{}
	writeFixtureRun(t, root, "digits", "20261130T040000Z-bbbbbb", failed, "", "")

	canceled := fixtureManifest("iris", "20261130T030000Z-cccccc", pipeline.StatusCanceled, fixtureStart.Add(time.Hour), 7200)
	canceled.Error = "canceled by SIGTERM"
	canceled.Stages["eval"].Status, canceled.Stages["eval"].Metrics = pipeline.StatusCanceled, map[string]float64{}
	writeFixtureRun(t, root, "iris", "20261130T030000Z-cccccc", canceled, "", "")

	// Crashed: the manifest says running; its lock file is there and nobody holds it.
	crashed := fixtureManifest("digits", "20261130T060000Z-dddddd", pipeline.StatusRunning, fixtureStart.Add(4*time.Hour), 0)
	hb := crashed.StartedAt.Add(250 * time.Second)
	crashed.HeartbeatAt, crashed.HeartbeatSeconds = &hb, 10
	crashed.Stages["model"].Status, crashed.Stages["eval"].Status = pipeline.StatusRunning, pipeline.StatusPending
	crashed.Stages["eval"].Metrics = map[string]float64{}
	dir := writeFixtureRun(t, root, "digits", "20261130T060000Z-dddddd", crashed, "", "")
	writeFile(t, filepath.Join(dir, pipeline.LockFile), "")

	damaged := writeFixtureRun(t, root, "digits", "20261130T010000Z-eeeeee", nil, `{"format_version": 1, "pipeline": "dig`, "")
	// Its manifest's time orders it: make it the oldest.
	if err := os.Chtimes(filepath.Join(damaged, "manifest.json"), fixtureStart, fixtureStart); err != nil {
		t.Fatal(err)
	}
	// Not runs: the stage store, a pipeline's lock file, a directory without a manifest.
	if err := os.MkdirAll(filepath.Join(root, ".store", "stages"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "digits", pipeline.LockFile), "")
	if err := os.MkdirAll(filepath.Join(root, "digits", "20261130T070000Z-ffffff"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// checkGolden compares got, with the temporary directory root written as RUNS, with
// testdata/<name>; -update rewrites the file.
func checkGolden(t *testing.T, name, root, got string) {
	t.Helper()
	got = strings.ReplaceAll(got, root, "RUNS")
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cli -run %s -update to write it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test ./cli -run %s -update rewrites it after a deliberate change):\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

// TestRunsListsEveryStatus: pipe runs lists a succeeded, a failed, a canceled, a crashed
// (manifest running, lock free) and an unreadable run, newest first, as a table and as JSON.
func TestRunsListsEveryStatus(t *testing.T) {
	root := runsFixture(t)
	code, out, errOut := runCLI("runs", "--runs", root)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkGolden(t, "runs.golden", root, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var statuses []string
	for _, l := range lines[1:] {
		statuses = append(statuses, strings.Fields(l)[2])
	}
	if want := "crashed succeeded failed canceled unreadable"; strings.Join(statuses, " ") != want {
		t.Errorf("statuses %v, want newest first %s", statuses, want)
	}

	code, out, errOut = runCLI("runs", "--runs", root, "--format", "json")
	if code != 0 {
		t.Fatalf("json: exit %d: %s", code, errOut)
	}
	checkGolden(t, "runs.json.golden", root, out)
	var list []runinfo.Run
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("not a JSON array of runs: %v\n%s", err, out)
	}
	byStatus := map[string]runinfo.Run{}
	for _, r := range list {
		byStatus[r.Status] = r
	}
	ok := byStatus[pipeline.StatusSucceeded]
	if ok.Stages != 3 || ok.Cached != 1 || len(ok.Headline) != 1 || ok.Headline[0].Key != "test_accuracy" || ok.Headline[0].Value != 0.9815 {
		t.Errorf("succeeded run: %+v", ok)
	}
	if c := byStatus[pipeline.StatusCrashed]; math.Abs(c.Seconds-250) > 1e-9 {
		t.Errorf("crashed run: %v s, want 250 (to its last heartbeat)", c.Seconds)
	}
	if u := byStatus[runinfo.StatusUnreadable]; !strings.Contains(u.Error, "manifest.json") {
		t.Errorf("unreadable run: %+v", u)
	}

	// One pipeline, a limit; an empty list is still a JSON array.
	_, out, _ = runCLI("runs", "iris", "--runs", root, "--format", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].Status != pipeline.StatusCanceled {
		t.Errorf("runs iris: %v %+v", err, list)
	}
	_, out, _ = runCLI("runs", "--runs", root, "--limit", "2")
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != 3 {
		t.Errorf("--limit 2: %d lines, want a header and 2 runs:\n%s", n, out)
	}
	code, out, errOut = runCLI("runs", "--runs", filepath.Join(root, "none"), "--format", "json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("no runs directory: exit %d, %q, %q", code, out, errOut)
	}
	if code, _, errOut := runCLI("runs", "--format", "yaml"); code != pipeline.ExitConfig || !strings.Contains(errOut, "table or json") {
		t.Errorf("a wrong format: exit %d, %s", code, errOut)
	}
}

// TestRunsAfterRealRuns runs two real pipelines and checks what runs, show and compare say
// of them against their manifests and files.
func TestRunsAfterRealRuns(t *testing.T) {
	root := t.TempDir()
	for _, epochs := range []string{"2", "3"} {
		code, _, errOut := runCLI("run", "../pipelines/digits-mlp.toml", "--runs", root, "--log-format", "json", "--no-progress",
			"--set", "model.epochs="+epochs, "--set", "pipeline.workers=1")
		if code != 0 {
			t.Fatalf("run: exit %d\n%s", code, errOut)
		}
		time.Sleep(10 * time.Millisecond) // distinct start times
	}
	_, out, _ := runCLI("runs", "--runs", root, "--format", "json")
	var list []runinfo.Run
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 {
		t.Fatalf("runs: %v\n%s", err, out)
	}
	newer, older := list[0], list[1]
	for _, r := range list {
		m, _, err := pipeline.ReadRun(r.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != pipeline.StatusSucceeded || r.Stages != len(m.Stages) || len(r.Headline) != 1 ||
			r.Headline[0].Value != m.Stages["eval"].Metrics["test_accuracy"] || r.Seconds != m.Seconds {
			t.Errorf("run %s: %+v, manifest %+v", r.ID, r, m.Stages["eval"].Metrics)
		}
	}
	if !newer.StartedAt.After(*older.StartedAt) {
		t.Errorf("not newest first: %v then %v", newer.StartedAt, older.StartedAt)
	}

	// compare: the override is the one config difference.
	code, out, errOut := runCLI("compare", older.Dir, newer.ID, "--runs", root, "--format", "json")
	if code != 0 {
		t.Fatalf("compare: exit %d, %s", code, errOut)
	}
	var c runinfo.Comparison
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Config) != 1 || c.Config[0] != (runinfo.ConfigChange{Path: "model.epochs", Change: runinfo.Changed, A: "2", B: "3"}) {
		t.Errorf("config differences %+v, want model.epochs 2 → 3", c.Config)
	}
	if c.B.Dir != newer.Dir {
		t.Errorf("run id %s resolved to %s, want %s", newer.ID, c.B.Dir, newer.Dir)
	}

	// show: the summary pipe run printed; the worst rows of the test split, without pyarrow.
	code, out, _ = runCLI("show", newer.Dir)
	if code != 0 || !strings.Contains(out, "digits-mlp: succeeded in") || !strings.HasSuffix(out, "run: "+newer.Dir+"\n") {
		t.Errorf("show run: exit %d\n%s", code, out)
	}
	code, out, errOut = runCLI("show", newer.Dir, "eval", "worst_test_out.parquet", "--rows", "5")
	if code != 0 {
		t.Fatalf("show worst rows: exit %d, %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2+5+1 || strings.Fields(lines[0])[0] != "_row" || !strings.Contains(lines[len(lines)-1], "more follow") {
		t.Errorf("worst rows:\n%s", out)
	}
}
