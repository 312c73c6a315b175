package arrowutil

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/schema"
)

// WithRowIDField returns s with the _row column (int64, role id) appended.
func WithRowIDField(s *arrow.Schema) *arrow.Schema {
	fields := append(append([]arrow.Field(nil), s.Fields()...), schema.WithRole(arrow.Field{Name: schema.RowIDColumn, Type: arrow.PrimitiveTypes.Int64}, schema.RoleID))
	md := s.Metadata()
	return arrow.NewSchema(fields, &md)
}

// AddRowID returns a new batch equal to rec plus the _row column numbered from start. out is
// the output schema (WithRowIDField of rec's schema, possibly with more metadata). The caller
// releases both rec and the result.
func AddRowID(mem memory.Allocator, rec arrow.RecordBatch, start int64, out *arrow.Schema) arrow.RecordBatch {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	n := int(rec.NumRows())
	b.Reserve(n)
	for i := 0; i < n; i++ {
		b.UnsafeAppend(start + int64(i))
	}
	ids := b.NewArray()
	defer ids.Release()
	cols := append(append([]arrow.Array(nil), rec.Columns()...), ids)
	return array.NewRecordBatch(out, cols, rec.NumRows())
}
