package nn

import (
	"math/rand/v2"
	"testing"

	"github.com/pipe-ml/pipe/nn/optim"
)

// benchTrainStep times one SGD step (forward, loss, backward, update) of the model spec on a
// batch of 64 random inputs with one GEMM worker, and reports samples/s (wall clock) and
// samples/cpu-s (over the process's CPU time: on a loaded machine it is the steadier figure;
// run with GOMAXPROCS=1 so that it is one thread's).
func benchTrainStep(b *testing.B, spec Spec) {
	b.Helper()
	const batch = 64
	rng := rand.New(rand.NewPCG(1, 2))
	m, err := Build(spec, rng)
	if err != nil {
		b.Fatal(err)
	}
	m.SetWorkers(1)
	x := make([]float32, batch*spec.NumInputs)
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
	cpu0 := processCPUTime()
	for b.Loop() {
		step()
	}
	cpu := processCPUTime() - cpu0
	b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "samples/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)*batch/cpu.Seconds(), "samples/cpu-s")
	}
}

// BenchmarkConvTrainStep is a small MNIST CNN on 1×28×28: conv 16 3×3 same relu, max_pool 2,
// conv 32 3×3 same relu, max_pool 2, flatten, softmax over 10 classes. One step is
// 2·64·(784·16·9 + 196·32·144) ≈ 130 MFLOP forward; backward is about twice that (the first
// conv's input gradient is not computed).
func BenchmarkConvTrainStep(b *testing.B) {
	benchTrainStep(b, Spec{NumInputs: 784, InputShape: []int{1, 28, 28}, Layers: []LayerSpec{
		{Type: LayerConv, Filters: 16, Kernel: 3, Padding: PaddingSame, Activation: "relu"},
		{Type: LayerMaxPool},
		{Type: LayerConv, Filters: 32, Kernel: 3, Padding: PaddingSame, Activation: "relu"},
		{Type: LayerMaxPool},
		{Type: LayerFlatten},
	}, Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 10}}})
}

// The BenchmarkConvPeer* benchmarks are the networks of bench/conv/torch_conv.py (the PyTorch
// peer; bench/conv/run.sh runs both side by side), case by case.

// BenchmarkConvPeerCNN is case cnn: conv 32 3×3 same relu, conv 64 3×3 same relu, max_pool 2,
// flatten, dense 128 relu, softmax over 10 classes, on 1×28×28.
func BenchmarkConvPeerCNN(b *testing.B) {
	benchTrainStep(b, Spec{NumInputs: 784, InputShape: []int{1, 28, 28}, Layers: []LayerSpec{
		{Type: LayerConv, Filters: 32, Kernel: 3, Padding: PaddingSame, Activation: "relu"},
		{Type: LayerConv, Filters: 64, Kernel: 3, Padding: PaddingSame, Activation: "relu"},
		{Type: LayerMaxPool},
		{Type: LayerFlatten},
		{Type: LayerDense, Units: 128, Activation: "relu"},
	}, Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 10}}})
}

// BenchmarkConvPeerConv1x1 is case conv1x1: conv 32 1×1 relu on 64×14×14, global_avg_pool,
// softmax over 10 classes.
func BenchmarkConvPeerConv1x1(b *testing.B) {
	benchTrainStep(b, Spec{NumInputs: 64 * 14 * 14, InputShape: []int{64, 14, 14}, Layers: []LayerSpec{
		{Type: LayerConv, Filters: 32, Kernel: 1, Activation: "relu"},
		{Type: LayerGlobalAvgPool},
	}, Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 10}}})
}

// BenchmarkConvPeerResidual is case residual: a residual block of 32 filters (x + conv_b(relu(
// conv_a(x))), 3×3 same, no norm) on 32×14×14, global_avg_pool, softmax over 10 classes.
func BenchmarkConvPeerResidual(b *testing.B) {
	benchTrainStep(b, Spec{NumInputs: 32 * 14 * 14, InputShape: []int{32, 14, 14}, Layers: []LayerSpec{
		{Type: LayerResidual, Filters: 32},
		{Type: LayerGlobalAvgPool},
	}, Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 10}}})
}

// BenchmarkConvIm2colShift times one image's im2col for the 3×3 same convolutions of case
// residual (32 channels, 14×14): the shift path.
func BenchmarkConvIm2colShift(b *testing.B) {
	cv, err := newConv("c", 32, 14, 14, 32, 3, 1, PaddingSame, actReLU, true)
	if err != nil {
		b.Fatal(err)
	}
	cv.alloc(1)
	x := make([]float32, cv.inWidth())
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	cpu0 := processCPUTime()
	for b.Loop() {
		cv.im2col(x, cv.col)
	}
	b.ReportMetric(float64((processCPUTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}
