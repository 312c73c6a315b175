package nn

import (
	"math/rand/v2"
	"testing"

	"github.com/pipe-ml/pipe/nn/optim"
)

// BenchmarkConvTrainStep is one SGD step (forward, loss, backward, update) of a small MNIST
// CNN on a batch of 64 random 1×28×28 images: conv 16 3×3 same relu, max_pool 2, conv 32 3×3
// same relu, max_pool 2, flatten, softmax over 10 classes. One step is
// 2·64·(784·16·9 + 196·32·144) ≈ 130 MFLOP forward; backward is about twice that (the first
// conv's input gradient is not computed). The model uses one GEMM
// worker.
func BenchmarkConvTrainStep(b *testing.B) {
	const batch = 64
	spec := Spec{NumInputs: 784, InputShape: []int{1, 28, 28}, Layers: []LayerSpec{
		{Type: LayerConv, Filters: 16, Kernel: 3, Padding: PaddingSame, Activation: "relu"},
		{Type: LayerMaxPool},
		{Type: LayerConv, Filters: 32, Kernel: 3, Padding: PaddingSame, Activation: "relu"},
		{Type: LayerMaxPool},
		{Type: LayerFlatten},
	}, Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 10}}}
	rng := rand.New(rand.NewPCG(1, 2))
	m, err := Build(spec, rng)
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float32, batch*784)
	for i := range x {
		x[i] = float32(rng.Float64())
	}
	labels := make([]int32, batch)
	for i := range labels {
		labels[i] = int32(rng.IntN(10))
	}
	bt := Batch{Rows: batch, X: x}
	tg := Targets{Heads: []HeadTargets{{Labels: labels}}}
	opt, err := optim.New(optim.Config{Name: "sgd", LR: 0.01})
	if err != nil {
		b.Fatal(err)
	}
	step := func() {
		if _, err := m.TrainStep(bt, tg); err != nil {
			b.Fatal(err)
		}
		opt.Step(m.Params(), 0.01)
	}
	step()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		step()
	}
	b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "samples/s")
}
