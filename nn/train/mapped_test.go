package train

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// mapBlobs writes d's numeric block to a mapped file in pieces, as a stage streaming a table
// does, and returns d with X read through the mapping.
func mapBlobs(t *testing.T, d Dataset, window int64) Dataset {
	t.Helper()
	w, err := NewMappedWriter(t.TempDir(), "blobs", d.NumInputs)
	if err != nil {
		t.Fatal(err)
	}
	const piece = 7 // rows per append: not a divisor of the row count
	for r := 0; r < d.Len(); r += piece {
		end := min(r+piece, d.Len())
		if err := w.Append(d.X[r*d.NumInputs : end*d.NumInputs]); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Finish(window)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(m.Path()); !os.IsNotExist(err) {
			t.Errorf("mapped file %s left behind: %v", m.Path(), err)
		}
	})
	out := d
	out.X, out.Mapped = m.Floats(), m
	return out
}

func TestMappedRowsReadBack(t *testing.T) {
	d := blobs(3, 101)
	md := mapBlobs(t, d, 0)
	if md.Mapped.Rows() != 101 || md.Mapped.Cols() != 6 || len(md.X) != len(d.X) {
		t.Fatalf("shape %d×%d, %d floats; want 101×6", md.Mapped.Rows(), md.Mapped.Cols(), len(md.X))
	}
	for i := range d.X {
		if md.X[i] != d.X[i] {
			t.Fatalf("float %d: %v, want %v", i, md.X[i], d.X[i])
		}
	}
	if err := (&MappedWriter{cols: 6}).Append(make([]float32, 5)); err == nil {
		t.Error("a partial row was accepted")
	}
}

// Training through a mapping whose pages are dropped every few rows gives the dense path's
// weights bit for bit, for any worker count: the rows and their order are the same.
func TestFitMappedEqualsDense(t *testing.T) {
	tr, val := blobs(1, 600), blobs(2, 200)
	fit := func(d, v Dataset, workers int) [][]float32 {
		m := buildModel(t, richSpec())
		cfg := Config{Epochs: 3, BatchSize: 50, Seed: 5, Workers: workers, EarlyStopping: EarlyStopping{Disabled: true}}
		if _, err := Fit(context.Background(), m, d, v, cfg); err != nil {
			t.Fatal(err)
		}
		return weightsOf(m)
	}
	dense := fit(tr, val, 1)
	mtr := mapBlobs(t, tr, 64<<10)
	mval := mapBlobs(t, val, 64<<10)
	sameWeights(t, dense, fit(mtr, mval, 1))
	sameWeights(t, dense, fit(mtr, mval, 3))
	// Every epoch's rows (3 epochs × 600, and the train-metric sample) were read from the file.
	if got := mtr.Mapped.Reads(); got < 3*600 {
		t.Errorf("%d training rows read from the file, want at least %d", got, 3*600)
	}
	// With io_uring, a read-ahead chunk of aheadChunk rows takes one system call, not one a
	// row (the rows not read ahead are read with pread: each epoch's first batch).
	if ringAvailable(t) {
		if calls, reads := mtr.Mapped.ReadCalls(), mtr.Mapped.Reads(); calls > reads/4 {
			t.Errorf("%d system calls for %d rows read: the reads were not coalesced", calls, reads)
		}
	}
	// Without io_uring (PIPE_NO_IO_URING: pread, one a row), the same weights.
	t.Setenv(noRingEnv, "1")
	nr := mapBlobs(t, tr, 64<<10)
	sameWeights(t, dense, fit(nr, mval, 1))
	sameWeights(t, dense, fit(nr, mval, 3))
	if calls, reads := nr.Mapped.ReadCalls(), nr.Mapped.Reads(); calls != reads {
		t.Errorf("without io_uring: %d system calls for %d rows, want one a row", calls, reads)
	}
	// All mini-batches but each epoch's first were read ahead, while the previous one
	// trained: 11 of 12 batches of 50, 3 epochs, 2 fits.
	if got, want := mtr.Mapped.AheadReads(), int64(2*3*11*50); got != want {
		t.Errorf("%d training rows read ahead, want %d", got, want)
	}
}

