package cli

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/report"
)

// fakeBuild replaces buildReport for one test: it makes a report from the run's manifest as
// it is when called (its status, its stages), or fails with fail when set, and records the
// directories it was called for.
type fakeBuild struct {
	mu    sync.Mutex
	dirs  []string
	fail  error
	calls int
}

func useFakeBuild(t *testing.T) *fakeBuild {
	f := &fakeBuild{}
	old := buildReport
	buildReport = func(dir string) (*report.Report, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls++
		f.dirs = append(f.dirs, dir)
		if f.fail != nil {
			return nil, f.fail
		}
		m, _, err := pipeline.ReadRun(dir)
		if err != nil {
			return nil, err
		}
		r := &report.Report{FormatVersion: report.FormatVersion, Run: report.Run{Pipeline: m.Pipeline, RunID: m.RunID, Status: m.Status, Error: m.Error}}
		names := make([]string, 0, len(m.Stages))
		for name := range m.Stages {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			s := m.Stages[name]
			r.Stages = append(r.Stages, report.Stage{Name: name, Kind: s.Kind, Status: s.Status, Metrics: s.Metrics})
		}
		return r, nil
	}
	t.Cleanup(func() { buildReport = old })
	return f
}

// reportData is the Report embedded in the report.html at path.
func reportData(t *testing.T, path string) *report.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const open = `<script type="application/json" id="report-data">`
	page := string(b)
	i := strings.Index(page, open)
	if i < 0 {
		t.Fatalf("%s has no report-data element", path)
	}
	rest := page[i+len(open):]
	var r report.Report
	if err := json.Unmarshal([]byte(rest[:strings.Index(rest, "</script>")]), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// brokenCSVSrc is a pipeline whose source fails at its last row: the run fails (exit 1).
const brokenCSVSrc = `
[pipeline]
name = "broken"
seed = 1
[stages.load]
kind = "csv"
path = "data.csv"
[stages.save]
kind = "write"
input = "load"
path = "out.csv"
`

// TestRunWritesTheReport: pipe run writes report.html into the run directory after the run
// has ended (the report sees the final manifest), for a failed run too; --no-report skips
// it; a report that cannot be built is a warning in the log format and leaves the exit code.
func TestRunWritesTheReport(t *testing.T) {
	f := useFakeBuild(t)
	base := t.TempDir()
	tiny := filepath.Join(base, "tiny.toml")
	broken := filepath.Join(base, "broken.toml")
	for path, content := range map[string]string{tiny: cacheCLISrc, broken: brokenCSVSrc, filepath.Join(base, "data.csv"): "a,b\n1,2\n3,4\n5,6,7\n"} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(file string, wantCode int, args ...string) (dir, stderr string) {
		t.Helper()
		dir = filepath.Join(t.TempDir(), "run")
		code, out, errOut := runCLI(append([]string{"run", file, "--out", dir, "--no-cache", "--log-format", "json"}, args...)...)
		if code != wantCode {
			t.Fatalf("exit %d, want %d\n%s\n%s", code, wantCode, out, errOut)
		}
		return dir, errOut
	}

	dir, _ := run(tiny, 0)
	r := reportData(t, filepath.Join(dir, "report.html"))
	if r.Run.Status != pipeline.StatusSucceeded || r.Run.Pipeline != "tiny" || len(r.Stages) != 4 {
		t.Errorf("report of the run: status %q, pipeline %q, %d stages", r.Run.Status, r.Run.Pipeline, len(r.Stages))
	}

	dir, _ = run(broken, pipeline.ExitFailed)
	r = reportData(t, filepath.Join(dir, "report.html"))
	if r.Run.Status != pipeline.StatusFailed || r.Run.Error == "" {
		t.Errorf("report of a failed run: status %q, error %q", r.Run.Status, r.Run.Error)
	}

	calls := f.calls
	dir, _ = run(tiny, 0, "--no-report")
	if _, err := os.Stat(filepath.Join(dir, "report.html")); !errors.Is(err, os.ErrNotExist) || f.calls != calls {
		t.Errorf("--no-report: report.html %v, %d builds", err, f.calls-calls)
	}

	f.fail = errors.New("history.csv: line 3: not a number")
	dir, errOut := run(tiny, 0)
	if _, err := os.Stat(filepath.Join(dir, "report.html")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a report that cannot be built: report.html %v", err)
	}
	var warned bool
	for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
		if v["level"] == "warn" && strings.Contains(v["message"].(string), "report.html was not written") && strings.Contains(v["error"].(string), "line 3: not a number") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning about the report:\n%s", errOut)
	}
}

