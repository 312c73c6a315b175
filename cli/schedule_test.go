package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/cluster"
	"github.com/pipe-ml/pipe/internal/temporaltest"
	"github.com/pipe-ml/pipe/pipeline"
)

// schedPipeline is a tiny pipeline for the schedule tests: iris, a small MLP, an evaluation.
const schedPipeline = `[pipeline]
name = "tiny-sched"
seed = 5
[stages.load]
kind = "dataset"
name = "iris"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 8 } ]
epochs = 20
[stages.eval]
kind = "evaluate"
models = ["model.model"]
tables = ["scale.test"]
`

// neverSoon is a cron spec (with a year field) that does not fire while a test runs.
const neverSoon = "0 0 1 1 * 2099"

// decodeJSON decodes a command's JSON output, failing t when it is not JSON.
func decodeJSON(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("not JSON (%v):\n%s", err, out)
	}
}

// TestSchedule runs pipe schedule against a real Temporal server with a pipe worker process:
// a schedule created with a cron that does not fire soon is described (overlap skip by
// default, active, its next run) and listed; a trigger starts a run whose directory a worker
// writes under --runs, with an id from the workflow's start time and the same metrics as a
// local run; describe shows it among the recent runs, pipe runs --temporal lists it and pipe
// show --temporal shows its stages; pause and unpause change its state; delete removes it.
// Bad input is refused with exit 2: an unknown schedule, a cron spec (the flag named), an
// invalid pipeline (its config error), a name taken.
func TestSchedule(t *testing.T) {
	bin := pipeBinary(t)
	srv := temporaltest.Start(t)
	dir := t.TempDir()
	store, runs := filepath.Join(dir, "store"), filepath.Join(dir, "runs")
	file := filepath.Join(dir, "tiny.toml")
	if err := os.WriteFile(file, []byte(schedPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	startWorker(t, bin, srv, store, "w1")
	local := filepath.Join(dir, "local")
	if out, err := exec.Command(bin, "run", file, "--out", local, "--store", filepath.Join(dir, "local-store"), "--no-progress", "--no-report").CombinedOutput(); err != nil {
		t.Fatalf("local run: %v\n%s", err, out)
	}
	tp := []string{"--temporal", srv.HostPort()}
	pipe := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(append(args, tp...)...)
	}
	describe := func(name string) *cluster.Schedule {
		t.Helper()
		code, out, errOut := pipe("schedule", "describe", name, "--format", "json")
		if code != 0 {
			t.Fatalf("describe %s: exit %d: %s", name, code, errOut)
		}
		var s cluster.Schedule
		decodeJSON(t, out, &s)
		return &s
	}

	code, out, errOut := pipe("schedule", "create", "nightly", file, "--cron", neverSoon, "--store", store, "--runs", runs)
	if code != 0 {
		t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "next run: 2099-01-01T00:00:00Z") {
		t.Errorf("create does not say the next run:\n%s", out)
	}
	s := describe("nightly")
	absRuns, _ := filepath.Abs(runs)
	if s.Overlap != "skip" || s.Paused || s.Cron != neverSoon || s.Pipeline != "tiny-sched" || s.RunsDir != absRuns || s.TaskQueue != cluster.DefaultTaskQueue ||
		len(s.Next) == 0 || !s.Next[0].Equal(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) || len(s.Recent) != 0 {
		t.Fatalf("describe after create: %+v", s)
	}
	if _, err := os.Stat(filepath.Join(store, filepath.FromSlash(s.ConfigKey))); err != nil || !strings.HasPrefix(s.ConfigKey, "schedules/nightly/") {
		t.Errorf("the pipeline config is not in the store under schedules/nightly/: %q: %v", s.ConfigKey, err)
	}
	if _, text, _ := pipe("schedule", "describe", "nightly"); !strings.Contains(text, "overlap:    skip") || !strings.Contains(text, "schedule nightly: active") {
		t.Errorf("describe's text:\n%s", text)
	}
	// Another overlap policy is what describe shows then (it reads the server's).
	if code, _, errOut := pipe("schedule", "create", "other", file, "--cron", "@daily", "--overlap", "buffer_one", "--store", store, "--runs", runs); code != 0 {
		t.Fatalf("create other: exit %d: %s", code, errOut)
	}
	if s := describe("other"); s.Overlap != "buffer_one" {
		t.Errorf("--overlap buffer_one: describe says %q", s.Overlap)
	}
	// The list is eventually consistent: it shows the schedules soon.
	var list []cluster.Schedule
	if !waitFor(20*time.Second, func() bool {
		_, out, _ := pipe("schedule", "list", "--format", "json")
		list = nil
		_ = json.Unmarshal([]byte(out), &list)
		return len(list) == 2
	}) || list[0].Name != "nightly" || list[0].Pipeline != "tiny-sched" || list[0].Cron != neverSoon || list[1].Name != "other" {
		t.Errorf("list: %+v", list)
	}

	// Trigger: a worker runs the pipeline and writes its run directory under --runs.
	if code, out, errOut := pipe("schedule", "trigger", "nightly"); code != 0 {
		t.Fatalf("trigger: exit %d\n%s%s", code, out, errOut)
	}
	var runDir string
	if !waitFor(60*time.Second, func() bool {
		ms, _ := filepath.Glob(filepath.Join(runs, "tiny-sched", "*", "manifest.json"))
		if len(ms) != 1 {
			return false
		}
		m, status, err := pipeline.ReadRun(filepath.Dir(ms[0]))
		if err != nil || status == pipeline.StatusRunning {
			return false
		}
		runDir = filepath.Dir(ms[0])
		return m.Status != ""
	}) {
		t.Fatalf("no finished run directory under %s", runs)
	}
	sameRuns(t, runDir, local, "stages/eval")
	m := runManifest(t, runDir)
	if m.Remote == nil || !strings.HasPrefix(m.Remote.WorkflowID, "pipe-tiny-sched-schedule-nightly") || m.RunID != filepath.Base(runDir) {
		t.Fatalf("manifest: run id %s, remote %+v", m.RunID, m.Remote)
	}
	// The run id: the workflow's start time and the hash of its Temporal run id.
	c := srv.Dial(t)
	wf, err := c.DescribeWorkflow(context.Background(), m.Remote.WorkflowID, m.Remote.RunID)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(m.Remote.RunID))
	idRE := regexp.MustCompile(`^(\d{8}T\d{6}Z)-([0-9a-f]{6})$`)
	parts := idRE.FindStringSubmatch(m.RunID)
	if parts == nil || parts[2] != hex.EncodeToString(sum[:3]) {
		t.Errorf("run id %s: want <start>-%s", m.RunID, hex.EncodeToString(sum[:3]))
	} else if at, err := time.Parse("20060102T150405Z", parts[1]); err != nil || at.Sub(wf.RawResponse.GetWorkflowExecutionInfo().GetStartTime().AsTime()).Abs() > time.Second {
		t.Errorf("run id %s: the workflow started at %s", m.RunID, wf.RawResponse.GetWorkflowExecutionInfo().GetStartTime().AsTime())
	}
	// The workflow ends just after its last activity wrote the run directory.
	waitFor(10*time.Second, func() bool {
		s = describe("nightly")
		return len(s.Recent) == 1 && s.Recent[0].Status != pipeline.StatusRunning
	})
	if s.Actions != 1 || len(s.Recent) != 1 || s.Recent[0].WorkflowID != m.Remote.WorkflowID || s.Recent[0].Status != pipeline.StatusSucceeded {
		t.Errorf("describe after the run: actions %d, recent %+v", s.Actions, s.Recent)
	}

	// pipe runs --temporal lists the run, pipe show --temporal shows its stages.
	var runsList []cluster.WorkflowRun
	waitFor(10*time.Second, func() bool { // Temporal's list is eventually consistent
		code, out, errOut = pipe("runs", "--format", "json")
		decodeJSON(t, out, &runsList)
		return len(runsList) == 1 && runsList[0].Status != pipeline.StatusRunning
	})
	if code != 0 || len(runsList) != 1 || runsList[0].WorkflowID != m.Remote.WorkflowID || runsList[0].Status != pipeline.StatusSucceeded ||
		runsList[0].Pipeline != "tiny-sched" || runsList[0].Schedule != "nightly" || runsList[0].Seconds <= 0 {
		t.Errorf("runs --temporal: exit %d %+v %s", code, runsList, errOut)
	}
	if _, out, _ := pipe("runs", "other-pipeline", "--format", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("runs --temporal of another pipeline:\n%s", out)
	}
	if _, out, _ := pipe("runs"); !strings.Contains(out, m.Remote.WorkflowID) || !strings.Contains(out, "succeeded") {
		t.Errorf("runs --temporal table:\n%s", out)
	}
	code, out, errOut = pipe("show", m.Remote.WorkflowID)
	if code != 0 || !strings.Contains(out, "succeeded") || !strings.Contains(out, "run: "+runDir) {
		t.Errorf("show --temporal: exit %d\n%s%s", code, out, errOut)
	}
	for _, st := range m.StageOrder {
		if !regexp.MustCompile(`(?m)^  ` + st + ` +succeeded +- +w1 +1 `).MatchString(out) {
			t.Errorf("show --temporal: no line of stage %s run by w1:\n%s", st, out)
		}
	}

	// Pause and unpause change the state describe reads.
	if code, _, errOut := pipe("schedule", "pause", "nightly", "--note", "holiday"); code != 0 {
		t.Fatalf("pause: exit %d: %s", code, errOut)
	}
	if s := describe("nightly"); !s.Paused || s.Note != "holiday" {
		t.Errorf("after pause: paused %v, note %q", s.Paused, s.Note)
	}
	if code, _, errOut := pipe("schedule", "unpause", "nightly"); code != 0 {
		t.Fatalf("unpause: exit %d: %s", code, errOut)
	}
	if s := describe("nightly"); s.Paused {
		t.Errorf("after unpause: still paused")
	}

	// Bad input.
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte(strings.Replace(schedPipeline, "epochs = 20", "epoks = 20", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown schedule", []string{"schedule", "describe", "nightlyy"}, []string{"schedule nightlyy: no such schedule", "pipe schedule list"}},
		{"unknown schedule trigger", []string{"schedule", "trigger", "nope"}, []string{"schedule nope: no such schedule"}},
		{"cron fields", []string{"schedule", "create", "x", file, "--cron", "0 2 * *"}, []string{"--cron", `"0 2 * *"`, "4 fields"}},
		{"cron out of range", []string{"schedule", "create", "x", file, "--cron", "0 25 * * *", "--store", store}, []string{"--cron", `"0 25 * * *"`, "Temporal refuses it"}},
		{"invalid pipeline", []string{"schedule", "create", "x", bad, "--cron", "@daily", "--store", store}, []string{bad + ":", "epoks", "no schedule was created"}},
		{"name taken", []string{"schedule", "create", "nightly", file, "--cron", "@daily", "--store", store}, []string{"nightly", "exists already"}},
		{"bad overlap", []string{"schedule", "create", "x", file, "--cron", "@daily", "--overlap", "skipp"}, []string{"--overlap", `did you mean "skip"`}},
		{"bad name", []string{"schedule", "pause", "a/b"}, []string{`"a/b"`, "letters, digits"}},
		{"unknown workflow", []string{"show", "pipe-nothing-here"}, []string{"pipe-nothing-here", "no such pipe run"}},
	} {
		code, out, errOut := pipe(tc.args...)
		if code != pipeline.ExitConfig {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.name, code, pipeline.ExitConfig, out, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: the error lacks %q:\n%s", tc.name, w, errOut)
			}
		}
	}
	if s := describe("nightly"); s.Cron != neverSoon {
		t.Errorf("a refused create changed the schedule: %+v", s)
	}
	if code, _, _ := pipe("schedule", "describe", "x"); code != pipeline.ExitConfig {
		t.Errorf("a refused create left a schedule x")
	}

	// Delete removes it.
	for _, name := range []string{"nightly", "other"} {
		if code, _, errOut := pipe("schedule", "delete", name); code != 0 {
			t.Fatalf("delete %s: exit %d: %s", name, code, errOut)
		}
	}
	if code, _, errOut := pipe("schedule", "describe", "nightly"); code != pipeline.ExitConfig || !strings.Contains(errOut, "no such schedule") {
		t.Errorf("describe after delete: exit %d: %s", code, errOut)
	}
	if !waitFor(20*time.Second, func() bool {
		_, out, _ := pipe("schedule", "list", "--format", "json")
		return strings.TrimSpace(out) == "[]"
	}) {
		_, out, _ := pipe("schedule", "list")
		t.Errorf("list after delete:\n%s", out)
	}
}

