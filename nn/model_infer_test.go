package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// cnnInferSpec is a small VGG-like image model with batch norm, pooling, dropout, a residual
// block and three heads: every kind of layer and head that inference chunks.
func cnnInferSpec() Spec {
	return Spec{NumInputs: 2 * 9 * 9, InputShape: []int{2, 9, 9},
		Layers: []LayerSpec{
			{Type: LayerConv, Filters: 4, Kernel: 3, Padding: PaddingSame, Activation: "relu"},
			{Type: LayerBatchNorm},
			{Type: LayerMaxPool, Kernel: 2},
			{Type: LayerResidual, Filters: 6, Activation: "relu", Norm: LayerBatchNorm, Dropout: 0.2},
			{Type: LayerFlatten},
			{Type: LayerDense, Units: 8, Activation: "tanh", Dropout: 0.3},
		},
		Heads: []HeadSpec{{Name: "cls", Kind: HeadSoftmax, Classes: 3}, {Name: "bin", Kind: HeadBinary},
			{Name: "reg", Kind: HeadRegression, Outputs: 2, LossWeight: 0.5}}}
}

// randomizeBuffers gives batch norm running statistics away from their initial 0 and 1, so
// that eval mode is not the identity.
func randomizeBuffers(m *Model, rng *rand.Rand) {
	for _, p := range m.Buffers() {
		for i := range p.Value {
			p.Value[i] = 0.5 + rng.Float32()
		}
	}
}

