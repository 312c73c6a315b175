package graphmodel

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"

	"github.com/pipe-ml/pipe/nn"
)

var _ = registerBenchBlock()

func registerBenchBlock() error {
	return Register("gg_bench_mlp_128_64_tanh", mlpBlock(128, 64, gorgonia.Tanh, gorgonia.Tanh), Options{})
}

// BenchmarkTrainStep compares one training step (forward, loss, backward) of the same
// 64 → 128 tanh → 64 tanh → softmax(10) network built from nn's native layers and as a gorgonia
// block, on dense random N(0, 1) inputs (tanh keeps every activation non-zero, so neither GEMM
// can skip zeros).
func BenchmarkTrainStep(b *testing.B) { benchmarkStep(b, true) }

// BenchmarkEvalLoss is the forward pass alone (eval mode) of the networks of
// BenchmarkTrainStep.
func BenchmarkEvalLoss(b *testing.B) { benchmarkStep(b, false) }

func benchmarkStep(b *testing.B, train bool) {
	const in, classes = 64, 10
	head := []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: classes}}
	specs := []struct {
		name   string
		layers []nn.LayerSpec
	}{
		{"native", []nn.LayerSpec{{Type: nn.LayerDense, Units: 128, Activation: "tanh"}, {Type: nn.LayerDense, Units: 64, Activation: "tanh"}}},
		{"gorgonia", []nn.LayerSpec{{Type: nn.LayerCustom, Custom: "gg_bench_mlp_128_64_tanh"}}},
	}
	for _, rows := range []int{32, 256} {
		for _, s := range specs {
			b.Run(fmt.Sprintf("%s/batch_%d", s.name, rows), func(b *testing.B) {
				m, err := nn.Build(nn.Spec{NumInputs: in, Layers: s.layers, Heads: head}, rand.New(rand.NewPCG(1, 2)))
				if err != nil {
					b.Fatal(err)
				}
				batch, tg := randomInputs(rand.New(rand.NewPCG(3, 4)), rows, in, classes)
				if _, err := m.TrainStep(batch, tg); err != nil { // compile outside the timing
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				step := m.EvalLoss
				if train {
					step = m.TrainStep
				}
				for range b.N {
					if _, err := step(batch, tg); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}
