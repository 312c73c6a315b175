package bundle

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Arrow's canonical fixed-shape tensor extension: its name, and the field metadata keys under
// which IPC and Parquet (with the stored Arrow schema) carry an extension type that the
// reading process has not registered. arrow-go v18.8 has no implementation of this type, so
// pipe reads the field metadata form; a registered extension type whose storage is
// FixedSizeList<float32> is read through its storage.
const (
	FixedShapeTensorName = "arrow.fixed_shape_tensor"
	extensionNameKey     = "ARROW:extension:name"
	extensionMetaKey     = "ARROW:extension:metadata"
)

// TensorInput is a FixedSizeList<float32> column (optionally an arrow.fixed_shape_tensor)
// that feeds Size consecutive values of the dense block per row, read without per-value
// columns. Shape is the tensor's shape when known (from the extension metadata or the train
// stage's image key), nil otherwise.
type TensorInput struct {
	Column string `json:"column"`
	Size   int    `json:"size"`
	Shape  []int  `json:"shape,omitempty"`
}

// ShapeString writes the tensor's expected form for error messages.
func (t TensorInput) ShapeString() string {
	if len(t.Shape) == 0 {
		return fmt.Sprintf("fixed_size_list<float32>[%d]", t.Size)
	}
	dims := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = strconv.Itoa(d)
	}
	return fmt.Sprintf("fixed_size_list<float32>[%d] of shape [%s]", t.Size, strings.Join(dims, ", "))
}

// Width is the number of values per row of the dense block: one per numeric column, then
// each tensor column's size.
func (p *InputPlan) Width() int {
	n := len(p.Numeric)
	for _, t := range p.Tensors {
		n += t.Size
	}
	return n
}

// TensorField reports whether f is a tensor column: a FixedSizeList<float32>, bare, as the
// storage of a registered extension type, or with arrow.fixed_shape_tensor field metadata.
// size is the list size; shape is the extension's shape (nil when the column carries none).
// A fixed_shape_tensor whose metadata cannot be read, or whose shape does not multiply to the
// list size, is an error.
func TensorField(f arrow.Field) (size int, shape []int, ok bool, err error) {
	typ := f.Type
	extName, extMeta := "", ""
	if ext, isExt := typ.(arrow.ExtensionType); isExt {
		extName, extMeta = ext.ExtensionName(), ext.Serialize()
		typ = ext.StorageType()
	} else if f.HasMetadata() {
		if i := f.Metadata.FindKey(extensionNameKey); i >= 0 {
			extName = f.Metadata.Values()[i]
		}
		if i := f.Metadata.FindKey(extensionMetaKey); i >= 0 {
			extMeta = f.Metadata.Values()[i]
		}
	}
	fl, isList := typ.(*arrow.FixedSizeListType)
	if !isList || fl.Elem().ID() != arrow.FLOAT32 {
		return 0, nil, false, nil
	}
	size = int(fl.Len())
	if extName != FixedShapeTensorName {
		return size, nil, true, nil
	}
	var meta struct {
		Shape       []int `json:"shape"`
		Permutation []int `json:"permutation"`
	}
	if err := json.Unmarshal([]byte(extMeta), &meta); err != nil {
		return 0, nil, false, fmt.Errorf("%s metadata %q is not readable JSON: %w", FixedShapeTensorName, extMeta, err)
	}
	for i, p := range meta.Permutation {
		if p != i {
			return 0, nil, false, fmt.Errorf("%s with permutation %v: pipe reads only the row-major layout (no permutation)", FixedShapeTensorName, meta.Permutation)
		}
	}
	n := 1
	for _, d := range meta.Shape {
		if d < 1 {
			return 0, nil, false, fmt.Errorf("%s shape %v has a dimension below 1", FixedShapeTensorName, meta.Shape)
		}
		n *= d
	}
	if len(meta.Shape) == 0 || n != size {
		return 0, nil, false, fmt.Errorf("%s shape %v holds %d values, but the list size is %d", FixedShapeTensorName, meta.Shape, n, size)
	}
	return size, meta.Shape, true, nil
}

// FixedShapeTensorField returns a FixedSizeList<float32> field of the shape's size that
// carries arrow.fixed_shape_tensor metadata for the shape, the form IPC and Parquet files keep.
func FixedShapeTensorField(name string, shape []int) arrow.Field {
	n := 1
	for _, d := range shape {
		n *= d
	}
	meta, _ := json.Marshal(map[string][]int{"shape": shape})
	return arrow.Field{Name: name, Type: arrow.FixedSizeListOf(int32(n), arrow.PrimitiveTypes.Float32),
		Metadata: arrow.NewMetadata([]string{extensionNameKey, extensionMetaKey}, []string{FixedShapeTensorName, string(meta)})}
}

