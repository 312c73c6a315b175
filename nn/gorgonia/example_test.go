package graphmodel_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"strconv"

	"gorgonia.org/gorgonia"

	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/nn"
	graphmodel "github.com/pipe-ml/pipe/nn/gorgonia"
	"github.com/pipe-ml/pipe/nn/metrics"
	"github.com/pipe-ml/pipe/nn/optim"
	"github.com/pipe-ml/pipe/nn/train"
)

// gatedUnit is a custom block written in gorgonia: a 64-wide gated unit
// tanh(x·Wa + ba) ⊙ σ(x·Wg + bg). Its learnables draw their initial values from rng, so the
// model depends only on its seed.
func gatedUnit(g *gorgonia.ExprGraph, x *gorgonia.Node, rng *rand.Rand) (*gorgonia.Node, error) {
	const units = 64
	in := x.Shape()[1]
	affine := func(tag string) (*gorgonia.Node, error) {
		w := gorgonia.NewMatrix(g, gorgonia.Float32, gorgonia.WithShape(in, units), gorgonia.WithName("W"+tag),
			gorgonia.WithInit(graphmodel.GlorotUniform(rng)))
		b := gorgonia.NewVector(g, gorgonia.Float32, gorgonia.WithShape(units), gorgonia.WithName("b"+tag),
			gorgonia.WithInit(gorgonia.Zeroes()))
		xw, err := gorgonia.Mul(x, w)
		if err != nil {
			return nil, err
		}
		return gorgonia.BroadcastAdd(xw, b, nil, []byte{0})
	}
	a, err := affine("a")
	if err != nil {
		return nil, err
	}
	gate, err := affine("g")
	if err != nil {
		return nil, err
	}
	if a, err = gorgonia.Tanh(a); err != nil {
		return nil, err
	}
	if gate, err = gorgonia.Sigmoid(gate); err != nil {
		return nil, err
	}
	return gorgonia.HadamardProd(a, gate)
}

// Register the block once, before any model using it is built or loaded.
func init() {
	if err := graphmodel.Register("gated_unit", gatedUnit, graphmodel.Options{}); err != nil {
		panic(err)
	}
}

// Train a model whose trunk is the gorgonia block on the embedded digits dataset, with the
// same trainer features as a native model: Adam, a cosine schedule, gradient clipping, EMA of
// the weights and early stopping.
func Example() {
	sets, err := loadDigits()
	if err != nil {
		fmt.Println(err)
		return
	}
	spec := nn.Spec{NumInputs: 64,
		Layers: []nn.LayerSpec{{Type: nn.LayerCustom, Custom: "gated_unit"}},
		Heads:  []nn.HeadSpec{{Name: "digit", Kind: nn.HeadSoftmax, Classes: 10}}}
	model, err := nn.Build(spec, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := train.Fit(context.Background(), model, sets["train"], sets["val"], train.Config{
		Epochs:        30,
		BatchSize:     64,
		Seed:          1,
		Optimizer:     optim.Config{Name: "adam", LR: 3e-3},
		Schedule:      optim.ScheduleConfig{Name: "cosine"},
		ClipNorm:      1,
		EMADecay:      0.99,
		EarlyStopping: train.EarlyStopping{Metric: "val_loss", Patience: 5},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	loss := res.History.Series("loss")
	test := sets["test"]
	b := nn.Batch{Rows: test.Len(), X: test.X}
	out, err := model.Predict(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	acc := metrics.Accuracy(test.Targets[0].Labels, out.Heads[0], out.Width[0])
	fmt.Println("params:", len(model.Params()), "(custom_1/Wa, custom_1/ba, custom_1/Wg, custom_1/bg, head_digit/W, head_digit/b)")
	fmt.Println("training loss fell:", loss[len(loss)-1] < loss[0]/4)
	fmt.Println("test accuracy >= 0.95:", acc >= 0.95)
	// Output:
	// params: 6 (custom_1/Wa, custom_1/ba, custom_1/Wg, custom_1/bg, head_digit/W, head_digit/b)
	// training loss fell: true
	// test accuracy >= 0.95: true
}

// loadDigits reads the embedded digits dataset and its shipped train/val/test split; pixels
// (0–16) are scaled to [0, 1].
func loadDigits() (map[string]train.Dataset, error) {
	raw, err := datasets.CSV("digits")
	if err != nil {
		return nil, err
	}
	split, err := datasets.SplitColumn("digits")
	if err != nil {
		return nil, err
	}
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("digits: %w", err)
	}
	recs = recs[1:]
	if len(recs) != len(split) {
		return nil, fmt.Errorf("digits: %d rows but %d split entries", len(recs), len(split))
	}
	sets := map[string]train.Dataset{}
	for i, rec := range recs {
		d := sets[split[i]]
		d.NumInputs = len(rec) - 1
		for _, field := range rec[:d.NumInputs] {
			v, err := strconv.ParseFloat(field, 64)
			if err != nil {
				return nil, fmt.Errorf("digits row %d: %w", i+1, err)
			}
			d.X = append(d.X, float32(v/16))
		}
		label, err := strconv.Atoi(rec[d.NumInputs])
		if err != nil {
			return nil, fmt.Errorf("digits row %d target: %w", i+1, err)
		}
		if d.Targets == nil {
			d.Targets = []train.Target{{}}
		}
		d.Targets[0].Labels = append(d.Targets[0].Labels, int32(label))
		sets[split[i]] = d
	}
	return sets, nil
}
