package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/schema"
)

// FittedTransform is a fitted batch transform recorded in a table's lineage, so that a model
// trained on the table can be bundled with exactly the preprocessing its input needs.
type FittedTransform interface {
	Kind() string
	// Apply transforms one batch. It does not retain or release rec; the caller releases the
	// result.
	Apply(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error)
	// Marshal returns the transform's versioned, self-describing serialised form.
	Marshal() ([]byte, error)
}

// LineageStep is one fitted transform in the chain that produced a table from its source.
type LineageStep struct {
	Stage string // the stage that fitted it
	Kind  string // "impute", "encode", "normalize", ...
	FitOn string // the split role of the table it was fitted on
	// Transform replays the step on raw rows at prediction time. nil: the step cannot be
	// replayed (a stage that changed the table without saying how), and a model trained on
	// the table is refused, since its predictions on raw rows would skip the step.
	Transform FittedTransform
	// TrainOnly marks a step that changes training batches only (augmentation): it is not
	// replayed at prediction time.
	TrainOnly bool
	// Input is the schema of the table the transform was applied to. The first step's Input is
	// the source's schema: the columns a model bundle asks for at prediction time.
	Input *arrow.Schema
}

// MarshalJSON writes the step with its transform's serialised state.
func (s LineageStep) MarshalJSON() ([]byte, error) {
	var state json.RawMessage
	if s.Transform != nil {
		b, err := s.Transform.Marshal()
		if err != nil {
			return nil, err
		}
		state = b
	}
	return json.Marshal(struct {
		Stage      string          `json:"stage"`
		Kind       string          `json:"kind"`
		FitOn      string          `json:"fit_on"`
		TrainOnly  bool            `json:"train_only,omitempty"`
		Replayable bool            `json:"replayable"`
		State      json.RawMessage `json:"state,omitempty"`
	}{s.Stage, s.Kind, s.FitOn, s.TrainOnly, s.Transform != nil, state})
}

// memBudget accounts the bytes of table data held in memory across a run.
type memBudget struct {
	limit int64
	used  atomic.Int64
	peak  atomic.Int64
}

func (b *memBudget) tryReserve(n int64) bool {
	for {
		cur := b.used.Load()
		if b.limit > 0 && cur+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			for {
				p := b.peak.Load()
				if cur+n <= p || b.peak.CompareAndSwap(p, cur+n) {
					break
				}
			}
			return true
		}
	}
}

func (b *memBudget) free(n int64) { b.used.Add(-n) }

// Table is an append-only, replayable stream of record batches with one schema. The producer
// appends and closes it; any number of readers scan it, each from the start, while it is being
// written or after. Batches stay in memory while the run's memory budget allows; beyond it the
// table spills to an Arrow IPC file and readers read batches back one at a time.
type Table struct {
	name    string
	schema  *arrow.Schema
	lineage []LineageStep
	mem     memory.Allocator
	budget  *memBudget
	dir     string // where a spill file goes
	stored  string // read back from the stage store: its stage key, object and SHA-256; "" otherwise

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every append and on close
	batches  []arrow.RecordBatch
	sizes    []int64
	inMem    int64
	spill    *spillFile
	rows     int64
	closed   bool
	err      error
	released bool
}

// NewTable returns an empty table. A stage normally gets its output tables from
// StageContext.NewTable; NewTable is for tests and for library code outside a run. budget is
// the number of bytes it may hold in memory before spilling to a file in spillDir (0: no limit).
func NewTable(name string, s *arrow.Schema, mem memory.Allocator, budget int64, spillDir string) *Table {
	return newTable(name, s, nil, mem, &memBudget{limit: budget}, spillDir)
}

func newTable(name string, s *arrow.Schema, lineage []LineageStep, mem memory.Allocator, b *memBudget, dir string) *Table {
	return &Table{name: name, schema: s, lineage: lineage, mem: mem, budget: b, dir: dir, changed: make(chan struct{})}
}

// Name is "stage.port".
func (t *Table) Name() string { return t.name }

// Schema is the table's schema, with its split role in the metadata.
func (t *Table) Schema() *arrow.Schema { return t.schema }

