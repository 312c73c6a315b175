package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/tableio"
)

// maxCell is the most characters a table cell (or column name) shows; longer ones end in "…".
const maxCell = 40

// tableView prints the first rows of a table file as text columns.
type tableView struct {
	// Rows is how many rows to print at most. 0 prints only the columns.
	Rows int
	// Width is the line width the columns must fit in; those that do not are left out and
	// named at the end. At least one column is always printed.
	Width int
}

// print reads the first v.Rows rows of the table file at path (Parquet, Arrow IPC or CSV, by
// its extension) with mem and prints them to w: a line of column names, a line of their
// types, then a line per row, and a last line that says what was left out.
func (v tableView) print(w io.Writer, path string, mem memory.Allocator) error {
	rd, err := tableio.OpenFile(path, mem, tableio.CSVOptions{Limit: int64(v.Rows) + 1, BatchRows: min(v.Rows+1, tableio.DefaultBatchRows)})
	if err != nil {
		return err
	}
	defer rd.Release()
	schema := rd.Schema()
	nf := schema.NumFields()
	cols := make([][]string, nf) // per column: name, type, then the cells
	numeric := make([]bool, nf)
	for j, f := range schema.Fields() {
		cols[j] = []string{f.Name, f.Type.String()}
		numeric[j] = isNumeric(f.Type)
	}
	shown, more := 0, false
	for !more && rd.Next() {
		rec := rd.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			if shown == v.Rows {
				more = true
				break
			}
			for j := 0; j < nf; j++ {
				cols[j] = append(cols[j], cellText(rec.Column(j), i))
			}
			shown++
		}
	}
	if err := rd.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	widths := make([]int, nf)
	fit := 0 // columns that fit in v.Width
	total := 0
	for j := range cols {
		for _, c := range cols[j] {
			widths[j] = max(widths[j], utf8.RuneCountInString(clip(c, maxCell)))
		}
		need := widths[j]
		if j > 0 {
			need += 2
		}
		if j > 0 && total+need > v.Width {
			break
		}
		total += need
		fit++
	}
	if nf > 0 && widths[0] > v.Width {
		widths[0] = max(v.Width, 1)
	}
	var b strings.Builder
	for i := 0; i < 2+shown; i++ {
		b.Reset()
		for j := 0; j < fit; j++ {
			if j > 0 {
				b.WriteString("  ")
			}
			c := clip(cols[j][i], widths[j])
			pad := strings.Repeat(" ", widths[j]-utf8.RuneCountInString(c))
			if numeric[j] {
				b.WriteString(pad + c)
			} else if j < fit-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(c)
			}
		}
		fmt.Fprintln(w, b.String())
	}
	var notes []string
	switch {
	case more:
		notes = append(notes, fmt.Sprintf("first %d rows; more follow: --rows N shows more", shown))
	case shown == 1:
		notes = append(notes, "1 row")
	default:
		notes = append(notes, fmt.Sprintf("%d rows", shown))
	}
	if fit < nf {
		var names []string
		for j := fit; j < nf; j++ {
			names = append(names, schema.Field(j).Name)
		}
		list := strings.Join(names, ", ")
		if len(names) > 12 {
			list = strings.Join(names[:12], ", ") + ", ..."
		}
		notes = append(notes, fmt.Sprintf("%d of %d columns; not shown: %s (--width COLS shows more)", fit, nf, list))
	}
	fmt.Fprintf(w, "(%s)\n", strings.Join(notes, "; "))
	return nil
}

// clip cuts s to n characters, the last one "…" when it was cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	if n <= 1 {
		return string(r[:n])
	}
	return string(r[:n-1]) + "…"
}

// cellText is the text of row i of column a: "null", a float with 6 significant digits, a
// string quoted only when it holds control characters (a line break would break the table).
func cellText(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "null"
	}
	switch c := a.(type) {
	case *array.Float64:
		return strconv.FormatFloat(c.Value(i), 'g', 6, 64)
	case *array.Float32:
		return strconv.FormatFloat(float64(c.Value(i)), 'g', 6, 32)
	case *array.String:
		return textCell(c.Value(i))
	case *array.LargeString:
		return textCell(c.Value(i))
	}
	return textCell(a.ValueStr(i))
}

func textCell(s string) string {
	if strings.ContainsFunc(s, unicode.IsControl) {
		return strconv.Quote(s)
	}
	return s
}

// isNumeric reports whether a column of type t is printed right-aligned.
func isNumeric(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64, arrow.DECIMAL128, arrow.DECIMAL256:
		return true
	}
	return false
}
