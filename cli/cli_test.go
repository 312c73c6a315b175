package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
)

var update = flag.Bool("update", false, "rewrite the README stage reference and golden files")

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Main(args, &o, &e)
	return code, o.String(), e.String()
}

// TestReadmeStageReference keeps the README's stage reference equal to `pipe docs`.
func TestReadmeStageReference(t *testing.T) {
	path := "../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- stages:begin -->\n", "<!-- stages:end -->"
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("README lacks the stage reference markers")
	}
	doc, err := pipeline.Docs(Registry())
	if err != nil {
		t.Fatal(err)
	}
	want := s[:i+len(begin)] + doc + s[j:]
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if s != want {
		t.Error("README stage reference is out of date: run go test ./cli -run Readme -update")
	}
}

func TestValidate(t *testing.T) {
	code, out, _ := runCLI("validate", "../pipelines/digits-mlp.toml")
	if code != 0 || !strings.Contains(out, "valid") {
		t.Errorf("valid pipeline: code %d, %q", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[stages.load]\nkind = \"dataset\"\nname = \"digitz\"\nlimt = 5\n\n[stages.m]\nkind = \"train\"\ntrain = \"lod\"\nepochs = \"many\"\n"), 0o644)
	code, _, errOut := runCLI("validate", bad)
	if code != pipeline.ExitConfig {
		t.Errorf("exit %d, want %d", code, pipeline.ExitConfig)
	}
	for _, want := range []string{
		`bad.toml:3:1: stage "load": name: "digitz" is not one of`, `did you mean "digits"?`,
		`bad.toml:4:1: stage "load": limt: unknown key (did you mean "limit"?)`,
		`bad.toml:8:1: stage "m": train: input "lod": there is no stage "lod" (did you mean "load"?)`,
		`bad.toml:9:1: stage "m": epochs: expected integer, found the string "many"`,
		"4 problems",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("validate output lacks %q:\n%s", want, errOut)
		}
	}
	if code, _, e := runCLI("validate", "nope.toml"); code != pipeline.ExitConfig || !strings.Contains(e, "not found") {
		t.Errorf("missing file: %d %q", code, e)
	}
}

func TestUnknownCommand(t *testing.T) {
	code, _, e := runCLI("rnu")
	if code != pipeline.ExitConfig || !strings.Contains(e, `did you mean "run"?`) {
		t.Errorf("code %d: %s", code, e)
	}
}

func TestGraphAndDocs(t *testing.T) {
	code, out, _ := runCLI("graph", "--format", "mermaid", "../pipelines/digits-mlp.toml")
	if code != 0 || !strings.Contains(out, "split -->|train| normalize") {
		t.Errorf("graph: %d\n%s", code, out)
	}
	code, out, _ = runCLI("docs", "split")
	if code != 0 || !strings.Contains(out, "### `split`") || !strings.Contains(out, "| `group_by` |") {
		t.Errorf("docs: %d\n%s", code, out)
	}
}

func TestRunJSONLogsAndLastLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, out, errOut := runCLI("run", "../pipelines/digits-mlp.toml", "--out", dir, "--log-format", "json",
		"--set", "model.epochs=3", "--set", "model.layers=[{dense=16}]")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; last != "run: "+dir {
		t.Errorf("last line %q", last)
	}
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("stderr line is not JSON: %q", l)
		}
	}
	for _, f := range []string{"manifest.json", "pipeline.toml", "log.jsonl", "stages/model/bundle/bundle.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	// The resolved config records the override and the defaults.
	res, _ := os.ReadFile(filepath.Join(dir, "pipeline.toml"))
	if !strings.Contains(string(res), "epochs = 3") || !strings.Contains(string(res), "batch_size = 64") {
		t.Errorf("resolved config:\n%s", res)
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// pipeBinary builds the pipe command once for the tests that run it as a user would.
func pipeBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pipe-cli-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "pipe")
		if out, err := exec.Command("go", "build", "-o", builtBin, "../cmd/pipe").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// startTraining starts the binary on a training that runs until stopped, into dir, and waits
// until the training stage runs.
func startTraining(t *testing.T, bin, dir string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, "run", "../pipelines/digits-mlp.toml", "--out", dir, "--log-format", "json", "--log-level", "debug",
		"--set", "model.epochs=100000", "--set", "model.early_stopping=false")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), `"stage":"model","kind":"train","time"`) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("training did not start:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cmd, stderr
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestSignalsCancel runs the real binary, stops it with SIGINT, SIGTERM or SIGHUP and checks
// the exit code and the manifest.
func TestSignalsCancel(t *testing.T) {
	bin := pipeBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			cmd, stderr := startTraining(t, bin, dir)
			sent := time.Now()
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			if d := time.Since(sent); d > 10*time.Second {
				t.Errorf("took %v to stop after %v", d, sig)
			}
			if code := exitCode(err); code != pipeline.ExitCanceled {
				t.Errorf("exit code %d, want %d\n%s", code, pipeline.ExitCanceled, stderr.String())
			}
			b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			m, _ := pipeline.ReadManifest(b)
			if m.Status != pipeline.StatusCanceled || m.Stages["model"].Status != pipeline.StatusCanceled {
				t.Errorf("manifest status %s, model %s", m.Status, m.Stages["model"].Status)
			}
			if !strings.Contains(m.Error, sig.String()) {
				t.Errorf("manifest error %q does not name %v", m.Error, sig)
			}
			// What was learned is kept, marked partial in bundle.json and in the manifest:
			// never a bundle that looks whole.
			if raw, err := os.ReadFile(filepath.Join(dir, "stages/model/bundle/bundle.json")); err == nil {
				var meta struct{ Partial bool }
				if err := json.Unmarshal(raw, &meta); err != nil || !meta.Partial {
					t.Errorf("an interrupted training left a bundle not marked partial (%v)", err)
				}
				if m.Stages["model"].Info["partial"] != true {
					t.Errorf("the manifest does not mark the model partial: %v", m.Stages["model"].Info)
				}
			}
		})
	}
}