// Split returns the table's split role (train, val, test, ...).
func (t *Table) Split() string { return schema.Split(t.schema) }

// Lineage returns the fitted transforms that produced the table, oldest first.
func (t *Table) Lineage() []LineageStep { return append([]LineageStep(nil), t.lineage...) }

// Spilled reports whether the table has moved to disk.
func (t *Table) Spilled() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.spill != nil
}

// Rows returns the number of rows appended so far.
func (t *Table) Rows() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rows
}

// NumBatches returns the number of batches appended so far.
func (t *Table) NumBatches() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.batches)
}

// Append adds a batch. The table retains rec; the caller keeps its own reference and releases
// it as usual. The batch's fields must equal the table's; it is stored with the table's schema
// (so schema metadata such as the split role is the table's).
func (t *Table) Append(rec arrow.RecordBatch) error {
	if !rec.Schema().Equal(t.schema) {
		return fmt.Errorf("table %s: batch schema %s does not match table schema %s", t.name, rec.Schema(), t.schema)
	}
	if rec.NumRows() == 0 {
		return nil
	}
	if rec.Schema() != t.schema {
		// Store batches with the table's own schema (and its split-role metadata).
		rec = array.NewRecordBatch(t.schema, rec.Columns(), rec.NumRows())
		defer rec.Release()
	}
	size := recordBytes(rec)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("table %s: append after close", t.name)
	}
	if t.spill == nil && !t.budget.tryReserve(size) {
		if err := t.spillLocked(); err != nil {
			return err
		}
	}
	if t.spill != nil {
		if err := t.spill.append(rec); err != nil {
			return fmt.Errorf("table %s: spill: %w", t.name, err)
		}
		t.batches = append(t.batches, nil)
		t.sizes = append(t.sizes, 0)
	} else {
		rec.Retain()
		t.batches = append(t.batches, rec)
		t.sizes = append(t.sizes, size)
		t.inMem += size
	}
	t.rows += rec.NumRows()
	t.notifyLocked()
	return nil
}

func (t *Table) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// spillLocked moves every in-memory batch to a new spill file.
func (t *Table) spillLocked() error {
	if t.dir == "" {
		return fmt.Errorf("table %s: over the memory budget and no spill directory", t.name)
	}
	sf, err := newSpillFile(t.dir, t.name, t.schema, t.mem)
	if err != nil {
		return fmt.Errorf("table %s: spill: %w", t.name, err)
	}
	for i, b := range t.batches {
		if err := sf.append(b); err != nil {
			sf.remove()
			return fmt.Errorf("table %s: spill: %w", t.name, err)
		}
		b.Release()
		t.batches[i] = nil
		t.budget.free(t.sizes[i])
		t.sizes[i] = 0
	}
	t.inMem = 0
	t.spill = sf
	return nil
}

// Close marks the end of the table. A non-nil err tells readers the producer failed.
func (t *Table) Close(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	t.err = err
	if t.spill != nil {
		t.spill.dropWriteBuffer()
	}
	t.notifyLocked()
}

// Release frees the table's batches and removes its spill file. Readers must be done.
func (t *Table) Release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.released {
		return
	}
	t.released = true
	for i, b := range t.batches {
		if b != nil {
			b.Release()
			t.batches[i] = nil
		}
	}
	t.budget.free(t.inMem)
	t.inMem = 0
	if t.spill != nil {
		t.spill.remove()
	}
	if !t.closed {
		t.closed = true
		t.err = errors.New("table released")
		t.notifyLocked()
	}
}

// batch returns batch i retained, waiting for it if the producer has not appended it yet. It
// returns (nil, 0, nil) at the end of a closed table. A batch read back from the spill file
// is counted in the memory budget: readBack is its size, which the caller frees when it
// releases the batch.
func (t *Table) batch(ctx context.Context, i int) (rec arrow.RecordBatch, readBack int64, err error) {
	for {
		t.mu.Lock()
		if t.released {
			t.mu.Unlock()
			return nil, 0, fmt.Errorf("table %s: read after release", t.name)
		}
		if i < len(t.batches) {
			if b := t.batches[i]; b != nil {
				b.Retain()
				t.mu.Unlock()
				return b, 0, nil
			}
			sf := t.spill
			t.mu.Unlock()
			rec, err := sf.read(i)
			if err != nil {
				return nil, 0, err
			}
			n := recordBytes(rec)
			t.budget.add(n)
			return rec, n, nil
		}
		if t.closed {
			err := t.err
			t.mu.Unlock()
			if err != nil {
				return nil, 0, fmt.Errorf("input %s: %w", t.name, err)
			}
			return nil, 0, nil
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, 0, context.Cause(ctx)
		case <-ch:
		}
	}
}

