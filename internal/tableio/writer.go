package tableio

import (
	"bufio"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Writer writes record batches to a table file atomically: the data goes to a temporary file
// `<path>.tmp-<random>` in the same directory, and Close flushes it, fsyncs it and renames it
// to the final path; Abort (or a failed Close) removes it. A crash mid-write never leaves a
// file at the final path (at most a stray temporary file).
type Writer struct {
	path    string
	tmp     *os.File
	buf     *bufio.Writer
	format  formatWriter
	schema  *arrow.Schema
	rows    int64
	done    bool
	lastErr error
}

// formatWriter encodes batches in one format onto a byte stream.
type formatWriter interface {
	write(rec arrow.RecordBatch) error
	close() error // writes any footer; it must not close the underlying stream
}

// NewWriter creates a Writer for path, choosing the format by its extension: .csv (header
// row; nulls as empty fields), .csv.gz (the same, gzip-compressed), .parquet (zstd-compressed; the Arrow schema, with its
// metadata, is stored in the file) or .arrow/.ipc/.feather (Arrow IPC file format). mem
// allocates the encoders' buffers. The caller must call Close
// or Abort.
func NewWriter(path string, schema *arrow.Schema, mem memory.Allocator) (*Writer, error) {
	format, gz, err := FormatOf(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, fmt.Errorf("%s: making a temporary name: %w", path, err)
	}
	tmpPath := path + ".tmp-" + hex.EncodeToString(suffix[:])
	tmp, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w (check that the directory %s exists and is writable)", tmpPath, err, dir)
	}
	w := &Writer{path: path, tmp: tmp, buf: bufio.NewWriterSize(tmp, 1<<20), schema: schema}
	switch format {
	case FormatCSV:
		if gz {
			zw := gzip.NewWriter(w.buf)
			inner := bufio.NewWriterSize(zw, 1<<20)
			w.format = &gzipFormatWriter{formatWriter: newCSVFormatWriter(inner, schema), buf: inner, zw: zw}
		} else {
			w.format = newCSVFormatWriter(w.buf, schema)
		}
	case FormatParquet:
		// zstd at level 1 (klauspost's SpeedFastest): on MNIST's 784 pixel columns it writes
		// 1.3× as fast as the default level (BenchmarkParquetWrite, medians of 4 interleaved
		// runs: 54 against 41 MB/s) and the file is 3% smaller; under the race detector,
		// where resetting the default level's larger match tables dominates, 1.7× as fast.
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd),
			parquet.WithCompressionLevel(parquetZstdLevel), parquet.WithAllocator(mem))
		arrProps := pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(mem))
		fw, perr := pqarrow.NewFileWriter(schema, w.buf, props, arrProps)
		if perr != nil {
			w.Abort()
			return nil, fmt.Errorf("%s: %w", path, perr)
		}
		w.format = parquetFormatWriter{fw}
	case FormatIPC:
		fw, ierr := ipc.NewFileWriter(w.buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
		if ierr != nil {
			w.Abort()
			return nil, fmt.Errorf("%s: %w", path, ierr)
		}
		w.format = ipcFormatWriter{fw}
	}
	return w, nil
}

// Write appends a batch; the caller keeps ownership of rec. Its columns must have the
// writer schema's names and types (nullability and metadata may differ; the writer's
// schema is what the file records). After an error the writer is aborted and the temporary file removed.
func (w *Writer) Write(rec arrow.RecordBatch) error {
	if w.done {
		return fmt.Errorf("%s: write after Close or Abort", w.path)
	}
	if !sameColumns(rec.Schema(), w.schema) {
		err := fmt.Errorf("%s: batch schema %s differs from the writer's schema %s", w.path, rec.Schema(), w.schema)
		w.Abort()
		return err
	}
	if !rec.Schema().Equal(w.schema) {
		// Same columns, other nullability or metadata: the encoders want the exact schema.
		rec = array.NewRecordBatch(w.schema, rec.Columns(), rec.NumRows())
		defer rec.Release()
	}
	if err := w.format.write(rec); err != nil {
		w.Abort()
		return fmt.Errorf("writing %s: %w", w.path, err)
	}
	w.rows += rec.NumRows()
	return nil
}

// Rows is the number of rows written so far.
func (w *Writer) Rows() int64 { return w.rows }

// Close finishes the file (footer), flushes and fsyncs it and renames it to the final path.
// On error the temporary file is removed and nothing is left at the final path.
func (w *Writer) Close() error {
	if w.done {
		return w.lastErr
	}
	err := w.format.close()
	if err == nil {
		err = w.buf.Flush()
	}
	if err == nil {
		err = w.tmp.Sync()
	}
	if cerr := w.tmp.Close(); err == nil {
		err = cerr
	}
	w.done = true
	if err == nil {
		err = os.Rename(w.tmp.Name(), w.path)
	}
	if err != nil {
		os.Remove(w.tmp.Name())
		w.lastErr = fmt.Errorf("finishing %s: %w", w.path, err)
		return w.lastErr
	}
	syncDir(filepath.Dir(w.path))
	return nil
}

// Abort discards the file: the temporary file is closed and removed and nothing appears at
// the final path. It is safe after Close (then it does nothing) and more than once.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.lastErr = errors.New(w.path + ": aborted")
	w.format.close() // frees encoder buffers; the output is discarded
	w.tmp.Close()
	os.Remove(w.tmp.Name())
}

// syncDir makes a rename durable; errors are ignored (not every file system supports it).
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}

// WriteFile writes every batch that next returns (until it returns nil, nil) to path
// atomically (see Writer). next's batches are released by WriteFile. On any error nothing is
// left at path.
func WriteFile(path string, schema *arrow.Schema, mem memory.Allocator, next func() (arrow.RecordBatch, error)) error {
	w, err := NewWriter(path, schema, mem)
	if err != nil {
		return err
	}
	for {
		rec, err := next()
		if err != nil {
			w.Abort()
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if rec == nil {
			return w.Close()
		}
		err = w.Write(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
}

// gzipFormatWriter compresses what a CSV writer writes.
type gzipFormatWriter struct {
	formatWriter
	buf *bufio.Writer
	zw  *gzip.Writer
}

func (g *gzipFormatWriter) close() error {
	err := g.formatWriter.close()
	if ferr := g.buf.Flush(); err == nil {
		err = ferr
	}
	if cerr := g.zw.Close(); err == nil {
		err = cerr
	}
	return err
}

type parquetFormatWriter struct{ fw *pqarrow.FileWriter }

func (p parquetFormatWriter) write(rec arrow.RecordBatch) error { return p.fw.Write(rec) }
func (p parquetFormatWriter) close() error                      { return p.fw.Close() }

type ipcFormatWriter struct{ fw *ipc.FileWriter }

func (p ipcFormatWriter) write(rec arrow.RecordBatch) error { return p.fw.Write(rec) }
func (p ipcFormatWriter) close() error                      { return p.fw.Close() }

// sameColumns reports whether two schemas have the same column names and types.
func sameColumns(a, b *arrow.Schema) bool {
	if a.NumFields() != b.NumFields() {
		return false
	}
	for i := range a.NumFields() {
		fa, fb := a.Field(i), b.Field(i)
		if fa.Name != fb.Name || !arrow.TypeEqual(fa.Type, fb.Type) {
			return false
		}
	}
	return true
}

// parquetZstdLevel is the zstd level of the Parquet files pipe writes (stage outputs, sinks).
const parquetZstdLevel = 1
