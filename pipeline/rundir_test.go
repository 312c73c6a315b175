package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const tinySrc = "[stages.load]\nkind = \"gen\"\nrows = 3\n"

// dirEntries lists a directory's names (nil when it is not a readable directory).
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestRunRefusesUnusableDirs: a run directory that is not new or empty is refused before
// anything runs, with a RefusedError, and nothing is written into it.
func TestRunRefusesUnusableDirs(t *testing.T) {
	p := parse(t, tinySrc)
	base := t.TempDir()

	notRun := filepath.Join(base, "notes")
	os.Mkdir(notRun, 0o755)
	os.WriteFile(filepath.Join(notRun, "thesis.tex"), []byte("precious"), 0o644)

	done := filepath.Join(base, "done")
	if _, err := Run(context.Background(), p, RunOptions{Dir: done}); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(base, "file")
	os.WriteFile(file, []byte("x"), 0o644)

	toEtc := filepath.Join(base, "to-etc")
	os.Symlink("/etc", toEtc)
	dangling := filepath.Join(base, "dangling")
	os.Symlink(filepath.Join(base, "nowhere"), dangling)

	home := filepath.Join(base, "home")
	os.Mkdir(home, 0o755)
	t.Setenv("HOME", home)

	for _, c := range []struct {
		name, dir, want string
	}{
		{"not a run", notRun, `is not empty (1 entries: "thesis.tex") and holds no pipe run`},
		{"already a run", done, "already holds a run"},
		{"a file", file, "is a file, not a directory"},
		{"the root", "/", "is a system directory"},
		{"etc", "/etc", "/etc is a system directory"},
		{"inside etc", "/etc/pipe-test-run-never-created", "/etc is a system directory"},
		{"usr", "/usr", "/usr is a system directory"},
		{"home itself", home, "is your home directory"},
		{"home, relative", home + "/../home", "is your home directory"},
		{"a link to /etc", toEtc, "resolves to /etc"},
		{"a dangling link", dangling, "is a symbolic link to"},
		{"a new directory in /", "/pipe-test-run-never-created/run", "would create /pipe-test-run-never-created at the root"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := dirEntries(t, c.dir)
			res, err := Run(context.Background(), p, RunOptions{Dir: c.dir})
			var re *RefusedError
			if res != nil || !errors.As(err, &re) || !IsRefused(err) {
				t.Fatalf("want a RefusedError and no result, got %v, %v", res, err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.dir) {
				t.Errorf("error %q lacks %q or the directory", err, c.want)
			}
			if after := dirEntries(t, c.dir); !slices.Equal(before, after) {
				t.Errorf("the refused run changed %s: %v -> %v", c.dir, before, after)
			}
		})
	}
	for _, d := range []string{"/etc/pipe-test-run-never-created", "/pipe-test-run-never-created"} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("a run created %s", d)
		}
	}
	// Nor does a runs directory at the root: runs/<pipeline> would be created there.
	if _, err := Run(context.Background(), p, RunOptions{RunsDir: "/"}); !IsRefused(err) {
		t.Errorf("RunsDir /: %v", err)
	}
	if _, err := os.Stat("/" + p.Name); err == nil {
		t.Errorf("a run created /%s", p.Name)
	}
	if b, _ := os.ReadFile(filepath.Join(notRun, "thesis.tex")); string(b) != "precious" {
		t.Error("the refused run touched a file of the directory")
	}
}

// TestRunAcceptsEmptyOrNewDirs: an empty directory, a new one (with missing parents) and a
// link to an empty directory are fine.
func TestRunAcceptsEmptyOrNewDirs(t *testing.T) {
	p := parse(t, tinySrc)
	base := t.TempDir()
	empty := filepath.Join(base, "empty")
	os.Mkdir(empty, 0o755)
	link := filepath.Join(base, "link")
	target := filepath.Join(base, "target")
	os.Mkdir(target, 0o755)
	os.Symlink(target, link)
	for _, dir := range []string{empty, filepath.Join(base, "a", "b", "new"), link} {
		if _, err := Run(context.Background(), p, RunOptions{Dir: dir}); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
		if m := readManifest(t, dir); m.Status != StatusSucceeded {
			t.Errorf("%s: %s", dir, m.Status)
		}
	}
}

