package nn

import (
	"math/rand/v2"
	"testing"

	"github.com/pipe-ml/pipe/nn/gemm"
	"github.com/pipe-ml/pipe/nn/optim"
)

// BenchmarkTrainStep is one SGD step of a 784→256→128→10 ReLU MLP with softmax cross-entropy
// on a batch of 128 dense random (non-zero) rows: forward, loss, backward and update. One step
// is 3 × 2 × 128 × (784·256 + 256·128 + 128·10) = 128.9 MFLOP of matrix products (the
// first layer's input gradient is not computed: it has no consumer). Run with -cpu 1.
func BenchmarkTrainStep(b *testing.B) {
	const batch = 128
	spec := Spec{NumInputs: 784, Layers: []LayerSpec{
		{Type: LayerDense, Units: 256, Activation: "relu"},
		{Type: LayerDense, Units: 128, Activation: "relu"},
	}, Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 10}}}
	flop := 2 * float64(batch) * (3*(784*256+256*128+128*10) - 784*256) // no input gradient for the first layer
	for _, be := range gemm.Available() {
		b.Run(be.Name(), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			m, err := Build(spec, rng)
			if err != nil {
				b.Fatal(err)
			}
			m.SetBackend(be)
			x := make([]float32, batch*784)
			for i := range x {
				x[i] = float32(rng.Float64()) + 0.01 // dense, non-zero
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
			step() // allocate buffers and optimizer state
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				step()
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)*batch/sec, "samples/s")
			b.ReportMetric(float64(b.N)*flop/sec/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkTrainStepGEMMOnly runs only the matrix products of BenchmarkTrainStep (same shapes,
// same Parallel row blocking), so the difference between the two is the elementwise work
// (bias, ReLU, softmax cross-entropy, SGD update) and bookkeeping.
func BenchmarkTrainStepGEMMOnly(b *testing.B) {
	const batch = 128
	dims := []int{784, 256, 128, 10}
	flop := 2 * float64(batch) * (3*(784*256+256*128+128*10) - 784*256) // no input gradient for the first layer
	for _, be := range gemm.Available() {
		b.Run(be.Name(), func(b *testing.B) {
			g := gemm.Parallel{Backend: be, Workers: 1}
			rng := rand.New(rand.NewPCG(1, 2))
			fill := func(n int) []float32 {
				s := make([]float32, n)
				for i := range s {
					s[i] = float32(rng.Float64()) + 0.01
				}
				return s
			}
			var w, dw, act, dact [4][]float32
			for l := 0; l < 3; l++ {
				w[l], dw[l] = fill(dims[l]*dims[l+1]), fill(dims[l]*dims[l+1])
			}
			for l := 0; l < 4; l++ {
				act[l], dact[l] = fill(batch*dims[l]), fill(batch*dims[l])
			}
			b.ReportAllocs()
			for b.Loop() {
				for l := 0; l < 3; l++ {
					g.Sgemm(false, false, batch, dims[l+1], dims[l], 1, act[l], dims[l], w[l], dims[l+1], 0, act[l+1], dims[l+1])
				}
				for l := 2; l >= 0; l-- {
					g.Sgemm(true, false, dims[l], dims[l+1], batch, 1, act[l], dims[l], dact[l+1], dims[l+1], 0, dw[l], dims[l+1])
					if l > 0 {
						g.Sgemm(false, true, batch, dims[l], dims[l+1], 1, dact[l+1], dims[l+1], w[l], dims[l+1], 0, dact[l], dims[l])
					}
				}
			}
			b.ReportMetric(float64(b.N)*flop/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
