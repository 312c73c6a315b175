package scheduling

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
)

// nightly is the pipeline the jobs run in the tests: digits, a small MLP trained for a fixed
// number of epochs (a few tenths of a second), so that two instances started together overlap.
const nightly = `[pipeline]
name = "nightly"
seed = 1

[stages.load]
kind = "dataset"
name = "digits"
peer_split = true

[stages.split]
kind = "split"
input = "load"
split_column = "split"

[stages.normalize]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]

[stages.model]
kind = "train"
train = "normalize.train"
val = "normalize.val"
target = "target"
layers = [ { dense = 32 } ]
epochs = 300
early_stopping = false

[stages.eval]
kind = "evaluate"
models = ["model.model"]
tables = ["normalize.test"]
`

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// pipeBinary builds cmd/pipe once, into a directory of its own, and returns that directory.
func pipeBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the pipe binary")
	}
	if runtime.GOOS == "windows" {
		t.Skip("the examples are for cron and systemd")
	}
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "pipe-scheduling-test-"); buildErr != nil {
			return
		}
		if out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "pipe"), "../../cmd/pipe").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// jobHome makes a job directory (PIPE_HOME, WorkingDirectory) holding pipelines/nightly.toml.
func jobHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, "pipelines"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "pipelines", "nightly.toml"), []byte(nightly), 0o644); err != nil {
		t.Fatal(err)
	}
	return home
}

// cronJob is the crontab's environment and its one job's command, as cron runs it.
type cronJob struct {
	env     map[string]string
	command string
	line    string // the job line as written
	// flockCommand is the command of the commented alternative job line with flock(1).
	flockCommand string
}

