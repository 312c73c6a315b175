package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/internal/temporaltest"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/report"
)

// The Temporal engine, tested as a user runs it: a real Temporal dev server (the CLI that
// ./run.sh test builds), `pipe worker` processes and `pipe run --engine temporal`.

// maxPayload is the most pipe may send through Temporal in one payload (Temporal's limit is
// 2 MB, with a warning above 256 KB): pipe sends keys and small records only.
const maxPayload = 64 << 10

// worker is a `pipe worker` process.
type worker struct {
	cmd *exec.Cmd
	out *syncBuffer
}

// startWorker starts `pipe worker` against srv and store; it is stopped when the test ends.
func startWorker(t *testing.T, bin string, srv *temporaltest.Server, store, identity string, extra ...string) *worker {
	t.Helper()
	args := append([]string{"worker", "--temporal", srv.HostPort(), "--store", store, "--identity", identity, "--log-format", "json", "--work-dir", t.TempDir()}, extra...)
	cmd := exec.Command(bin, args...)
	w := &worker{cmd: cmd, out: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = w.out, w.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
		if t.Failed() {
			t.Logf("worker %s:\n%s", identity, tail(w.out.String(), 40))
		}
	})
	return w
}

func (w *worker) kill() {
	w.cmd.Process.Kill()
	w.cmd.Wait()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// runManifest reads a run directory's manifest.
func runManifest(t *testing.T, dir string) *pipeline.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := pipeline.ReadManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sameRuns checks that two runs have the same metrics in every stage and the same files in
// the given stage subdirectories, bit for bit.
func sameRuns(t *testing.T, got, want string, dirs ...string) {
	t.Helper()
	mg, mw := runManifest(t, got), runManifest(t, want)
	if mg.Status != pipeline.StatusSucceeded || mw.Status != pipeline.StatusSucceeded {
		t.Fatalf("statuses %s (%s) and %s (%s)", mg.Status, mg.Error, mw.Status, mw.Error)
	}
	for _, n := range mw.StageOrder {
		if !reflect.DeepEqual(mg.Stages[n].Metrics, mw.Stages[n].Metrics) {
			t.Errorf("stage %s: metrics differ:\ntemporal %v\nlocal    %v", n, mg.Stages[n].Metrics, mw.Stages[n].Metrics)
		}
	}
	for _, d := range dirs {
		files := 0
		filepath.WalkDir(filepath.Join(want, d), func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() == "bundle.json" { // bundle.json names its run
				return err
			}
			rel, _ := filepath.Rel(want, path)
			a, _ := os.ReadFile(path)
			b, err := os.ReadFile(filepath.Join(got, rel))
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("%s differs between the Temporal and the local run (%v)", rel, err)
			}
			files++
			return nil
		})
		if files == 0 {
			t.Errorf("no files in %s of the local run", d)
		}
	}
}