// TestShowRunningOnTemporal: pipe show --temporal of a running workflow shows its stages'
// progress (the workflow's progress query): the ensemble stage running with 0 of its 2
// members done, the stages before it succeeded; pipe runs --temporal says it runs.
func TestShowRunningOnTemporal(t *testing.T) {
	bin := pipeBinary(t)
	srv := temporaltest.Start(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	file := filepath.Join(dir, "long.toml")
	if err := os.WriteFile(file, fmt.Appendf(nil, killPipeline, 400), 0o644); err != nil {
		t.Fatal(err)
	}
	startWorker(t, bin, srv, store, "w1")
	out, err := exec.Command(bin, "run", file, "--engine", "temporal", "--detach", "--temporal", srv.HostPort(), "--store", store, "--runs", filepath.Join(dir, "runs")).CombinedOutput()
	id, _, _ := strings.Cut(strings.TrimPrefix(string(out), "workflow: "), "\n")
	if err != nil || !strings.HasPrefix(id, "pipe-kill-members-") {
		t.Fatalf("detached run: %v\n%s", err, out)
	}
	c := srv.Dial(t)
	defer c.CancelWorkflow(context.Background(), id, "")
	var show string
	if !waitFor(60*time.Second, func() bool {
		_, show, _ = runCLI("show", id, "--temporal", srv.HostPort())
		return regexp.MustCompile(`(?m)^  members +running +0/2 `).MatchString(show)
	}) {
		t.Fatalf("show --temporal of the running run:\n%s", show)
	}
	for _, st := range []string{"load", "split", "scale"} {
		if !regexp.MustCompile(`(?m)^  ` + st + ` +succeeded `).MatchString(show) {
			t.Errorf("show --temporal: stage %s not succeeded:\n%s", st, show)
		}
	}
	if !strings.Contains(show, "): running in ") || !regexp.MustCompile(`(?m)^  eval +pending `).MatchString(show) {
		t.Errorf("show --temporal of the running run:\n%s", show)
	}
	var list []cluster.WorkflowRun
	waitFor(10*time.Second, func() bool { // Temporal's list is eventually consistent
		_, out, _ := runCLI("runs", "--temporal", srv.HostPort(), "--format", "json")
		decodeJSON(t, out, &list)
		return len(list) == 1
	})
	if len(list) != 1 || list[0].WorkflowID != id || list[0].Status != pipeline.StatusRunning || list[0].Pipeline != "kill-members" || list[0].ClosedAt != nil {
		t.Errorf("runs --temporal: %+v", list)
	}
}

// TestRemoteFlagsNeedTemporal: --namespace without --temporal, or a local flag with it, is a
// usage error of pipe runs and pipe show; a schedule subcommand refuses a flag it does not
// take, before anything is reached; a Temporal server that does not answer is exit 2.
func TestRemoteFlagsNeedTemporal(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"runs", "--namespace", "x"}, "--namespace goes with --temporal"},
		{[]string{"runs", "--temporal", "127.0.0.1:1", "--runs", "r"}, "--runs reads the local runs"},
		{[]string{"show", "wf", "--temporal", "127.0.0.1:1", "--rows", "3"}, "--rows reads the local runs"},
		{[]string{"show", "wf", "stage", "--temporal", "127.0.0.1:1"}, "takes one workflow id"},
		{[]string{"schedule", "list", "--cron", "@daily"}, "list does not take --cron"},
		{[]string{"schedule", "create", "x", "f.toml"}, "create needs --cron"},
		{[]string{"schedule", "frobnicate"}, "unknown subcommand"},
		{[]string{"schedule"}, "takes a subcommand"},
		{[]string{"schedule", "list", "--temporal", "127.0.0.1:1"}, "connect to Temporal at 127.0.0.1:1"},
		{[]string{"runs", "--temporal", "127.0.0.1:1"}, "connect to Temporal at 127.0.0.1:1"},
	} {
		code, _, errOut := runCLI(tc.args...)
		if code != pipeline.ExitConfig || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want %d and %q:\n%s", tc.args, code, pipeline.ExitConfig, tc.want, errOut)
		}
	}
}
