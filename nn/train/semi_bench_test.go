package train

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// mnistShaped returns rows random 784-pixel rows in [0, 1) with labels of 10 classes (the
// MNIST shape; the values do not matter for the step time).
func mnistShaped(seed uint64, rows int) Dataset {
	rng := rand.New(rand.NewPCG(seed, 11))
	d := Dataset{NumInputs: 784, X: make([]float32, rows*784)}
	for i := range d.X {
		d.X[i] = rng.Float32()
	}
	labels := make([]int32, rows)
	for i := range labels {
		labels[i] = int32(rng.IntN(10))
	}
	d.Targets = []Target{{Labels: labels}}
	return d
}

// BenchmarkSemiStep measures the training steps of the semi-supervised methods at the widths
// and batches of the MNIST pipelines (bench/semi): 900 labelled rows and a pool of 8,192
// unlabelled ones, one GEMM worker, one epoch of 29 steps per iteration (model building
// excluded). steps/s is optimizer steps per second; samples/s counts labelled and unlabelled
// rows of each step.
//
//   - supervised, vat, vat_ent: the 512-256 MLP of pipelines/mnist-semisupervised-vat.toml,
//     32 labelled + 128 unlabelled rows a step (supervised: 32).
//   - gamma, full: the ladder's 1000-500-250-250-250 batch-normalised layers with noise 0.3
//     (pipelines/mnist-semisupervised-ladder.toml), 32 + 128 rows a step.
func BenchmarkSemiStep(b *testing.B) {
	lab, unl := mnistShaped(1, 900), mnistShaped(2, 8192)
	unl.Targets = nil
	val := mnistShaped(3, 100)
	mlp := []nn.LayerSpec{{Type: nn.LayerDense, Units: 512, Activation: "relu"}, {Type: nn.LayerDense, Units: 256, Activation: "relu"}}
	ladder := ladderLayers(0.3, 1000, 500, 250, 250, 250)
	for _, tc := range []struct {
		name   string
		layers []nn.LayerSpec
		semi   *Semi
	}{
		{"supervised", mlp, nil},
		{"vat", mlp, &Semi{Method: SemiVAT, Unlabeled: unl, UnlabeledBatch: 128}},
		{"vat_ent", mlp, &Semi{Method: SemiVAT, Unlabeled: unl, UnlabeledBatch: 128, Entropy: true}},
		{"gamma", ladder, &Semi{Method: SemiLadder, Unlabeled: unl, UnlabeledBatch: 128}},
		{"full", ladder, &Semi{Method: SemiLadder, Unlabeled: unl, UnlabeledBatch: 128, Decoder: "full",
			Weights: []float64{1000, 10, 0.1, 0.1, 0.1, 0.1, 0.1}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			spec := nn.Spec{NumInputs: 784, Layers: tc.layers, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 10}}}
			cfg := Config{Epochs: 1, BatchSize: 32, Seed: 1, Workers: 1, Optimizer: optim.Config{LR: 1e-3},
				EarlyStopping: EarlyStopping{Disabled: true}, Semi: tc.semi}
			steps, rows := 0, 0
			for b.Loop() {
				b.StopTimer()
				m, err := nn.Build(spec, rand.New(rand.NewPCG(1, 2)))
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := Fit(context.Background(), m, lab, val, cfg); err != nil {
					b.Fatal(err)
				}
				n := (lab.Len() + cfg.BatchSize - 1) / cfg.BatchSize
				steps += n
				rows += lab.Len()
				if tc.semi != nil {
					rows += n * tc.semi.UnlabeledBatch
				}
			}
			b.ReportMetric(float64(steps)/b.Elapsed().Seconds(), "steps/s")
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
