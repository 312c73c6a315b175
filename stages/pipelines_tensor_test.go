package stages

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/pipeline"
)

// TestTensorPipelineEqualsPerPixel runs pipelines/mnist-cnn-tensor.toml at small scale twice:
// as written (the pixels as one tensor column) and with the per-pixel columns
// (load.image_column unset, image = true). Same seed, same rows: the saved models must be
// equal bit for bit, and the bundles must record their own inputs (the tensor column with its
// shape, or the 784 columns).
func TestTensorPipelineEqualsPerPixel(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	small := []string{"load.limit=600", "model.epochs=2"}
	if raceEnabled {
		small = []string{"load.limit=200", "model.epochs=1"}
	}
	run := func(extra ...string) string {
		t.Helper()
		p, err := pipeline.Load("../pipelines/mnist-cnn-tensor.toml", registry(t), pipeline.LoadOptions{Overrides: append(append([]string(nil), small...), extra...)})
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "run")
		if _, err := pipeline.Run(context.Background(), p, pipeline.RunOptions{Dir: dir, Mem: mem}); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, "stages/model/bundle")
	}
	tensor := run()
	perPixel := run("load.image_column=", "model.image=true")
	for _, f := range []string{"model/weights.bin", "model/model.json"} {
		a, errA := os.ReadFile(filepath.Join(tensor, f))
		b, errB := os.ReadFile(filepath.Join(perPixel, f))
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the tensor and the per-pixel runs (%d and %d bytes)", f, len(a), len(b))
		}
	}
	bt, err := bundle.LoadModel(tensor)
	if err != nil {
		t.Fatal(err)
	}
	bp, err := bundle.LoadModel(perPixel)
	if err != nil {
		t.Fatal(err)
	}
	if tp := bt.Meta.Plan.Tensors; len(tp) != 1 || tp[0].Column != "pixels" || tp[0].Size != 784 || len(bt.Meta.Plan.Numeric) != 0 {
		t.Errorf("tensor bundle plan: tensors %+v, %d numeric", tp, len(bt.Meta.Plan.Numeric))
	}
	if len(bp.Meta.Plan.Tensors) != 0 || len(bp.Meta.Plan.Numeric) != 784 {
		t.Errorf("per-pixel bundle plan: tensors %+v, %d numeric", bp.Meta.Plan.Tensors, len(bp.Meta.Plan.Numeric))
	}
}
