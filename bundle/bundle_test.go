package bundle

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/schema"
)

// savedBundle trains nothing: it builds a seeded model with a shift step in front and saves
// it, returning the bundle, its directory and a raw input batch (released by the caller).
func savedBundle(t *testing.T, mem memory.Allocator) (*Bundle, string, arrow.RecordBatch) {
	t.Helper()
	plan := &InputPlan{Numeric: []string{"a", "b"}, Targets: []TargetPlan{{Column: "y", Task: TaskClassification, Head: "out", Labels: []string{"p", "q", "r"}}},
		Schema: []ColumnEntry{{Name: "a"}, {Name: "b"}}}
	raw := record(t, mem, col{name: "a", vals: []float64{1, -2, 3}}, col{name: "b", vals: []float64{0.5, 0.25, -1}},
		col{name: "y", role: schema.RoleTarget, vals: []string{"p", "q", "r"}})
	steps := []Step{
		{Stage: "shift_a", Kind: "shift", Transform: newShift("a", 3), Input: raw.Schema()},
		{Stage: "aug", Kind: "augment", TrainOnly: true},
	}
	b, err := New("model", smallModel(t, plan), plan, steps, raw.Schema())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run", "stages", "model", "bundle")
	if err := b.Save(dir); err != nil {
		t.Fatal(err)
	}
	return b, dir, raw
}

