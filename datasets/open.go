package datasets

import (
	"bytes"
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/schema"
)

// RecordReader streams record batches, following arrow-go's array.RecordReader conventions:
// RecordBatch is owned by the reader and valid until the next call to Next or Release
// (Retain it to keep it); Err is the error that stopped Next; the caller must call Release.
type RecordReader interface {
	Schema() *arrow.Schema
	Next() bool
	RecordBatch() arrow.RecordBatch
	Err() error
	Release()
}

// Options configures Open. The zero value reads every row in batches of 16,384 rows.
type Options struct {
	// Limit, when > 0, reads only the first Limit rows. Default 0: all rows.
	Limit int64
	// DataDir is a directory holding MNIST's idx files (train-images-idx3-ubyte.gz,
	// train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz).
	// Default "": the GoMNIST module's directory in the Go module cache.
	DataDir string
	// WithSplitColumn adds the shipped split (train/val/test per row, as SplitColumn
	// returns it) as a utf8 column `split` with pipe.role = split. Default false.
	WithSplitColumn bool
	// BatchRows is the maximum number of rows per batch. Default 16,384.
	BatchRows int
	// Workers is the number of CSV parser goroutines for embedded datasets. Default 1.
	Workers int
	// ImageColumn, when set, reads an image dataset (digits, mnist) with its pixels in one
	// fixed_size_list<float32> column of this name (with arrow.fixed_shape_tensor metadata for
	// [1, H, W]) in place of the per-pixel columns. Default "": per-pixel columns.
	ImageColumn string
}

// SplitColumnName is the name of the column that Options.WithSplitColumn adds.
const SplitColumnName = "split"

// Open streams a dataset of the catalogue as record batches with its declared schema (see
// Schema), allocated from mem. ctx cancels the read: Next then returns false and Err returns
// ctx's error. The caller must call Release.
func Open(ctx context.Context, name string, mem memory.Allocator, opts Options) (RecordReader, error) {
	if opts.BatchRows <= 0 {
		opts.BatchRows = tableio.DefaultBatchRows
	}
	declared, err := Schema(name)
	if err != nil {
		return nil, err
	}
	var rd RecordReader
	if name == "mnist" {
		rd, err = openMNIST(mem, declared, opts)
	} else {
		rd, err = openEmbedded(name, mem, declared, opts)
	}
	if err != nil {
		return nil, err
	}
	if opts.ImageColumn != "" {
		ir, err := newImageReader(rd, name, opts.ImageColumn, mem)
		if err != nil {
			rd.Release()
			return nil, err
		}
		rd = ir
	}
	if opts.WithSplitColumn {
		split, err := SplitColumn(name)
		if err != nil {
			rd.Release()
			return nil, err
		}
		rd = newSplitReader(rd, split, mem)
	}
	return &contextReader{RecordReader: rd, ctx: ctx}, nil
}

func openEmbedded(name string, mem memory.Allocator, declared *arrow.Schema, opts Options) (RecordReader, error) {
	raw, err := CSV(name)
	if err != nil {
		return nil, err
	}
	r, err := tableio.NewCSVReader(bytes.NewReader(raw), mem, tableio.CSVOptions{
		Schema: declared, BatchRows: opts.BatchRows, Limit: opts.Limit, Workers: opts.Workers,
		Name: "datasets/data/" + name + "/" + name + ".csv"})
	if err != nil {
		return nil, fmt.Errorf("dataset %q: %w", name, err)
	}
	if r.Schema().NumFields() != declared.NumFields() {
		r.Release()
		return nil, fmt.Errorf("dataset %q: the CSV has %d columns but its declared schema %d", name, r.Schema().NumFields(), declared.NumFields())
	}
	return r, nil
}

// contextReader stops at ctx's cancellation.
type contextReader struct {
	RecordReader
	ctx context.Context
	err error
}

func (c *contextReader) Next() bool {
	if c.err != nil {
		return false
	}
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return false
	}
	return c.RecordReader.Next()
}

func (c *contextReader) Err() error {
	if c.err != nil {
		return c.err
	}
	return c.RecordReader.Err()
}

// splitReader appends the shipped split column to each batch of the reader it wraps.
type splitReader struct {
	inner  RecordReader
	split  []string
	mem    memory.Allocator
	schema *arrow.Schema
	offset int
	cur    arrow.RecordBatch
	err    error
}

func newSplitReader(inner RecordReader, split []string, mem memory.Allocator) *splitReader {
	f := schema.WithRole(arrow.Field{Name: SplitColumnName, Type: stringType}, schema.RoleSplit)
	s := inner.Schema()
	md := s.Metadata()
	return &splitReader{inner: inner, split: split, mem: mem,
		schema: arrow.NewSchema(append(s.Fields(), f), &md)}
}

func (s *splitReader) Schema() *arrow.Schema { return s.schema }

func (s *splitReader) Next() bool {
	if s.cur != nil {
		s.cur.Release()
		s.cur = nil
	}
	if s.err != nil || !s.inner.Next() {
		return false
	}
	rec := s.inner.RecordBatch()
	n := int(rec.NumRows())
	if s.offset+n > len(s.split) {
		s.err = fmt.Errorf("the shipped split has %d rows but the data has more", len(s.split))
		return false
	}
	b := array.NewStringBuilder(s.mem)
	defer b.Release()
	b.AppendValues(s.split[s.offset:s.offset+n], nil)
	col := b.NewArray()
	defer col.Release()
	s.offset += n
	s.cur = array.NewRecordBatch(s.schema, append(rec.Columns()[:rec.NumCols():rec.NumCols()], col), int64(n))
	return true
}

func (s *splitReader) RecordBatch() arrow.RecordBatch { return s.cur }

func (s *splitReader) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.inner.Err()
}

func (s *splitReader) Release() {
	if s.cur != nil {
		s.cur.Release()
		s.cur = nil
	}
	s.inner.Release()
}
