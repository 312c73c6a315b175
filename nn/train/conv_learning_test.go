package train

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/metrics"
)

// TestConvNetLearnsDigits trains small CNNs on the 8×8 digits images (each row's 64 pixels,
// standardised on the training rows, read as a 1×8×8 image): the training loss must fall by
// half and the test accuracy reach 0.95 within 15 epochs (Adam 1e-3, batch 64, seed 1).
func TestConvNetLearnsDigits(t *testing.T) {
	sp := loadSplit(t, "digits", false)
	if sp.numInputs != 64 {
		t.Fatalf("digits has %d features, want 64 (8×8 pixels)", sp.numInputs)
	}
	cases := []struct {
		name   string
		layers []nn.LayerSpec
	}{
		{"conv_pool_dense", []nn.LayerSpec{
			{Type: nn.LayerConv, Filters: 16, Kernel: 3, Padding: nn.PaddingSame, Activation: "relu"},
			{Type: nn.LayerMaxPool},
			{Type: nn.LayerConv, Filters: 32, Kernel: 3, Padding: nn.PaddingSame, Activation: "relu"},
			{Type: nn.LayerMaxPool},
			{Type: nn.LayerFlatten},
			{Type: nn.LayerDense, Units: 64, Activation: "relu"},
		}},
		{"residual_batchnorm_avg_pool", []nn.LayerSpec{
			{Type: nn.LayerConv, Filters: 8, Kernel: 3, Padding: nn.PaddingSame, NoBias: true},
			{Type: nn.LayerBatchNorm},
			{Type: nn.LayerActivation, Activation: "relu"},
			{Type: nn.LayerResidual, Filters: 8, Norm: nn.LayerBatchNorm},
			{Type: nn.LayerResidual, Filters: 16, Stride: 2, Norm: nn.LayerBatchNorm},
			{Type: nn.LayerAvgPool, Kernel: 2, Padding: nn.PaddingSame},
			{Type: nn.LayerFlatten},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := buildModel(t, nn.Spec{NumInputs: 64, InputShape: []int{1, 8, 8}, Layers: tc.layers,
				Heads: []nn.HeadSpec{{Name: "digit", Kind: nn.HeadSoftmax, Classes: sp.classes}}})
			cfg := learningConfig()
			cfg.Epochs = 15
			res, err := Fit(context.Background(), m, sp.train, sp.val, cfg)
			if err != nil {
				t.Fatal(err)
			}
			loss := res.History.Series("loss")
			if !(loss[len(loss)-1] < 0.5*loss[0]) {
				t.Errorf("training loss did not fall by half: first %.4f last %.4f", loss[0], loss[len(loss)-1])
			}
			out := predictDataset(t, m, sp.test)
			acc := metrics.Accuracy(sp.test.Targets[0].Labels, out.Heads[0], out.Width[0])
			t.Logf("%s: test accuracy %.4f after %d epochs (loss %.4f → %.4f)", tc.name, acc, res.Epochs, loss[0], loss[len(loss)-1])
			if acc < 0.95 {
				t.Errorf("test accuracy %.4f below the floor 0.95", acc)
			}
		})
	}
}

// convDigitsSpec is a small CNN on the 1×8×8 digits with every image layer that has state:
// conv, channel batch_norm (running statistics), residual with a strided projection, dropout.
func convDigitsSpec() nn.Spec {
	return nn.Spec{NumInputs: 64, InputShape: []int{1, 8, 8}, Layers: []nn.LayerSpec{
		{Type: nn.LayerConv, Filters: 6, Kernel: 3, Padding: nn.PaddingSame, NoBias: true},
		{Type: nn.LayerBatchNorm},
		{Type: nn.LayerActivation, Activation: "relu"},
		{Type: nn.LayerMaxPool},
		{Type: nn.LayerResidual, Filters: 8, Stride: 2, Norm: nn.LayerBatchNorm, Dropout: 0.1},
		{Type: nn.LayerGlobalAvgPool},
	}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 10}}}
}

// TestConvFitDeterministicAndResumable: a CNN trains to bit-identical weights with 1 and 3
// workers, and a run resumed from its epoch-2 checkpoint (into a model built with other
// weights) ends bit-identical to the uninterrupted run.
func TestConvFitDeterministicAndResumable(t *testing.T) {
	sp := loadSplit(t, "digits", false)
	cfg := Config{Epochs: 4, BatchSize: 64, Seed: 3, EarlyStopping: EarlyStopping{Disabled: true}}
	path := filepath.Join(t.TempDir(), "epoch2.ckpt")
	hook := OnEpochEnd("checkpoint", 0, func(e *EpochInfo) error {
		if e.Epoch != 2 {
			return nil
		}
		c, err := e.Checkpoint()
		if err != nil {
			return err
		}
		return c.Save(path)
	})
	full := buildModel(t, convDigitsSpec())
	if _, err := Fit(context.Background(), full, sp.train, sp.val, cfg, hook); err != nil {
		t.Fatal(err)
	}
	t.Run("workers_3", func(t *testing.T) {
		m := buildModel(t, convDigitsSpec())
		c := cfg
		c.Workers = 3
		if _, err := Fit(context.Background(), m, sp.train, sp.val, c); err != nil {
			t.Fatal(err)
		}
		sameWeights(t, weightsOf(full), weightsOf(m))
	})
	t.Run("resumed", func(t *testing.T) {
		ck, err := LoadCheckpoint(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := nn.Build(convDigitsSpec(), rand.New(rand.NewPCG(77, 78)))
		if err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.Resume = ck
		if _, err := Fit(context.Background(), m, sp.train, sp.val, c); err != nil {
			t.Fatal(err)
		}
		sameWeights(t, weightsOf(full), weightsOf(m))
	})
}
