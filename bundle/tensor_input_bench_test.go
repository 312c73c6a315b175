package bundle

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// BenchmarkTensorizeImage reads rows of a 784-pixel image into the dense block, as 784 float32
// columns and as one fixed_size_list<float32>[784] column, from random (non-zero) pixels.
func BenchmarkTensorizeImage(b *testing.B) {
	const rows, pixels = 4096, 784
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(b, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]float32, rows*pixels)
	for i := range vals {
		vals[i] = rng.Float32()*255 + 1
	}
	// Per-pixel columns.
	var fields []arrow.Field
	var cols []arrow.Array
	names := make([]string, pixels)
	for j := range pixels {
		names[j] = fmt.Sprintf("px%d", j)
		bld := array.NewFloat32Builder(mem)
		for i := range rows {
			bld.Append(vals[i*pixels+j])
		}
		cols = append(cols, bld.NewArray())
		bld.Release()
		fields = append(fields, arrow.Field{Name: names[j], Type: arrow.PrimitiveTypes.Float32})
	}
	perPixel := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rows)
	defer perPixel.Release()
	for _, c := range cols {
		c.Release()
	}
	lb := array.NewFixedSizeListBuilder(mem, pixels, arrow.PrimitiveTypes.Float32)
	vb := lb.ValueBuilder().(*array.Float32Builder)
	for i := range rows {
		lb.Append(true)
		vb.AppendValues(vals[i*pixels:(i+1)*pixels], nil)
	}
	img := lb.NewArray()
	lb.Release()
	tensor := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "pixels", Type: img.DataType()}}, nil), []arrow.Array{img}, rows)
	img.Release()
	defer tensor.Release()
	for _, tc := range []struct {
		name string
		plan *InputPlan
		rec  arrow.RecordBatch
	}{
		{"columns", &InputPlan{Numeric: names}, perPixel},
		{"tensor", &InputPlan{Tensors: []TensorInput{{Column: "pixels", Size: pixels, Shape: []int{1, 28, 28}}}, Schema: []ColumnEntry{{Name: "pixels"}}}, tensor},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]float32, rows*pixels) // the dense block, reused: only the read is timed
			for b.Loop() {
				out := tc.plan.NewTensors(false)
				out.Data.X = buf[:0]
				if err := tc.plan.AppendBatch(tc.rec, TensorizeOptions{}, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
