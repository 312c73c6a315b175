package arrowutil

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// takeFixedSizeList returns the rows of a fixed-size list (a tensor column, such as an image)
// at idx: the child values of each taken row, in order, by TakeArray on the child. validity
// (owned by the caller of this function, who releases it) is the taken rows' bitmap.
func takeFixedSizeList(mem memory.Allocator, a *array.FixedSizeList, idx []int, validity *memory.Buffer, nulls int) (arrow.Array, error) {
	size := int(a.DataType().(*arrow.FixedSizeListType).Len())
	off := a.Data().Offset()
	child := make([]int, 0, len(idx)*size)
	for _, i := range idx {
		for k := range size {
			child = append(child, (off+i)*size+k)
		}
	}
	vals, err := TakeArray(mem, a.ListValues(), child)
	if err != nil {
		return nil, err
	}
	defer vals.Release()
	data := array.NewData(a.DataType(), len(idx), []*memory.Buffer{validity}, []arrow.ArrayData{vals.Data()}, nulls, 0)
	defer data.Release()
	return array.MakeFromData(data), nil
}
