package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
)

// killDigits is the common head of the kill tests' pipelines.
const killDigits = `
[pipeline]
seed = 5
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
method = "minmax"
`

// killCase is a pipeline killed with SIGKILL at the first log line that killAt accepts.
type killCase struct {
	name string
	src  string
	// killAt looks at each JSON log line of the run.
	killAt func(line map[string]any) bool
	// files are files of the run directory that the resumed run must write exactly as an
	// uninterrupted run does (predictions, weights).
	files []string
	// checkResumed checks the resumed run's manifest: the interrupted stage continued.
	checkResumed func(t *testing.T, m *pipeline.Manifest)
}

func logLine(stage, msg string, test func(map[string]any) bool) func(map[string]any) bool {
	return func(l map[string]any) bool {
		return l["stage"] == stage && l["message"] == msg && (test == nil || test(l))
	}
}

func atLeast(key string, n float64) func(map[string]any) bool {
	return func(l map[string]any) bool { v, _ := l[key].(float64); return v >= n }
}

// TestKillAndResume kills the real pipe process with SIGKILL during a source, in the middle
// of a training, between ensemble members and during pseudo-label rounds, resumes each run with
// `pipe run --resume DIR`, and checks that the resumed run's metrics, predictions and weights
// are those of an uninterrupted run, bit for bit.
func TestKillAndResume(t *testing.T) {
	bin := pipeBinary(t)
	eval := `
[stages.eval]
kind = "evaluate"
models = ["%s"]
tables = ["scale.test"]
[stages.scores]
kind = "predict"
model = "%s"
input = "scale.test"
[stages.save]
kind = "write"
input = "scores"
path = "scores.csv"
`
	cases := []killCase{
		{
			name: "source",
			src: `
[pipeline]
seed = 5
workers = 1
[stages.load]
kind = "csv"
path = "big.csv"
target = "y"
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
epochs = 2
` + fmt.Sprintf(eval, "model.model", "model.model"),
			killAt: logLine("load", "stage started", nil),
			files:  []string{"stages/save/scores.csv", "stages/model/bundle/model/weights.bin"},
		},
		{
			name: "mid-epoch",
			src: killDigits + `
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 64, dropout = 0.1 } ]
optimizer = { name = "adam", lr = 0.002 }
schedule = { name = "cosine" }
epochs = 400
early_stopping = { patience = 400 }
` + fmt.Sprintf(eval, "model.model", "model.model"),
			// After epoch 3: epoch 1's checkpoint is in the store (later ones are taken at most
			// every 5 s), and the epoch in progress is lost.
			killAt: logLine("model", "epoch", atLeast("epoch", 3)),
			files:  []string{"stages/save/scores.csv", "stages/model/bundle/model/weights.bin", "stages/model/history.csv"},
			checkResumed: func(t *testing.T, m *pipeline.Manifest) {
				if e, _ := m.Stages["model"].Info["resumed_from_epoch"].(float64); e < 1 {
					t.Errorf("the training started again from epoch 0 (info %v)", m.Stages["model"].Info)
				}
			},
		},
		{
			name: "between members",
			src: killDigits + `
[stages.members]
kind = "ensemble"
train = "scale.train"
val = "scale.val"
members = 4
bootstrap = true
member = { layers = [ { dense = 32 } ], epochs = 30 }
[stages.mean]
kind = "combine"
ensemble = "members.ensemble"
method = "mean"
` + fmt.Sprintf(eval, "mean.model", "mean.model"),
			killAt: logLine("members", "ensemble member trained", atLeast("member", 1)),
			files:  []string{"stages/save/scores.csv", "stages/mean/bundle/ensemble/member_3/weights.bin"},
			checkResumed: func(t *testing.T, m *pipeline.Manifest) {
				// Members 0 and 1 had finished: they are not trained again.
				if n, _ := m.Stages["members"].Info["restored_members"].(float64); n < 2 {
					t.Errorf("restored members %v, want at least 2 (notes %q)", m.Stages["members"].Info["restored_members"], m.Stages["members"].Notes)
				}
			},
		},
		{
			name: "pseudo-label rounds",
			src: killDigits + `
[stages.few]
kind = "mask_labels"
input = "scale.train"
per_class = 10
val_per_class = 5
[stages.base]
kind = "train"
train = "few.train"
val = "few.val"
layers = [ { dense = 32 } ]
epochs = 20
[stages.pseudo]
kind = "pseudo_label"
model = "base.model"
train = "few.train"
val = "few.val"
rounds = 6
epochs = 4
` + fmt.Sprintf(eval, "pseudo.model", "pseudo.model"),
			killAt: logLine("pseudo", "self-training round", atLeast("round", 2)),
			files:  []string{"stages/save/scores.csv", "stages/pseudo/bundle/model/weights.bin", "stages/pseudo/pseudo_labels.csv"},
			checkResumed: func(t *testing.T, m *pipeline.Manifest) {
				if r, _ := m.Stages["pseudo"].Info["resumed_from_round"].(float64); r < 1 {
					t.Errorf("the rounds started again from round 1 (info %v)", m.Stages["pseudo"].Info)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "p.toml")
			if err := os.WriteFile(file, []byte(c.src), 0o644); err != nil {
				t.Fatal(err)
			}
			if c.name == "source" {
				writeBigCSV(t, filepath.Join(dir, "big.csv"), 400_000)
			}
			ref := filepath.Join(dir, "ref")
			if out, err := exec.Command(bin, "run", file, "--out", ref, "--store", filepath.Join(dir, "ref-store"), "--no-progress").CombinedOutput(); err != nil {
				t.Fatalf("uninterrupted run: %v\n%s", err, out)
			}
			run := filepath.Join(dir, "run")
			killed := killWhen(t, bin, c.killAt, "run", file, "--out", run, "--store", filepath.Join(dir, "store"),
				"--log-format", "json", "--log-level", "debug", "--no-progress")
			_, status, err := pipeline.ReadRun(run)
			if err != nil {
				t.Fatal(err)
			}
			if !killed || status != pipeline.StatusCrashed {
				t.Fatalf("killed %v, status %s: want a crashed run", killed, status)
			}
			cmd := exec.Command(bin, "run", "--resume", run, "--no-progress")
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("pipe run --resume: %v\n%s", err, out)
			}
			m, status, err := pipeline.ReadRun(run)
			if err != nil || status != pipeline.StatusSucceeded || len(m.Resumptions) != 1 || m.Resumptions[0].From != pipeline.StatusCrashed {
				t.Fatalf("resumed run: %s, %+v, %v", status, m.Resumptions, err)
			}
			want, _, _ := pipeline.ReadRun(ref)
			for _, name := range want.StageOrder {
				a, b := want.Stages[name].Metrics, m.Stages[name].Metrics
				for k, v := range a {
					if b[k] != v {
						t.Errorf("stage %s metric %s: resumed %v, uninterrupted %v", name, k, b[k], v)
					}
				}
			}
			for _, f := range c.files {
				a, err1 := os.ReadFile(filepath.Join(ref, f))
				b, err2 := os.ReadFile(filepath.Join(run, f))
				if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
					t.Errorf("%s differs from the uninterrupted run's (%v, %v)", f, err1, err2)
				}
			}
			if c.checkResumed != nil {
				c.checkResumed(t, m)
			}
		})
	}
}

