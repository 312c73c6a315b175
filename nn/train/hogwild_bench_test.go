package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/pipe-ml/pipe/internal/sgemm/elementwise"
	"github.com/pipe-ml/pipe/nn"
)

// BenchmarkHogwildWideSparse trains the wide sparse problem (16 one-hot fields of 128 levels:
// 2,048 columns, 16 ones per row; 8,192 rows; a dense layer of 32 units; batch 16; sgd) for
// b.N epochs, synchronously on 1 and 2 GEMM workers and with Hogwild on 1 and 2 threads, and
// reports training samples/s and the validation loss and accuracy after the last epoch. Run it
// with a fixed number of epochs so that the metrics compare:
//
//	go test ./nn/train -run '^$' -bench HogwildWideSparse -benchtime 3x -count 3
//
// The time includes each epoch's evaluation (1,024 validation rows, 256 training rows).
func BenchmarkHogwildWideSparse(b *testing.B) {
	train, val := wideSparse(1, 8192, 16, 128), wideSparse(2, 1024, 16, 128)
	cases := []struct {
		name             string
		workers, threads int
	}{{"sync_workers_1", 1, 0}, {"sync_workers_2", 2, 0}, {"hogwild_threads_1", 1, 1}, {"hogwild_threads_2", 1, 2}}
	for _, n := range []int{4, 8, 16} { // on a machine with the cores for them
		if runtime.NumCPU() >= n {
			cases = append(cases, struct {
				name             string
				workers, threads int
			}{fmt.Sprintf("hogwild_threads_%d", n), 1, n})
		}
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			m, err := nn.Build(wideSpec(train.NumInputs), rand.New(rand.NewPCG(5, 6)))
			if err != nil {
				b.Fatal(err)
			}
			cfg := hogwildConfig(bc.threads)
			cfg.Epochs, cfg.Workers, cfg.TrainMetricRows = b.N, bc.workers, 256
			// No weight decay: it makes every gradient element non-zero, so every step would
			// store every weight (see BenchmarkSharedUpdate for what an atomic store costs).
			cfg.Optimizer.WeightDecay = 0
			b.ResetTimer()
			res, err := Fit(context.Background(), m, train, val, cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*train.Len())/b.Elapsed().Seconds(), "samples/s")
			last := res.History.Epochs[len(res.History.Epochs)-1]
			b.ReportMetric(last["val_loss"], "val_loss")
			b.ReportMetric(last["val_accuracy"], "val_acc")
		})
	}
}

// BenchmarkSharedUpdate measures what race-free access to the shared weights costs: the sgd
// update of 1M weights from a dense random gradient by atomic 32-bit loads and stores
// (hogwildSGD), by the same scalar loop with plain loads and stores, and by the synchronous
// trainer's vectorised kernel; and the refresh of a thread's copy by atomic loads against copy.
func BenchmarkSharedUpdate(b *testing.B) {
	const n = 1 << 20
	rng := rand.New(rand.NewPCG(1, 2))
	w, g := make([]float32, n), make([]float32, n)
	for i := range w {
		w[i], g[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64()*1e-3)
	}
	words := float32Words(w)
	dst := make([]float32, n)
	for _, bc := range []struct {
		name string
		fn   func()
	}{
		{"update_atomic", func() { hogwildSGD(words, g, 1e-3, 1e-4) }},
		{"update_plain_scalar", func() { plainSGD(w, g, 1e-3, 1e-4) }},
		{"update_vectorised", func() { elementwise.SGDUpdate(w, g, 1e-3, 1e-4) }},
		{"read_atomic", func() {
			for j := range dst {
				dst[j] = loadFloat(&words[j])
			}
		}},
		{"read_copy", func() { copy(dst, w) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(4 * n)
			for b.Loop() {
				bc.fn()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/weight")
		})
	}
}

// plainSGD is hogwildSGD with plain loads and stores (a data race if shared: for comparison).
func plainSGD(w, grad []float32, lr, wd float32) {
	for j, g := range grad {
		if g == 0 && wd == 0 {
			continue
		}
		v := w[j]
		w[j] = v - float32(lr*(g+float32(wd*v)))
	}
}
