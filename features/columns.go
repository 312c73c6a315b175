package features

import (
	"fmt"
	"github.com/pipe-ml/pipe/internal/names"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/schema"
)

// numericSlices returns the values of a numeric array without per-value interface calls:
// float32 and float64 arrays are returned as views of their Arrow buffers (exactly one of f32,
// f64 is non-nil), every other numeric type is converted into a new []float64. Values at null
// slots are unspecified.
func numericSlices(arr arrow.Array) (f32 []float32, f64 []float64, err error) {
	switch a := arr.(type) {
	case *array.Float32:
		return a.Float32Values(), nil, nil
	case *array.Float64:
		return nil, a.Float64Values(), nil
	case *array.Int8:
		return nil, widen(a.Int8Values()), nil
	case *array.Int16:
		return nil, widen(a.Int16Values()), nil
	case *array.Int32:
		return nil, widen(a.Int32Values()), nil
	case *array.Int64:
		return nil, widen(a.Int64Values()), nil
	case *array.Uint8:
		return nil, widen(a.Uint8Values()), nil
	case *array.Uint16:
		return nil, widen(a.Uint16Values()), nil
	case *array.Uint32:
		return nil, widen(a.Uint32Values()), nil
	case *array.Uint64:
		return nil, widen(a.Uint64Values()), nil
	case *array.Float16:
		vs := a.Values()
		out := make([]float32, len(vs))
		for i, v := range vs {
			out[i] = v.Float32()
		}
		return out, nil, nil
	}
	return nil, nil, fmt.Errorf("type %s is not numeric", arr.DataType())
}

type integer interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

func widen[T integer](src []T) []float64 {
	out := make([]float64, len(src))
	for i, v := range src {
		out[i] = float64(v)
	}
	return out
}

// validity is the null bitmap of an array, or a nil bitmap when it has no nulls.
type validity struct {
	bits   []byte
	offset int
}

func validityOf(arr arrow.Array) validity {
	if arr.NullN() == 0 {
		return validity{}
	}
	return validity{bits: arr.NullBitmapBytes(), offset: arr.Data().Offset()}
}

// all reports whether every slot is valid.
func (v validity) all() bool { return v.bits == nil }

func (v validity) valid(i int) bool {
	return v.bits == nil || bitutil.BitIsSet(v.bits, v.offset+i)
}

// rowIDs returns the int64 values of the record's _row column, or nil if it has none.
func rowIDs(rec arrow.RecordBatch) []int64 {
	idx := rec.Schema().FieldIndices(schema.RowIDColumn)
	if len(idx) == 0 {
		return nil
	}
	if a, ok := rec.Column(idx[0]).(*array.Int64); ok {
		return a.Int64Values()
	}
	return nil
}

// rowLabel names row i of a batch for error messages: its _row id when the batch has one.
func rowLabel(ids []int64, i int) string {
	if ids != nil {
		return schema.RowIDColumn + "=" + strconv.FormatInt(ids[i], 10)
	}
	return "batch row " + strconv.Itoa(i) + " (no " + schema.RowIDColumn + " column)"
}

// newFloat32Column allocates a zeroed float32 array of n values from mem, copying the null
// bitmap of like (if like is non-nil and has nulls), and returns it with its writable values.
// The caller owns the array.
func newFloat32Column(mem memory.Allocator, n int, like arrow.Array) (arrow.Array, []float32) {
	arr, dst := newFloat32ColumnNoClear(mem, n, like)
	clear(dst)
	return arr, dst
}

// newFloat32ColumnNoClear is newFloat32Column for a caller that writes every value: the values
// are left as the allocator returned them.
func newFloat32ColumnNoClear(mem memory.Allocator, n int, like arrow.Array) (arrow.Array, []float32) {
	vals := memory.NewResizableBuffer(mem)
	vals.Resize(arrow.Float32Traits.BytesRequired(n))
	dst := arrow.Float32Traits.CastFromBytes(vals.Bytes())[:n]
	nullBuf, nulls := copyNullBitmap(mem, n, like)
	data := array.NewData(arrow.PrimitiveTypes.Float32, n, []*memory.Buffer{nullBuf, vals}, nil, nulls, 0)
	arr := array.MakeFromData(data)
	data.Release()
	vals.Release()
	if nullBuf != nil {
		nullBuf.Release()
	}
	return arr, dst
}

// newFloat64Column is newFloat32Column for float64.
func newFloat64Column(mem memory.Allocator, n int, like arrow.Array) (arrow.Array, []float64) {
	vals := memory.NewResizableBuffer(mem)
	vals.Resize(arrow.Float64Traits.BytesRequired(n))
	dst := arrow.Float64Traits.CastFromBytes(vals.Bytes())[:n]
	clear(dst)
	nullBuf, nulls := copyNullBitmap(mem, n, like)
	data := array.NewData(arrow.PrimitiveTypes.Float64, n, []*memory.Buffer{nullBuf, vals}, nil, nulls, 0)
	arr := array.MakeFromData(data)
	data.Release()
	vals.Release()
	if nullBuf != nil {
		nullBuf.Release()
	}
	return arr, dst
}