// TestTemporalRunIsTheLocalRun runs pipelines/digits-ensemble.toml on three workers through a
// real Temporal server: the same metrics, bundle, member histories and predictions as a local
// run, bit for bit; the members spread over the workers; the manifest names the workflow; no
// payload is over 64 KB; and a second run reads every stage back from the store.
func TestTemporalRunIsTheLocalRun(t *testing.T) {
	bin := pipeBinary(t)
	srv := temporaltest.Start(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	var ws []*worker
	for i := range 3 {
		ws = append(ws, startWorker(t, bin, srv, store, fmt.Sprintf("w%d", i+1)))
	}
	file := filepath.Join("..", "pipelines", "digits-ensemble.toml")
	local := filepath.Join(dir, "local")
	if out, err := exec.Command(bin, "run", file, "--out", local, "--store", filepath.Join(dir, "local-store"), "--no-progress", "--no-report").CombinedOutput(); err != nil {
		t.Fatalf("local run: %v\n%s", err, out)
	}
	remote := filepath.Join(dir, "remote")
	out, err := exec.Command(bin, "run", file, "--engine", "temporal", "--temporal", srv.HostPort(), "--store", store, "--out", remote, "--no-progress").CombinedOutput()
	if err != nil {
		t.Fatalf("temporal run: %v\n%s", err, out)
	}
	sameRuns(t, remote, local, "stages/members/bundle", "stages/members/members", "stages/eval")
	m := runManifest(t, remote)
	if m.Remote == nil || m.Remote.Engine != "temporal" || !strings.HasPrefix(m.Remote.WorkflowID, "pipe-digits-ensemble-") {
		t.Fatalf("manifest remote: %+v", m.Remote)
	}
	if m.Remote.MaxPayloadBytes <= 0 || m.Remote.MaxPayloadBytes > maxPayload {
		t.Errorf("largest payload %d bytes, want (0, %d]", m.Remote.MaxPayloadBytes, maxPayload)
	}
	t.Logf("largest payload: %d bytes", m.Remote.MaxPayloadBytes)
	workers := map[string]bool{}
	for _, p := range m.Stages["members"].Remote.Parts {
		workers[p.Worker] = true
	}
	if len(m.Stages["members"].Remote.Parts) != 8 || len(workers) < 2 {
		t.Errorf("members: %d parts on workers %v; want 8 parts spread over the workers", len(m.Stages["members"].Remote.Parts), workers)
	}
	for _, n := range m.StageOrder {
		if st := m.Stages[n]; st.Cached || st.Remote == nil || st.Remote.Worker == "" {
			t.Errorf("stage %s: cached %v, remote %+v: want it run by a worker", n, st.Cached, st.Remote)
		}
	}
	// 8 members and the stage's own activity on 3 workers: a worker ran several of them, and
	// all but its first took the tables of scale from its table cache.
	// and the dense copies of its train and val tables, which the first member built.
	var hits, dense int64
	for _, w := range ws {
		hits += cacheCount(t, w.out.String(), "table_cache_hits")
		dense += cacheCount(t, w.out.String(), "dense_cache_hits")
	}
	if hits == 0 {
		t.Errorf("no activity took a table from its worker's table cache")
	}
	if dense == 0 {
		t.Errorf("no member took a dense copy from its worker's table cache")
	}
	t.Logf("table cache hits: %d, dense copies shared: %d", hits, dense)
	if _, err := os.Stat(filepath.Join(remote, "report.html")); err != nil {
		t.Errorf("no report: %v", err)
	}

	again := filepath.Join(dir, "again")
	if out, err := exec.Command(bin, "run", file, "--engine", "temporal", "--temporal", srv.HostPort(), "--store", store, "--out", again, "--no-progress", "--no-report").CombinedOutput(); err != nil {
		t.Fatalf("second temporal run: %v\n%s", err, out)
	}
	for n, st := range runManifest(t, again).Stages {
		if !st.Cached {
			t.Errorf("second run: stage %s ran again instead of being read back from the store", n)
		}
	}
}

// cacheCount returns the largest value of a table cache counter (table_cache_hits,
// dense_cache_hits) in a worker's JSON log.
func cacheCount(t *testing.T, log, field string) int64 {
	t.Helper()
	var n int64
	for _, line := range strings.Split(log, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			if v, ok := rec[field].(float64); ok {
				n = max(n, int64(v))
			}
		}
	}
	return n
}

