package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/cli"
	"github.com/pipe-ml/pipe/internal/temporaltest"
	"github.com/pipe-ml/pipe/pipeline"
)

func runCmd(t *testing.T, c *cli.Command, args ...string) (int, string, string) {
	t.Helper()
	var o, e bytes.Buffer
	code := c.Main(args, &o, &e)
	return code, o.String(), e.String()
}

// TestCustomStageRunsAndIsBundled runs the example's pipeline through the example's own
// command: the custom kind validates and runs, the model learns, and its bundle replays clip
// before normalize, so that predicting from raw rows clips them.
func TestCustomStageRunsAndIsBundled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, _, stderr := runCmd(t, command(), "run", "iris-clipped.toml", "--out", dir, "--log-format", "json", "--no-progress")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := pipeline.ReadManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Stages["clip"].RowsOut; got != 150 {
		t.Errorf("clip rows_out = %d, want 150", got)
	}
	if acc := m.Stages["eval"].Metrics["test_accuracy"]; acc < 0.85 {
		t.Errorf("test accuracy %.3f below the floor 0.85", acc)
	}
	meta, _, err := bundle.ReadMeta(filepath.Join(dir, "stages", "model", "bundle"))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, s := range meta.Preprocessing {
		kinds = append(kinds, s.Kind)
	}
	if strings.Join(kinds, ",") != "clip,normalize" {
		t.Fatalf("bundle preprocessing %v, want [clip normalize]", kinds)
	}

	// Raw rows: the same flower twice, once with a petal length far beyond max = 7. Clipped,
	// both rows are the same input, so their predictions must be identical; a bundle that
	// skipped clip would feed the network a value ~30 standard deviations out.
	in := filepath.Join(t.TempDir(), "rows.csv")
	rows := "id,sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm\n" +
		"a,6.3,2.9,7.0,1.8\n" +
		"b,6.3,2.9,50.0,1.8\n"
	if err := os.WriteFile(in, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "p.csv")
	code, _, stderr = runCmd(t, command(), "predict", "--model", dir, "--input", in, "--output", out, "--keep", "id")
	if code != 0 {
		t.Fatalf("predict exit %d: %s", code, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0][1] != "id" || recs[1][1] != "a" || recs[2][1] != "b" {
		t.Fatalf("predictions %v: want a header with _row, id, then rows a and b", recs)
	}
	if strings.Join(recs[1][2:], ",") != strings.Join(recs[2][2:], ",") {
		t.Errorf("clip was not replayed: row a %v, row b %v", recs[1][2:], recs[2][2:])
	}

	// The plain pipe command does not know the clip transform: it refuses the bundle and
	// says which program reads it, rather than predicting without clip.
	code, _, stderr = runCmd(t, &cli.Command{}, "predict", "--model", dir, "--input", in, "--output", filepath.Join(t.TempDir(), "q.csv"))
	if code != pipeline.ExitConfig || !strings.Contains(stderr, `no decoder for transform kind "clip"`) {
		t.Errorf("plain pipe on a bundle with clip: exit %d, %s", code, stderr)
	}
}

