package stages

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/pipeline"
)

// TestInterruptedTrainKeepsBestWeights cancels a run (as Ctrl-C does) while its train stage
// is in epoch 4 of 400: the stage ends canceled, but the best weights so far are saved as a
// bundle marked partial, which loads and predicts.
func TestInterruptedTrainKeepsBestWeights(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src := `
[pipeline]
seed = 2
[stages.load]
kind = "dataset"
name = "digits"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val"]
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 32 } ]
epochs = 400
early_stopping = { patience = 400 }
`
	p, err := pipeline.Parse([]byte(src), "partial.toml", ".", registry(t), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	dir := filepath.Join(t.TempDir(), "run")
	res, err := pipeline.Run(ctx, p, pipeline.RunOptions{Dir: dir, Mem: mem, Progress: func(ev pipeline.Event) {
		if ev.Stage == "model" && ev.Unit == "epoch" && ev.Done == 3 {
			cancel(pipeline.ErrCanceled)
		}
	}})
	if !errors.Is(err, pipeline.ErrCanceled) {
		t.Fatalf("run error %v, want canceled", err)
	}
	m := res.Manifest
	st := m.Stages["model"]
	if m.Status != pipeline.StatusCanceled || st.Status != pipeline.StatusCanceled {
		t.Fatalf("run %s, stage %s", m.Status, st.Status)
	}
	if st.Info["partial"] != true {
		t.Fatalf("stage info %v: not marked partial", st.Info)
	}
	if e, _ := st.Info["epochs"].(int); e < 3 || e > 5 {
		t.Errorf("epochs run %v, want about 3", st.Info["epochs"])
	}
	b, err := bundle.Load(filepath.Join(dir, "stages", "model", "bundle"), features.Decoders())
	if err != nil {
		t.Fatal(err)
	}
	if !b.Base().Meta.Partial {
		t.Error("bundle.json does not say partial")
	}
	if _, err := os.Stat(filepath.Join(dir, "stages", "model", "history.csv")); err != nil {
		t.Errorf("history of the interrupted training: %v", err)
	}
}
