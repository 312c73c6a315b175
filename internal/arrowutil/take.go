package arrowutil

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Take returns a new batch with the rows of rec at idx, in that order (an index may repeat,
// as in a bootstrap sample). The caller releases the result; rec is not released.
func Take(mem memory.Allocator, rec arrow.RecordBatch, idx []int) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, c := range rec.Columns() {
		out, err := TakeArray(mem, c, idx)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", rec.ColumnName(i), err)
		}
		cols[i] = out
	}
	return array.NewRecordBatch(rec.Schema(), cols, int64(len(idx))), nil
}

// TakeArray returns the values of arr at idx. Supported: fixed-width primitives, bool, utf8,
// large_utf8, binary and fixed-size lists of these.
func TakeArray(mem memory.Allocator, arr arrow.Array, idx []int) (arrow.Array, error) {
	n := len(idx)
	validity, nulls := takeValidity(mem, arr, idx)
	switch a := arr.(type) {
	case *array.String:
		b := array.NewStringBuilder(mem)
		defer b.Release()
		b.Reserve(n)
		for _, i := range idx {
			if a.IsNull(i) {
				b.AppendNull()
			} else {
				b.Append(a.Value(i))
			}
		}
		releaseBuf(validity)
		return b.NewArray(), nil
	case *array.LargeString:
		b := array.NewLargeStringBuilder(mem)
		defer b.Release()
		for _, i := range idx {
			if a.IsNull(i) {
				b.AppendNull()
			} else {
				b.Append(a.Value(i))
			}
		}
		releaseBuf(validity)
		return b.NewArray(), nil
	case *array.Binary:
		b := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
		defer b.Release()
		for _, i := range idx {
			if a.IsNull(i) {
				b.AppendNull()
			} else {
				b.Append(a.Value(i))
			}
		}
		releaseBuf(validity)
		return b.NewArray(), nil
	case *array.Boolean:
		vals := memory.NewResizableBuffer(mem)
		vals.Resize(int(bitutil.BytesForBits(int64(n))))
		bits := vals.Bytes()
		for j := range bits {
			bits[j] = 0
		}
		for j, i := range idx {
			if a.Value(i) {
				bitutil.SetBit(bits, j)
			}
		}
		data := array.NewData(arr.DataType(), n, []*memory.Buffer{validity, vals}, nil, nulls, 0)
		defer data.Release()
		releaseBuf(validity)
		vals.Release()
		return array.MakeFromData(data), nil
	case *array.FixedSizeList:
		defer releaseBuf(validity)
		return takeFixedSizeList(mem, a, idx, validity, nulls)
	}
	fw, ok := arr.DataType().(arrow.FixedWidthDataType)
	if !ok || arr.DataType().ID() == arrow.BOOL {
		releaseBuf(validity)
		return nil, fmt.Errorf("take: unsupported type %s", arr.DataType())
	}
	width := fw.BitWidth() / 8
	src := arr.Data().Buffers()[1].Bytes()
	off := arr.Data().Offset()
	vals := memory.NewResizableBuffer(mem)
	vals.Resize(n * width)
	dst := vals.Bytes()
	switch width {
	case 4:
		for j, i := range idx {
			s := (off + i) * 4
			copy(dst[j*4:j*4+4], src[s:s+4])
		}
	case 8:
		for j, i := range idx {
			s := (off + i) * 8
			copy(dst[j*8:j*8+8], src[s:s+8])
		}
	default:
		for j, i := range idx {
			s := (off + i) * width
			copy(dst[j*width:(j+1)*width], src[s:s+width])
		}
	}
	data := array.NewData(arr.DataType(), n, []*memory.Buffer{validity, vals}, nil, nulls, 0)
	defer data.Release()
	releaseBuf(validity)
	vals.Release()
	return array.MakeFromData(data), nil
}

func releaseBuf(b *memory.Buffer) {
	if b != nil {
		b.Release()
	}
}

// takeValidity builds the validity bitmap of the taken rows (nil when there is no null).
func takeValidity(mem memory.Allocator, arr arrow.Array, idx []int) (*memory.Buffer, int) {
	if arr.NullN() == 0 {
		return nil, 0
	}
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(int(bitutil.BytesForBits(int64(len(idx)))))
	bits := buf.Bytes()
	for j := range bits {
		bits[j] = 0
	}
	nulls := 0
	for j, i := range idx {
		if arr.IsValid(i) {
			bitutil.SetBit(bits, j)
		} else {
			nulls++
		}
	}
	if nulls == 0 {
		buf.Release()
		return nil, 0
	}
	return buf, nulls
}