// Wait blocks until the table is closed and returns the producer's error.
func (t *Table) Wait(ctx context.Context) error {
	for {
		t.mu.Lock()
		if t.closed {
			err := t.err
			t.mu.Unlock()
			return err
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-ch:
		}
	}
}

// Scan returns a reader over the whole table from its first batch. It follows a table that is
// still being written. Call Release when done.
func (t *Table) Scan(ctx context.Context) *TableReader {
	return &TableReader{t: t, ctx: ctx}
}

// TableReader reads a Table batch by batch, in arrow-go's Next / RecordBatch / Err style.
type TableReader struct {
	t     *Table
	ctx   context.Context
	i     int
	cur   arrow.RecordBatch
	held  int64 // bytes of cur read back from the spill file, counted in the budget
	err   error
	rows  int64
	onRow func(int64)
}

// Schema is the table's schema.
func (r *TableReader) Schema() *arrow.Schema { return r.t.schema }

// Next advances to the next batch; false at the end or on error (see Err).
func (r *TableReader) Next() bool {
	r.Release()
	if r.err != nil {
		return false
	}
	b, held, err := r.t.batch(r.ctx, r.i)
	if err != nil {
		r.err = err
		return false
	}
	if b == nil {
		return false
	}
	r.i++
	r.cur, r.held = b, held
	r.rows += b.NumRows()
	if r.onRow != nil {
		r.onRow(b.NumRows())
	}
	return true
}

// RecordBatch is the current batch, valid until the next call to Next or Release. Retain it
// to keep it.
func (r *TableReader) RecordBatch() arrow.RecordBatch { return r.cur }

// Err is the error that stopped Next, if any.
func (r *TableReader) Err() error { return r.err }

// Release releases the current batch.
func (r *TableReader) Release() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.held > 0 {
		r.t.budget.free(r.held)
		r.held = 0
	}
}

// recordBytes is the size of a batch's buffers.
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, c := range rec.Columns() {
		n += arrayBytes(c.Data())
	}
	return n
}

func arrayBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += arrayBytes(c)
	}
	return n
}

// spillFile stores batches as consecutive IPC streams of one batch each, with an offset index,
// so that batches can be read back while more are appended.
type spillFile struct {
	f       *os.File
	schema  *arrow.Schema
	mem     memory.Allocator
	wmu     sync.Mutex   // serialises appends, which share wbuf
	wbuf    bytes.Buffer // an append's encoded stream, reused: a batch is encoded without regrowing it
	mu      sync.Mutex
	offsets []int64
	lengths []int64
	size    int64
}

func newSpillFile(dir, name string, s *arrow.Schema, mem memory.Allocator) (*spillFile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "spill-"+sanitize(name)+"-*.arrows")
	if err != nil {
		return nil, err
	}
	return &spillFile{f: f, schema: s, mem: mem}, nil
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}

func (s *spillFile) append(rec arrow.RecordBatch) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	buf := &s.wbuf
	buf.Reset()
	// The body is the batch's buffers, padded; the metadata a few hundred bytes a column.
	buf.Grow(int(recordBytes(rec)) + 64*len(rec.Columns())*8 + 4096)
	w := ipc.NewWriter(buf, ipc.WithSchema(s.schema), ipc.WithAllocator(s.mem))
	if err := w.Write(rec); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.WriteAt(buf.Bytes(), s.size); err != nil {
		return err
	}
	s.offsets = append(s.offsets, s.size)
	s.lengths = append(s.lengths, int64(buf.Len()))
	s.size += int64(buf.Len())
	if buf.Cap() > 4*buf.Len()+(1<<20) {
		s.wbuf = bytes.Buffer{} // one odd large batch: do not keep its room
	}
	return nil
}

