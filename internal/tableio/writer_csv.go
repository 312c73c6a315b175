package tableio

import (
	"bufio"
	"fmt"
	"math"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// csvFormatWriter writes RFC 4180 CSV: a header row, '\n' line ends, a field quoted only
// when it needs to be (it holds a comma, a quote, a line break, or is an empty string that
// must not read back as null). Floats are written in the shortest form that reads back
// exactly; nulls are empty fields.
type csvFormatWriter struct {
	w       *bufio.Writer
	schema  *arrow.Schema
	started bool
	line    []byte
}

func newCSVFormatWriter(w *bufio.Writer, schema *arrow.Schema) *csvFormatWriter {
	return &csvFormatWriter{w: w, schema: schema}
}

func (c *csvFormatWriter) header() error {
	c.line = c.line[:0]
	for j, f := range c.schema.Fields() {
		if j > 0 {
			c.line = append(c.line, ',')
		}
		c.line = appendCSVText(c.line, f.Name, false)
	}
	c.line = append(c.line, '\n')
	_, err := c.w.Write(c.line)
	c.started = true
	return err
}

func (c *csvFormatWriter) write(rec arrow.RecordBatch) error {
	if !c.started {
		if err := c.header(); err != nil {
			return err
		}
	}
	cols := rec.Columns()
	for i := 0; i < int(rec.NumRows()); i++ {
		c.line = c.line[:0]
		for j, col := range cols {
			if j > 0 {
				c.line = append(c.line, ',')
			}
			if col.IsNull(i) {
				continue
			}
			var err error
			if c.line, err = appendCSVValue(c.line, col, i); err != nil {
				return fmt.Errorf("column %q: %w", rec.ColumnName(j), err)
			}
		}
		c.line = append(c.line, '\n')
		if _, err := c.w.Write(c.line); err != nil {
			return err
		}
	}
	return nil
}

func (c *csvFormatWriter) close() error {
	if !c.started {
		return c.header() // a table without rows still has its header
	}
	return nil
}

func appendCSVValue(dst []byte, col arrow.Array, i int) ([]byte, error) {
	switch a := col.(type) {
	case *array.Int64:
		return strconv.AppendInt(dst, a.Value(i), 10), nil
	case *array.Int32:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10), nil
	case *array.Float64:
		return appendFloat(dst, a.Value(i), 64)
	case *array.Float32:
		return appendFloat(dst, float64(a.Value(i)), 32)
	case *array.Boolean:
		return strconv.AppendBool(dst, a.Value(i)), nil
	case *array.String:
		return appendCSVText(dst, a.Value(i), true), nil
	default:
		return appendCSVText(dst, col.ValueStr(i), true), nil
	}
}

func appendFloat(dst []byte, f float64, bits int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, fmt.Errorf("value %v is not finite; pipe does not write NaN or infinity to CSV", f)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits), nil
}

// appendCSVText appends s, quoted when needed. quoteEmpty quotes an empty string so that it
// reads back as an empty string rather than a null.
func appendCSVText(dst []byte, s string, quoteEmpty bool) []byte {
	needs := (quoteEmpty && s == "") || s == "NA"
	if !needs {
		for k := 0; k < len(s); k++ {
			switch s[k] {
			case ',', '"', '\n', '\r':
				needs = true
			}
		}
	}
	if !needs {
		return append(dst, s...)
	}
	dst = append(dst, '"')
	for k := 0; k < len(s); k++ {
		if s[k] == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, s[k])
	}
	return append(dst, '"')
}
