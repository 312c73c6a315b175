package datasets

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/arrowutil"
)

// ImageShape returns the [channels, height, width] of an image dataset's pixel columns and
// their names in row-major order, or an error for a dataset that is not an image.
func ImageShape(name string) ([]int, []string, error) {
	switch name {
	case "digits":
		return []int{1, 8, 8}, digitsPixels(), nil
	case "mnist":
		names := make([]string, mnistPixels)
		for p := range names {
			names[p] = fmt.Sprintf("px%d", p)
		}
		return []int{1, 28, 28}, names, nil
	}
	return nil, nil, fmt.Errorf("dataset %q is not an image: image_column works for digits and mnist", name)
}

// tensorField is a fixed_size_list<float32> field of the shape's size with Arrow's
// arrow.fixed_shape_tensor extension metadata, which IPC and Parquet files keep.
func tensorField(name string, shape []int) arrow.Field {
	n := 1
	for _, d := range shape {
		n *= d
	}
	meta, _ := json.Marshal(map[string][]int{"shape": shape})
	return arrow.Field{Name: name, Type: arrow.FixedSizeListOf(int32(n), arrow.PrimitiveTypes.Float32),
		Metadata: arrow.NewMetadata([]string{"ARROW:extension:name", "ARROW:extension:metadata"}, []string{"arrow.fixed_shape_tensor", string(meta)})}
}

// imageReader replaces an image dataset's pixel columns by one tensor column, at the place of
// the first pixel column. Each value is the pixel as float64 rounded to float32, the value
// a network reads from the pixel column itself, so both forms train the same model.
type imageReader struct {
	inner  RecordReader
	mem    memory.Allocator
	schema *arrow.Schema
	pixels []int // the inner schema's pixel column indexes, in row-major order
	first  int
	cur    arrow.RecordBatch
	err    error
}

func newImageReader(inner RecordReader, dataset, column string, mem memory.Allocator) (*imageReader, error) {
	shape, names, err := ImageShape(dataset)
	if err != nil {
		return nil, err
	}
	s := inner.Schema()
	if len(s.FieldIndices(column)) > 0 {
		return nil, fmt.Errorf("dataset %q: image_column %q is already a column of the dataset: choose another name", dataset, column)
	}
	r := &imageReader{inner: inner, mem: mem}
	for _, n := range names {
		idx := s.FieldIndices(n)
		if len(idx) != 1 {
			return nil, fmt.Errorf("dataset %q: pixel column %q is missing", dataset, n)
		}
		r.pixels = append(r.pixels, idx[0])
	}
	r.first = slices.Min(r.pixels)
	var fields []arrow.Field
	for i, f := range s.Fields() {
		switch {
		case i == r.first:
			fields = append(fields, tensorField(column, shape))
		case !slices.Contains(r.pixels, i):
			fields = append(fields, f)
		}
	}
	md := s.Metadata()
	r.schema = arrow.NewSchema(fields, &md)
	return r, nil
}

func (r *imageReader) Schema() *arrow.Schema { return r.schema }

func (r *imageReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.err != nil || !r.inner.Next() {
		return false
	}
	rec := r.inner.RecordBatch()
	n, w := int(rec.NumRows()), len(r.pixels)
	vals := memory.NewResizableBuffer(r.mem)
	defer vals.Release()
	vals.Resize(arrow.Float32Traits.BytesRequired(n * w))
	dst := arrow.Float32Traits.CastFromBytes(vals.Bytes())[:n*w]
	for j, c := range r.pixels {
		px, err := arrowutil.Float64s(rec.Column(c))
		if err != nil {
			r.err = fmt.Errorf("pixel column %q: %w", rec.Schema().Field(c).Name, err)
			return false
		}
		for i, v := range px {
			dst[i*w+j] = float32(v)
		}
	}
	child := array.NewData(arrow.PrimitiveTypes.Float32, n*w, []*memory.Buffer{nil, vals}, nil, 0, 0)
	defer child.Release()
	list := array.NewData(r.schema.Field(r.first).Type, n, []*memory.Buffer{nil}, []arrow.ArrayData{child}, 0, 0)
	defer list.Release()
	img := array.MakeFromData(list)
	defer img.Release()
	cols := make([]arrow.Array, 0, r.schema.NumFields())
	for i := 0; i < int(rec.NumCols()); i++ {
		switch {
		case i == r.first:
			cols = append(cols, img)
		case !slices.Contains(r.pixels, i):
			cols = append(cols, rec.Column(i))
		}
	}
	r.cur = array.NewRecordBatch(r.schema, cols, int64(n))
	return true
}

func (r *imageReader) RecordBatch() arrow.RecordBatch { return r.cur }

func (r *imageReader) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.inner.Err()
}

func (r *imageReader) Release() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	r.inner.Release()
}