// killPipeline trains two members long enough to be killed in the middle (no early stopping).
const killPipeline = `
[pipeline]
name = "kill-members"
seed = 3
workers = 1
[pipeline.temporal]
heartbeat_timeout = "3s"
retry_interval = "200ms"
[stages.load]
kind = "dataset"
name = "digits"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
[stages.members]
kind = "ensemble"
train = "scale.train"
val = "scale.val"
members = 2
bootstrap = true
member = { layers = [ { dense = 256 }, { dense = 256 } ], epochs = %d, early_stopping = false }
[stages.eval]
kind = "evaluate"
models = ["members.ensemble"]
tables = ["scale.test"]
`

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// checkpointsIn lists the member checkpoints in a file store.
func checkpointsIn(store string) []string {
	var out []string
	filepath.WalkDir(filepath.Join(store, "checkpoints"), func(path string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasSuffix(e.Name(), ".ckpt") {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// killSetup writes killPipeline with the given epochs into a new directory and, when local
// is set, runs it locally as the reference; it returns the directory, the Temporal store
// path, the pipeline file and the local run directory.
func killSetup(t *testing.T, bin, name string, epochs int, local bool) (dir, store, file, localDir string) {
	t.Helper()
	dir = t.TempDir()
	store, file = filepath.Join(dir, "store"), filepath.Join(dir, name+".toml")
	if err := os.WriteFile(file, fmt.Appendf(nil, killPipeline, epochs), 0o644); err != nil {
		t.Fatal(err)
	}
	if local {
		localDir = filepath.Join(dir, "local")
		if out, err := exec.Command(bin, "run", file, "--out", localDir, "--store", filepath.Join(dir, "local-store"), "--no-progress", "--no-report").CombinedOutput(); err != nil {
			t.Fatalf("local run: %v\n%s", err, out)
		}
	}
	return dir, store, file, localDir
}

// startClient starts `pipe run FILE --engine temporal` into remote and waits until the store
// holds at least n member checkpoints (the members train); it kills the client and fails the
// test when they do not come.
func startClient(t *testing.T, bin string, srv *temporaltest.Server, file, store, remote string, n int) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	client := exec.Command(bin, "run", file, "--engine", "temporal", "--temporal", srv.HostPort(), "--store", store, "--out", remote, "--no-progress", "--no-report")
	cout := &syncBuffer{}
	client.Stdout, client.Stderr = cout, cout
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(2*time.Minute, func() bool { return len(checkpointsIn(store)) >= n }) {
		client.Process.Kill()
		client.Wait()
		t.Fatalf("fewer than %d member checkpoints in the store; client:\n%s", n, cout.String())
	}
	return client, cout
}

// TestTemporalWorkerKilled kills the only worker with SIGKILL while both members train, after
// their first checkpoints; two new workers take the members over from their checkpoints (not
// from epoch 0), and the results are those of a local run, bit for bit.
func TestTemporalWorkerKilled(t *testing.T) {
	bin := pipeBinary(t)
	srv := temporaltest.Start(t)
	dir, store, file, local := killSetup(t, bin, "kill", 30, true)
	first := startWorker(t, bin, srv, store, "doomed", "--workers", "2")
	remote := filepath.Join(dir, "remote")
	client, cout := startClient(t, bin, srv, file, store, remote, 2)
	first.kill()
	startWorker(t, bin, srv, store, "heir1")
	startWorker(t, bin, srv, store, "heir2")
	if err := client.Wait(); err != nil {
		t.Fatalf("temporal run: %v\n%s", err, cout.String())
	}
	sameRuns(t, remote, local, "stages/members/bundle", "stages/members/members", "stages/eval")
	m := runManifest(t, remote)
	for _, p := range m.Stages["members"].Remote.Parts {
		if p.Worker == "doomed" || p.Attempts < 2 {
			t.Errorf("member %d: finished by %s in %d attempts; want a second attempt on another worker", p.Part, p.Worker, p.Attempts)
		}
		// The checkpoint's name comes from the dead attempt's last heartbeat, which the SDK
		// may still hold back (it throttles heartbeats) when the worker dies right after the
		// checkpoint; the epoch comes from the store's checkpoint itself and must not be 0.
		want := fmt.Sprintf("member_%02d.ckpt (epoch ", p.Part)
		if len(p.Resumed) == 0 || !(strings.HasPrefix(p.Resumed[0], want) || strings.HasPrefix(p.Resumed[0], "its checkpoint in the store (epoch ")) || strings.Contains(p.Resumed[0], "(epoch 0)") {
			t.Errorf("member %d: resumed %q; want it to continue from its checkpoint, not from epoch 0", p.Part, p.Resumed)
		}
	}
	t.Logf("members: %+v", m.Stages["members"].Remote.Parts)
}

// TestTemporalServerRestart kills the Temporal server while the members train and starts it
// again on its database: the run continues and ends as a local run does.
func TestTemporalServerRestart(t *testing.T) {
	bin := pipeBinary(t)
	srv := temporaltest.Start(t)
	dir, store, file, local := killSetup(t, bin, "restart", 20, true)
	startWorker(t, bin, srv, store, "w1", "--workers", "2")
	remote := filepath.Join(dir, "remote")
	client, cout := startClient(t, bin, srv, file, store, remote, 1)
	srv.Kill()
	time.Sleep(time.Second)
	if err := srv.Restart(); err != nil {
		client.Process.Kill()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- client.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("temporal run across a server restart: %v\n%s", err, cout.String())
		}
	case <-time.After(4 * time.Minute):
		client.Process.Kill()
		t.Fatalf("the run did not end after the server restarted:\n%s", cout.String())
	}
	sameRuns(t, remote, local, "stages/members/bundle", "stages/eval")
}

// TestTemporalCancel interrupts the client (SIGINT) while the members train: the workflow and
// its activities are canceled, the run directory says canceled, and pipe exits 130.
func TestTemporalCancel(t *testing.T) {
	bin := pipeBinary(t)
	srv := temporaltest.Start(t)
	dir, store, file, _ := killSetup(t, bin, "cancel", 400, false)
	w := startWorker(t, bin, srv, store, "w1", "--workers", "2")
	remote := filepath.Join(dir, "remote")
	client, cout := startClient(t, bin, srv, file, store, remote, 1)
	client.Process.Signal(syscall.SIGINT)
	err := client.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != pipeline.ExitCanceled {
		t.Fatalf("canceled run: %v, want exit %d\n%s", err, pipeline.ExitCanceled, cout.String())
	}
	m := runManifest(t, remote)
	if m.Status != pipeline.StatusCanceled || m.Stages["members"].Status != pipeline.StatusCanceled || m.Stages["eval"].Status == pipeline.StatusSucceeded {
		t.Fatalf("canceled run: status %s, members %s, eval %s", m.Status, m.Stages["members"].Status, m.Stages["eval"].Status)
	}
	// The worker saw the cancellation: its activities ended, it trains nothing more.
	if !waitFor(30*time.Second, func() bool { return strings.Count(w.out.String(), `"message":"canceled"`) >= 2 }) {
		t.Errorf("the worker's member activities were not canceled:\n%s", tail(w.out.String(), 20))
	}
	c := srv.Dial(t)
	desc, err := c.DescribeWorkflow(context.Background(), m.Remote.WorkflowID, m.Remote.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if s := desc.RawResponse.GetWorkflowExecutionInfo().GetStatus().String(); s != "Canceled" {
		t.Errorf("workflow status %s, want Canceled", s)
	}
}

// TestClusterDemo runs `./run.sh cluster-demo`, the README's single-machine recipe: a dev
// server, three workers and pipelines/digits-ensemble.toml; the run succeeds, spread over the
// demo's workers.
func TestClusterDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds pipe and runs a cluster")
	}
	if os.Getenv(temporaltest.EnvCLI) == "" {
		t.Skipf("$%s is unset: ./run.sh test builds the Temporal CLI and sets it", temporaltest.EnvCLI)
	}
	cmd := exec.Command("./run.sh", "cluster-demo", "--no-progress", "--no-report")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cluster-demo: %v\n%s", err, tail(string(out), 30))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir, ok := strings.CutPrefix(lines[len(lines)-1], "run: ")
	if !ok {
		t.Fatalf("no run directory in the output:\n%s", tail(string(out), 10))
	}
	defer os.RemoveAll(filepath.Dir(filepath.Dir(filepath.Dir(dir)))) // the demo's directory
	m := runManifest(t, dir)
	if m.Status != pipeline.StatusSucceeded || m.Remote == nil {
		t.Fatalf("demo run: status %s, remote %+v", m.Status, m.Remote)
	}
	workers := map[string]bool{}
	for _, p := range m.Stages["members"].Remote.Parts {
		if !strings.HasPrefix(p.Worker, "worker-") {
			t.Errorf("member %d ran on %q, not a demo worker", p.Part, p.Worker)
		}
		workers[p.Worker] = true
	}
	if len(workers) < 2 {
		t.Errorf("the members ran on %v: want them spread over the demo's three workers", workers)
	}
}

// TestTemporalRefusesAMemoryStore: a store in the process's memory cannot be shared with
// workers; the client and the worker refuse it before they connect (exit 2).
func TestTemporalRefusesAMemoryStore(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main([]string{"run", filepath.Join("..", "pipelines", "digits-mlp.toml"), "--engine", "temporal", "--temporal", "127.0.0.1:1",
		"--store", "mem://", "--out", filepath.Join(t.TempDir(), "r")}, &out, &errb)
	if code != pipeline.ExitConfig || !strings.Contains(errb.String(), "no worker sees") {
		t.Errorf("run --store mem://: exit %d, %s", code, errb.String())
	}
	errb.Reset()
	code = Main([]string{"worker", "--temporal", "127.0.0.1:1", "--store", "mem://"}, &out, &errb)
	if code != pipeline.ExitConfig || !strings.Contains(errb.String(), "no client or other worker sees") {
		t.Errorf("worker --store mem://: exit %d, %s", code, errb.String())
	}
}

// searchPipeline is a small search on digits (ASHA, two rounds) whose trials train long
// enough for a worker to be killed in the middle of the search.
const searchPipeline = `
[pipeline]
name = "search-%s"
seed = 7
workers = 1
[pipeline.temporal]
heartbeat_timeout = "3s"
retry_interval = "200ms"
[stages.load]
kind = "dataset"
name = "digits"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
[stages.tune]
kind = "search"
train = "scale.train"
val = "scale.val"
base = { layers = [ { dense = %d }, { dense = %d } ], epochs = %d, early_stopping = false }
space = { "optimizer.lr" = { log_uniform = [1e-3, 3e-2] }, "layers.*.dropout" = { uniform = [0.0, 0.4] } }
trials = 6
rounds = 2
prune = { method = "asha", min_epochs = 1, reduction = 2 }
[stages.eval]
kind = "evaluate"
models = ["tune.model"]
tables = ["scale.test"]
`

// searchSetup writes searchPipeline (units per layer, epochs) into a new directory and runs
// it locally as the reference; it returns the directory, the Temporal store, the pipeline
// file and the local run directory.
func searchSetup(t *testing.T, bin, name string, units, epochs int) (dir, store, file, local string) {
	t.Helper()
	return searchSetupOf(t, bin, name, fmt.Sprintf(searchPipeline, name, units, units, epochs))
}

// searchSetupOf writes the pipeline src into a new directory as name.toml and runs it locally
// as the reference; it returns the directory, the Temporal store, the pipeline file and the
// local run directory.
func searchSetupOf(t *testing.T, bin, name, src string) (dir, store, file, local string) {
	t.Helper()
	dir = t.TempDir()
	store, file, local = filepath.Join(dir, "store"), filepath.Join(dir, name+".toml"), filepath.Join(dir, "local")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "run", file, "--out", local, "--store", filepath.Join(dir, "local-store"), "--no-progress", "--no-report").CombinedOutput(); err != nil {
		t.Fatalf("local run: %v\n%s", err, out)
	}
	return dir, store, file, local
}

