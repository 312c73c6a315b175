package tableio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Reader streams record batches, following arrow-go's array.RecordReader conventions.
type Reader interface {
	// Schema is the schema of every batch.
	Schema() *arrow.Schema
	// Next advances to the next batch; it returns false at the end or on an error.
	Next() bool
	// RecordBatch is the current batch. The reader owns it: it is valid until the next call
	// to Next or Release; call Retain to keep it longer (and Release it later).
	RecordBatch() arrow.RecordBatch
	// Err is the error that stopped Next, or nil at a clean end.
	Err() error
	// Release frees the reader's resources (goroutines, files, the current batch). It is
	// safe to call more than once.
	Release()
}

// CSVReader reads CSV text into record batches; see the package doc for the format and
// NewCSVReader for its use.
type CSVReader struct {
	mem    memory.Allocator
	opts   CSVOptions
	schema *arrow.Schema

	results chan chan chunkResult // one slot per chunk, in input order
	done    chan struct{}
	wg      sync.WaitGroup
	stopped sync.Once

	// checkStream: the input is a compressed stream, so a bad row may be the garbled text of
	// a damaged file; Next then reads on to find the file's error (see streamError).
	checkStream bool
	draining    atomic.Bool // streamError is reading on: parsers skip their chunks

	warnings []string

	cur      arrow.RecordBatch
	err      error
	finished bool
	skipped  int64
	examples []*RowError
}

// Bounds of how much input is read at once.
const (
	minRead      = 64 << 10
	chunkMinRead = 4 << 20
)

