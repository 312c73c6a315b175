package train

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// MappedRows is a dense float32 row matrix held in a file and mapped read-only into memory,
// for training data whose dense copy does not fit the run's memory budget. A Dataset whose X
// is Floats() and whose Mapped is set gathers its mini-batch rows in any order (the shuffled
// index permutation of Fit, bit for bit the same rows as the dense path, so results do not
// depend on where X lives) with one positioned read per row, served by the OS page cache, so
// that they add nothing to the process's resident memory. Code that reads X directly reads
// through the mapping: Touch and Drop bound the resident pages that adds (every window bytes
// of rows, madvise DONTNEED). Close unmaps it and removes the file.
type MappedRows struct {
	f          *os.File // kept open: training reads rows with io_uring or pread (readRows)
	fd         int
	reads      atomic.Int64
	calls      atomic.Int64   // system calls that read rows (readRows, readRow)
	ahead      atomic.Int64   // rows that a gather took from a read-ahead (readAhead)
	background atomic.Int64   // rows read by read-ahead goroutines
	running    sync.WaitGroup // read-aheads in flight: Close waits for them
	path       string
	cols       int
	rows       int
	data       []byte
	floats     []float32
	window     int64
	touched    atomic.Int64
	drops      atomic.Int64
	mu         sync.Mutex
	closed     bool
	// rings are idle io_uring instances (one per goroutine reading at a time); noRing says
	// io_uring is not to be used (unavailable here, failed, or turned off by a test).
	ringMu sync.Mutex
	rings  []*ring
	noRing bool
}

// pageCost is what gathering one row may add to the resident set: its own bytes plus the
// kernel's fault-around (up to 16 pages of the file mapped per fault when they are cached:
// measured, 4 KiB a row let a 20M-row run reach 4.9 GB RSS).
const pageCost = 64 << 10

// Floats returns the matrix, rows × cols, row-major. It is valid until Close.
func (m *MappedRows) Floats() []float32 { return m.floats }

// Rows and Cols are the matrix's shape.
func (m *MappedRows) Rows() int { return m.rows }

// Cols is the number of floats per row.
func (m *MappedRows) Cols() int { return m.cols }

// Path is the backing file.
func (m *MappedRows) Path() string { return m.path }

// Drops is how many times the resident pages were dropped.
func (m *MappedRows) Drops() int64 { return m.drops.Load() }

// Reads is how many rows were read from the file for mini-batches.
func (m *MappedRows) Reads() int64 { return m.reads.Load() }

// ReadCalls is how many system calls those reads took: one pread a row, or one io_uring_enter
// for up to ringSizeEntries rows where the kernel allows io_uring.
func (m *MappedRows) ReadCalls() int64 { return m.calls.Load() }

// AheadReads is how many of the rows gathered for mini-batches came from a read-ahead
// started while the previous mini-batch trained (see readAhead): read in the background, or
// by the gather itself where no reader had claimed them yet.
func (m *MappedRows) AheadReads() int64 { return m.ahead.Load() }

// BackgroundReads is how many rows the read-ahead goroutines read, while the gather that
// took them was elsewhere (the rest of AheadReads the gather read itself: no core was free).
func (m *MappedRows) BackgroundReads() int64 { return m.background.Load() }

// readAhead is the numeric rows of one mini-batch, read from a mapping in the background.
// Readers claim chunks of rows (next) until none is left; the gather that takes it claims
// the rest itself (wait), so a busy machine that leaves the readers no core costs nothing
// over reading in place.
type readAhead struct {
	m     *MappedRows
	rows  []int     // base rows, in batch order
	x     []float32 // their floats, len(rows) × cols
	next  atomic.Int64
	done  atomic.Int64
	chunk int64         // rows a reader claims at a time
	fin   chan struct{} // closed once every row is read
}

// aheadReaders is the most goroutines that read one mini-batch ahead, aheadChunk the rows
// they claim at a time with pread: a pread of a cached row costs about a microsecond, most
// of it the system call, so a batch's reads spread over the cores the step leaves idle. With
// io_uring a reader claims ringSizeEntries rows, read with one system call.
const (
	aheadReaders = 4
	aheadChunk   = 16
)

// noRingEnv, set to anything, makes training read mapped rows with pread, not io_uring: to
// compare the two, or where a sandbox's io_uring misbehaves.
const noRingEnv = "PIPE_NO_IO_URING"