// trialsWithoutTimes reads a run's tune/trials.csv without its time columns.
func trialsWithoutTimes(t *testing.T, run string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(run, "stages", "tune", "trials.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("trials.csv: %d rows, %v", len(rows), err)
	}
	var out [][]string
	for _, r := range rows {
		var keep []string
		for j, cell := range r {
			if h := rows[0][j]; h != report.TrialsColSeconds && h != report.TrialsColStart {
				keep = append(keep, cell)
			}
		}
		out = append(out, keep)
	}
	return out
}

// sameSearch checks a search run on Temporal against the local one: metrics, the model's
// bundle, the evaluation and the trials (times aside), bit for bit; the stage trained no
// trial itself (its parts did); no payload over 64 KB. It returns the search's parts.
func sameSearch(t *testing.T, remote, local string) []pipeline.RemotePart {
	t.Helper()
	sameRuns(t, remote, local, "stages/tune/bundle", "stages/eval")
	if a, b := trialsWithoutTimes(t, remote), trialsWithoutTimes(t, local); !reflect.DeepEqual(a, b) {
		t.Errorf("trials on Temporal:\n%v\nlocal:\n%v", a, b)
	}
	m := runManifest(t, remote)
	if m.Remote == nil || m.Remote.MaxPayloadBytes <= 0 || m.Remote.MaxPayloadBytes > maxPayload {
		t.Errorf("remote %+v: want the largest payload in (0, %d]", m.Remote, maxPayload)
	} else {
		t.Logf("largest payload: %d bytes", m.Remote.MaxPayloadBytes)
	}
	st := m.Stages["tune"]
	if n, ok := st.Info["trials_trained"].(float64); !ok || n != 0 {
		t.Errorf("the search stage trained %v trials itself: want all of them trained by their parts", st.Info["trials_trained"])
	}
	if st.Remote == nil || len(st.Remote.Parts) != 6 {
		t.Fatalf("tune's remote record %+v: want 6 trials as parts", st.Remote)
	}
	return st.Remote.Parts
}

