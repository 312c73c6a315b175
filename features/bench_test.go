package features

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// mnistLikeBatches returns batches of MNIST-shaped random data: 784 float32 feature columns of
// dense non-zero values in [0.01, 1). The caller releases them.
func mnistLikeBatches(b *testing.B, mem memory.Allocator, rows, batchRows int) []arrow.RecordBatch {
	const cols = 784
	rng := rand.New(rand.NewPCG(1, 2))
	fields := make([]arrow.Field, cols)
	for j := range fields {
		fields[j] = arrow.Field{Name: "px" + strconv.Itoa(j), Type: arrow.PrimitiveTypes.Float32}
	}
	s := arrow.NewSchema(fields, nil)
	var out []arrow.RecordBatch
	for lo := 0; lo < rows; lo += batchRows {
		n := min(batchRows, rows-lo)
		arrs := make([]arrow.Array, cols)
		for j := range arrs {
			arr, dst := newFloat32Column(mem, n, nil)
			for i := range dst {
				dst[i] = 0.01 + 0.99*rng.Float32()
			}
			arrs[j] = arr
		}
		out = append(out, array.NewRecordBatch(s, arrs, int64(n)))
		releaseAll(arrs)
	}
	return out
}

// BenchmarkNormalize measures fit and apply throughput on MNIST-shaped data: 70,000 rows of
// 784 float32 columns (220 MB) in batches of 4,096 rows.
func BenchmarkNormalize(b *testing.B) {
	const rows, batchRows, cols = 70_000, 4_096, 784
	mem := memory.NewGoAllocator()
	batches := mnistLikeBatches(b, mem, rows, batchRows)
	defer func() {
		for _, r := range batches {
			r.Release()
		}
	}()
	bytes := float64(rows * cols * 4)
	report := func(b *testing.B) {
		sec := b.Elapsed().Seconds() / float64(b.N)
		b.ReportMetric(rows/sec, "rows/s")
		b.ReportMetric(bytes/sec/1e9, "GB/s")
	}
	fit := func(b *testing.B, method string) Transform {
		f := NewNormalizeFitter(NormalizeOptions{Method: method})
		for _, r := range batches {
			if err := f.Observe(r); err != nil {
				b.Fatal(err)
			}
		}
		t, err := f.Finish()
		if err != nil {
			b.Fatal(err)
		}
		return t
	}
	apply := func(b *testing.B, t Transform) {
		for _, r := range batches {
			out, err := t.Apply(context.Background(), mem, r)
			if err != nil {
				b.Fatal(err)
			}
			out.Release()
		}
	}
	for _, method := range []string{NormalizeStandard, NormalizeRobust} {
		b.Run(method+"/fit", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				fit(b, method)
			}
			report(b)
		})
		t := fit(b, method)
		b.Run(method+"/apply", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				apply(b, t)
			}
			report(b)
		})
		b.Run(method+"/fit+apply", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				apply(b, fit(b, method))
			}
			report(b)
		})
	}
}

// BenchmarkEncodeOneHot measures one-hot apply throughput: 65,536 rows of a 20-category string
// (utf8 or dictionary) column, in batches of 8,192.
func BenchmarkEncodeOneHot(b *testing.B) {
	const rows, batchRows, k = 65_536, 8_192, 20
	mem := memory.NewGoAllocator()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, kind := range []string{"utf8", "dictionary"} {
		var batches []arrow.RecordBatch
		for lo := 0; lo < rows; lo += batchRows {
			vals := make([]string, batchRows)
			for i := range vals {
				vals[i] = fmt.Sprintf("category_%02d", rng.IntN(k))
			}
			c := testColumn{name: "job", str: vals}
			if kind == "dictionary" {
				c = testColumn{name: "job", dict: vals}
			}
			batches = append(batches, makeRecord(b, mem, "", c))
		}
		f := NewEncodeFitter(EncodeOptions{})
		for _, r := range batches {
			if err := f.Observe(r); err != nil {
				b.Fatal(err)
			}
		}
		t, err := f.Finish()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(kind, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, r := range batches {
					out, err := t.Apply(context.Background(), mem, r)
					if err != nil {
						b.Fatal(err)
					}
					out.Release()
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(rows/sec, "rows/s")
			b.ReportMetric(float64(rows*k*4)/sec/1e9, "GB/s")
		})
		for _, r := range batches {
			r.Release()
		}
	}
}

// BenchmarkAugment measures the augmenters on MNIST-shaped batches (256 rows × 784 columns),
// in samples (rows) per second.
func BenchmarkAugment(b *testing.B) {
	const rows, cols = 256, 784
	augs := []struct {
		name string
		a    Augmenter
	}{
		{"noise", GaussianNoise{Std: 0.1}},
		{"dropout", FeatureDropout{Rate: 0.1}},
		{"shift", ImageShift{Height: 28, Width: 28, MaxShift: 2}},
		{"rotate", ImageRotate{Height: 28, Width: 28, MaxDegrees: 15}},
	}
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = 0.5
	}
	for _, tc := range augs {
		b.Run(tc.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			b.ReportAllocs()
			for b.Loop() {
				tc.a.Augment(x, rows, cols, rng)
			}
			b.ReportMetric(rows*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
	// Mixup on dense random non-zero rows and one-hot targets over 10 classes; GB/s counts the
	// features and targets mixed (rows × (cols + 10) float32s per call).
	mixX := make([]float32, rows*cols)
	for i := range mixX {
		mixX[i] = 0.01 + 0.99*float32(i%97)/97
	}
	const k = 10
	y := make([]float32, rows*k)
	for i := range rows {
		y[i*k+i%k] = 1
	}
	mixBytes := float64(rows * (cols + k) * 4)
	b.Run("mixup", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 1))
		b.ReportAllocs()
		for b.Loop() {
			Mixup{Alpha: 0.2}.Mix(mixX, y, rows, cols, k, rng)
		}
		sec := b.Elapsed().Seconds() / float64(b.N)
		b.ReportMetric(rows/sec, "samples/s")
		b.ReportMetric(mixBytes/sec/1e9, "GB/s")
	})
	b.Run("mixup_rows_to", func(b *testing.B) {
		// The mixing alone, with caller-owned buffers (what the augment stage's mixup does).
		rng := rand.New(rand.NewPCG(1, 1))
		partner, lambda := make([]int, rows), make([]float64, rows)
		dst, dstY := make([]float32, rows*cols), make([]float32, rows*k)
		b.ReportAllocs()
		for b.Loop() {
			Mixup{Alpha: 0.2}.DrawTo(partner, lambda, rng)
			MixRowsTo(dst, mixX, cols, partner, lambda)
			MixRowsTo(dstY, y, k, partner, lambda)
		}
		sec := b.Elapsed().Seconds() / float64(b.N)
		b.ReportMetric(rows/sec, "samples/s")
		b.ReportMetric(mixBytes/sec/1e9, "GB/s")
	})
}