// TestRunRefusesLockedDir: a directory another run holds is refused at once, naming the
// holder's pid and host.
func TestRunRefusesLockedDir(t *testing.T) {
	p := parse(t, tinySrc)
	dir := t.TempDir()
	other, err := tryLock(dir) // another run's lock (flock conflicts between open files)
	if err != nil {
		t.Fatal(err)
	}
	defer other.release()
	start := time.Now()
	_, err = Run(context.Background(), p, RunOptions{Dir: dir})
	var re *RefusedError
	if !errors.As(err, &re) || re.Holder == nil {
		t.Fatalf("want a RefusedError naming the holder, got %v", err)
	}
	host, _ := os.Hostname()
	if re.Holder.PID != os.Getpid() || re.Holder.Host != host {
		t.Errorf("holder %+v, want pid %d host %s", re.Holder, os.Getpid(), host)
	}
	if want := fmt.Sprintf("pid %d on host %s", os.Getpid(), host); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %q", err, want)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the refusal took %v: it must not wait for the lock", d)
	}
	if names := dirEntries(t, dir); !slices.Equal(names, []string{LockFile}) {
		t.Errorf("the refused run wrote into the directory: %v", names)
	}
}

// TestRunRefusesStartingRunByItsLock: a directory another run has just taken (its lock held,
// its log written, its manifest not yet) is refused as that run's, naming it, not as a
// directory of files that hold no run.
func TestRunRefusesStartingRunByItsLock(t *testing.T) {
	p := parse(t, tinySrc)
	dir := t.TempDir()
	other, err := tryLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.release()
	if err := os.WriteFile(filepath.Join(dir, "log.jsonl"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), p, RunOptions{Dir: dir})
	var re *RefusedError
	if !errors.As(err, &re) || re.Holder == nil || re.Holder.PID != os.Getpid() || !strings.Contains(re.Reason, "another run is using it") {
		t.Fatalf("want a RefusedError naming the run that holds the directory, got %v", err)
	}
	if names := dirEntries(t, dir); !slices.Equal(names, []string{LockFile, "log.jsonl"}) {
		t.Errorf("the refused run wrote into the directory: %v", names)
	}
}

// TestConcurrentRunsIntoOneDir: of two runs started together into one directory, exactly one
// runs; the other is refused.
func TestConcurrentRunsIntoOneDir(t *testing.T) {
	p := parse(t, "[stages.load]\nkind = \"gen\"\nrows = 20\nbatch = 1\nslow_ms = 10\n")
	dir := filepath.Join(t.TempDir(), "run")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Run(context.Background(), p, RunOptions{Dir: dir})
		}()
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case IsRefused(err):
			refused++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || refused != len(errs)-1 {
		t.Errorf("%d runs ran and %d were refused; want 1 and %d", ok, refused, len(errs)-1)
	}
	if m := readManifest(t, dir); m.Status != StatusSucceeded || m.Stages["load"].RowsOut != 20 {
		t.Errorf("manifest: %s, %d rows", m.Status, m.Stages["load"].RowsOut)
	}
}

// TestConcurrentRunsGetTheirOwnDirs: runs of one pipeline under one runs directory never share
// a run directory.
func TestConcurrentRunsGetTheirOwnDirs(t *testing.T) {
	p := parse(t, "[pipeline]\nname = \"same\"\n"+tinySrc)
	root := t.TempDir()
	var wg sync.WaitGroup
	dirs := make([]string, 6)
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := Run(context.Background(), p, RunOptions{RunsDir: root})
			if err != nil {
				t.Error(err)
				return
			}
			dirs[i] = res.Dir
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, d := range dirs {
		if seen[d] {
			t.Errorf("two runs shared %s", d)
		}
		seen[d] = true
		if filepath.Dir(d) != filepath.Join(root, "same") {
			t.Errorf("run dir %s not under %s", d, filepath.Join(root, "same"))
		}
	}
}

