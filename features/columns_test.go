package features

import (
	"context"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestNormalizeEveryNumericType: every integer and float type is read from its buffer and
// standardised to float32. Hand calculation for 1, 2, 3, 4: mean 2.5, population variance 1.25.
func TestNormalizeEveryNumericType(t *testing.T) {
	build := func(mem memory.Allocator, dt arrow.DataType) arrow.Array {
		b := array.NewBuilder(mem, dt)
		defer b.Release()
		for _, v := range []float64{1, 2, 3, 4} {
			switch bb := b.(type) {
			case *array.Int8Builder:
				bb.Append(int8(v))
			case *array.Int16Builder:
				bb.Append(int16(v))
			case *array.Int32Builder:
				bb.Append(int32(v))
			case *array.Int64Builder:
				bb.Append(int64(v))
			case *array.Uint8Builder:
				bb.Append(uint8(v))
			case *array.Uint16Builder:
				bb.Append(uint16(v))
			case *array.Uint32Builder:
				bb.Append(uint32(v))
			case *array.Uint64Builder:
				bb.Append(uint64(v))
			case *array.Float16Builder:
				bb.Append(float16.New(float32(v)))
			case *array.Float32Builder:
				bb.Append(float32(v))
			case *array.Float64Builder:
				bb.Append(v)
			}
		}
		return b.NewArray()
	}
	types := []arrow.DataType{
		arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Int16, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64,
		arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Uint64,
		arrow.FixedWidthTypes.Float16, arrow.PrimitiveTypes.Float32, arrow.PrimitiveTypes.Float64,
	}
	for _, dt := range types {
		t.Run(dt.String(), func(t *testing.T) {
			mem := newCheckedAllocator()
			defer mem.AssertSize(t, 0)
			arr := build(mem, dt)
			defer arr.Release()
			rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "x", Type: dt}}, nil), []arrow.Array{arr}, 4)
			defer rec.Release()
			tr := fitBatches(t, NewNormalizeFitter(NormalizeOptions{}), rec, 3)
			out, err := tr.Apply(context.Background(), mem, rec)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			for i, v := range float32Column(t, out, "x").Float32Values() {
				if want := (float64(i+1) - 2.5) / math.Sqrt(1.25); !near(float64(v), want, 1e-6) {
					t.Errorf("row %d: %g, want %g", i, v, want)
				}
			}
		})
	}
}