// killWhen starts pipe with args and kills it with SIGKILL at the first JSON log line on its
// stderr that at accepts. It reports whether it killed the process (false: it ended first).
func killWhen(t *testing.T, bin string, at func(map[string]any) bool, args ...string) bool {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	deadline := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || killed {
			continue
		}
		if at(line) {
			killed = cmd.Process.Kill() == nil
		}
	}
	cmd.Wait()
	return killed
}

// writeBigCSV writes rows of 8 seeded features and a 3-class target.
func writeBigCSV(t *testing.T, path string, rows int) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("f0,f1,f2,f3,f4,f5,f6,f7,y\n")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < rows; i++ {
		y := rng.IntN(3)
		for j := 0; j < 8; j++ {
			fmt.Fprintf(&b, "%.4f,", rng.NormFloat64()+float64(y*(j%2)))
		}
		fmt.Fprintf(&b, "c%d\n", y)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestResumeRefusesAChangedConfig: a run whose pipeline file changed since is not resumed in
// place; the refusal names the changed key, and --resume-changed starts a new run that reuses
// the unchanged stages through the cache.
func TestResumeRefusesAChangedConfig(t *testing.T) {
	bin := pipeBinary(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "p.toml")
	src := killDigits + `
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 32 } ]
epochs = 300
early_stopping = { patience = 300 }
`
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	// Killed during the training, once scale's outputs are in the store.
	stored := false
	killAt := func(l map[string]any) bool {
		if l["stage"] == "scale" && l["message"] == "stored in the stage store" {
			stored = true
		}
		return stored && l["stage"] == "model" && l["message"] == "epoch"
	}
	if !killWhen(t, bin, killAt, "run", file, "--out", run,
		"--log-format", "json", "--log-level", "debug", "--no-progress") {
		t.Fatal("the run ended before it was killed")
	}
	if err := os.WriteFile(file, []byte(strings.Replace(src, "dense = 32", "dense = 48", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "run", "--resume", run, "--no-progress").CombinedOutput()
	if code := exitCode(err); code != pipeline.ExitConfig || !strings.Contains(string(out), "model.layers[0].dense: 32 -> 48") {
		t.Fatalf("resume after a change: exit %d\n%s", code, out)
	}
	if _, status, _ := pipeline.ReadRun(run); status != pipeline.StatusCrashed {
		t.Errorf("the refused resume changed the run: %s", status)
	}
	newRun := filepath.Join(dir, "new")
	out, err = exec.Command(bin, "run", "--resume", run, "--resume-changed", "--out", newRun, "--no-progress").CombinedOutput()
	if err != nil {
		t.Fatalf("--resume-changed: %v\n%s", err, out)
	}
	m, status, err := pipeline.ReadRun(newRun)
	if err != nil || status != pipeline.StatusSucceeded || !m.Stages["scale"].Cached || m.Stages["model"].Cached {
		t.Errorf("the new run: %s, scale cached %v, model cached %v (%v)\n%s", status, m.Stages["scale"].Cached, m.Stages["model"].Cached, err, out)
	}
}