// newInt32Column allocates a non-null int32 array of n values from mem.
func newInt32Column(mem memory.Allocator, n int) (arrow.Array, []int32) {
	vals := memory.NewResizableBuffer(mem)
	vals.Resize(arrow.Int32Traits.BytesRequired(n))
	dst := arrow.Int32Traits.CastFromBytes(vals.Bytes())[:n]
	clear(dst)
	data := array.NewData(arrow.PrimitiveTypes.Int32, n, []*memory.Buffer{nil, vals}, nil, 0, 0)
	arr := array.MakeFromData(data)
	data.Release()
	vals.Release()
	return arr, dst
}

func copyNullBitmap(mem memory.Allocator, n int, like arrow.Array) (*memory.Buffer, int) {
	if like == nil || like.NullN() == 0 {
		return nil, 0
	}
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(int(bitutil.BytesForBits(int64(n))))
	bitutil.CopyBitmap(like.NullBitmapBytes(), like.Data().Offset(), n, buf.Bytes(), 0)
	return buf, like.NullN()
}

// withFieldMetadata returns f with key set to value in its metadata, keeping the other keys.
func withFieldMetadata(f arrow.Field, key, value string) arrow.Field {
	keys := []string{}
	vals := []string{}
	if f.HasMetadata() {
		for i, k := range f.Metadata.Keys() {
			if k != key {
				keys = append(keys, k)
				vals = append(vals, f.Metadata.Values()[i])
			}
		}
	}
	keys = append(keys, key)
	vals = append(vals, value)
	f.Metadata = arrow.NewMetadata(keys, vals)
	return f
}

// schemaWithFields returns a schema of fields that keeps the metadata of in.
func schemaWithFields(in *arrow.Schema, fields []arrow.Field) *arrow.Schema {
	md := in.Metadata()
	return arrow.NewSchema(fields, &md)
}

// fieldByName returns the index of the single field called name, or an error.
func fieldByName(s *arrow.Schema, name, kind string) (int, error) {
	idx := s.FieldIndices(name)
	switch len(idx) {
	case 0:
		return -1, fmt.Errorf("%s: column %q is not in the table (columns: %s)", kind, name, columnList(columnNames(s)))
	case 1:
		return idx[0], nil
	}
	return -1, fmt.Errorf("%s: column name %q appears %d times in the table", kind, name, len(idx))
}

// columnList joins column names for an error message: the first 20, then how many more, so
// that a table of 784 pixel columns does not flood the message.
func columnList(list []string) string { return names.List(list, 20) }

func columnNames(s *arrow.Schema) []string {
	names := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		names[i] = f.Name
	}
	return names
}

// isCategorical reports whether a type is one that encode treats as categorical.
func isCategorical(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.BOOL:
		return true
	case arrow.DICTIONARY:
		vt := t.(*arrow.DictionaryType).ValueType.ID()
		return vt == arrow.STRING || vt == arrow.LARGE_STRING
	}
	return false
}

// isStringLike reports whether a type holds strings (utf8, large_utf8 or a string dictionary).
func isStringLike(t arrow.DataType) bool {
	return isCategorical(t) && t.ID() != arrow.BOOL
}

// isTensor reports whether a type is a tensor column: a fixed-size list (bare, or the
// storage of an extension type), the form images take as one column.
func isTensor(t arrow.DataType) bool {
	if ext, ok := t.(arrow.ExtensionType); ok {
		t = ext.StorageType()
	}
	return t.ID() == arrow.FIXED_SIZE_LIST
}

// refuseTensor is the error of a normalize or impute stage that meets a tensor feature column
// f (listed, or selected by default when listed is empty): they scale and fill one number per
// column, and a per-position or whole-tensor statistic would be a silent choice, so the
// pixels are to be scaled in the source. Other kinds, and other columns, get nil.
func refuseTensor(kind string, f arrow.Field, listed []string) error {
	if (kind != KindNormalize && kind != KindImpute) || !isTensor(f.Type) || !schema.IsFeature(f) {
		return nil
	}
	how := "it is among the default columns (every feature column): list the other columns in columns = [...]"
	if len(listed) > 0 {
		how = "remove it from columns"
	}
	return fmt.Errorf("%s: column %q is a tensor (%s), which %s does not take: scale or fill the pixels in the source (e.g. divide by 255 when writing the file), or train on them raw; %s", kind, f.Name, f.Type, kind, how)
}
