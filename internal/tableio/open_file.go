package tableio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Format is a table file format, chosen from a file name's extension.
type Format string

// Formats.
const (
	FormatCSV     Format = "csv"     // .csv, or .csv.gz (gzip-compressed)
	FormatParquet Format = "parquet" // .parquet
	FormatIPC     Format = "arrow"   // .arrow, .ipc, .feather (the Arrow IPC file format)
)

// FormatOf returns the format of a path by its extension and whether it is gzip-compressed.
func FormatOf(path string) (f Format, gzipped bool, err error) {
	lower := strings.ToLower(path)
	switch {
	case strings.HasSuffix(lower, ".csv"):
		return FormatCSV, false, nil
	case strings.HasSuffix(lower, ".csv.gz"):
		return FormatCSV, true, nil
	case strings.HasSuffix(lower, ".parquet"):
		return FormatParquet, false, nil
	case strings.HasSuffix(lower, ".arrow"), strings.HasSuffix(lower, ".ipc"), strings.HasSuffix(lower, ".feather"):
		return FormatIPC, false, nil
	}
	return "", false, fmt.Errorf("%s: unknown table format; the file name must end in .csv, .csv.gz, .parquet, .arrow, .ipc or .feather", path)
}

// OpenFile opens a table file, choosing the reader by the extension (see FormatOf). opts
// applies to CSV (its Name defaults to the path); for Parquet and Arrow IPC only
// opts.BatchRows (Parquet batch size, default 16,384) and opts.Limit apply, and the schema
// is the file's own. The caller must call Release, which also closes the file.
func OpenFile(path string, mem memory.Allocator, opts CSVOptions) (Reader, error) {
	format, gz, err := FormatOf(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("table file %s does not exist: check the path (relative paths are resolved from %s) and the file name's spelling", path, workingDir())
		}
		return nil, fmt.Errorf("opening table file: %w", err)
	}
	var rd Reader
	switch format {
	case FormatCSV:
		rd, err = openCSV(f, gz, path, mem, opts)
	case FormatParquet:
		rd, err = openParquet(f, path, mem, opts)
	case FormatIPC:
		rd, err = openIPC(f, path, mem, opts)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return rd, nil
}

func workingDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "the working directory"
	}
	return wd
}

// closingReader closes files after releasing the reader it wraps.
type closingReader struct {
	Reader
	closers []io.Closer
}

// SkippedRows forwards the wrapped CSV reader's count of skipped bad rows (0 for other
// formats).
func (c *closingReader) SkippedRows() int64 {
	if s, ok := c.Reader.(interface{ SkippedRows() int64 }); ok {
		return s.SkippedRows()
	}
	return 0
}

// Warnings forwards the wrapped CSV reader's warnings (none for other formats).
func (c *closingReader) Warnings() []string {
	if w, ok := c.Reader.(interface{ Warnings() []string }); ok {
		return w.Warnings()
	}
	return nil
}

func (c *closingReader) Release() {
	c.Reader.Release()
	for _, cl := range c.closers {
		cl.Close()
	}
	c.closers = nil
}

func openCSV(f *os.File, gz bool, path string, mem memory.Allocator, opts CSVOptions) (Reader, error) {
	if opts.Name == "" {
		opts.Name = path
	}
	var in io.Reader = f
	closers := []io.Closer{f}
	if gz {
		zr, err := openGzip(f, opts.Name)
		if err != nil {
			return nil, err
		}
		in = zr
		closers = []io.Closer{zr, f}
	}
	rd, err := NewCSVReader(in, mem, opts)
	if err != nil {
		return nil, err
	}
	// A damaged compressed stream garbles the text before the decompressor notices (the CRC
	// is checked at the end): a bad row there may be the damage, so the reader reads on to
	// tell the file's error from the row's.
	rd.checkStream = gz
	return &closingReader{Reader: rd, closers: closers}, nil
}

func openParquet(f *os.File, path string, mem memory.Allocator, opts CSVOptions) (Reader, error) {
	pf, err := file.NewParquetReader(f, file.WithReadProps(parquet.NewReaderProperties(mem)))
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file: %w", path, err)
	}
	batch := opts.BatchRows
	if batch <= 0 {
		batch = DefaultBatchRows
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(batch)}, mem)
	if err != nil {
		pf.Close()
		return nil, fmt.Errorf("%s: reading the Parquet schema: %w", path, err)
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		pf.Close()
		return nil, fmt.Errorf("%s: reading Parquet row groups: %w", path, err)
	}
	lim := &limitReader{inner: rr, limit: opts.Limit, name: path}
	return &closingReader{Reader: lim, closers: []io.Closer{pf}}, nil
}