// TestReportCommand: pipe report RUN_DIR writes RUN_DIR/report.html (or --out), exit 0; a
// directory that holds no run is exit 2, a report that cannot be built exit 1.
func TestReportCommand(t *testing.T) {
	f := useFakeBuild(t)
	base := t.TempDir()
	tiny := filepath.Join(base, "tiny.toml")
	if err := os.WriteFile(tiny, []byte(cacheCLISrc), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "run")
	if code, out, errOut := runCLI("run", tiny, "--out", dir, "--no-cache", "--no-report", "--log-format", "json"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut := runCLI("report", dir)
	path := filepath.Join(dir, "report.html")
	if code != 0 || out != "report: "+path+"\n" {
		t.Fatalf("pipe report: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := reportData(t, path); r.Run.Status != pipeline.StatusSucceeded || len(f.dirs) != 1 || f.dirs[0] != dir {
		t.Errorf("report: status %q, built from %v", r.Run.Status, f.dirs)
	}

	other := filepath.Join(base, "elsewhere", "page.html")
	if code, _, errOut := runCLI("report", dir, "--out", other); code != 0 {
		t.Fatalf("--out: exit %d\n%s", code, errOut)
	}
	if r := reportData(t, other); r.Run.Pipeline != "tiny" {
		t.Errorf("--out: pipeline %q", r.Run.Pipeline)
	}

	for _, notRun := range []string{t.TempDir(), filepath.Join(base, "missing")} {
		code, _, errOut := runCLI("report", notRun)
		if code != pipeline.ExitConfig || !strings.Contains(errOut, notRun+" holds no run") {
			t.Errorf("report %s: exit %d\n%s", notRun, code, errOut)
		}
	}
	if code, _, errOut := runCLI("report"); code != pipeline.ExitConfig || !strings.Contains(errOut, "usage: pipe report RUN_DIR") {
		t.Errorf("no run directory: exit %d\n%s", code, errOut)
	}

	f.fail = errors.New("monitor.csv: line 7: 5 fields, want 6")
	code, _, errOut = runCLI("report", dir, "--out", filepath.Join(base, "failed.html"))
	if code != pipeline.ExitFailed || !strings.Contains(errOut, "monitor.csv: line 7") || !strings.Contains(errOut, dir) {
		t.Errorf("a report that cannot be built: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(base, "failed.html")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a report that cannot be built left a file: %v", err)
	}
}

// TestRunWritesTheRealReport: with report.Build, the report of a real run holds its stages,
// its graph and its status as the manifest says.
func TestRunWritesTheRealReport(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tiny.toml")
	if err := os.WriteFile(file, []byte(cacheCLISrc), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	if code, out, errOut := runCLI("run", file, "--out", dir, "--no-cache", "--log-format", "json"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	m := cliManifest(t, dir)
	r := reportData(t, filepath.Join(dir, "report.html"))
	if r.Run.Status != m.Status || r.Run.RunID != m.RunID || len(r.Stages) != len(m.Stages) || len(r.Graph.Nodes) != len(m.Stages) {
		t.Errorf("report: status %q run %q, %d stages, %d nodes; manifest: %q %q, %d stages",
			r.Run.Status, r.Run.RunID, len(r.Stages), len(r.Graph.Nodes), m.Status, m.RunID, len(m.Stages))
	}
}
