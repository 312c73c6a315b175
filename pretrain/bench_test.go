package pretrain

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// randomNonZero returns n values uniform in [0.05, 1) (dense and non-zero: gonum's GEMM skips
// zeros).
func randomNonZero(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(0.05 + 0.95*rng.Float64())
	}
	return x
}

// BenchmarkCorruptMask measures the masking corruption of a denoising autoencoder on an
// MNIST-shaped batch (256 × 784).
func BenchmarkCorruptMask(b *testing.B) {
	const rows, cols = 256, 784
	src := randomNonZero(rows*cols, 1)
	batch := nn.Batch{Rows: rows, X: make([]float32, rows*cols)}
	c := &corruptor{kind: CorruptMask, rate: 0.25}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		copy(batch.X, src)
		c.augment(&batch, nil, rng)
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N*rows)/s, "samples/s")
	b.ReportMetric(float64(b.N*rows*cols*4)/s/1e9, "GB/s")
}

// BenchmarkDenoisingAutoencoderEpoch measures one epoch of a 784-512-256 denoising
// autoencoder (untied, mask 0.25, batch 256) on 4,096 random rows, on 2 workers.
func BenchmarkDenoisingAutoencoderEpoch(b *testing.B) {
	const rows, cols = 4096, 784
	x := randomNonZero(rows*cols, 2)
	data := train.Dataset{X: x, NumInputs: cols}
	cfg := AutoencoderConfig{Encoder: encoderLayers(512, 256), Type: TypeDenoising}
	tc := train.Config{Epochs: 1, BatchSize: 256, Workers: 2, TrainMetricRows: 1, EarlyStopping: train.EarlyStopping{Disabled: true}}
	val := train.Dataset{X: x, NumInputs: cols, Index: []int{0}}
	// Multiply-adds per row: forward 784·512 + 512·256 + 256·512 + 512·784, ×3 with backward.
	flopsPerRow := 3 * 2 * float64(784*512+512*256+256*512+512*784)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := TrainAutoencoder(context.Background(), cfg, data, val, tc); err != nil {
			b.Fatal(err)
		}
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N*rows)/s, "samples/s")
	b.ReportMetric(float64(b.N*rows)*flopsPerRow/s/1e9, "GFLOP/s")
}
