package tableio

import (
	"bytes"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// csvColumn is the reader's plan for one column.
type csvColumn struct {
	name     string
	kind     colKind
	inferred bool // the type came from the sample, not from CSVOptions.Schema
}

// csvChunk is a run of complete rows handed to a parser goroutine.
type csvChunk struct {
	data      []byte
	rows      int   // data rows in data (blank lines excluded)
	firstRow  int64 // 1-based row number of the first data row
	firstLine int64 // physical line of data[0]
	result    chan chunkResult
}

// chunkResult is a parsed chunk: a record batch (nil when every row was skipped) or an error.
type chunkResult struct {
	rec      arrow.RecordBatch
	err      error
	skipped  int64
	examples []*RowError
}

// columnBuffer accumulates one column of a chunk directly in Arrow memory.
type columnBuffer struct {
	kind    colKind
	values  *memory.Buffer // fixed-width values, or the int32 offsets of a string column
	i64     []int64
	i32     []int32
	f64     []float64
	f32     []float32
	bools   []byte // one byte per row, packed into a bitmap at the end
	strData []byte
	nulls   []int32 // rows that are null, ascending
}

// blockParser parses chunks into record batches; each parser goroutine owns one.
type blockParser struct {
	mem        memory.Allocator
	schema     *arrow.Schema
	cols       []csvColumn
	delim      byte
	nullEmpty  bool     // "" is a null value
	nullValues [][]byte // the non-empty null values
	skip       bool
	name       string
	stage      string // CSVOptions.Stage, for hints
	sampleRows int
	suspect    byte // the separator a one-column header seems to use instead (0: none)
	fr         fieldReader
	// scratch holds the fixed-width values of up to groupRows rows, row-major (int64 or
	// float64 bits). Rows are parsed into it and scattered to the columns a group at a
	// time, so that parsing writes sequentially instead of touching one cache line (and one
	// page) per column per row.
	scratch []uint64
}

// groupRows is the number of rows parsed row-major before they are scattered to columns.
const groupRows = 32

func newBlockParser(mem memory.Allocator, schema *arrow.Schema, cols []csvColumn, o *CSVOptions) *blockParser {
	p := &blockParser{mem: mem, schema: schema, cols: cols, delim: byte(o.Delimiter),
		skip: o.OnBadRow == OnBadRowSkip, name: o.Name, sampleRows: o.SampleRows, stage: o.Stage}
	p.fr.delim = p.delim
	p.scratch = make([]uint64, groupRows*len(cols))
	for _, v := range o.NullValues {
		if v == "" {
			p.nullEmpty = true
		} else {
			p.nullValues = append(p.nullValues, []byte(v))
		}
	}
	return p
}

func (p *blockParser) isNull(text []byte) bool {
	if len(text) == 0 {
		return p.nullEmpty
	}
	for _, v := range p.nullValues {
		if bytes.Equal(text, v) {
			return true
		}
	}
	return false
}

// parse turns a chunk into a record batch. Rows that fail are skipped or returned as a
// *RowError according to the policy.
func (p *blockParser) parse(c *csvChunk) (res chunkResult) {
	bufs := p.allocate(c.rows)
	defer func() {
		for i := range bufs {
			if bufs[i].values != nil {
				bufs[i].values.Release()
			}
		}
	}()
	data := c.data
	ncols := len(p.cols)
	pos, n, flushed := 0, 0, 0
	line, row := c.firstLine, c.firstRow
	for pos < len(data) {
		if data[pos] == '\n' {
			pos++
			line++
			continue
		}
		if data[pos] == '\r' && (pos+1 == len(data) || data[pos+1] == '\n') {
			pos += 2
			line++
			continue
		}
		if n == c.rows {
			// The chunker and the parser disagree on row boundaries: a bug, not bad data.
			return chunkResult{err: fmt.Errorf("%s:%d: internal error: more rows than the %d counted in this block; please report this with the file", p.name, line, c.rows)}
		}
		if n-flushed == groupRows {
			p.scatter(bufs, flushed, n-flushed)
			flushed = n
		}
		g := n - flushed
		next, extra, rerr := p.parseRow(data, pos, n, bufs, p.scratch[g*ncols:(g+1)*ncols], line, row)
		if rerr != nil {
			if !p.skip {
				return chunkResult{err: rerr}
			}
			p.rollback(bufs, n)
			res.skipped++
			if len(res.examples) < maxSkippedExamples {
				res.examples = append(res.examples, rerr)
			}
			end, lines, ok := scanRow(data, pos)
			if !ok {
				lines = bytes.Count(data[pos:], newlineByte) + 1
			}
			pos = end
			line += int64(lines)
			row++
			continue
		}
		n++
		row++
		line += int64(1 + extra)
		pos = next
	}
	if n == 0 {
		return res
	}
	p.scatter(bufs, flushed, n-flushed)
	res.rec = p.build(bufs, n)
	return res
}

func (p *blockParser) allocate(rows int) []columnBuffer {
	bufs := make([]columnBuffer, len(p.cols))
	for i, col := range p.cols {
		b := &bufs[i]
		b.kind = col.kind
		switch col.kind {
		case kindInt64:
			b.values = memory.NewResizableBuffer(p.mem)
			b.values.Resize(rows * 8)
			b.i64 = arrow.Int64Traits.CastFromBytes(b.values.Bytes())
		case kindInt32:
			b.values = memory.NewResizableBuffer(p.mem)
			b.values.Resize(rows * 4)
			b.i32 = arrow.Int32Traits.CastFromBytes(b.values.Bytes())
		case kindFloat64:
			b.values = memory.NewResizableBuffer(p.mem)
			b.values.Resize(rows * 8)
			b.f64 = arrow.Float64Traits.CastFromBytes(b.values.Bytes())
		case kindFloat32:
			b.values = memory.NewResizableBuffer(p.mem)
			b.values.Resize(rows * 4)
			b.f32 = arrow.Float32Traits.CastFromBytes(b.values.Bytes())
		case kindBool:
			b.bools = make([]byte, rows)
		case kindString:
			b.values = memory.NewResizableBuffer(p.mem)
			b.values.Resize((rows + 1) * 4)
			b.i32 = arrow.Int32Traits.CastFromBytes(b.values.Bytes())
			b.i32[0] = 0
		}
	}
	return bufs
}

// rollback forgets whatever the failed row n wrote.
func (p *blockParser) rollback(bufs []columnBuffer, n int) {
	for i := range bufs {
		b := &bufs[i]
		for len(b.nulls) > 0 && b.nulls[len(b.nulls)-1] == int32(n) {
			b.nulls = b.nulls[:len(b.nulls)-1]
		}
		if b.kind == kindString {
			b.strData = b.strData[:b.i32[n]]
		}
	}
}

// scatter copies count rows of scratch to rows [n0, n0+count) of the fixed-width columns.
func (p *blockParser) scatter(bufs []columnBuffer, n0, count int) {
	ncols := len(bufs)
	scratch := p.scratch[:count*ncols]
	for j := range bufs {
		b := &bufs[j]
		switch b.kind {
		case kindInt64:
			dst := b.i64[n0 : n0+count]
			for r := range dst {
				dst[r] = int64(scratch[r*ncols+j])
			}
		case kindFloat64:
			dst := b.f64[n0 : n0+count]
			for r := range dst {
				dst[r] = math.Float64frombits(scratch[r*ncols+j])
			}
		case kindInt32:
			dst := b.i32[n0 : n0+count]
			for r := range dst {
				dst[r] = int32(int64(scratch[r*ncols+j]))
			}
		case kindFloat32:
			dst := b.f32[n0 : n0+count]
			for r := range dst {
				dst[r] = float32(math.Float64frombits(scratch[r*ncols+j]))
			}
		}
	}
}

// isTerminator reports whether data[i] ends an unquoted field.
func (p *blockParser) isTerminator(data []byte, i int) bool {
	if i == len(data) {
		return true
	}
	c := data[i]
	return c == p.delim || c == '\n' || (c == '\r' && (i+1 == len(data) || data[i+1] == '\n'))
}

// parseRow parses the row that starts at data[pos] into row n of bufs. It returns the start
// of the next row and the number of line breaks inside quoted fields.
//
// Fixed-width values go to vals (this row's slice of the scratch), bools and strings
// straight to their columns.
func (p *blockParser) parseRow(data []byte, pos, n int, bufs []columnBuffer, vals []uint64, line, row int64) (next, extra int, rerr *RowError) {
	last := len(bufs) - 1
	for j := 0; j <= last; j++ {
		b := &bufs[j]
		end := -1
		// Fast paths for plain unquoted numbers: parse while scanning, no copy.
		switch b.kind {
		case kindInt64:
			i := pos
			neg := false
			if i < len(data) && data[i] == '-' {
				neg = true
				i++
			}
			s := i
			var v int64
			for i < len(data) {
				c := data[i] - '0'
				if c > 9 {
					break
				}
				v = v*10 + int64(c)
				i++
			}
			if d := i - s; d > 0 && d <= 18 && p.isTerminator(data, i) {
				if neg {
					v = -v
				}
				vals[j] = uint64(v)
				end = i
			}
		case kindFloat64, kindFloat32:
			i := pos
			neg := false
			if i < len(data) && data[i] == '-' {
				neg = true
				i++
			}
			s := i
			var m uint64
			for i < len(data) {
				c := data[i] - '0'
				if c > 9 {
					break
				}
				m = m*10 + uint64(c)
				i++
			}
			intDigits := i - s
			frac := 0
			if i < len(data) && data[i] == '.' {
				i++
				f0 := i
				for i < len(data) {
					c := data[i] - '0'
					if c > 9 {
						break
					}
					m = m*10 + uint64(c)
					i++
				}
				frac = i - f0
			}
			// 15 digits keep m below 2^53, so the division is correctly rounded.
			if intDigits+frac > 0 && intDigits+frac <= 15 && p.isTerminator(data, i) {
				f := float64(m) / exactPow10[frac]
				if neg {
					f = -f
				}
				vals[j] = math.Float64bits(f)
				end = i
			}
		}
		if end < 0 {
			text, quoted, e, nl, problem := p.fr.readField(data, pos)
			if problem != fieldOK {
				return 0, 0, p.fieldProblemError(problem, text, j, line, row)
			}
			extra += nl
			end = e
			if rerr := p.convert(b, n, &vals[j], text, quoted, j, line, row); rerr != nil {
				return 0, 0, rerr
			}
		}
		if end < len(data) && data[end] == p.delim {
			if j == last {
				return 0, 0, p.fieldCountError(data, pos, end, j, line, row)
			}
			pos = end + 1
			continue
		}
		if j != last {
			return 0, 0, p.fieldCountError(data, pos, end, j, line, row)
		}
		next = afterTerminator(data, end)
	}
	return next, extra, nil
}

// convert stores one field through the general (slow) path; a fixed-width value goes to *val.
func (p *blockParser) convert(b *columnBuffer, n int, val *uint64, text []byte, quoted bool, j int, line, row int64) *RowError {
	if (!quoted || b.kind != kindString) && p.isNull(text) {
		b.nulls = append(b.nulls, int32(n))
		*val = 0
		switch b.kind {
		case kindBool:
			b.bools[n] = 0
		case kindString:
			b.i32[n+1] = int32(len(b.strData))
		}
		return nil
	}
	switch b.kind {
	case kindInt64, kindInt32:
		v, ok := parseInt64Bytes(text)
		if ok && b.kind == kindInt32 && (v < math.MinInt32 || v > math.MaxInt32) {
			ok = false
		}
		if !ok {
			return p.typeError(text, j, line, row)
		}
		*val = uint64(v)
	case kindFloat64, kindFloat32:
		f, st := parseFloat64Bytes(text)
		if st == numberOK && b.kind == kindFloat32 && math.Abs(f) > math.MaxFloat32 {
			st = numberNonFin
		}
		switch st {
		case numberBad:
			return p.typeError(text, j, line, row)
		case numberNonFin:
			return &RowError{File: p.name, Line: line, Row: row, Column: p.cols[j].name, Value: errorValue(text),
				Expected: "a finite " + b.kind.String(),
				Hint:     `pipe does not let NaN or infinity into a table: leave the field empty (a null, which an impute stage can fill), fix the value, or ` + p.skipHint() + "."}
		}
		*val = math.Float64bits(f)
	case kindBool:
		v, ok := parseBoolBytes(text)
		if !ok {
			return p.typeError(text, j, line, row)
		}
		if v {
			b.bools[n] = 1
		} else {
			b.bools[n] = 0
		}
	case kindString:
		if len(b.strData)+len(text) > math.MaxInt32 {
			return &RowError{File: p.name, Line: line, Row: row, Column: p.cols[j].name,
				Reason: "the text of this block's column exceeds 2 GiB",
				Hint:   "Lower batch_rows so that a batch of this column holds less than 2 GiB of text."}
		}
		if !utf8.Valid(text) {
			return &RowError{File: p.name, Line: line, Row: row, Column: p.cols[j].name, Value: errorValue(text),
				Reason: fmt.Sprintf("the text %q is not UTF-8 (%s)", errorValue(text), invalidUTF8(text)),
				Hint:   "R" + utf8Hint[1:] + ", or " + p.skipHint() + "."}
		}
		b.strData = append(b.strData, text...)
		b.i32[n+1] = int32(len(b.strData))
	}
	return nil
}

// skipHint is the way past a bad row other than fixing it: on_bad_row on a stage's input,
// removing it from pipe predict's.
func (p *blockParser) skipHint() string {
	if p.stage == "" {
		return "remove the row from the input"
	}
	return `set on_bad_row = "skip"`
}

// declareHint suggests declaring the column's type in the reading stage's schema (with a
// trailing ", "), or "" for an input no stage reads, whose types are the model's.
func (p *blockParser) declareHint(typ string) string {
	if p.stage == "" {
		return ""
	}
	return fmt.Sprintf("declare the column as %s in [stages.%s.schema], ", typ, p.stage)
}

func (p *blockParser) typeError(text []byte, j int, line, row int64) *RowError {
	col := p.cols[j]
	suggest := "string"
	if col.kind == kindInt64 || col.kind == kindInt32 {
		if _, st := parseFloat64Bytes(text); st == numberOK {
			suggest = "float64"
		}
	}
	hint := "Fix the value, " + p.declareHint(suggest) + "or " + p.skipHint() + "."
	if col.inferred {
		hint = fmt.Sprintf("The column's type %s was inferred from the first %d rows. ", col.kind, p.sampleRows) + hint
	}
	if decimalComma(text) {
		hint += " The value has a decimal comma: pipe reads numbers with a decimal point, so write the column with points (or declare it as string)."
	} else if c := separatorIn(text, p.delim); c != 0 {
		hint += fmt.Sprintf(" The value holds %s: if the file (or this row) is separated by %s, set delimiter = %s; a file must use one separator throughout.",
			quoteDelimiter(c), quoteDelimiter(c), quoteDelimiter(c))
	}
	return &RowError{File: p.name, Line: line, Row: row, Column: col.name, Value: errorValue(text),
		Expected: col.kind.String(), Hint: hint}
}

func (p *blockParser) fieldProblemError(problem fieldProblem, text []byte, j int, line, row int64) *RowError {
	e := &RowError{File: p.name, Line: line, Row: row, Column: p.cols[j].name}
	switch problem {
	case fieldBareQuote:
		e.Value = errorValue(text)
		e.Reason = fmt.Sprintf("a quote inside the unquoted field %q", e.Value)
		e.Hint = `Quote the whole field and double the quotes inside it ("a ""b"" c"), or ` + p.skipHint() + "."
	case fieldUnterminated:
		e.Reason = "a quoted field has no closing quote before the end of the input"
		e.Hint = `Close the quote (a quote inside a quoted field is written twice: ""), or ` + p.skipHint() + "."
	case fieldAfterQuote:
		e.Reason = "a closing quote is followed by text instead of a delimiter or the end of the line"
		e.Hint = `Quote the whole field and double the quotes inside it, or ` + p.skipHint() + "."
	}
	return e
}

// fieldCountError reports a row with too few or too many fields. j is the index of the field
// that ended at data[end].
func (p *blockParser) fieldCountError(data []byte, rowStart, end, j int, line, row int64) *RowError {
	found := j + 1
	if end < len(data) && data[end] == p.delim {
		// Too many: count the rest of the row.
		pos := end + 1
		for {
			found++
			_, _, e, _, problem := p.fr.readField(data, pos)
			if problem != fieldOK || e >= len(data) || data[e] != p.delim {
				break
			}
			pos = e + 1
		}
	}
	hint := `Fix the row (a field that contains the delimiter, a quote or a line break must be quoted), or ` + p.skipHint() + "."
	switch c := rowDelimiter(data[rowStart:], p.delim, len(p.cols)); {
	case p.suspect != 0:
		hint = fmt.Sprintf("The header reads as one column: the file looks separated by %s; set delimiter = %s on the source.",
			quoteDelimiter(p.suspect), quoteDelimiter(p.suspect))
	case c != 0:
		hint = fmt.Sprintf(`This row looks separated by %s, unlike the header (delimiter %s): the file mixes separators; make them one, or %s.`,
			quoteDelimiter(c), quoteDelimiter(p.delim), p.skipHint())
	}
	return &RowError{File: p.name, Line: line, Row: row,
		Reason: fmt.Sprintf("expected %d fields, found %d", len(p.cols), found), Hint: hint}
}

// build turns the first n rows of bufs into a record batch; the caller owns it.
func (p *blockParser) build(bufs []columnBuffer, n int) arrow.RecordBatch {
	cols := make([]arrow.Array, len(bufs))
	for i := range bufs {
		cols[i] = p.buildColumn(&bufs[i], n)
	}
	rec := array.NewRecordBatch(p.schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

func (p *blockParser) buildColumn(b *columnBuffer, n int) arrow.Array {
	var validity *memory.Buffer
	if len(b.nulls) > 0 {
		validity = memory.NewResizableBuffer(p.mem)
		validity.Resize(int(bitutil.BytesForBits(int64(n))))
		bits := validity.Bytes()
		for k := range bits {
			bits[k] = 0xFF
		}
		for _, r := range b.nulls {
			bitutil.ClearBit(bits, int(r))
		}
		defer validity.Release()
	}
	var buffers []*memory.Buffer
	switch b.kind {
	case kindInt64, kindFloat64:
		b.values.Resize(n * 8)
		buffers = []*memory.Buffer{validity, b.values}
	case kindInt32, kindFloat32:
		b.values.Resize(n * 4)
		buffers = []*memory.Buffer{validity, b.values}
	case kindBool:
		bits := memory.NewResizableBuffer(p.mem)
		bits.Resize(int(bitutil.BytesForBits(int64(n))))
		out := bits.Bytes()
		for k := range out {
			out[k] = 0
		}
		for r := 0; r < n; r++ {
			if b.bools[r] != 0 {
				bitutil.SetBit(out, r)
			}
		}
		defer bits.Release()
		buffers = []*memory.Buffer{validity, bits}
	case kindString:
		b.values.Resize((n + 1) * 4)
		dataBuf := memory.NewResizableBuffer(p.mem)
		dataBuf.Resize(len(b.strData))
		copy(dataBuf.Bytes(), b.strData)
		defer dataBuf.Release()
		buffers = []*memory.Buffer{validity, b.values, dataBuf}
	}
	d := array.NewData(b.kind.dataType(), n, buffers, nil, len(b.nulls), 0)
	defer d.Release()
	return array.MakeFromData(d)
}