// A gather takes the rows read ahead only when they are the rows it asks for; otherwise
// (another batch, another dataset) it reads its own, and both give the dense rows.
func TestMappedReadAheadMatchesRows(t *testing.T) {
	d := blobs(6, 97)
	md := mapBlobs(t, d, 0)
	other := mapBlobs(t, blobs(7, 97), 0)
	b := newBatchBuffers(md, 40)
	want := func(pos []int) []float32 {
		var x []float32
		for _, p := range pos {
			x = append(x, d.X[p*d.NumInputs:(p+1)*d.NumInputs]...)
		}
		return x
	}
	check := func(what string, pos []int, ahead int64) {
		t.Helper()
		before := md.Mapped.AheadReads()
		bt, _ := b.gather(md, pos)
		w := want(pos)
		for i := range w {
			if bt.X[i] != w[i] {
				t.Fatalf("%s: float %d is %v, want %v", what, i, bt.X[i], w[i])
			}
		}
		if got := md.Mapped.AheadReads() - before; got != ahead {
			t.Errorf("%s: %d rows taken from the read-ahead, want %d", what, got, ahead)
		}
	}
	b.prefetch(md, []int{5, 90, 3, 3})
	check("the rows read ahead", []int{5, 90, 3, 3}, 4)
	b.prefetch(md, []int{5, 90, 3})
	check("other rows", []int{5, 90, 4}, 0)
	b.prefetch(other, []int{1, 2})
	check("another dataset's read-ahead", []int{1, 2}, 0)
	check("no read-ahead", []int{96, 0}, 0)
	b.prefetch(md, []int{7})
	b.prefetch(md, []int{8, 9}) // the first is never taken: replaced
	check("the second read-ahead", []int{8, 9}, 2)
	// A gather that comes after the readers finished takes rows they all read in the
	// background.
	var late []int
	for r := range 40 {
		late = append(late, 96-2*r)
	}
	bg := md.Mapped.BackgroundReads()
	b.prefetch(md, late)
	for start := time.Now(); md.Mapped.BackgroundReads()-bg < int64(len(late)); {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the readers read %d of %d rows in 10 s", md.Mapped.BackgroundReads()-bg, len(late))
		}
		time.Sleep(time.Millisecond)
	}
	check("rows read in the background", late, int64(len(late)))
	if got := md.Mapped.BackgroundReads() - bg; got != int64(len(late)) {
		t.Errorf("%d rows read in the background, want %d", got, len(late))
	}
	// A read-ahead still in flight when the mapping closes: Close waits for it.
	b.prefetch(md, []int{1, 2, 3})
}

func TestMappedTouchDropsPages(t *testing.T) {
	md := mapBlobs(t, blobs(4, 64), 64<<10) // a 64 KiB window: a drop every row
	md.Mapped.Touch(1)
	md.Mapped.Touch(1)
	if md.Mapped.Drops() != 2 {
		t.Errorf("%d drops after touching 2 rows with a one-row window, want 2", md.Mapped.Drops())
	}
}

func TestMappedWriterAbortRemovesFile(t *testing.T) {
	dir := t.TempDir()
	w, err := NewMappedWriter(dir, "x", 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("abort left %s", filepath.Join(dir, ents[0].Name()))
	}
}

// ringAvailable reports whether this kernel lets the process use io_uring; where it does
// not, the mapped rows are read with pread (tested by TestMappedRowsWithoutRing).
func ringAvailable(t *testing.T) bool {
	t.Helper()
	r, err := newRing(ringSizeEntries)
	if err != nil {
		t.Logf("io_uring unavailable (%v): rows are read with pread", err)
		return false
	}
	r.close()
	return true
}

// readRows reads a chunk of rows with one system call per ringSizeEntries rows (io_uring),
// not one a row, and the rows are the dense rows in the order asked, repeats included.
func TestMappedReadRowsCoalescesCalls(t *testing.T) {
	d := blobs(8, 1000)
	md := mapBlobs(t, d, 0)
	if !ringAvailable(t) {
		t.Skip("io_uring unavailable")
	}
	rows := make([]int, 150)
	for i := range rows {
		rows[i] = (i * 7919) % 1000
	}
	rows[3] = rows[2] // a repeat (bootstrap samples)
	readRowsMatch(t, md.Mapped, d, rows)
	if got := md.Mapped.Reads(); got != int64(len(rows)) {
		t.Errorf("%d rows read, want %d", got, len(rows))
	}
	// 150 rows: 3 chunks of at most 64, one io_uring_enter each (a signal may interrupt a
	// wait and cost one more); one pread a row would be 150.
	if got, chunks := md.Mapped.ReadCalls(), int64((len(rows)+ringSizeEntries-1)/ringSizeEntries); got < chunks || got > 2*chunks {
		t.Errorf("%d system calls for %d rows, want %d (one per chunk of %d)", got, len(rows), chunks, ringSizeEntries)
	}
}

