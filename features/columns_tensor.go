package features

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// hashTensorInto folds each row of a fixed-size list of numbers (a tensor column) into h:
// its values in order, as hashColumnInto folds one number, with a null list or element
// hashing as null.
func hashTensorInto(h []uint64, a *array.FixedSizeList) error {
	size := int(a.DataType().(*arrow.FixedSizeListType).Len())
	child := a.ListValues()
	f32, f64, err := numericSlices(child)
	if err != nil {
		return fmt.Errorf("a fixed-size list of %s: %w", child.DataType(), err)
	}
	rows, cval := validityOf(a), validityOf(child)
	off := a.Data().Offset()
	for i := range h {
		if !rows.valid(i) {
			h[i] = combine(h[i], nullHash)
			continue
		}
		for k := (off + i) * size; k < (off+i+1)*size; k++ {
			if cval.valid(k) {
				h[i] = combine(h[i], canonicalFloat(valueAt(f32, f64, k)))
			} else {
				h[i] = combine(h[i], nullHash)
			}
		}
	}
	return nil
}