// NewCSVReader reads the header and a sample of rows of r (to infer column types), then
// parses the rest as the caller calls Next, with opts.Workers goroutines. The caller must
// call Release. mem allocates every batch. An input without a header row or without data
// rows is an error, as is a Schema field that names no header column.
func NewCSVReader(r io.Reader, mem memory.Allocator, opts CSVOptions) (*CSVReader, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	src := &csvSource{r: r}
	data := make([]byte, 0, minRead)
	fr := fieldReader{delim: byte(o.Delimiter)}

	// Header, after an optional UTF-8 byte-order mark and leading blank lines.
	line := int64(1)
	pos := 0
	var header []string
	bomChecked := false
	for {
		end, lines, ok := scanRow(data, pos)
		if !ok && !src.eof {
			if data, err = src.fill(data); err != nil {
				return nil, readError(o.Name, "reading the header", err)
			}
			if !bomChecked && (len(data) >= 3 || src.eof) {
				bomChecked = true
				data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
			}
			continue
		}
		if pos == len(data) {
			return nil, fmt.Errorf("%s: the input is empty: a CSV file needs a header row naming its columns, then data rows", o.Name)
		}
		if isBlankRow(data[pos:end]) {
			pos = end
			line += int64(lines)
			continue
		}
		fields, next, hl, problem := fr.splitRecord(data, pos)
		if problem != fieldOK {
			return nil, fmt.Errorf("%s:%d: the header row has a broken quote; quote a column name as \"name\" and double quotes inside it", o.Name, line)
		}
		for j, name := range fields {
			if !utf8.ValidString(name) {
				return nil, fmt.Errorf("%s:%d: the name of column %d, %q, is not UTF-8 (%s): %s", o.Name, line, j+1, name, invalidUTF8([]byte(name)), utf8Hint)
			}
		}
		header = fields
		pos = next
		line += int64(hl)
		break
	}
	cols, schema, err := planColumns(header, o, line-1)
	if err != nil {
		return nil, err
	}
	var warnings []string
	suspect := suspectDelimiter(header, byte(o.Delimiter))
	if suspect != 0 {
		warnings = append(warnings, delimiterWarning(o.Name, header[0], byte(o.Delimiter), suspect))
	}

	// Sample rows for inference (at least one row, to tell an empty table apart).
	needInference := false
	for _, c := range cols {
		needInference = needInference || c.inferred
	}
	want := 1
	if needInference {
		want = o.SampleRows
	}
	if o.Limit > 0 && int64(want) > o.Limit {
		want = int(o.Limit)
	}
	tallies := make([]typeTally, len(cols))
	classes := make([]uint8, len(cols))
	nulls := make([][]byte, len(o.NullValues))
	for i, v := range o.NullValues {
		nulls[i] = []byte(v)
	}
	sampled := 0
	scan := pos
	firstOther := make([]otherValue, len(cols)) // each inferred column's first non-number, for mixedWarning
	rowOther := make([]string, len(cols))
	for sampled < want {
		end, _, ok := scanRow(data, scan)
		if !ok && !src.eof {
			if data, err = src.fill(data); err != nil {
				return nil, readError(o.Name, "reading the sample rows", err)
			}
			continue
		}
		if scan == len(data) {
			break
		}
		if isBlankRow(data[scan:end]) {
			scan = end
			continue
		}
		if !needInference {
			_, next, _ := fr.visitRecord(data, scan, func(int, []byte, bool) {})
			scan = next
			sampled++
			continue
		}
		// Classify the row's fields; count them only if the row is well formed (the parser
		// reports a bad row in its place).
		nf, next, problem := fr.visitRecord(data, scan, func(j int, text []byte, quoted bool) {
			if j >= len(classes) {
				return
			}
			switch {
			case !cols[j].inferred:
			case isNullBytes(text, nulls):
				classes[j] = classNull
			default:
				classes[j] = classify(text)
				if classes[j] == classOther && tallies[j].others == 0 {
					rowOther[j] = string(text)
				}
			}
		})
		scan = next
		sampled++
		if problem != fieldOK || nf != len(cols) {
			continue
		}
		for j, c := range classes {
			if c == classOther && tallies[j].others == 0 {
				firstOther[j] = otherValue{text: rowOther[j], row: int64(sampled)}
			}
			tallies[j].add(c)
		}
	}
	if sampled == 0 {
		return nil, fmt.Errorf("%s: the input has a header row but no data rows", o.Name)
	}
	fields := schema.Fields()
	for j := range cols {
		if cols[j].inferred {
			cols[j].kind = tallies[j].kind()
			fields[j].Type = cols[j].kind.dataType()
			if w := mixedWarning(o.Name, fields[j].Name, tallies[j], firstOther[j]); w != "" {
				warnings = append(warnings, w)
			}
		}
	}
	md := schema.Metadata()
	schema = arrow.NewSchema(fields, &md)

	rd := &CSVReader{mem: mem, opts: o, schema: schema, warnings: warnings,
		results: make(chan chan chunkResult, o.Workers+1),
		done:    make(chan struct{})}
	jobs := make(chan *csvChunk, o.Workers)
	free := make(chan []byte, o.Workers+2)
	rd.wg.Add(1 + o.Workers)
	go rd.runChunker(src, data[pos:], line, jobs, free)
	for range o.Workers {
		p := newBlockParser(mem, schema, cols, &o)
		p.suspect = suspect
		go rd.runParser(p, jobs, free)
	}
	return rd, nil
}

func isNullBytes(b []byte, nulls [][]byte) bool {
	for _, v := range nulls {
		if bytes.Equal(b, v) {
			return true
		}
	}
	return false
}

// planColumns names the columns from the header and applies the declared schema.
func planColumns(header []string, o CSVOptions, headerLine int64) ([]csvColumn, *arrow.Schema, error) {
	cols := make([]csvColumn, len(header))
	fields := make([]arrow.Field, len(header))
	seen := make(map[string]int, len(header))
	for j, name := range header {
		if name == "" {
			name = fmt.Sprintf("column_%d", j+1)
		}
		if k, dup := seen[name]; dup {
			return nil, nil, fmt.Errorf("%s:%d: columns %d and %d of the header are both named %q; give them distinct names",
				o.Name, headerLine, k+1, j+1, name)
		}
		seen[name] = j
		cols[j] = csvColumn{name: name, kind: kindString, inferred: true}
		fields[j] = arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: true}
	}
	var md arrow.Metadata
	if o.Schema != nil {
		md = o.Schema.Metadata()
		for _, f := range o.Schema.Fields() {
			j, ok := seen[f.Name]
			if !ok {
				return nil, nil, fmt.Errorf("%s: the declared schema has a column %q that the header does not have (header: %s); fix the name in the schema",
					o.Name, f.Name, columnList(header))
			}
			k, err := kindOf(f.Type)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: column %q: %w", o.Name, f.Name, err)
			}
			cols[j].kind, cols[j].inferred = k, false
			f.Nullable = true
			fields[j] = f
		}
	}
	for name, typ := range o.TypeHints {
		j, ok := seen[name]
		if !ok || !cols[j].inferred {
			continue
		}
		k, err := kindOf(typ)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: column %q: %w", o.Name, name, err)
		}
		cols[j].kind, cols[j].inferred = k, false
		fields[j].Type = typ
	}
	return cols, arrow.NewSchema(fields, &md), nil
}

