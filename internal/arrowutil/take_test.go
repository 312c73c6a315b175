package arrowutil

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestTake(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sch := arrow.NewSchema([]arrow.Field{
		{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float32},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean},
	}, nil)
	bld := array.NewRecordBuilder(mem, sch)
	defer bld.Release()
	for i := 0; i < 10; i++ {
		if i%3 == 0 {
			bld.Field(0).(*array.Int64Builder).AppendNull()
			bld.Field(2).(*array.StringBuilder).AppendNull()
		} else {
			bld.Field(0).(*array.Int64Builder).Append(int64(i * 10))
			bld.Field(2).(*array.StringBuilder).Append(string(rune('a' + i)))
		}
		bld.Field(1).(*array.Float32Builder).Append(float32(i) + 0.5)
		bld.Field(3).(*array.BooleanBuilder).Append(i%2 == 0)
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()
	// Take from a sliced batch too, so offsets are exercised.
	sliced := rec.NewSlice(2, 10)
	defer sliced.Release()
	idx := []int{7, 0, 0, 4, 1}
	out, err := Take(mem, sliced, idx)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if out.NumRows() != int64(len(idx)) {
		t.Fatalf("rows %d", out.NumRows())
	}
	for j, i := range idx {
		src := i + 2
		ic := out.Column(0).(*array.Int64)
		if (src%3 == 0) != ic.IsNull(j) || (!ic.IsNull(j) && ic.Value(j) != int64(src*10)) {
			t.Errorf("int row %d", j)
		}
		if got := out.Column(1).(*array.Float32).Value(j); got != float32(src)+0.5 {
			t.Errorf("float row %d: %v", j, got)
		}
		sc := out.Column(2).(*array.String)
		if (src%3 == 0) != sc.IsNull(j) || (!sc.IsNull(j) && sc.Value(j) != string(rune('a'+src))) {
			t.Errorf("string row %d", j)
		}
		if got := out.Column(3).(*array.Boolean).Value(j); got != (src%2 == 0) {
			t.Errorf("bool row %d", j)
		}
	}
}
