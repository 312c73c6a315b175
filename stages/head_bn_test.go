package stages

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/bundle"
)

// TestHeadBatchNormPipeline trains digits with head_batch_norm, head_noise and recompute_bn
// (the batch norms' statistics recomputed after training, recorded in the manifest): the model
// learns (test accuracy above a floor), the saved bundle's softmax head carries its batch
// norm (scale, shift and running statistics) and its noise, and a model with only a
// regression head refuses either key with an error that names it.
func TestHeadBatchNormPipeline(t *testing.T) {
	epochs := "40"
	if raceEnabled {
		epochs = "10"
	}
	src := `
[pipeline]
seed = 2
[stages.load]
kind = "dataset"
name = "digits"
peer_split = true
[stages.split]
kind = "split"
input = "load"
split_column = "split"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 128, activation = "linear" }, { batch_norm = true }, { activation = "relu" } ]
head_batch_norm = true
head_noise = 0.3
recompute_bn = true
epochs = ` + epochs + `
[stages.eval]
kind = "evaluate"
models = ["model.model"]
tables = ["scale.test"]
`
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	floor := 0.95
	if raceEnabled {
		floor = 0.9
	}
	acc := m.Stages["eval"].Metrics["test_accuracy"]
	t.Logf("digits test accuracy with head batch norm %.4f", acc)
	if acc < floor {
		t.Errorf("test accuracy %.3f, below %.2f", acc, floor)
	}
	// recompute_bn: the manifest records it, and the stage's validation metrics are those after.
	info, _ := m.Stages["model"].Info["recompute_bn"].(map[string]any)
	t.Logf("recompute_bn: %v", info)
	if rows, _ := info["rows"].(float64); rows < 100 {
		t.Fatalf("recompute_bn info %v: want the training rows counted", info)
	}
	metric, _ := info["metric"].(string)
	if after, _ := info["after"].(float64); metric == "" || after != m.Stages["model"].Metrics[metric] {
		t.Errorf("recompute_bn: %s after %v, the stage reports %v", metric, after, m.Stages["model"].Metrics[metric])
	}
	b, err := bundle.LoadModel(filepath.Join(dir, "stages/model/bundle"))
	if err != nil {
		t.Fatal(err)
	}
	if hs := b.Model.Spec().Heads; len(hs) != 1 || !hs[0].BatchNorm || hs[0].Noise != 0.3 {
		t.Fatalf("the bundle's heads %+v, want one with batch_norm and noise 0.3", hs)
	}
	for _, name := range []string{"head_out/bn/gamma", "head_out/bn/beta", "head_out/bn/running_mean", "head_out/bn/running_var"} {
		p := b.Model.Param(name)
		if p == nil {
			t.Fatalf("the bundle lacks %s", name)
		}
		moved := false
		for _, v := range p.Value {
			moved = moved || (v != 0 && v != 1)
		}
		if !moved {
			t.Errorf("%s = %v: never trained or updated", name, p.Value)
		}
	}
	for _, key := range []string{"head_batch_norm = true", "head_noise = 0.3"} {
		reg := `
[stages.load]
kind = "dataset"
name = "diabetes"
[stages.model]
kind = "train"
train = "load"
target = "target"
` + key + `
epochs = 1
`
		name := strings.Fields(key)[0]
		if _, _, err := runTOML(t, ".", reg); err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), `"model"`) || !strings.Contains(err.Error(), "test.toml:9:") {
			t.Errorf("%s on a regression model: %v", name, err)
		} else {
			t.Logf("regression model: %v", err)
		}
	}
}