// Without io_uring (unavailable, or it failed) the same rows come back, one pread each.
func TestMappedRowsWithoutRing(t *testing.T) {
	d := blobs(9, 300)
	md := mapBlobs(t, d, 0)
	md.Mapped.noRing = true
	rows := []int{299, 0, 17, 17, 150}
	readRowsMatch(t, md.Mapped, d, rows)
	if got := md.Mapped.ReadCalls(); got != int64(len(rows)) {
		t.Errorf("%d system calls for %d rows read with pread, want one a row", got, len(rows))
	}
}

// A ring read that comes back short (past the end of the file) says so, and the reads
// before it are done.
func TestRingShortRead(t *testing.T) {
	if !ringAvailable(t) {
		t.Skip("io_uring unavailable")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := make([]byte, 4096)
	for i := range data {
		data[i] = byte(i * 31)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	r, err := newRing(ringSizeEntries)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	dst := make([]byte, 3*8)
	calls, ok, err := r.readAt(int(f.Fd()), []int64{8, 4000, 16}, 8, dst)
	if err != nil || !ok || calls < 1 {
		t.Fatalf("readAt: %d calls, ok %v, err %v", calls, ok, err)
	}
	for i, off := range []int{8, 4000, 16} {
		if string(dst[i*8:(i+1)*8]) != string(data[off:off+8]) {
			t.Errorf("read %d: %v, want %v", i, dst[i*8:(i+1)*8], data[off:off+8])
		}
	}
	if _, ok, err := r.readAt(int(f.Fd()), []int64{0, 4092}, 8, make([]byte, 16)); ok || err != nil {
		t.Errorf("a read past the end of the file: ok %v, err %v; want a short read reported", ok, err)
	}
}

// BenchmarkMappedReadRows reads mini-batches of 256 random rows of 50 floats from a 20 MB
// mapped file in the page cache, with io_uring and with one pread a row.
func BenchmarkMappedReadRows(b *testing.B) {
	const rows, cols, batch = 100_000, 50, 256
	benchChunk := aheadChunk
	if c, err := strconv.Atoi(os.Getenv("PIPE_BENCH_CHUNK")); err == nil {
		benchChunk = c
	}
	w, err := NewMappedWriter(b.TempDir(), "bench", cols)
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float32, 1000*cols)
	for range rows / 1000 {
		if err := w.Append(x); err != nil {
			b.Fatal(err)
		}
	}
	m, err := w.Finish(0)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	idx := make([]int, batch)
	for i := range idx {
		idx[i] = (i * 7919 * 13) % rows
	}
	dst := make([]float32, batch*cols)
	for _, mode := range []struct {
		name   string
		noRing bool
	}{{"io_uring", false}, {"pread", true}} {
		b.Run(mode.name, func(b *testing.B) {
			m.noRing = mode.noRing
			for b.Loop() {
				for start := 0; start < batch; start += benchChunk {
					m.readRows(idx[start:start+benchChunk], dst[start*cols:(start+benchChunk)*cols])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/row")
		})
	}
}

// readRowsMatch reads rows through m and fails unless each comes back as d's row of that index.
func readRowsMatch(t *testing.T, m *MappedRows, d Dataset, rows []int) {
	t.Helper()
	ni := d.NumInputs
	dst := make([]float32, len(rows)*ni)
	m.readRows(rows, dst)
	for i, r := range rows {
		for j := range ni {
			if got, want := dst[i*ni+j], d.X[r*ni+j]; got != want {
				t.Fatalf("row %d (base %d) float %d: %v, want %v", i, r, j, got, want)
			}
		}
	}
}