// TestReadRunTellsCrashedFromRunning: a "running" manifest is crashed when its run's lock is
// free (same host) or its heartbeat is stale (another host).
func TestReadRunTellsCrashedFromRunning(t *testing.T) {
	host, _ := os.Hostname()
	old := time.Now().Add(-time.Hour).UTC()
	fresh := time.Now().UTC()
	for _, c := range []struct {
		name   string
		m      Manifest
		locked bool
		noLock bool
		want   string
	}{
		{"finished", Manifest{Status: StatusSucceeded, Host: host, PID: os.Getpid()}, false, false, StatusSucceeded},
		{"lock held", Manifest{Status: StatusRunning, Host: host, PID: os.Getpid(), HeartbeatAt: &old}, true, false, StatusRunning},
		{"lock free", Manifest{Status: StatusRunning, Host: host, PID: os.Getpid(), HeartbeatAt: &fresh}, false, false, StatusCrashed},
		{"no lock file, pid gone", Manifest{Status: StatusRunning, Host: host, PID: deadPID(t), HeartbeatAt: &fresh}, false, true, StatusCrashed},
		{"no lock file, pid alive", Manifest{Status: StatusRunning, Host: host, PID: os.Getpid(), HeartbeatAt: &fresh}, false, true, StatusRunning},
		{"other host, stale heartbeat", Manifest{Status: StatusRunning, Host: "elsewhere", PID: 1, HeartbeatAt: &old, HeartbeatSeconds: 10}, false, false, StatusCrashed},
		{"other host, fresh heartbeat", Manifest{Status: StatusRunning, Host: "elsewhere", PID: 1, HeartbeatAt: &fresh, HeartbeatSeconds: 10}, false, false, StatusRunning},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.m.Stages = map[string]*StageManifest{}
			b, _ := json.Marshal(c.m)
			os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644)
			if !c.noLock {
				l, err := tryLock(dir)
				if err != nil {
					t.Fatal(err)
				}
				if c.locked {
					defer l.release()
				} else {
					l.release()
				}
			}
			m, status, err := ReadRun(dir)
			if err != nil || m == nil {
				t.Fatal(err)
			}
			if status != c.want {
				t.Errorf("status %s, want %s", status, c.want)
			}
		})
	}
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Skip("cannot start /bin/true:", err)
	}
	p.Wait()
	return p.Pid
}