// ringUsable reports whether rows are read with io_uring (so far: a ring may still fail).
func (m *MappedRows) ringUsable() bool {
	m.ringMu.Lock()
	defer m.ringMu.Unlock()
	return !m.noRing
}

// startReadAhead starts reading the given base rows in the background (the pread system
// calls of the next mini-batch overlap the current step's arithmetic) on up to aheadReaders
// goroutines (GOMAXPROCS at most), into buffers reused from prev. The rows and their order
// are the caller's, so what a gather takes from it is what it would have read itself. Call
// wait before using its x.
func (m *MappedRows) startReadAhead(prev *readAhead, rows func(i int) int, n int) *readAhead {
	a := &readAhead{m: m, fin: make(chan struct{}), chunk: aheadChunk}
	if m.ringUsable() {
		a.chunk = ringSizeEntries
	}
	if prev != nil {
		a.rows, a.x = prev.rows[:0], prev.x
	}
	for i := range n {
		a.rows = append(a.rows, rows(i))
	}
	if cap(a.x) < n*m.cols {
		a.x = make([]float32, n*m.cols)
	}
	a.x = a.x[:n*m.cols]
	if n == 0 {
		close(a.fin)
		return a
	}
	readers := max(1, min(aheadReaders, runtime.GOMAXPROCS(0), (n+int(a.chunk)-1)/int(a.chunk)))
	m.running.Add(readers)
	for range readers {
		go func() {
			defer m.running.Done()
			a.work(true)
		}()
	}
	return a
}

// work reads chunks of rows until none is left to claim; background says whether it runs
// on a reader goroutine (counted in the mapping's BackgroundReads) or on the gather's.
func (a *readAhead) work(background bool) {
	n := int64(len(a.rows))
	cols := a.m.cols
	for {
		lo := a.next.Add(a.chunk) - a.chunk
		if lo >= n {
			return
		}
		hi := min(lo+a.chunk, n)
		a.m.readRows(a.rows[lo:hi], a.x[lo*int64(cols):hi*int64(cols)])
		if background {
			a.m.background.Add(hi - lo)
		}
		if a.done.Add(hi-lo) == n {
			close(a.fin)
		}
	}
}

// wait reads the rows no reader has claimed yet, then waits for the claimed ones.
func (a *readAhead) wait() {
	a.work(false)
	<-a.fin
}

// readRows copies base rows rows into dst (len(rows) × Cols floats, in rows' order): with
// one io_uring system call per ringSizeEntries rows where the kernel allows it (rows in the
// page cache are read inside that call), else with one pread a row. A read that comes back
// short is done again with pread.
func (m *MappedRows) readRows(rows []int, dst []float32) {
	cols := m.cols
	r := m.getRing()
	for start := 0; start < len(rows); start += ringSizeEntries {
		part := rows[start:min(start+ringSizeEntries, len(rows))]
		out := dst[start*cols : (start+len(part))*cols]
		if r != nil && cols > 0 {
			var offs [ringSizeEntries]int64
			for i, row := range part {
				offs[i] = int64(row) * int64(cols) * 4
			}
			calls, ok, err := r.readAt(m.fd, offs[:len(part)], cols*4, bytesOf(out))
			m.calls.Add(int64(calls))
			if err != nil {
				r.close()
				r = nil
				m.ringMu.Lock()
				m.noRing = true
				m.ringMu.Unlock()
			}
			if ok {
				m.reads.Add(int64(len(part)))
				continue
			}
		}
		for i, row := range part {
			m.readRow(row, out[i*cols:(i+1)*cols])
		}
	}
	m.putRing(r)
}