// dropWriteBuffer lets the encode buffer go once no more batches come.
func (s *spillFile) dropWriteBuffer() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.wbuf = bytes.Buffer{}
}

// read reads batch i back. The batch's arrays are views of the one buffer the frame is read
// into (not copies of it): the batch's memory is the frame's, held until the batch is
// released and collected.
func (s *spillFile) read(i int) (arrow.RecordBatch, error) {
	s.mu.Lock()
	off, n := s.offsets[i], s.lengths[i]
	s.mu.Unlock()
	buf := make([]byte, n)
	if _, err := s.f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("read spilled batch %d: %w", i, err)
	}
	mr := &frameReader{b: buf, whole: memory.NewBufferBytes(buf)}
	mr.refs.Store(1)
	r, err := ipc.NewReaderFromMessageReader(mr, ipc.WithAllocator(s.mem), ipc.WithSchema(s.schema))
	if err != nil {
		return nil, fmt.Errorf("read spilled batch %d: %w", i, err)
	}
	defer r.Release()
	if !r.Next() {
		if r.Err() != nil {
			return nil, fmt.Errorf("read spilled batch %d: %w", i, r.Err())
		}
		return nil, fmt.Errorf("read spilled batch %d: empty frame", i)
	}
	rec := r.RecordBatch()
	rec.Retain()
	return rec, nil
}

// frameReader reads the IPC messages of a stream held in memory, b, without copying them: a
// message's metadata and body are slices of b (ipc.NewReader's own message reader copies
// every body into newly allocated memory).
type frameReader struct {
	b     []byte
	pos   int
	whole *memory.Buffer // b, which the messages' buffers slice
	msg   *ipc.Message
	refs  atomic.Int64
}

// Message returns the next message, valid until the next call; io.EOF at the end.
func (r *frameReader) Message() (*ipc.Message, error) {
	if r.msg != nil {
		r.msg.Release()
		r.msg = nil
	}
	word := func() (uint32, error) {
		if len(r.b)-r.pos < 4 {
			return 0, fmt.Errorf("spill frame: truncated at byte %d of %d", r.pos, len(r.b))
		}
		v := binary.LittleEndian.Uint32(r.b[r.pos:])
		r.pos += 4
		return v, nil
	}
	if r.pos == len(r.b) {
		return nil, io.EOF
	}
	n, err := word()
	if err != nil {
		return nil, err
	}
	if n == 0xFFFFFFFF { // the continuation marker, then the metadata's length
		if n, err = word(); err != nil {
			return nil, err
		}
	}
	if n == 0 {
		return nil, io.EOF // end of stream
	}
	if int(n) > len(r.b)-r.pos {
		return nil, fmt.Errorf("spill frame: metadata of %d bytes at byte %d of %d", n, r.pos, len(r.b))
	}
	meta := memory.SliceBuffer(r.whole, r.pos, int(n))
	defer meta.Release()
	r.pos += int(n)
	empty := memory.NewBufferBytes(nil)
	probe := ipc.NewMessage(meta, empty) // to read the body's length from the metadata
	bodyLen := probe.BodyLen()
	probe.Release()
	if bodyLen < 0 || bodyLen > int64(len(r.b)-r.pos) {
		return nil, fmt.Errorf("spill frame: body of %d bytes at byte %d of %d", bodyLen, r.pos, len(r.b))
	}
	body := memory.SliceBuffer(r.whole, r.pos, int(bodyLen))
	defer body.Release()
	r.pos += int(bodyLen)
	r.msg = ipc.NewMessage(meta, body)
	return r.msg, nil
}

// Retain and Release count the reader's references (ipc.MessageReader).
func (r *frameReader) Retain() { r.refs.Add(1) }

// Release drops a reference; the last one releases the current message.
func (r *frameReader) Release() {
	if r.refs.Add(-1) == 0 && r.msg != nil {
		r.msg.Release()
		r.msg = nil
	}
}

func (s *spillFile) remove() {
	name := s.f.Name()
	s.f.Close()
	os.Remove(name)
}