// TestSecondRunIntoSameDirAndKill9, as a hostile user would: a second `pipe run --out` into
// the directory of a running run is refused at once (exit 2) naming the first one's pid; a
// run killed with SIGKILL reads as crashed, and its directory is still refused.
func TestSecondRunIntoSameDirAndKill9(t *testing.T) {
	bin := pipeBinary(t)
	dir := filepath.Join(t.TempDir(), "run")
	first, _ := startTraining(t, bin, dir)
	defer func() {
		first.Process.Kill()
		first.Wait()
	}()

	second := exec.Command(bin, "run", "../pipelines/digits-mlp.toml", "--out", dir)
	var errOut bytes.Buffer
	second.Stderr = &errOut
	start := time.Now()
	err := second.Run()
	if code := exitCode(err); code != pipeline.ExitConfig {
		t.Errorf("second run: exit %d, want %d\n%s", code, pipeline.ExitConfig, errOut.String())
	}
	host, _ := os.Hostname()
	if want := fmt.Sprintf("pid %d on host %s", first.Process.Pid, host); !strings.Contains(errOut.String(), want) {
		t.Errorf("the refusal does not name %q:\n%s", want, errOut.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the refusal took %v", d)
	}
	if _, status, err := pipeline.ReadRun(dir); err != nil || status != pipeline.StatusRunning {
		t.Errorf("while the first run runs: %s, %v", status, err)
	}

	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	m, status, err := pipeline.ReadRun(dir)
	if err != nil || status != pipeline.StatusCrashed || m.Status != pipeline.StatusRunning {
		t.Errorf("after kill -9: %s (manifest %v), %v", status, m, err)
	}
	if m != nil && m.PID != first.Process.Pid {
		t.Errorf("manifest pid %d, want %d", m.PID, first.Process.Pid)
	}
	code, _, errs := runCLI("run", "../pipelines/digits-mlp.toml", "--out", dir)
	if code != pipeline.ExitConfig || !strings.Contains(errs, "already holds a run") || !strings.Contains(errs, "crashed") {
		t.Errorf("a run into the crashed run's directory: exit %d\n%s", code, errs)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in two goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestGradcheckCommand(t *testing.T) {
	code, out, errOut := runCLI("gradcheck", "../pipelines/credit.toml")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"model of stage model", "dense_1/W", "head_out/b", "gradient check passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestHeadlineMetricsLastRoundOnly: of per-round metrics only the last round's get a line, so
// a 40-round pseudo_label stage does not flood the summary; other val/test metrics stay.
func TestHeadlineMetricsLastRoundOnly(t *testing.T) {
	ms := map[string]float64{"initial/val_accuracy": 0.9, "val_accuracy": 0.95, "train_loss": 0.1}
	for r := 1; r <= 40; r++ {
		ms[fmt.Sprintf("round_%d/val_accuracy", r)] = 0.9
		ms[fmt.Sprintf("round_%d/added_rows", r)] = 100
	}
	got := strings.Join(headlineMetrics(ms), " ")
	if want := "initial/val_accuracy round_40/val_accuracy val_accuracy"; got != want {
		t.Errorf("headline metrics %q, want %q", got, want)
	}
}

// TestRunRefusalsExit2: every refusal before anything runs exits 2, prints why, and leaves
// the directory as it was.
func TestRunRefusalsExit2(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	notRun := filepath.Join(base, "notes")
	os.Mkdir(notRun, 0o755)
	os.WriteFile(filepath.Join(notRun, "todo.txt"), []byte("x"), 0o644)
	done := filepath.Join(base, "done")
	os.Mkdir(done, 0o755)
	os.WriteFile(filepath.Join(done, "manifest.json"), []byte(`{"status":"succeeded","run_id":"r1","stages":{}}`), 0o644)
	for _, c := range []struct{ name, out, want string }{
		{"a file", file, "is a file"},
		{"not a run", notRun, "is not empty"},
		{"already a run", done, "already holds a run (run r1, succeeded)"},
		{"the root", "/", "is a system directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, _ := os.ReadDir(c.out)
			code, out, errOut := runCLI("run", "../pipelines/digits-mlp.toml", "--out", c.out, "--log-format", "json")
			if code != pipeline.ExitConfig || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, pipeline.ExitConfig, errOut)
			}
			if strings.Contains(out, "run: ") {
				t.Errorf("a refused run printed a run directory:\n%s", out)
			}
			if after, _ := os.ReadDir(c.out); len(after) != len(before) {
				t.Errorf("the refused run changed %s", c.out)
			}
		})
	}
}

// TestHelp: `pipe COMMAND --help`, `-h` and `pipe help COMMAND` print the command's usage once,
// with every flag, on stdout, and exit 0 without doing anything else.
func TestHelp(t *testing.T) {
	a := &app{cmd: &Command{}, reg: Registry()}
	for _, c := range commands() {
		fs := a.flagsOf(c)
		if c.hasFlags && fs == nil {
			t.Errorf("%s: no flag set", c.name)
		}
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}, {c.name, "x.toml", "-help"}} {
			code, out, errOut := runCLI(args...)
			if code != 0 || errOut != "" {
				t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
			}
			if !strings.HasPrefix(out, "usage: pipe "+c.name) || strings.Count(out, "usage:") != 1 {
				t.Errorf("%q: the usage is not printed once:\n%s", args, out)
			}
			if fs != nil {
				fs.VisitAll(func(f *flag.Flag) {
					if !strings.Contains(out, "--"+f.Name) {
						t.Errorf("%q: the help lacks --%s", args, f.Name)
					}
				})
			}
		}
	}
	if _, err := os.Stat("runs"); err == nil {
		t.Error("asking for help ran something: there is a runs directory")
	}
	// A wrong flag: the problem and the usage, once, on stderr.
	code, _, errOut := runCLI("run", "../pipelines/digits-mlp.toml", "--bogus")
	if code != pipeline.ExitConfig || strings.Count(errOut, "usage:") != 1 || !strings.Contains(errOut, "-bogus") {
		t.Errorf("a wrong flag: exit %d:\n%s", code, errOut)
	}
}

// TestReadmeCLIMatchesUsage keeps the README's CLI block, the usage text of `pipe` and each
// command's help the same: all are made from the flag sets.
func TestReadmeCLIMatchesUsage(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	const begin = "## The CLI\n\n```\n"
	i := strings.Index(readme, begin)
	if i < 0 {
		t.Fatal("README lacks the CLI block")
	}
	block := readme[i+len(begin):]
	block = block[:strings.Index(block, "```")]
	a := &app{cmd: &Command{}, reg: Registry()}
	if want := a.synopses(); block != want {
		t.Errorf("README's CLI block:\n%s\nthe flag sets say:\n%s", block, want)
	}
	code, _, usage := runCLI()
	if code != pipeline.ExitConfig {
		t.Errorf("pipe without arguments: exit %d", code)
	}
	for _, c := range commands() {
		syn := a.synopsis(c)
		if !strings.Contains(usage, "  "+strings.ReplaceAll(syn, "\n", "\n  ")+"\n") {
			t.Errorf("the usage text lacks %q", syn)
		}
		_, help, _ := runCLI(c.name, "--help")
		if !strings.HasPrefix(help, "usage: "+syn+"\n") {
			t.Errorf("%s --help does not start with its synopsis:\n%s", c.name, help)
		}
	}
	// The exit codes: the README's table and the usage text list the same codes.
	codes := func(lines []string, re *regexp.Regexp) []string {
		var out []string
		for _, l := range lines {
			if m := re.FindStringSubmatch(l); m != nil {
				out = append(out, m[1])
			}
		}
		return out
	}
	inReadme := codes(strings.Split(readme, "\n"), regexp.MustCompile(`^\| (\d+) \|`))
	inUsage := codes(strings.Split(exitCodes, "\n"), regexp.MustCompile(`^  (\d+) `))
	if strings.Join(inReadme, " ") != strings.Join(inUsage, " ") || len(inUsage) == 0 {
		t.Errorf("exit codes: README %v, usage %v", inReadme, inUsage)
	}
}