// TestTemporalSearchIsTheLocalSearch runs a search on three workers: its trials spread over
// them (some in several segments, paused at a rung while lower trials caught up), and the
// trials, the chosen model and the evaluation are those of a local run, bit for bit.
func TestTemporalSearchIsTheLocalSearch(t *testing.T) {
	bin := pipeBinary(t)
	srv := temporaltest.Start(t)
	dir, store, file, local := searchSetup(t, bin, "spread", 32, 6)
	for i := range 3 {
		startWorker(t, bin, srv, store, fmt.Sprintf("w%d", i+1))
	}
	remote := filepath.Join(dir, "remote")
	if out, err := exec.Command(bin, "run", file, "--engine", "temporal", "--temporal", srv.HostPort(), "--store", store, "--out", remote, "--no-progress", "--no-report").CombinedOutput(); err != nil {
		t.Fatalf("temporal run: %v\n%s", err, out)
	}
	parts := sameSearch(t, remote, local)
	workers := map[string]bool{}
	for _, p := range parts {
		for _, w := range p.Workers {
			workers[w] = true
		}
		if p.Segments < 1 || len(p.Workers) != p.Segments {
			t.Errorf("trial %d: %d segments on %v", p.Part, p.Segments, p.Workers)
		}
	}
	if len(workers) < 2 {
		t.Errorf("the trials ran on %v: want them spread over the workers", workers)
	}
	t.Logf("trials: %+v", parts)
}

