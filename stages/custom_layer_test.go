package stages

import (
	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/features"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// featureScale is a custom block written in plain Go: y = x ⊙ s + b, per feature.
type featureScale struct {
	width   int
	s, b    *optim.Param
	x, y, d []float32
}

func (f *featureScale) OutWidth() int          { return f.width }
func (f *featureScale) Params() []*optim.Param { return []*optim.Param{f.s, f.b} }

func (f *featureScale) Forward(x []float32, rows int, _ bool) ([]float32, error) {
	f.x = x[:rows*f.width]
	f.y = append(f.y[:0], make([]float32, rows*f.width)...)
	for r := 0; r < rows; r++ {
		for j := 0; j < f.width; j++ {
			f.y[r*f.width+j] = x[r*f.width+j]*f.s.Value[j] + f.b.Value[j]
		}
	}
	return f.y, nil
}

func (f *featureScale) Backward(dy []float32, rows int, needDX bool) ([]float32, error) {
	clear(f.s.Grad)
	clear(f.b.Grad)
	f.d = append(f.d[:0], make([]float32, rows*f.width)...)
	for r := 0; r < rows; r++ {
		for j := 0; j < f.width; j++ {
			g := dy[r*f.width+j]
			f.s.Grad[j] += g * f.x[r*f.width+j]
			f.b.Grad[j] += g
			f.d[r*f.width+j] = g * f.s.Value[j]
		}
	}
	if !needDX {
		return nil, nil
	}
	return f.d, nil
}

var registerFeatureScale = sync.OnceValue(func() error {
	return nn.RegisterCustom("test_feature_scale", func(cfg nn.CustomConfig, _ *rand.Rand) (nn.CustomLayer, error) {
		f := &featureScale{width: cfg.InWidth,
			s: &optim.Param{Name: "s", Shape: []int{cfg.InWidth}, Value: make([]float32, cfg.InWidth), Grad: make([]float32, cfg.InWidth), NoDecay: true},
			b: &optim.Param{Name: "b", Shape: []int{cfg.InWidth}, Value: make([]float32, cfg.InWidth), Grad: make([]float32, cfg.InWidth), NoDecay: true}}
		for j := range f.s.Value {
			f.s.Value[j] = 1
		}
		return f, nil
	})
})

// TestCustomBlockInTOML: a block registered from Go is named in a train stage's TOML layers,
// trains with the stage's optimizer and early stopping, lands in the bundle, and the bundle
// loads again (in a program that registered it) with the same predictions.
func TestCustomBlockInTOML(t *testing.T) {
	if err := registerFeatureScale(); err != nil {
		t.Fatal(err)
	}
	src := `
[pipeline]
seed = 4
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
layers = [ { dense = 32 }, { custom = "test_feature_scale", name = "scale" } ]
epochs = 15
[stages.eval]
kind = "evaluate"
models = ["model.model"]
tables = ["normalize.test"]
[stages.scores]
kind = "predict"
model = "model.model"
input = "split.test"
[stages.save]
kind = "write"
input = "scores"
path = "scores.csv"
`
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	if acc := m.Stages["eval"].Metrics["test_accuracy"]; acc < 0.90 {
		t.Errorf("test accuracy %.3f with a custom block, want ≥ 0.90", acc)
	}
	p, err := bundle.Load(filepath.Join(dir, "stages/model/bundle"), features.Decoders())
	if err != nil {
		t.Fatal(err)
	}
	b := p.(*bundle.Bundle)
	var found bool
	for _, l := range b.Model.Spec().Layers {
		found = found || (l.Type == nn.LayerCustom && l.Custom == "test_feature_scale" && l.Name == "scale")
	}
	if !found {
		t.Errorf("the bundle's layers lack the custom block: %+v", b.Model.Spec().Layers)
	}
	header, byRow := predictCSV(t, p, "../datasets/data/digits/digits.csv")
	samePredictions(t, readCSV(t, filepath.Join(dir, "stages/save/scores.csv")), header, byRow)
	// The block's parameters were trained (moved from their initial values).
	var moved bool
	for _, prm := range b.Model.Params() {
		if prm.Name == "scale/s" {
			for _, v := range prm.Value {
				moved = moved || v != 1
			}
		}
	}
	if !moved {
		t.Error("the custom block's scale did not train")
	}
}