// bytesOf views x's memory as bytes.
func bytesOf(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

// getRing takes an idle ring, or sets up a new one; nil when io_uring is not to be used.
func (m *MappedRows) getRing() *ring {
	m.ringMu.Lock()
	defer m.ringMu.Unlock()
	if m.noRing {
		return nil
	}
	if k := len(m.rings); k > 0 {
		r := m.rings[k-1]
		m.rings = m.rings[:k-1]
		return r
	}
	r, err := newRing(ringSizeEntries)
	if err != nil || r.entries < ringSizeEntries {
		if r != nil {
			r.close()
		}
		m.noRing = true
		return nil
	}
	return r
}

// putRing gives a ring back for the next reader.
func (m *MappedRows) putRing(r *ring) {
	if r == nil {
		return
	}
	m.ringMu.Lock()
	defer m.ringMu.Unlock()
	if m.noRing {
		r.close()
		return
	}
	m.rings = append(m.rings, r)
}

// readRow copies row r into dst (Cols floats) with a positioned read of the file: the page
// cache serves it, and nothing enters the process's resident set (a fault on the mapping
// brings in whole page-cache folios around the row, hundreds of KiB on a recent kernel). On a
// read error it copies through the mapping instead.
func (m *MappedRows) readRow(r int, dst []float32) {
	m.reads.Add(1)
	m.calls.Add(1)
	if err := readFloats(m.f, dst, int64(r)*int64(m.cols)*4); err != nil && len(m.floats) > 0 {
		copy(dst, m.floats[r*m.cols:(r+1)*m.cols])
	}
}

// Touch records that n rows were read; past the window it drops the resident pages.
func (m *MappedRows) Touch(n int) {
	if m == nil || m.window <= 0 {
		return
	}
	cost := int64(n) * (int64(m.cols)*4 + pageCost)
	if m.touched.Add(cost) < m.window {
		return
	}
	m.touched.Store(0)
	m.Drop()
}

// Drop releases the resident pages of the mapping (they are read again from the file or the
// page cache on the next access).
func (m *MappedRows) Drop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || len(m.data) == 0 {
		return
	}
	dropPages(m.data)
	m.drops.Add(1)
}

// Close unmaps the matrix and removes its file, once the read-aheads in flight are done.
func (m *MappedRows) Close() error {
	if m == nil {
		return nil
	}
	m.running.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.ringMu.Lock()
	m.noRing = true
	for _, r := range m.rings {
		r.close()
	}
	m.rings = nil
	m.ringMu.Unlock()
	err := unmap(m.data)
	if m.f != nil {
		if cerr := m.f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	m.data, m.floats = nil, nil
	if rerr := os.Remove(m.path); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// MappedWriter writes the rows of a MappedRows file, appended in order.
type MappedWriter struct {
	f    *os.File
	w    *bufio.Writer
	cols int
	rows int
	buf  []byte
}

// NewMappedWriter creates a file for rows of cols floats in dir.
func NewMappedWriter(dir, name string, cols int) (*MappedWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("train: mapped rows: %w", err)
	}
	f, err := os.CreateTemp(dir, "rows-"+name+"-*.f32")
	if err != nil {
		return nil, fmt.Errorf("train: mapped rows: %w", err)
	}
	return &MappedWriter{f: f, w: bufio.NewWriterSize(f, 1<<20), cols: cols}, nil
}

// Append writes rows (a whole number of rows of cols floats).
func (w *MappedWriter) Append(x []float32) error {
	if w.cols == 0 {
		return nil
	}
	if len(x)%w.cols != 0 {
		return fmt.Errorf("train: mapped rows: %d floats are not whole rows of %d", len(x), w.cols)
	}
	if _, err := w.w.Write(littleEndian(x, &w.buf)); err != nil {
		return fmt.Errorf("train: mapped rows %s: %w", w.f.Name(), err)
	}
	w.rows += len(x) / w.cols
	return nil
}

// Abort removes the file.
func (w *MappedWriter) Abort() {
	name := w.f.Name()
	w.f.Close()
	os.Remove(name)
}

// Finish flushes the file and maps it. window is the number of bytes of gathered rows after
// which the resident pages are dropped (0: never).
func (w *MappedWriter) Finish(window int64) (*MappedRows, error) {
	name := w.f.Name()
	if err := w.w.Flush(); err != nil {
		w.Abort()
		return nil, fmt.Errorf("train: mapped rows %s: %w", name, err)
	}
	m := &MappedRows{f: w.f, fd: int(w.f.Fd()), path: name, cols: w.cols, rows: w.rows, window: window,
		noRing: os.Getenv(noRingEnv) != ""}
	size := w.rows * w.cols * 4
	if size > 0 {
		data, err := mapFile(w.f, size)
		if err != nil {
			w.Abort()
			return nil, fmt.Errorf("train: map %s: %w", name, err)
		}
		m.data = data
		m.floats = floatsOf(data)
	}
	return m, nil
}
