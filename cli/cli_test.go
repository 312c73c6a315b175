package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// TestSIGINT runs the real binary, interrupts it and checks the exit code and the manifest.
func TestSIGINT(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "pipe")
	build := exec.Command("go", "build", "-o", bin, "../cmd/pipe")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(bin, "run", "../pipelines/digits-mlp.toml", "--out", dir, "--log-format", "json", "--log-level", "debug",
		"--set", "model.epochs=100000", "--set", "model.early_stopping=false")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until training has started, then interrupt.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), `"stage":"model","kind":"train","time"`) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if d := time.Since(sent); d > 10*time.Second {
		t.Errorf("took %v to stop after SIGINT", d)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != pipeline.ExitCanceled {
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
	// What was learned is kept, marked partial in bundle.json and in the manifest: never a
	// bundle that looks whole.
	if raw, err := os.ReadFile(filepath.Join(dir, "stages/model/bundle/bundle.json")); err == nil {
		var meta struct{ Partial bool }
		if err := json.Unmarshal(raw, &meta); err != nil || !meta.Partial {
			t.Errorf("an interrupted training left a bundle not marked partial (%v)", err)
		}
		if m.Stages["model"].Info["partial"] != true {
			t.Errorf("the manifest does not mark the model partial: %v", m.Stages["model"].Info)
		}
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