// searchEnsemblePipeline is a small search of ensembles (model = "ensemble", two rounds: the
// second round's trials wait for the first round's region).
const searchEnsemblePipeline = `
[pipeline]
name = "search-ensemble"
seed = 7
workers = 1
[stages.load]
kind = "dataset"
name = "digits"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
[stages.tune]
kind = "search"
model = "ensemble"
train = "scale.train"
val = "scale.val"
objective = "val_accuracy"
base = { members = 2, member = { layers = [ { dense = 32 } ], epochs = 3 } }
space = { "member.optimizer.lr" = { log_uniform = [1e-3, 3e-2] }, bootstrap = { choice = [true, false] } }
trials = 6
rounds = 2
[stages.eval]
kind = "evaluate"
models = ["tune.model"]
tables = ["scale.test"]
`

// TestTemporalEnsembleSearchIsTheLocalSearch runs a search of ensembles on three workers: its
// trials are parts spread over them (one segment each: ensembles are not pruned), and the
// trials, the chosen ensemble and the evaluation are those of a local run, bit for bit.
func TestTemporalEnsembleSearchIsTheLocalSearch(t *testing.T) {
	bin := pipeBinary(t)
	srv := temporaltest.Start(t)
	dir, store, file, local := searchSetupOf(t, bin, "spread-ensemble", searchEnsemblePipeline)
	for i := range 3 {
		startWorker(t, bin, srv, store, fmt.Sprintf("w%d", i+1))
	}
	remote := filepath.Join(dir, "remote")
	if out, err := exec.Command(bin, "run", file, "--engine", "temporal", "--temporal", srv.HostPort(), "--store", store, "--out", remote, "--no-progress", "--no-report").CombinedOutput(); err != nil {
		t.Fatalf("temporal run: %v\n%s", err, out)
	}
	parts := sameSearch(t, remote, local)
	workers := map[string]bool{}
	for _, p := range parts {
		workers[p.Worker] = true
		if p.Segments != 1 || len(p.Workers) != 1 {
			t.Errorf("trial %d: %d segments on %v: an ensemble's trial runs in one", p.Part, p.Segments, p.Workers)
		}
	}
	if len(workers) < 2 {
		t.Errorf("the trials ran on %v: want them spread over the workers", workers)
	}
	t.Logf("trials: %+v", parts)
}