// TestHeartbeat: a running run rewrites heartbeat_at while no stage event happens, ReadRun
// says running meanwhile, and the manifest names the process.
func TestHeartbeat(t *testing.T) {
	reg := testRegistry()
	release := make(chan struct{})
	reg.MustRegister(KindSpec{Kind: "block", Shape: ShapeSink, Outputs: func(*StageConfig) []Port { return nil },
		New: func(c *StageConfig) (Stage, error) {
			return StageFunc(func(ctx context.Context, sc *StageContext) error {
				<-release
				return nil
			}), nil
		}})
	p, err := Parse([]byte("[stages.b]\nkind = \"block\"\n"), "t.toml", ".", reg, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	done := make(chan error)
	go func() {
		_, err := Run(context.Background(), p, RunOptions{Dir: dir, Heartbeat: 40 * time.Millisecond})
		done <- err
	}()
	var first time.Time
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, status, err := ReadRun(dir)
		if err == nil && m.Stages["b"].Status == StatusRunning {
			if status != StatusRunning {
				t.Errorf("ReadRun says %s while the run runs", status)
			}
			host, _ := os.Hostname()
			if m.PID != os.Getpid() || m.Host != host || m.HeartbeatSeconds != 0.04 {
				t.Errorf("pid %d host %q heartbeat_seconds %v", m.PID, m.Host, m.HeartbeatSeconds)
			}
			if first.IsZero() {
				first = *m.HeartbeatAt
			} else if m.HeartbeatAt.After(first) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m, status, _ := ReadRun(dir)
	if first.IsZero() || !m.HeartbeatAt.After(first) {
		t.Errorf("heartbeat_at did not advance while the stage ran (first %v)", first)
	}
	if status != StatusSucceeded {
		t.Errorf("after the run: %s", status)
	}
	if _, err := os.Stat(filepath.Join(dir, reserveFile)); err == nil {
		t.Error("the space reserve outlived the run")
	}
}

// failingWriter accepts limit bytes, then fails every write with ENOSPC.
type failingWriter struct {
	mu     sync.Mutex
	limit  int
	writes int
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if len(p) > w.limit {
		w.limit = 0
		return 0, &os.PathError{Op: "write", Path: "log.jsonl", Err: syscall.ENOSPC}
	}
	w.limit -= len(p)
	return len(p), nil
}

func (w *failingWriter) Close() error { return nil }

// TestFullDiskLog: when log.jsonl cannot be written any more, zerolog reports no error per
// line, the run says it once on its console and in the manifest, and still succeeds.
func TestFullDiskLog(t *testing.T) {
	var handled int
	prev := zerolog.ErrorHandler
	zerolog.ErrorHandler = func(error) { handled++ }
	defer func() { zerolog.ErrorHandler = prev }()

	fw := &failingWriter{limit: 300}
	var console syncBuf
	p := parse(t, dagSrc)
	dir := filepath.Join(t.TempDir(), "run")
	_, err := Run(context.Background(), p, RunOptions{Dir: dir, LogWriter: &console, LogLevel: zerolog.DebugLevel,
		openLog: func(string) (io.WriteCloser, error) { return fw, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if handled != 0 {
		t.Errorf("zerolog reported %d write errors", handled)
	}
	if fw.writes != 2 {
		t.Errorf("%d writes reached the failing file; want the one that failed after the first", fw.writes)
	}
	if n := strings.Count(console.String(), "log.jsonl could not be written"); n != 1 {
		t.Errorf("the console has %d reports of the failure, want 1:\n%s", n, console.String())
	}
	m := readManifest(t, dir)
	if m.Status != StatusSucceeded || len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], "no space left on device") {
		t.Errorf("manifest: %s, warnings %q", m.Status, m.Warnings)
	}
}

// TestFullDiskFinalManifest: when the disk fills up during the run, manifest writes fail (and
// are reported once), but the space set aside at the start still takes the final manifest.
func TestFullDiskFinalManifest(t *testing.T) {
	reg := testRegistry()
	var diskFull sync.Once
	full := make(chan struct{})
	reg.MustRegister(KindSpec{Kind: "fill", Shape: ShapeSink, Outputs: func(*StageConfig) []Port { return nil },
		New: func(c *StageConfig) (Stage, error) {
			return StageFunc(func(ctx context.Context, sc *StageContext) error {
				diskFull.Do(func() { close(full) })
				return nil
			}), nil
		}})
	p, err := Parse([]byte("[stages.a]\nkind = \"fill\"\n[stages.b]\nkind = \"fill\"\n"), "t.toml", ".", reg, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	// The fake disk: full once a stage has run, as long as the reserve takes space.
	write := func(path string, data []byte) error {
		select {
		case <-full:
			if _, err := os.Stat(filepath.Join(dir, reserveFile)); err == nil {
				return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
			}
		default:
		}
		return WriteFileAtomic(path, data)
	}
	var console syncBuf
	res, err := Run(context.Background(), p, RunOptions{Dir: dir, LogWriter: &console, writeFile: write})
	if err != nil {
		t.Fatal(err)
	}
	m := readManifest(t, dir)
	if m.Status != StatusSucceeded || res.Manifest.Status != StatusSucceeded {
		t.Errorf("final manifest on disk: %s", m.Status)
	}
	if n := strings.Count(console.String(), "write manifest.json"); n != 1 {
		t.Errorf("%d reports of the failed manifest writes, want 1:\n%s", n, console.String())
	}
}

// TestWorkersAboveCoresWarns: more workers than cores is accepted, with a warning in the log
// and the manifest.
func TestWorkersAboveCoresWarns(t *testing.T) {
	n := runtime.NumCPU() + 3
	p := parse(t, tinySrc, fmt.Sprintf("pipeline.workers=%d", n))
	dir := filepath.Join(t.TempDir(), "run")
	var console syncBuf
	if _, err := Run(context.Background(), p, RunOptions{Dir: dir, LogWriter: &console}); err != nil {
		t.Fatal(err)
	}
	m := readManifest(t, dir)
	want := fmt.Sprintf("workers = %d is more than the %d cores", n, runtime.NumCPU())
	if m.Workers != n || len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], want) {
		t.Errorf("workers %d, warnings %q", m.Workers, m.Warnings)
	}
	if !strings.Contains(console.String(), want) || !strings.Contains(console.String(), `"level":"warn"`) {
		t.Errorf("the log lacks the warning:\n%s", console.String())
	}
	p = parse(t, tinySrc, fmt.Sprintf("pipeline.workers=%d", runtime.NumCPU()))
	dir = filepath.Join(t.TempDir(), "run")
	if _, err := Run(context.Background(), p, RunOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if m := readManifest(t, dir); len(m.Warnings) != 0 {
		t.Errorf("warnings with workers = cores: %q", m.Warnings)
	}
}

// TestStageSecondsExcludeWaiting: a stage that waits for a slow producer's artifact reports
// its own time as seconds, and the wait as waited_seconds.
func TestStageSecondsExcludeWaiting(t *testing.T) {
	reg := testRegistry()
	const wait = 300 * time.Millisecond
	reg.MustRegister(KindSpec{Kind: "late", Shape: ShapeFit,
		Outputs: func(*StageConfig) []Port { return []Port{{Name: "total", Kind: PortArtifact}} },
		New: func(c *StageConfig) (Stage, error) {
			return StageFunc(func(ctx context.Context, sc *StageContext) error {
				time.Sleep(wait)
				return sc.SetArtifact("total", countArtifact{7})
			}), nil
		}})
	p, err := Parse([]byte("[stages.up]\nkind = \"late\"\n[stages.down]\nkind = \"report\"\nmodel = \"up.total\"\n"), "t.toml", ".", reg, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := Run(context.Background(), p, RunOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	m := readManifest(t, dir)
	up, down := m.Stages["up"], m.Stages["down"]
	if up.Seconds < wait.Seconds()*0.9 || up.WaitedSeconds != 0 {
		t.Errorf("up: seconds %.3f waited %.3f; want ≥ %.2f and 0", up.Seconds, up.WaitedSeconds, wait.Seconds())
	}
	if down.Seconds > wait.Seconds()/3 || down.WaitedSeconds < wait.Seconds()*0.8 {
		t.Errorf("down: seconds %.3f waited %.3f; want its own time (well below %.2f) and the wait", down.Seconds, down.WaitedSeconds, wait.Seconds())
	}
}

// syncBuf is a strings.Builder safe for concurrent writers.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunStopsWritingIntoReplacedDir: a run whose directory is removed and made again while it
// runs (say, by `rm -rf run` and another `pipe run --out run`) writes nothing more there: no
// manifest over the other run's, no stage; its error says what happened.
func TestRunStopsWritingIntoReplacedDir(t *testing.T) {
	p := parse(t, "[stages.load]\nkind = \"gen\"\nrows = 20\nbatch = 1\nslow_ms = 10\n\n[stages.twice]\nkind = \"double\"\ninput = \"load\"\n")
	dir := filepath.Join(t.TempDir(), "run")
	other := []byte(`{"run_id": "another-run", "status": "running"}` + "\n")
	var once sync.Once
	_, err := Run(context.Background(), p, RunOptions{Dir: dir, Progress: func(e Event) {
		if e.Stage != "load" || e.Status != StatusRunning {
			return
		}
		once.Do(func() {
			if err := os.RemoveAll(dir); err != nil {
				t.Error(err)
			}
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Error(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "manifest.json"), other, 0o644); err != nil {
				t.Error(err)
			}
			if err := reserveSpace(dir); err != nil { // the other run's space for its final manifest
				t.Error(err)
			}
		})
	}})
	if !errors.Is(err, ErrDirReplaced) {
		t.Fatalf("run error %v, want ErrDirReplaced", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "manifest.json")); string(b) != string(other) {
		t.Errorf("the other run's manifest was overwritten:\n%s", b)
	}
	if names := dirEntries(t, dir); !slices.Equal(names, []string{reserveFile, "manifest.json"}) {
		t.Errorf("the run wrote into, or removed from, the directory that replaced its own: %v", names)
	}
}