// readCrontab parses the example crontab: NAME=value lines, and the one job line (five time
// fields, then the command). Cron ends the command at an unescaped % (the rest is its stdin)
// and turns \% into %; the example must have no unescaped %.
func readCrontab(t *testing.T) cronJob {
	t.Helper()
	f, err := os.Open("crontab")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	job := cronJob{env: map[string]string{}}
	assignment := regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if alt, ok := strings.CutPrefix(line, "# "); ok && strings.Contains(alt, "flock ") && cronLine.MatchString(alt) {
			job.flockCommand = cronCommand(t, alt)
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if m := assignment.FindStringSubmatch(line); m != nil {
			job.env[m[1]] = m[2]
			continue
		}
		if !cronLine.MatchString(line) {
			t.Fatalf("crontab: not a job line: %q", line)
		}
		if job.command != "" {
			t.Fatalf("crontab: more than one job line")
		}
		job.command, job.line = cronCommand(t, line), line
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if job.command == "" {
		t.Fatal("crontab: no job line")
	}
	return job
}

// cronLine matches a job line: five time fields, then the command.
var cronLine = regexp.MustCompile(`^([0-9*/,-]+\s+){5}\S`)

// cronCommand is the command of a job line as cron runs it: what follows the fifth field,
// with \% turned into %. Cron ends the command at an unescaped % (the rest is its stdin): the
// example must have none.
func cronCommand(t *testing.T, line string) string {
	t.Helper()
	rest := line
	for range 5 {
		rest = strings.TrimLeft(rest, " \t")
		rest = rest[strings.IndexAny(rest, " \t"):]
	}
	rest = strings.TrimLeft(rest, " \t")
	if strings.Contains(strings.ReplaceAll(rest, `\%`, ""), "%") {
		t.Fatalf("crontab: the command has an unescaped %%, which cron would cut it at: %s", rest)
	}
	return strings.ReplaceAll(rest, `\%`, "%")
}

// environ is the test's environment with env's variables set (replacing any of the same name).
func environ(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := env[name]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// today is the date the jobs name their run directory by, as date +%F prints it.
func today(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("date", "+%F").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// holderPID is the pid a refusal "another run is using it (pid N on host ...)" names, or 0.
func holderPID(msg string) int {
	m := regexp.MustCompile(`another run is using it \(pid (\d+) on host`).FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// cronStarter returns a function that starts command as cron would run the crontab's job:
// with its SHELL and variables, PIPE_HOME set to home, the built pipe first on its PATH, and
// another working directory than home.
func cronStarter(t *testing.T, job cronJob, command, home string) func() (*exec.Cmd, error) {
	bin := pipeBinary(t)
	shell := job.env["SHELL"]
	if shell == "" {
		shell = "/bin/sh"
	}
	env := map[string]string{}
	for k, v := range job.env {
		env[k] = v
	}
	env["PIPE_HOME"] = home
	env["PATH"] = bin + string(os.PathListSeparator) + job.env["PATH"]
	return func() (*exec.Cmd, error) {
		cmd := exec.Command(shell, "-c", command)
		cmd.Env = environ(env)
		cmd.Dir = "/" // cron starts a job in the user's home: the line must cd itself
		return cmd, cmd.Start()
	}
}

// TestCronLineKeepsTwoInstancesApart runs the crontab's job line as cron would (its SHELL,
// its variables, PIPE_HOME pointing at a job directory, the built pipe first on its PATH),
// twice at the same moment: exactly one instance runs, and the other is refused by the run
// directory's lock with exit code 2 and the documented line in nightly.log. A third start on
// the same day is refused too, and the day's directory holds the one run.
func TestCronLineKeepsTwoInstancesApart(t *testing.T) {
	job := readCrontab(t)
	home := jobHome(t)
	start := cronStarter(t, job, job.command, home)

	day := today(t)
	var cmds [2]*exec.Cmd
	for i := range cmds {
		c, err := start()
		if err != nil {
			t.Fatal(err)
		}
		cmds[i] = c
	}
	codes := map[int]int{}
	for _, c := range cmds {
		codes[exitCode(c.Wait())]++
	}
	if day != today(t) {
		t.Skip("the date changed while the jobs ran; their directories differ")
	}
	logb, _ := os.ReadFile(filepath.Join(home, "nightly.log"))
	logText := string(logb)
	if codes[0] != 1 || codes[pipeline.ExitConfig] != 1 {
		t.Fatalf("exit codes %v, want one 0 (ran) and one %d (refused)\nnightly.log:\n%s", codes, pipeline.ExitConfig, logText)
	}
	dayDir := filepath.Join("runs", "nightly", day)
	m, status, err := pipeline.ReadRun(filepath.Join(home, dayDir))
	if err != nil || status != pipeline.StatusSucceeded {
		t.Fatalf("the day's run: %v, %v\n%s", status, err, logText)
	}
	refusal := "pipe run: run directory " + dayDir + ": "
	switch {
	case strings.Contains(logText, refusal+"another run is using it"):
		// The instances overlapped: the refused one names the one that ran.
		// It names the one that ran, unless it came before that one wrote its pid into the lock
		// file ("another process (it has not written its pid yet)").
		if pid := holderPID(logText); pid != m.PID && !strings.Contains(logText, "it has not written its pid yet") {
			t.Errorf("the refusal names pid %d; the run's manifest says %d\n%s", pid, m.PID, logText)
		}
		t.Logf("the instances overlapped: the second was refused while the first ran (%.2fs)", m.Seconds)
	case strings.Contains(logText, refusal+"already holds a run"):
		t.Logf("the second instance started after the first had ended (a loaded machine)")
	default:
		t.Errorf("nightly.log lacks the refusal %q:\n%s", refusal, logText)
	}
	if n := strings.Count(logText, "pipe run: run directory"); n != 1 {
		t.Errorf("%d refusals in nightly.log, want 1:\n%s", n, logText)
	}

	// A third start the same day: refused, the day's run untouched.
	c, err := start()
	if err != nil {
		t.Fatal(err)
	}
	if code := exitCode(c.Wait()); code != pipeline.ExitConfig {
		t.Errorf("a third start on the same day: exit %d, want %d", code, pipeline.ExitConfig)
	}
	logb, _ = os.ReadFile(filepath.Join(home, "nightly.log"))
	if want := fmt.Sprintf("%salready holds a run (run %s, succeeded)", refusal, m.RunID); !strings.Contains(string(logb), want) {
		t.Errorf("nightly.log lacks %q:\n%s", want, logb)
	}
	// The day's run directory, and the stage store the nightly runs share (.store).
	ents, err := os.ReadDir(filepath.Join(home, "runs", "nightly"))
	var runDirs []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			runDirs = append(runDirs, e.Name())
		}
	}
	if err != nil || len(runDirs) != 1 || runDirs[0] != day {
		t.Errorf("runs/nightly holds the runs %v (%v), want only %s", runDirs, err, day)
	}
	if m2, _, err := pipeline.ReadRun(filepath.Join(home, dayDir)); err != nil || m2.RunID != m.RunID || m2.Status != pipeline.StatusSucceeded {
		t.Errorf("the day's run changed: %+v, %v", m2, err)
	}
}

// TestCronFlockAlternative: the commented crontab line with flock(1) exits 75 at once while
// an earlier run (of another day, here the same) still holds nightly.lock.
func TestCronFlockAlternative(t *testing.T) {
	job := readCrontab(t)
	if job.flockCommand == "" {
		t.Fatal("crontab: no commented flock alternative")
	}
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) is not installed: the crontab's flock line was not run")
	}
	home := jobHome(t)
	start := cronStarter(t, job, job.flockCommand, home)
	first, err := start()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Wait()
	manifest := filepath.Join(home, "runs", "nightly", today(t), "manifest.json")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(manifest); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first run did not start")
		}
	}
	second, err := start()
	if err != nil {
		t.Fatal(err)
	}
	if code := exitCode(second.Wait()); code != 75 {
		t.Errorf("a start while the previous run holds the lock: exit %d, want 75", code)
	}
	if code := exitCode(first.Wait()); code != 0 {
		t.Errorf("the first run: exit %d\n%s", code, readFile(t, filepath.Join(home, "nightly.log")))
	}
}

