package arrowutil

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestTakeFixedSizeList takes rows of a tensor column (sliced, with a null row, repeated
// indexes): each taken row holds its own values, and a null stays null.
func TestTakeFixedSizeList(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	lb := array.NewFixedSizeListBuilder(mem, 2, arrow.PrimitiveTypes.Float32)
	defer lb.Release()
	vb := lb.ValueBuilder().(*array.Float32Builder)
	for i := range 5 {
		if i == 3 {
			lb.AppendNull()
			continue
		}
		lb.Append(true)
		vb.AppendValues([]float32{float32(10 * i), float32(10*i + 1)}, nil)
	}
	full := lb.NewArray()
	defer full.Release()
	sliced := array.NewSlice(full, 1, 5) // rows 1..4 of full: offset 1
	defer sliced.Release()
	got, err := TakeArray(mem, sliced, []int{3, 0, 0, 1})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Release()
	a := got.(*array.FixedSizeList)
	if a.Len() != 4 || a.NullN() != 0 {
		t.Fatalf("taken %v", a)
	}
	want := [][]float32{{40, 41}, {10, 11}, {10, 11}, {20, 21}}
	vals := a.ListValues().(*array.Float32).Float32Values()
	for r, w := range want {
		if vals[2*r] != w[0] || vals[2*r+1] != w[1] || a.IsNull(r) {
			t.Fatalf("row %d: %v, want %v (all: %v)", r, vals[2*r:2*r+2], w, a)
		}
	}
	withNull, err := TakeArray(mem, sliced, []int{2, 1})
	if err != nil {
		t.Fatal(err)
	}
	defer withNull.Release()
	if !withNull.IsNull(0) || withNull.IsNull(1) || withNull.NullN() != 1 {
		t.Errorf("take of the null row: %v, want [null, [20 21]]", withNull)
	}
}