// recordSource is the subset of arrow-go's array.RecordReader that limitReader needs.
type recordSource interface {
	Schema() *arrow.Schema
	Next() bool
	RecordBatch() arrow.RecordBatch
	Err() error
	Release()
}

// limitReader adapts an arrow-go record reader to Reader, applying a row limit.
type limitReader struct {
	inner recordSource
	limit int64
	seen  int64
	cur   arrow.RecordBatch // a slice made for the limit, owned here
	name  string
	err   error
}

func (l *limitReader) Schema() *arrow.Schema { return l.inner.Schema() }

func (l *limitReader) Next() bool {
	if l.cur != nil {
		l.cur.Release()
		l.cur = nil
	}
	if l.limit > 0 && l.seen >= l.limit {
		return false
	}
	if !l.inner.Next() {
		if err := l.inner.Err(); err != nil && !errors.Is(err, io.EOF) {
			l.err = fmt.Errorf("%s: %w", l.name, err)
		}
		return false
	}
	rec := l.inner.RecordBatch()
	n := rec.NumRows()
	if l.limit > 0 && l.seen+n > l.limit {
		l.cur = rec.NewSlice(0, l.limit-l.seen)
		n = l.limit - l.seen
	}
	if j, i, v, ok := firstInvalidUTF8(l.RecordBatch()); !ok {
		l.err = fmt.Errorf("%s: row %d, column %q: the text %q is not UTF-8 (%s): %s",
			l.name, l.seen+int64(i)+1, rec.Schema().Field(j).Name, errorValue(v), invalidUTF8(v), utf8Hint)
		return false
	}
	l.seen += n
	return true
}

func (l *limitReader) RecordBatch() arrow.RecordBatch {
	if l.cur != nil {
		return l.cur
	}
	return l.inner.RecordBatch()
}

func (l *limitReader) Err() error { return l.err }

func (l *limitReader) Release() {
	if l.cur != nil {
		l.cur.Release()
		l.cur = nil
	}
	l.inner.Release()
}

// ipcFileSource walks the batches of an Arrow IPC file.
type ipcFileSource struct {
	fr  *ipc.FileReader
	i   int
	cur arrow.RecordBatch
	err error
}

func (s *ipcFileSource) Schema() *arrow.Schema { return s.fr.Schema() }

func (s *ipcFileSource) Next() bool {
	if s.cur != nil {
		s.cur.Release()
		s.cur = nil
	}
	if s.err != nil || s.i >= s.fr.NumRecords() {
		return false
	}
	rec, err := s.fr.RecordBatchAt(s.i) // ownership passes to us
	if err != nil {
		s.err = fmt.Errorf("record batch %d: %w", s.i, err)
		return false
	}
	s.cur = rec
	s.i++
	return true
}

func (s *ipcFileSource) RecordBatch() arrow.RecordBatch { return s.cur }
func (s *ipcFileSource) Err() error                     { return s.err }
func (s *ipcFileSource) Release() {
	if s.cur != nil {
		s.cur.Release()
		s.cur = nil
	}
	s.fr.Close()
}

func openIPC(f *os.File, path string, mem memory.Allocator, opts CSVOptions) (Reader, error) {
	fr, err := ipc.NewFileReader(f, ipc.WithAllocator(mem))
	if err == nil {
		lim := &limitReader{inner: &ipcFileSource{fr: fr}, limit: opts.Limit, name: path}
		return &closingReader{Reader: lim, closers: []io.Closer{f}}, nil
	}
	// Not the file format: try the streaming format.
	if _, serr := f.Seek(0, io.SeekStart); serr != nil {
		return nil, fmt.Errorf("%s: %w", path, serr)
	}
	sr, serr := ipc.NewReader(f, ipc.WithAllocator(mem))
	if serr != nil {
		return nil, fmt.Errorf("%s: not an Arrow IPC file nor stream (%v); write it with pyarrow.feather/ipc or pipe", path, err)
	}
	lim := &limitReader{inner: sr, limit: opts.Limit, name: path}
	return &closingReader{Reader: lim, closers: []io.Closer{f}}, nil
}
