package tableio_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/pipe-ml/pipe/internal/tableio"
)

// table is a reader's output as text: one []string per row, "(null)" for nulls.
type table struct {
	types     []string
	rows      [][]string
	batchRows []int64
}

// drain reads every batch of r, checking that each batch is well formed, and returns the
// rows as text and the error that ended the read.
func drain(t testing.TB, r tableio.Reader) (table, error) {
	t.Helper()
	var out table
	for _, f := range r.Schema().Fields() {
		out.types = append(out.types, f.Type.String())
	}
	for r.Next() {
		rec := r.RecordBatch()
		if !rec.Schema().Equal(r.Schema()) {
			t.Fatalf("batch schema %s differs from reader schema %s", rec.Schema(), r.Schema())
		}
		out.batchRows = append(out.batchRows, rec.NumRows())
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]string, rec.NumCols())
			for j, col := range rec.Columns() {
				if col.Len() != int(rec.NumRows()) {
					t.Fatalf("column %d has %d values, batch has %d rows", j, col.Len(), rec.NumRows())
				}
				row[j] = valueText(col, i)
			}
			out.rows = append(out.rows, row)
		}
	}
	return out, r.Err()
}

func valueText(col arrow.Array, i int) string {
	if s, ok := col.(*array.String); ok && !s.IsNull(i) {
		return s.Value(i) // unquoted, unlike ValueStr for some types
	}
	return col.ValueStr(i)
}

func rowsText(rows [][]string) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(strings.Join(r, "|"))
		b.WriteString("\n")
	}
	return b.String()
}

func errorsAs(err error, target **tableio.RowError) bool { return errors.As(err, target) }