// csvSource reads the input in large blocks.
type csvSource struct {
	r   io.Reader
	eof bool
}

// fill appends more input to data: as much as data already holds, between 64 KiB and
// chunkMinRead, growing data when it lacks the room. It sets eof at the end. Reading a
// bounded amount keeps the tail that the chunker carries from one chunk to the next small;
// starting small keeps small inputs cheap.
func (s *csvSource) fill(data []byte) ([]byte, error) {
	want := min(chunkMinRead, max(minRead, len(data)))
	if cap(data)-len(data) < want {
		grown := make([]byte, len(data), 2*len(data)+want)
		copy(grown, data)
		data = grown
	}
	// Not io.ReadFull: it reports a short read as io.ErrUnexpectedEOF, which is also what a
	// truncated gzip stream returns, and the two must not be confused. Only io.EOF ends the
	// input.
	buf := data[len(data) : len(data)+want]
	n := 0
	var err error
	for n < len(buf) && err == nil {
		var m int
		m, err = s.r.Read(buf[n:])
		n += m
	}
	data = data[:len(data)+n]
	if err == io.EOF {
		s.eof = true
		return data, nil
	}
	return data, err
}

// readError is the error of a failed read of the input: a *CorruptFileError as it is (it names
// the file), another error wrapped with the file's name and what was being read.
func readError(name, what string, err error) error {
	var ce *CorruptFileError
	if errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf("%s: %s: %w", name, what, err)
}

// runChunker cuts the input into chunks of up to BatchRows complete rows, in order, and
// gives each to a parser with a result slot queued in rd.results.
func (rd *CSVReader) runChunker(src *csvSource, data []byte, line int64, jobs chan<- *csvChunk, free chan []byte) {
	defer rd.wg.Done()
	defer close(rd.results)
	defer close(jobs)
	batch := rd.opts.BatchRows
	limit := rd.opts.Limit
	row := int64(1)
	var total int64
	for {
		pos, rows, lines := 0, 0, 0
		for rows < batch && (limit == 0 || total+int64(rows) < limit) {
			end, nl, ok := scanRow(data, pos)
			if !ok {
				if !src.eof {
					var err error
					if data, err = src.fill(data); err != nil {
						rd.sendError(readError(rd.opts.Name, "reading", err))
						return
					}
					continue
				}
				if pos < len(data) && !isBlankRow(data[pos:]) {
					rows++ // the last row, without a line break (or with an unclosed quote)
				}
				pos = len(data)
				break
			}
			if !isBlankRow(data[pos:end]) {
				rows++
			}
			lines += nl
			pos = end
		}
		if rows > 0 {
			// Carry the tail into a fresh buffer sized like this chunk.
			// Room for a chunk like this one plus the reads that complete it.
			next := rd.takeBuffer(free, len(data)+min(2*chunkMinRead, max(minRead, pos/4)))
			next = append(next, data[pos:]...)
			c := &csvChunk{data: data[:pos], rows: rows, firstRow: row, firstLine: line,
				result: make(chan chunkResult, 1)}
			select {
			case rd.results <- c.result:
			case <-rd.done:
				return
			}
			select {
			case jobs <- c:
			case <-rd.done:
				return
			}
			data = next
			row += int64(rows)
			line += int64(lines)
			total += int64(rows)
		}
		if (src.eof && len(data) == 0) || (limit > 0 && total >= limit) || rows == 0 {
			return
		}
	}
}