func predictAll(t *testing.T, p Predictor, rec arrow.RecordBatch, mem memory.Allocator) []float32 {
	t.Helper()
	r := reader(t, rec)
	defer r.Release()
	var probs []float32
	_, err := Predict(context.Background(), p, r, mem, PredictOptions{}, func(out arrow.RecordBatch) error {
		for c := 2; c < int(out.NumCols()); c++ {
			for i := 0; i < int(out.NumRows()); i++ {
				probs = append(probs, out.Column(c).(interface{ Value(int) float32 }).Value(i))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return probs
}

func TestSaveLoadRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b, dir, raw := savedBundle(t, mem)
	defer raw.Release()
	if got := len(b.Meta.Preprocessing); got != 1 || b.Meta.Preprocessing[0].Kind != "shift" {
		t.Fatalf("preprocessing %v: the shift step only (augment is train-only)", b.Meta.Preprocessing)
	}
	if len(b.Meta.Input) != 2 || b.Meta.Input[0].Name != "a" {
		t.Errorf("input columns %v, want a and b (not the target)", b.Meta.Input)
	}
	p, err := Load(dir, shiftDecoders(t))
	if err != nil {
		t.Fatal(err)
	}
	want := predictAll(t, b, raw, mem)
	got := predictAll(t, p, raw, mem)
	if len(want) != 9 || len(got) != len(want) {
		t.Fatalf("%d and %d probabilities", len(want), len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("loaded bundle predicts %v, saved one %v", got, want)
		}
	}
	// The step was replayed: without it the first row's input is a=1, not 4.
	noShift := *b
	noShift.Pre = []Transform{newShift("a", 0)}
	if same := predictAll(t, &noShift, raw, mem); same[0] == want[0] && same[1] == want[1] {
		t.Errorf("predictions do not depend on the saved step")
	}
	// The bundle, its stage directory and its run directory all resolve to it.
	for _, path := range []string{dir, filepath.Dir(dir)} {
		if got, err := Resolve(path); err != nil || got != dir {
			t.Errorf("Resolve(%s) = %s, %v", path, got, err)
		}
	}
	run := filepath.Dir(filepath.Dir(filepath.Dir(dir)))
	if err := os.WriteFile(filepath.Join(run, "manifest.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Resolve(run); err != nil || got != dir {
		t.Errorf("Resolve(run dir) = %s, %v", got, err)
	}
	if err := os.MkdirAll(filepath.Join(run, "stages", "other", "bundle"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "stages", "other", "bundle", MetaFile), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(run); err == nil || !strings.Contains(err.Error(), "2 model bundles") || !strings.Contains(err.Error(), filepath.Join("stages", "other", "bundle")) {
		t.Errorf("Resolve(run with two bundles): %v", err)
	}
	// Saving twice into one directory is refused.
	if err := b.Save(dir); err == nil {
		t.Errorf("a second Save into %s succeeded", dir)
	}
}

// TestDamagedBundleIsRefused flips one byte in every file of a saved bundle in turn, and
// removes each: Load must refuse every variant and name the file.
func TestDamagedBundleIsRefused(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	_, dir, raw := savedBundle(t, mem)
	raw.Release()
	meta, _, err := ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{MetaFile}
	for f := range meta.Files {
		files = append(files, f)
	}
	if len(files) < 4 { // bundle.json, pre_01_shift.json, model/model.json, model/weights.bin
		t.Fatalf("files %v", files)
	}
	for _, f := range files {
		path := filepath.Join(dir, filepath.FromSlash(f))
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range []int{len(orig) / 2, len(orig) - 2} {
			bad := append([]byte(nil), orig...)
			bad[at] ^= 0x01 // one bit
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(dir, shiftDecoders(t)); err == nil {
				t.Errorf("%s with byte %d flipped: loaded", f, at)
			} else if f != MetaFile && !strings.Contains(err.Error(), f) {
				t.Errorf("%s damaged: error %q does not name the file", f, err)
			}
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir, shiftDecoders(t)); err == nil {
			t.Errorf("%s removed: loaded", f)
		}
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir, shiftDecoders(t)); err != nil {
			t.Fatalf("%s restored: %v", f, err)
		}
	}
}

func TestFormatVersions(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	_, dir, raw := savedBundle(t, mem)
	raw.Release()
	path := filepath.Join(dir, MetaFile)
	orig, _ := os.ReadFile(path)
	// A newer format is refused with a clear message.
	newer := strings.Replace(string(orig), `"format_version": 2`, `"format_version": 3`, 1)
	if err := os.WriteFile(path, []byte(newer), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, shiftDecoders(t)); err == nil || !strings.Contains(err.Error(), "format version 3") {
		t.Errorf("version 3: %v", err)
	}
	// Version 1 (no checksums, written by earlier pipe) still loads, unverified.
	old := strings.Replace(string(orig), `"format_version": 2`, `"format_version": 1`, 1)
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(dir, shiftDecoders(t))
	if err != nil {
		t.Fatalf("version 1: %v", err)
	}
	if s := Summary(p); !strings.Contains(s, "no checksums") {
		t.Errorf("summary of a version-1 bundle does not say it is unverified:\n%s", s)
	}
}

func TestDecoders(t *testing.T) {
	d := shiftDecoders(t)
	if err := d.Register("shift", func([]byte) (Transform, error) { return nil, nil }); err == nil {
		t.Error("a duplicate kind was registered")
	}
	if err := d.Register("", func([]byte) (Transform, error) { return nil, nil }); err == nil {
		t.Error("an empty kind was registered")
	}
	if _, err := d.Decode("scale", nil); err == nil || !strings.Contains(err.Error(), `no decoder for transform kind "scale"`) || !strings.Contains(err.Error(), "shift") {
		t.Errorf("unknown kind: %v", err)
	}
	if err := d.Register("liar", func([]byte) (Transform, error) { return newShift("a", 1), nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decode("liar", nil); err == nil {
		t.Error("a decoder returning another kind was accepted")
	}
}

func TestCheckStepsRefusesOpaque(t *testing.T) {
	err := CheckSteps([]Step{{Stage: "n", Kind: "normalize", Transform: newShift("a", 1)}, {Stage: "clip", Kind: "clip"}})
	if err == nil || !strings.Contains(err.Error(), `stage "clip" (kind clip)`) || !strings.Contains(err.Error(), "ReplayableTransformStage") {
		t.Errorf("opaque step: %v", err)
	}
	if err := CheckSteps([]Step{{Stage: "aug", Kind: "augment", TrainOnly: true}}); err != nil {
		t.Errorf("train-only step refused: %v", err)
	}
	if _, err := New("m", nil, &InputPlan{}, []Step{{Stage: "clip", Kind: "clip"}}, arrow.NewSchema(nil, nil)); err == nil {
		t.Error("New bundled an opaque step")
	}
}

func TestSavedFilesAreReadableByOthers(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	_, dir, raw := savedBundle(t, mem)
	raw.Release()
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Mode().Perm()&0o044 != 0o044 {
			t.Errorf("%s has mode %v: not readable by group and others", path, info.Mode().Perm())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