// tensorInto copies tensor column t (arr) into x, row-major of width w, at column offset off.
// A wrong type or list size, a null row and a non-finite value are *ColumnError values.
func tensorInto(x []float32, off, w int, t TensorInput, arr arrow.Array, ids []int64, table string) error {
	a, ok := storage(arr).(*array.FixedSizeList)
	var vals *array.Float32
	if ok {
		vals, ok = a.ListValues().(*array.Float32)
	}
	if !ok || int(a.DataType().(*arrow.FixedSizeListType).Len()) != t.Size {
		return &ColumnError{Table: table, Column: t.Column, Msg: fmt.Sprintf("the column has type %s, but the model was trained on %s", arr.DataType(), t.ShapeString()),
			Hint: "give the column the type and size the model was trained on (an image of the same shape)"}
	}
	n := a.Len()
	for i := 0; i < n; i++ {
		if a.IsNull(i) {
			return &ColumnError{Table: table, Column: t.Column, Row: ids[i] + 1, Msg: "missing image (a null list)",
				Hint: "drop rows without an image before training or prediction"}
		}
	}
	start := (a.Data().Offset()) * t.Size
	src := vals.Float32Values()[start : start+n*t.Size]
	if vals.NullN() > 0 {
		for k := 0; k < n*t.Size; k++ {
			if vals.IsNull(start + k) {
				return &ColumnError{Table: table, Column: t.Column, Row: ids[k/t.Size] + 1, Msg: fmt.Sprintf("missing value at tensor position %d", k%t.Size),
					Hint: "fill the missing values in the source: the impute stage does not take tensor columns"}
			}
		}
	}
	if k := firstNonFinite(src); k >= 0 {
		return &ColumnError{Table: table, Column: t.Column, Row: ids[k/t.Size] + 1, Msg: fmt.Sprintf("non-finite value %v at tensor position %d", src[k], k%t.Size),
			Hint: "check the source for NaN or Inf pixels"}
	}
	if w == t.Size {
		copy(x, src) // the whole row is this tensor: one copy
		return nil
	}
	for i := 0; i < n; i++ {
		copy(x[i*w+off:i*w+off+t.Size], src[i*t.Size:(i+1)*t.Size])
	}
	return nil
}

// firstNonFinite returns the index of the first NaN or ±Inf in v (all exponent bits set), or -1.
// It tests eight values per step, with one branch for all of them.
func firstNonFinite(v []float32) int {
	const exp = 0x7f800000
	i := 0
	for ; i+8 <= len(v); i += 8 {
		c := v[i : i+8 : i+8]
		a0 := math.Float32bits(c[0])&exp ^ exp
		a1 := math.Float32bits(c[1])&exp ^ exp
		a2 := math.Float32bits(c[2])&exp ^ exp
		a3 := math.Float32bits(c[3])&exp ^ exp
		a4 := math.Float32bits(c[4])&exp ^ exp
		a5 := math.Float32bits(c[5])&exp ^ exp
		a6 := math.Float32bits(c[6])&exp ^ exp
		a7 := math.Float32bits(c[7])&exp ^ exp
		if a0 == 0 || a1 == 0 || a2 == 0 || a3 == 0 || a4 == 0 || a5 == 0 || a6 == 0 || a7 == 0 {
			break
		}
	}
	for ; i < len(v); i++ {
		if math.Float32bits(v[i])&exp == exp {
			return i
		}
	}
	return -1
}

// storage returns the storage array of an extension array, arr otherwise.
func storage(arr arrow.Array) arrow.Array {
	if e, ok := arr.(array.ExtensionArray); ok {
		return e.Storage()
	}
	return arr
}

// checkTensorFields reports the first tensor input whose column in s (when it has one: a
// missing column is CheckColumns' error) is not a FixedSizeList<float32> of the plan's size,
// before any row is read.
func (p *InputPlan) checkTensorFields(s *arrow.Schema) error {
	for _, t := range p.Tensors {
		idx := s.FieldIndices(t.Column)
		if len(idx) == 0 {
			continue
		}
		f := s.Field(idx[0])
		size, _, ok, err := TensorField(f)
		if err != nil {
			return &ColumnError{Column: t.Column, Msg: err.Error(), Hint: fmt.Sprintf("the model was trained on %s", t.ShapeString())}
		}
		if !ok || size != t.Size {
			return &ColumnError{Column: t.Column, Msg: fmt.Sprintf("the column has type %s, but the model was trained on %s", f.Type, t.ShapeString()),
				Hint: "give the column the type and size the model was trained on (an image of the same shape)"}
		}
	}
	return nil
}
