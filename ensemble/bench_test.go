package ensemble

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// BenchmarkTrain8Members trains a bootstrap bag of 8 small MLPs (32 inputs, 64-32 ReLU, 10
// classes, 5 epochs of batch 64 over 2000 rows, 500 validation rows) on dense random Gaussian
// data, with 1 and 2 members at a time. members/s counts whole members trained (including
// validation and OOB predictions and the combiner fit); samples/s counts training rows
// processed (members × epochs × rows).
func BenchmarkTrain8Members(b *testing.B) {
	const rows, valRows, d, k, epochs, members = 2000, 500, 32, 10, 5, 8
	data := blobs(rows+valRows, d, k, 1)
	trainSet, val := data.Subset(seq(0, rows)), data.Subset(seq(rows, rows+valRows))
	member := Member{
		Spec: nn.Spec{NumInputs: d,
			Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 64, Activation: "relu"}, {Type: nn.LayerDense, Units: 32, Activation: "relu"}},
			Heads:  []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: k}}},
		Train: train.Config{Epochs: epochs, BatchSize: 64, EarlyStopping: train.EarlyStopping{Disabled: true}},
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers_%d", workers), func(b *testing.B) {
			cfg := Config{Members: members, Base: member, Bootstrap: true, Workers: workers}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Train(context.Background(), cfg, trainSet, val, 1, Options{}); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(members*b.N)/sec, "members/s")
			b.ReportMetric(float64(members*epochs*rows*b.N)/sec, "samples/s")
		})
	}
}

// BenchmarkCombine merges 8 members' outputs for 50000 rows × 10 classes of dense random
// probabilities; GB/s counts the member bytes read.
func BenchmarkCombine(b *testing.B) {
	const members, rows, k = 8, 50000, 10
	outs := randomProbs(rand.New(rand.NewPCG(1, 1)), members, rows, k, 1)
	w := make([]float64, members)
	for m := range w {
		w[m] = 1 / float64(members)
	}
	weighted, err := NewWeighted(w)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, rows*k)
	for _, c := range []Combiner{Mean{}, Median{}, Vote{}, weighted} {
		b.Run(c.Name(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.CombineTo(dst, outs, rows, k)
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(4*members*rows*k*b.N)/sec/1e9, "GB/s")
			b.ReportMetric(float64(rows*b.N)/sec, "samples/s")
		})
	}
}