// TestPredictChunkedMatchesWhole: Predict and PredictLoss forward a batch in chunks; their
// outputs and loss are bit-identical to one eval-mode forward pass over all rows, for any
// chunk size and worker count.
func TestPredictChunkedMatchesWhole(t *testing.T) {
	spec := cnnInferSpec()
	const rows = 37
	rng := rand.New(rand.NewPCG(5, 6))
	b, tg := randomBatch(rng, spec, rows), randomTargets(rng, spec, rows, 4)
	for _, workers := range []int{1, 3} {
		// The reference: one forward pass over all rows, as PredictLoss did before it chunked.
		ref, err := Build(spec, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		randomizeBuffers(ref, rand.New(rand.NewPCG(7, 8)))
		ref.SetWorkers(workers)
		ref.forward(b, false)
		want := ref.newOutputs(rows)
		for i, h := range ref.heads {
			ref.headOutputTo(want.Heads[i], h, rows)
		}
		wantLoss, err := ref.losses(tg, rows, false)
		if err != nil {
			t.Fatal(err)
		}
		wantHeads := append([]float64(nil), wantLoss.Heads...)
		for _, chunk := range []int{1, 5, 16, rows, 100} {
			t.Run(fmt.Sprintf("workers=%d/chunk=%d", workers, chunk), func(t *testing.T) {
				m, err := Build(spec, rand.New(rand.NewPCG(1, 2)))
				if err != nil {
					t.Fatal(err)
				}
				randomizeBuffers(m, rand.New(rand.NewPCG(7, 8)))
				m.SetWorkers(workers)
				got, gotLoss, err := m.predictLoss(b, tg, chunk)
				if err != nil {
					t.Fatal(err)
				}
				if gotLoss.Total != wantLoss.Total || math.IsNaN(gotLoss.Total) {
					t.Errorf("loss %v, whole batch %v", gotLoss.Total, wantLoss.Total)
				}
				for h, v := range wantHeads {
					if gotLoss.Heads[h] != v {
						t.Errorf("head %d loss %v, whole batch %v", h, gotLoss.Heads[h], v)
					}
				}
				pred, err := m.predict(b, chunk)
				if err != nil {
					t.Fatal(err)
				}
				for h := range want.Heads {
					for i, v := range want.Heads[h] {
						if got.Heads[h][i] != v || pred.Heads[h][i] != v {
							t.Fatalf("head %d [%d]: PredictLoss %v, Predict %v, whole batch %v", h, i, got.Heads[h][i], pred.Heads[h][i], v)
						}
					}
				}
			})
		}
	}
}

// convNet28 is a one-conv network on 28×28 images whose activations are large per row
// (16×28×28 outputs), as MNIST's.
func convNet28() Spec {
	return Spec{NumInputs: 28 * 28, InputShape: []int{1, 28, 28},
		Layers: []LayerSpec{
			{Type: LayerConv, Filters: 16, Kernel: 3, Padding: PaddingSame, Activation: "relu"},
			{Type: LayerBatchNorm},
			{Type: LayerMaxPool, Kernel: 2},
			{Type: LayerFlatten},
		},
		Heads: softmaxHead(10)}
}

// inferenceAlloc returns the bytes a fresh convNet28 allocates to PredictLoss and Predict rows
// rows, and the rows its buffers are then sized for.
func inferenceAlloc(t *testing.T, rows int) (uint64, int) {
	t.Helper()
	spec := convNet28()
	m, err := Build(spec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	b, tg := randomBatch(rng, spec, rows), randomTargets(rng, spec, rows, 0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, _, err := m.PredictLoss(b, tg); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Predict(b); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, m.rows
}

// TestPredictBuffersBounded: inference over many rows of a conv net makes the model hold
// buffers for a bounded number of rows, not for all of them (a 10,500-row validation table
// through MNIST's conv net held 10 GB): predicting 4× more rows allocates only the larger
// outputs, logits and per-chunk slices, and leaves the buffers sized as before.
func TestPredictBuffersBounded(t *testing.T) {
	const small, large = 150, 600
	smallBytes, smallRows := inferenceAlloc(t, small)
	largeBytes, largeRows := inferenceAlloc(t, large)
	if largeRows != smallRows || largeRows >= small {
		t.Errorf("buffers sized for %d rows after %d rows, %d after %d rows: want the same chunk, under %d", largeRows, large, smallRows, small, small)
	}
	// What grows with rows: Predict's and PredictLoss's outputs and PredictLoss's logits (10
	// float32 each per row), and the chunks' sub-batch headers; 64 KiB for the runtime's noise.
	perRow := uint64(3 * 10 * 4)
	bound := uint64(large-small)*perRow + 64<<10
	if largeBytes > smallBytes+bound {
		t.Errorf("inference on %d rows allocated %d KiB, on %d rows %d KiB: %d KiB more, want at most %d KiB", large, largeBytes>>10, small, smallBytes>>10, (largeBytes-smallBytes)>>10, bound>>10)
	}
	perRowHeld := convNet28Model(t).ActivationBytesPerRow()
	if held := int64(largeRows) * perRowHeld; held > 2*inferChunkBytes {
		t.Errorf("chunk of %d rows holds ~%d MiB of buffers, want at most %d MiB", largeRows, held>>20, 2*inferChunkBytes>>20)
	}
}

func convNet28Model(t *testing.T) *Model {
	t.Helper()
	m, err := Build(convNet28(), rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestActivationBytesPerRow: the estimate bounds the bytes the buffers of a forward pass
// (training mode, which holds the most) take per row, and is not far above them.
func TestActivationBytesPerRow(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
	}{{"cnn", cnnInferSpec()}, {"conv28", convNet28()}, {"mlp", Spec{NumInputs: 20,
		Layers: []LayerSpec{{Type: LayerDense, Units: 64, Activation: "relu", Dropout: 0.2}, {Type: LayerBatchNorm}, {Type: LayerDense, Units: 32}},
		Heads:  softmaxHead(4)}}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Build(tc.spec, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			const rows = 64
			rng := rand.New(rand.NewPCG(2, 2))
			b, tg := randomBatch(rng, tc.spec, rows), randomTargets(rng, tc.spec, rows, 0)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if _, err := m.TrainStep(b, tg); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			got := int64(after.TotalAlloc - before.TotalAlloc)
			est := m.ActivationBytesPerRow() * rows
			// Per-image scratch and small per-layer state are not per row: allow 64 KiB.
			t.Logf("first train step allocated %d KiB, estimate %d KiB", got>>10, est>>10)
			if got > est+64<<10 || est > 4*got {
				t.Errorf("first train step allocated %d KiB, estimate %d KiB", got>>10, est>>10)
			}
		})
	}
}