// TestSummaryCountsAreIntegers: a count metric with an integral value prints as an integer;
// other metrics keep four decimals; a stage's seconds are the manifest's.
func TestSummaryCountsAreIntegers(t *testing.T) {
	m := &pipeline.Manifest{Pipeline: "p", Status: pipeline.StatusSucceeded, Seconds: 3, StageOrder: []string{"eval"},
		Stages: map[string]*pipeline.StageManifest{"eval": {Kind: "evaluate", Status: pipeline.StatusSucceeded, Seconds: 1.25, WaitedSeconds: 9,
			Metrics: map[string]float64{
				"val_rows": 350, "test_rows": 1e6, "oob_n_members": 8, "val_best_epoch": 12, "test_accuracy": 1,
				"val_accuracy": 0.95, "val_rows_mean": 2.5, "m/test_duplicate_rows_across_splits": 0,
			}}}}
	var b bytes.Buffer
	printSummary(&b, m)
	out := b.String()
	for _, want := range []string{
		"val_rows                         350\n", "test_rows                        1000000\n",
		"oob_n_members                    8\n", "val_best_epoch                   12\n",
		"m/test_duplicate_rows_across_splits 0\n",
		"test_accuracy                    1.0000\n", "val_accuracy                     0.9500\n",
		"val_rows_mean                    2.5000\n", "   1.25s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// TestRaceSkippedTestsRunWithoutRace: every test that skips under the race detector is run by
// ./run.sh test's step without -race, so that CI runs it at all.
func TestRaceSkippedTestsRunWithoutRace(t *testing.T) {
	script, err := os.ReadFile("../run.sh")
	if err != nil {
		t.Fatal(err)
	}
	step := regexp.MustCompile(`(?m)^\s*go test ([^\n]*)-run '([^']+)' ([^\n]+)$`)
	var re *regexp.Regexp
	pkgs := map[string]bool{}
	for _, m := range step.FindAllStringSubmatch(string(script), -1) {
		if strings.Contains(m[1], "-race") {
			continue
		}
		re = regexp.MustCompile(m[2])
		for _, p := range strings.Fields(m[3]) {
			pkgs[strings.TrimPrefix(p, "./")] = true
		}
	}
	if re == nil {
		t.Fatal("run.sh has no `go test -run '...' PKGS` step without -race")
	}
	found := 0
	err = filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Body == nil || !skipsUnderRace(fn.Body) {
				continue
			}
			found++
			pkg, _ := filepath.Rel("..", filepath.Dir(path))
			if !pkgs[filepath.ToSlash(pkg)] || !re.MatchString(fn.Name.Name) {
				t.Errorf("%s (%s) skips under -race, but run.sh's step without -race does not run it", fn.Name.Name, pkg)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Error("found no test that skips under -race: the detection is broken")
	}
}

// skipsUnderRace reports whether a function body holds `if raceEnabled { ... t.Skip(...) }`.
func skipsUnderRace(body *ast.BlockStmt) bool {
	skips := false
	ast.Inspect(body, func(n ast.Node) bool {
		ifs, ok := n.(*ast.IfStmt)
		if !ok {
			return true
		}
		if id, ok := ifs.Cond.(*ast.Ident); !ok || id.Name != "raceEnabled" {
			return true
		}
		ast.Inspect(ifs.Body, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && strings.HasPrefix(sel.Sel.Name, "Skip") {
				skips = true
			}
			return true
		})
		return true
	})
	return skips
}
