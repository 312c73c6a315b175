package pretrain_test

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pretrain"
)

// Pretrain a denoising autoencoder on unlabelled rows, transfer its encoder into a classifier,
// freeze it for the first epochs and fine-tune with the cosine schedule.
func Example() {
	const rows, cols = 300, 8
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, rows*cols)
	labels := make([]int32, rows)
	for r := range rows {
		z := rng.NormFloat64()
		for c := range cols {
			x[r*cols+c] = float32(z*float64(c%3) + 0.1*rng.NormFloat64())
		}
		if z > 0 {
			labels[r] = 1
		}
	}
	unlabelled := train.Dataset{X: x, NumInputs: cols}
	cfg := pretrain.AutoencoderConfig{
		Encoder: []nn.LayerSpec{{Type: nn.LayerDense, Units: 6, Activation: "relu"}, {Type: nn.LayerDense, Units: 3, Activation: "relu"}},
		Type:    pretrain.TypeDenoising, // mask 25% of the inputs (the defaults)
	}
	tc := train.Config{Epochs: 5, Seed: 1}
	enc, rep, err := pretrain.TrainAutoencoder(context.Background(), cfg, unlabelled, train.Dataset{}, tc)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("encoder layers:", enc.ParamLayers(), "code width:", enc.CodeWidth(), "epochs:", len(rep.ValLoss))

	spec := pretrain.SupervisedSpec(enc, nil, []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 2}})
	m, err := nn.Build(spec, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		fmt.Println(err)
		return
	}
	loaded, err := pretrain.InitFrom(m, enc)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("loaded:", loaded)
	sched := pretrain.UnfreezeSchedule(enc, 2, 0.5) // unfreeze enc_2 after 2 epochs, enc_1 after 4
	if _, err := sched.Apply(m, 0); err != nil {
		fmt.Println(err)
		return
	}
	labelled := train.Dataset{X: x, NumInputs: cols, Targets: []train.Target{{Labels: labels}}}
	res, err := train.Fit(context.Background(), m, labelled, train.Dataset{}, pretrain.FineTuneConfig(train.Config{Epochs: 6, Seed: 1}), pretrain.UnfreezeHook(sched))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("fine-tuned epochs:", res.Epochs)
	// Output:
	// encoder layers: [enc_1 enc_2] code width: 3 epochs: 5
	// loaded: [enc_1/W enc_1/b enc_2/W enc_2/b]
	// fine-tuned epochs: 6
}