// TestOpaqueTransformIsRefused registers the same transform through pipeline.TransformStage,
// which cannot be saved: training on its output is refused before any training, with an error
// that says how to make the kind bundleable.
func TestOpaqueTransformIsRefused(t *testing.T) {
	c := command()
	c.Register = func(r *pipeline.Registry) error {
		k := clipKind()
		k.New = func(sc *pipeline.StageConfig) (pipeline.Stage, error) {
			tr := clipTransform{Min: sc.Float("min"), Max: sc.Float("max")}
			return pipeline.TransformStage(clipSchema, func(ctx context.Context, sc *pipeline.StageContext, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
				return tr.Apply(ctx, sc.Mem, rec)
			}), nil
		}
		return r.Register(k)
	}
	dir := filepath.Join(t.TempDir(), "run")
	code, _, stderr := runCmd(t, c, "run", "iris-clipped.toml", "--out", dir, "--log-format", "json", "--no-progress")
	if code != pipeline.ExitFailed {
		t.Fatalf("exit %d, want %d: %s", code, pipeline.ExitFailed, stderr)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Stages map[string]struct {
			Status, Error string
			Metrics       map[string]float64
		}
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	st := m.Stages["model"]
	if st.Status != "failed" || !strings.Contains(st.Error, `stage "clip" (kind clip)`) || !strings.Contains(st.Error, "ReplayableTransformStage") {
		t.Errorf("model stage %s: %q", st.Status, st.Error)
	}
	if _, ok := st.Metrics["train_loss"]; ok {
		t.Errorf("the model trained before the refusal")
	}
	if _, err := os.Stat(filepath.Join(dir, "stages", "model", "bundle", "bundle.json")); err == nil {
		t.Errorf("a bundle was written")
	}
}

func TestDecodeClip(t *testing.T) {
	tr, err := decodeClip([]byte(`{"min":1,"max":2}`))
	if err != nil || tr.(clipTransform) != (clipTransform{1, 2}) {
		t.Fatalf("decode: %v %v", tr, err)
	}
	for _, bad := range []string{`{"min":3,"max":2}`, `{"min":1,"max":2,"x":0}`, `not json`} {
		if _, err := decodeClip([]byte(bad)); err == nil {
			t.Errorf("decode %s: no error", bad)
		}
	}
}

// TestCustomKindsOnTemporal runs the example's pipeline on Temporal: the example's own
// command is the worker (`customstage worker`: cli.Command gives a program's own kinds to its
// worker) and the client; the run succeeds with the model's bundle replaying clip. A plain
// `pipe worker`, another build, refuses the run and says why, and the run directory shows no
// stage as done (an earlier run's stored outputs are not this run's).
func TestCustomKindsOnTemporal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and runs a Temporal server")
	}
	srv := temporaltest.Start(t)
	bins := t.TempDir()
	for name, pkg := range map[string]string{"customstage": ".", "pipe": "../../cmd/pipe"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bins, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	store := filepath.Join(t.TempDir(), "store")
	worker := func(bin, queue string) {
		cmd := exec.Command(filepath.Join(bins, bin), "worker", "--temporal", srv.HostPort(), "--store", store, "--task-queue", queue, "--log-level", "warn")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	worker("customstage", "custom")
	worker("pipe", "plain")

	dir := filepath.Join(t.TempDir(), "run")
	out, err := exec.Command(filepath.Join(bins, "customstage"), "run", "iris-clipped.toml", "--engine", "temporal", "--temporal", srv.HostPort(),
		"--task-queue", "custom", "--store", store, "--out", dir, "--no-progress", "--no-report").CombinedOutput()
	if err != nil {
		t.Fatalf("custom kinds on Temporal: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := pipeline.ReadManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m.Remote == nil || m.Stages["clip"].Remote == nil || m.Stages["clip"].RowsOut != 150 {
		t.Fatalf("clip: %+v, remote %+v", m.Stages["clip"], m.Remote)
	}
	meta, _, err := bundle.ReadMeta(filepath.Join(dir, "stages", "model", "bundle"))
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Preprocessing) == 0 || meta.Preprocessing[0].Kind != "clip" {
		t.Fatalf("bundle preprocessing %+v, want clip first", meta.Preprocessing)
	}

	out, err = exec.Command(filepath.Join(bins, "customstage"), "run", "iris-clipped.toml", "--engine", "temporal", "--temporal", srv.HostPort(),
		"--task-queue", "plain", "--store", store, "--out", filepath.Join(t.TempDir(), "plain"), "--no-progress", "--no-report").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "run the same pipe build everywhere") || strings.Contains(string(out), "cached") {
		t.Fatalf("a plain pipe worker on the custom pipeline: %v\n%s", err, out)
	}
}