// trialIndex is the index of the trial whose record is called name (trial_NNN).
func trialIndex(name string) int {
	var i int
	fmt.Sscanf(name, "trial_%d", &i)
	return i
}

// trialRecordsIn returns the finished trials' records in a file store, by file name.
func trialRecordsIn(t *testing.T, store string) map[string][]byte {
	out := map[string][]byte{}
	filepath.WalkDir(filepath.Join(store, "checkpoints"), func(path string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() && len(e.Name()) == len("trial_000") && strings.HasPrefix(e.Name(), "trial_") {
			if b, err := os.ReadFile(path); err == nil {
				out[e.Name()] = b
			}
		}
		return nil
	})
	return out
}

// TestTemporalSearchWorkerKilled kills the only worker with SIGKILL once some trials have
// finished and others train; two new workers finish the search. The trials finished before
// the kill are not trained again (their records are untouched, and no new worker trains
// them), and the results are those of a local run, bit for bit.
func TestTemporalSearchWorkerKilled(t *testing.T) {
	bin := pipeBinary(t)
	srv := temporaltest.Start(t)
	dir, store, file, local := searchSetup(t, bin, "kill", 256, 12)
	doomed := startWorker(t, bin, srv, store, "doomed", "--workers", "2")
	remote := filepath.Join(dir, "remote")
	client := exec.Command(bin, "run", file, "--engine", "temporal", "--temporal", srv.HostPort(), "--store", store, "--out", remote, "--no-progress", "--no-report")
	cout := &syncBuffer{}
	client.Stdout, client.Stderr = cout, cout
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(3*time.Minute, func() bool { return len(trialRecordsIn(t, store)) >= 1 }) {
		client.Process.Kill()
		client.Wait()
		t.Fatalf("no trial finished; client:\n%s", cout.String())
	}
	doomed.kill()
	before := trialRecordsIn(t, store)
	if len(before) >= 6 {
		t.Fatalf("every trial finished before the kill (%d): the test kills nothing in the middle", len(before))
	}
	heir1 := startWorker(t, bin, srv, store, "heir1")
	heir2 := startWorker(t, bin, srv, store, "heir2")
	// Until the run ends (the stage then drops its checkpoints), the records of the trials
	// finished before the kill must stay as they were.
	ended := make(chan error, 1)
	go func() { ended <- client.Wait() }()
	var rewritten []string
	for waiting := true; waiting; {
		select {
		case err := <-ended:
			if err != nil {
				t.Fatalf("temporal run: %v\n%s", err, cout.String())
			}
			waiting = false
		case <-time.After(20 * time.Millisecond):
			for name, b := range trialRecordsIn(t, store) {
				if old, ok := before[name]; ok && !bytes.Equal(old, b) && !slices.Contains(rewritten, name) {
					rewritten = append(rewritten, name)
				}
			}
		}
	}
	if len(rewritten) > 0 {
		t.Errorf("%v, finished before the kill, were written again", rewritten)
	}
	parts := sameSearch(t, remote, local)
	trained := 0
	for _, w := range []*worker{heir1, heir2} {
		for _, line := range strings.Split(w.out.String(), "\n") {
			if !strings.Contains(line, "trial trains") {
				continue
			}
			trained++
			for name := range before {
				if strings.Contains(line, fmt.Sprintf(`"trial":%d,`, trialIndex(name))) {
					t.Errorf("%s finished before the kill, yet a new worker trained it: %s", name, line)
				}
			}
		}
	}
	if trained == 0 {
		t.Error(`the new workers' logs say no "trial trains": the check above sees nothing`)
	}
	// (An activity whose trial had finished when its worker died is retried on an heir,
	// which finds the record and trains nothing: the records above are the check.)
	heirs := 0
	for _, p := range parts {
		for _, w := range p.Workers {
			if w != "doomed" {
				heirs++
			}
		}
	}
	if heirs == 0 {
		t.Error("no segment ran on the new workers: the kill interrupted nothing")
	}
	t.Logf("finished before the kill: %d; trials: %+v", len(before), parts)
}