func (rd *CSVReader) takeBuffer(free chan []byte, size int) []byte {
	select {
	case b := <-free:
		if cap(b) >= size {
			return b[:0]
		}
	default:
	}
	return make([]byte, 0, size)
}

func (rd *CSVReader) sendError(err error) {
	slot := make(chan chunkResult, 1)
	slot <- chunkResult{err: err}
	select {
	case rd.results <- slot:
	case <-rd.done:
	}
}

func (rd *CSVReader) runParser(p *blockParser, jobs <-chan *csvChunk, free chan []byte) {
	defer rd.wg.Done()
	for {
		select {
		case c, ok := <-jobs:
			if !ok {
				return
			}
			if rd.draining.Load() {
				c.result <- chunkResult{} // only the stream's end is of interest now
			} else {
				c.result <- p.parse(c) // buffered: never blocks
			}
			select {
			case free <- c.data[:0]:
			default:
			}
		case <-rd.done:
			return
		}
	}
}

// Schema returns the schema of every batch: header names, declared or inferred types,
// declared field metadata; every field is nullable.
func (rd *CSVReader) Schema() *arrow.Schema { return rd.schema }

// Next advances to the next batch. It returns false at the end of the input, at Limit, or
// on the first error (see Err).
func (rd *CSVReader) Next() bool {
	if rd.cur != nil {
		rd.cur.Release()
		rd.cur = nil
	}
	if rd.err != nil || rd.finished {
		return false
	}
	for {
		slot, ok := <-rd.results
		if !ok {
			rd.finished = true
			return false
		}
		res := <-slot
		rd.skipped += res.skipped
		for _, e := range res.examples {
			if len(rd.examples) < maxSkippedExamples {
				rd.examples = append(rd.examples, e)
			}
		}
		if res.err != nil {
			rd.err = res.err
			var re *RowError
			if rd.checkStream && errors.As(res.err, &re) {
				if serr := rd.streamError(); serr != nil {
					rd.err = fmt.Errorf("%w. The damage first showed as a bad row: %v", serr, re)
				}
			}
			rd.stop()
			return false
		}
		if res.rec != nil {
			rd.cur = res.rec
			return true
		}
	}
}

// streamError reads the rest of the input after a bad row, releasing the batches, and returns
// the first error that is not a bad row (a damaged compressed stream), or nil.
func (rd *CSVReader) streamError() error {
	rd.draining.Store(true)
	for slot := range rd.results {
		res := <-slot
		if res.rec != nil {
			res.rec.Release()
		}
		var re *RowError
		if res.err != nil && !errors.As(res.err, &re) {
			return res.err
		}
	}
	return nil
}

// RecordBatch returns the current batch, owned by the reader: valid until the next call to
// Next or Release; Retain it to keep it.
func (rd *CSVReader) RecordBatch() arrow.RecordBatch { return rd.cur }

// Err returns the error that stopped Next: a *RowError for a bad row (when OnBadRow is
// "fail"), or an I/O error. It is nil at a clean end.
func (rd *CSVReader) Err() error { return rd.err }

// Warnings describes what in the input looks wrong without being an error: a header that
// reads as one column holding another separator (set the delimiter).
func (rd *CSVReader) Warnings() []string { return append([]string(nil), rd.warnings...) }

// SkippedRows is the number of bad rows skipped so far (OnBadRow = "skip").
func (rd *CSVReader) SkippedRows() int64 { return rd.skipped }

// SkippedExamples describes the first 10 skipped rows, in input order.
func (rd *CSVReader) SkippedExamples() []*RowError {
	return append([]*RowError(nil), rd.examples...)
}

// Release stops the goroutines and frees the current batch and any parsed batches not yet
// returned. It is safe to call more than once.
func (rd *CSVReader) Release() {
	if rd.cur != nil {
		rd.cur.Release()
		rd.cur = nil
	}
	rd.stop()
}

// stop ends the goroutines and frees batches that were parsed but not consumed.
func (rd *CSVReader) stop() {
	rd.stopped.Do(func() {
		close(rd.done)
		rd.wg.Wait()
		for slot := range rd.results { // closed by the chunker on exit
			select {
			case res := <-slot:
				if res.rec != nil {
					res.rec.Release()
				}
			default:
			}
		}
	})
}
