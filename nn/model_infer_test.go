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
				// same: bit for bit with pipe's GEMM; within float32 rounding with OpenBLAS.
				same := func(a, b float64) bool {
					if rowIndependentGEMM {
						return a == b
					}
					return math.Abs(a-b) <= 1e-5*math.Max(1, math.Abs(b))
				}
				if !same(gotLoss.Total, wantLoss.Total) || math.IsNaN(gotLoss.Total) {
					t.Errorf("loss %v, whole batch %v", gotLoss.Total, wantLoss.Total)
				}
				for h, v := range wantHeads {
					if !same(gotLoss.Heads[h], v) {
						t.Errorf("head %d loss %v, whole batch %v", h, gotLoss.Heads[h], v)
					}
				}
				pred, err := m.predict(b, chunk)
				if err != nil {
					t.Fatal(err)
				}
				for h := range want.Heads {
					for i, v := range want.Heads[h] {
						if !same(float64(got.Heads[h][i]), float64(v)) || !same(float64(pred.Heads[h][i]), float64(v)) {
							t.Fatalf("head %d [%d]: PredictLoss %v, Predict %v, whole batch %v", h, i, got.Heads[h][i], pred.Heads[h][i], v)
						}
					}
				}
			})
		}
	}
}

// convNet28 is a network on 28×28 images whose activations are large per row (16×28×28
// outputs, as MNIST's conv nets) and cheap to compute (a 1×1 convolution).
func convNet28() Spec {
	return Spec{NumInputs: 28 * 28, InputShape: []int{1, 28, 28},
		Layers: []LayerSpec{
			{Type: LayerConv, Filters: 16, Kernel: 1, Activation: "relu"},
			{Type: LayerBatchNorm},
			{Type: LayerMaxPool, Kernel: 2},
			{Type: LayerFlatten},
		},
		Heads: softmaxHead(10)}
}

// heldBytes returns the heap bytes in use after a garbage collection: what live values hold.
func heldBytes() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// inferenceHeld returns the bytes a fresh convNet28 holds after PredictLoss and Predict on
// rows rows (its buffers: the outputs are dropped), and the rows its buffers are sized for.
func inferenceHeld(t *testing.T, rows int) (int64, int) {
	t.Helper()
	spec := convNet28()
	rng := rand.New(rand.NewPCG(2, 2))
	b, tg := randomBatch(rng, spec, rows), randomTargets(rng, spec, rows, 0)
	m, err := Build(spec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	before := heldBytes()
	if _, _, err := m.PredictLoss(b, tg); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Predict(b); err != nil {
		t.Fatal(err)
	}
	held := int64(heldBytes()) - int64(before)
	runtime.KeepAlive(b)
	runtime.KeepAlive(tg)
	return held, m.rows
}

// TestPredictBuffersBounded: inference over many rows of a conv net leaves the model holding
// buffers for a bounded number of rows, not for all of them (a 10,500-row validation table
// through MNIST's conv net held 10 GB): after predicting 4× more rows it holds as much as
// before.
func TestPredictBuffersBounded(t *testing.T) {
	const small, large = 100, 400
	smallHeld, smallRows := inferenceHeld(t, small)
	largeHeld, largeRows := inferenceHeld(t, large)
	if largeRows != smallRows || largeRows >= small {
		t.Errorf("buffers sized for %d rows after %d rows, %d after %d rows: want the same chunk, under %d", largeRows, large, smallRows, small, small)
	}
	// The buffers of one row are ~200 KiB: allow 1 MiB for the runtime's noise.
	if largeHeld > smallHeld+1<<20 {
		t.Errorf("after inference on %d rows the model holds %d KiB, after %d rows %d KiB", large, largeHeld>>10, small, smallHeld>>10)
	}
	m, err := Build(convNet28(), rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if held := int64(largeRows) * m.ActivationBytesPerRow(); held > 2*inferChunkBytes {
		t.Errorf("chunk of %d rows holds ~%d MiB of buffers, want at most %d MiB", largeRows, held>>20, 2*inferChunkBytes>>20)
	}
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
			const rows = 64
			rng := rand.New(rand.NewPCG(2, 2))
			b, tg := randomBatch(rng, tc.spec, rows), randomTargets(rng, tc.spec, rows, 0)
			m, err := Build(tc.spec, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			before := heldBytes()
			if _, err := m.TrainStep(b, tg); err != nil {
				t.Fatal(err)
			}
			got := int64(heldBytes()) - int64(before)
			runtime.KeepAlive(m)
			est := m.ActivationBytesPerRow() * rows
			t.Logf("a %d-row train step holds %d KiB, estimate %d KiB", rows, got>>10, est>>10)
			// Per-image scratch and small per-layer state are not per row: allow 64 KiB.
			if got > est+64<<10 || est > 4*got {
				t.Errorf("a %d-row train step holds %d KiB, estimate %d KiB", rows, got>>10, est>>10)
			}
		})
	}
}