// TestReadmeShowsTheCronLine: the README's cron line is the example's.
func TestReadmeShowsTheCronLine(t *testing.T) {
	job := readCrontab(t)
	if !strings.Contains(readFile(t, "../../README.md"), "\n"+job.line+"\n") {
		t.Errorf("README.md does not show the crontab's job line:\n%s", job.line)
	}
}

// serviceCommand returns the shell script of the service's ExecStart=/bin/sh -c '...', with
// systemd's escapes undone (%% is %, $$ is $). Any other specifier or variable would be
// expanded by systemd, so the example must have none.
func serviceCommand(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("pipe-nightly.service")
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "ExecStart=/bin/sh -c '"
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		script, ok := strings.CutSuffix(strings.TrimPrefix(line, prefix), "'")
		if !ok || strings.Contains(script, "'") {
			t.Fatalf("ExecStart is not one single-quoted /bin/sh -c script: %s", line)
		}
		rest := strings.NewReplacer("%%", "", "$$", "").Replace(script)
		if strings.ContainsAny(rest, "%$") {
			t.Fatalf("ExecStart has a systemd specifier or variable that is not escaped: %s", script)
		}
		return strings.NewReplacer("%%", "%", "$$", "$").Replace(script)
	}
	t.Fatal("pipe-nightly.service has no ExecStart=/bin/sh -c '...'")
	return ""
}

// workingDirectory returns the service's WorkingDirectory.
func workingDirectory(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("pipe-nightly.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^WorkingDirectory=(.+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("pipe-nightly.service has no WorkingDirectory")
	}
	return string(m[1])
}

// TestSystemdServiceCommand runs the service's command as systemd would (in its working
// directory, here a job directory): it runs the day's run; started again the same day, it is
// refused with exit code 2.
func TestSystemdServiceCommand(t *testing.T) {
	bin := pipeBinary(t)
	script := serviceCommand(t)
	if wd := workingDirectory(t); !strings.Contains(readFile(t, "crontab"), "PIPE_HOME="+wd) {
		t.Errorf("the service's WorkingDirectory %s is not the crontab's PIPE_HOME", wd)
	}
	home := jobHome(t)
	run := func() (int, string) {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Dir = home
		cmd.Env = environ(map[string]string{"PATH": bin + string(os.PathListSeparator) + "/usr/local/bin:/usr/bin:/bin"})
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return exitCode(err), out.String()
	}
	day := today(t)
	if code, out := run(); code != 0 {
		t.Fatalf("the service's command: exit %d\n%s", code, out)
	}
	if _, status, err := pipeline.ReadRun(filepath.Join(home, "runs", "nightly", day)); err != nil || status != pipeline.StatusSucceeded {
		t.Fatalf("the day's run: %s, %v", status, err)
	}
	if code, out := run(); code != pipeline.ExitConfig || !strings.Contains(out, "already holds a run") {
		t.Errorf("started again the same day: exit %d\n%s", code, out)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSystemdUnitsVerify: systemd-analyze verify accepts the service and the timer, with no
// warning about either file.
func TestSystemdUnitsVerify(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the systemd units were not verified (install systemd to check them)")
	}
	dir := t.TempDir()
	var paths []string
	for _, name := range []string{"pipe-nightly.service", "pipe-nightly.timer"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(readFile(t, name)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	cmd := exec.Command(tool, append([]string{"verify"}, paths...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "pipe-nightly") {
			t.Errorf("systemd-analyze verify warns: %s", line)
		}
	}
}
