package train

import (
	"fmt"
	"math"

	"github.com/pipe-ml/pipe/internal/sgemm/elementwise"
	"github.com/pipe-ml/pipe/nn"
)

// Dataset is a set of rows for training or evaluation. X, Cat, Targets and Weights describe a
// shared base matrix and are never modified; Index selects (and orders) the rows of the base
// that belong to this dataset, so bagging and splits are views without copies.
type Dataset struct {
	// X is the dense numeric block, base rows × NumInputs, row-major.
	X         []float32
	NumInputs int
	// Cat holds one index column per model embedding, each of length base rows.
	Cat [][]int32
	// Targets holds one target per model head, in Spec.Heads order.
	Targets []Target
	// Weights are optional per-row sample weights over the base rows (nil = 1).
	Weights []float32
	// Index lists the base rows in this dataset (repeats allowed: bootstrap samples). nil means
	// every base row, in order; a non-nil empty Index means no rows.
	Index []int
	// Mapped, when set, is the file-backed matrix X views (X == Mapped.Floats()): gathering
	// reads its rows with pread rather than through the mapping (see MappedRows).
	Mapped *MappedRows
}

// Target is one head's target over the base rows.
type Target struct {
	// Labels for classification heads: class per base row, negative = missing.
	Labels []int32
	// Values for regression heads: base rows × Outputs, NaN = missing.
	Values  []float32
	Outputs int // regression outputs per row; 0 means 1
}

func (t Target) outputs() int { return max(t.Outputs, 1) }

// baseRows is the number of rows of the base matrix.
func (d Dataset) baseRows() int {
	if d.NumInputs > 0 {
		return len(d.X) / d.NumInputs
	}
	if len(d.Cat) > 0 {
		return len(d.Cat[0])
	}
	if len(d.Targets) > 0 {
		t := d.Targets[0]
		if t.Labels != nil {
			return len(t.Labels)
		}
		return len(t.Values) / t.outputs()
	}
	return 0
}

// Len is the number of rows in the dataset.
func (d Dataset) Len() int {
	if d.Index != nil {
		return len(d.Index)
	}
	return d.baseRows()
}

// row returns the base row of the i-th dataset row.
func (d Dataset) row(i int) int {
	if d.Index != nil {
		return d.Index[i]
	}
	return i
}

// Subset returns the view of the rows at positions pos of d (positions within d, not base
// rows). It does not copy the data; pos is retained.
func (d Dataset) Subset(pos []int) Dataset {
	out := d
	idx := make([]int, len(pos))
	for i, p := range pos {
		idx[i] = d.row(p)
	}
	out.Index = idx
	return out
}

// validate checks the dataset against the model.
func (d Dataset) validate(m *nn.Model, what string) error {
	spec := m.Spec()
	if d.NumInputs != spec.NumInputs {
		return fmt.Errorf("train: %s data has %d numeric inputs, the model expects %d", what, d.NumInputs, spec.NumInputs)
	}
	if len(d.Cat) != len(spec.Embeddings) {
		return fmt.Errorf("train: %s data has %d categorical columns, the model has %d embeddings", what, len(d.Cat), len(spec.Embeddings))
	}
	if len(d.Targets) != len(spec.Heads) {
		return fmt.Errorf("train: %s data has %d targets, the model has %d heads", what, len(d.Targets), len(spec.Heads))
	}
	n := d.baseRows()
	for i, c := range d.Cat {
		if len(c) != n {
			return fmt.Errorf("train: %s data: categorical column %d has %d rows, want %d", what, i, len(c), n)
		}
	}
	for i, h := range spec.Heads {
		t := d.Targets[i]
		switch h.Kind {
		case nn.HeadSoftmax, nn.HeadBinary:
			if len(t.Labels) != n {
				return fmt.Errorf("train: %s data: head %q needs %d labels, got %d", what, h.Name, n, len(t.Labels))
			}
		default:
			want := max(h.Outputs, 1)
			if t.outputs() != want || len(t.Values) != n*want {
				return fmt.Errorf("train: %s data: head %q needs %d×%d values, got %d (outputs %d)", what, h.Name, n, want, len(t.Values), t.outputs())
			}
		}
	}
	if d.Weights != nil && len(d.Weights) != n {
		return fmt.Errorf("train: %s data has %d weights for %d rows", what, len(d.Weights), n)
	}
	for _, r := range d.Index {
		if r < 0 || r >= n {
			return fmt.Errorf("train: %s data: index row %d out of range [0, %d)", what, r, n)
		}
	}
	return nil
}

// batchBuffers holds one gathered mini-batch, reused across steps.
type batchBuffers struct {
	batch   nn.Batch
	targets nn.Targets
	catView [][]int32        // slice headers handed out, so batch.Cat keeps full length
	heads   []nn.HeadTargets // likewise for targets
	// soft is per-head room for soft targets (nil: none), handed out by gather as an empty
	// HeadTargets.Soft with this capacity, for an augmenter to reslice (Config.Augment).
	soft [][]float32
	// ahead is the next mini-batch's numeric rows being read from a mapped X in the
	// background (prefetch); aheadLive says whether it was started and not yet taken.
	ahead     *readAhead
	aheadLive bool
	rows      []int // base rows of a mapped gather that was not read ahead
}

func newBatchBuffers(d Dataset, rows int) *batchBuffers {
	b := &batchBuffers{}
	b.batch.X = make([]float32, rows*d.NumInputs)
	for range d.Cat {
		b.batch.Cat = append(b.batch.Cat, make([]int32, rows))
	}
	for _, t := range d.Targets {
		var ht nn.HeadTargets
		if t.Labels != nil {
			ht.Labels = make([]int32, rows)
		} else {
			ht.Values = make([]float32, rows*t.outputs())
		}
		b.targets.Heads = append(b.targets.Heads, ht)
	}
	if d.Weights != nil {
		b.targets.Weights = make([]float32, rows)
	}
	b.catView = make([][]int32, len(d.Cat))
	b.heads = make([]nn.HeadTargets, len(d.Targets))
	return b
}

// addSoftRoom gives every classification head of heads room for rows×classes soft targets
// (rows×2 for a binary head).
func (b *batchBuffers) addSoftRoom(heads []nn.HeadSpec, rows int) {
	b.soft = make([][]float32, len(heads))
	for h, hs := range heads {
		switch hs.Kind {
		case nn.HeadSoftmax:
			b.soft[h] = make([]float32, 0, rows*hs.Classes)
		case nn.HeadBinary:
			b.soft[h] = make([]float32, 0, rows*2)
		}
	}
}

// gather copies the dataset rows at positions pos into the buffers (which must hold
// len(pos) rows) and returns them as a batch.
func (b *batchBuffers) gather(d Dataset, pos []int) (nn.Batch, nn.Targets) {
	n := len(pos)
	ni := d.NumInputs
	bt := nn.Batch{Rows: n, X: b.batch.X[:n*ni], Cat: b.catView}
	readX := d.Mapped == nil || !b.takeAhead(d, pos, bt.X)
	if readX && d.Mapped != nil {
		b.rows = b.rows[:0]
		for _, p := range pos {
			b.rows = append(b.rows, d.row(p))
		}
		d.Mapped.readRows(b.rows, bt.X)
		readX = false
	}
	for i, p := range pos {
		r := d.row(p)
		if readX {
			copy(bt.X[i*ni:(i+1)*ni], d.X[r*ni:(r+1)*ni])
		}
		for c, col := range d.Cat {
			b.batch.Cat[c][i] = col[r]
		}
	}
	for c := range bt.Cat {
		bt.Cat[c] = b.batch.Cat[c][:n]
	}
	tg := nn.Targets{Heads: b.heads}
	for h, t := range d.Targets {
		if t.Labels != nil {
			dst := b.targets.Heads[h].Labels[:n]
			for i, p := range pos {
				dst[i] = t.Labels[d.row(p)]
			}
			tg.Heads[h].Labels = dst
			tg.Heads[h].Soft = nil // an augmenter of the previous step may have set it
			if b.soft != nil {
				tg.Heads[h].Soft = b.soft[h][:0]
			}
		} else {
			k := t.outputs()
			dst := b.targets.Heads[h].Values[:n*k]
			for i, p := range pos {
				r := d.row(p)
				copy(dst[i*k:(i+1)*k], t.Values[r*k:(r+1)*k])
			}
			tg.Heads[h].Values = dst
		}
	}
	if d.Weights != nil {
		w := b.targets.Weights[:n]
		for i, p := range pos {
			w[i] = d.Weights[d.row(p)]
		}
		tg.Weights = w
	}
	return bt, tg
}

// takeAhead copies the numeric rows at positions pos of d into x from the read-ahead, when
// one was started for exactly these rows; it reports whether it did.
func (b *batchBuffers) takeAhead(d Dataset, pos []int, x []float32) bool {
	if !b.aheadLive {
		return false
	}
	a := b.ahead
	b.aheadLive = false
	a.wait()
	if a.m != d.Mapped || len(a.rows) != len(pos) {
		return false
	}
	for i, p := range pos {
		if a.rows[i] != d.row(p) {
			return false
		}
	}
	copy(x, a.x)
	d.Mapped.ahead.Add(int64(len(pos)))
	return true
}

// prefetch starts loading the numeric rows at positions pos of d, the next mini-batch, while
// the current one trains: for a mapped X, it reads them in the background (a gather of the
// same positions takes them); in memory, it hints the CPU to load them into its caches.
func (b *batchBuffers) prefetch(d Dataset, pos []int) {
	if d.Mapped == nil {
		d.prefetch(pos)
		return
	}
	if b.aheadLive {
		b.ahead.wait() // not taken: its buffers are reused
	}
	b.ahead = d.Mapped.startReadAhead(b.ahead, func(i int) int { return d.row(pos[i]) }, len(pos))
	b.aheadLive = true
}

// prefetch hints the CPU to load the numeric rows at positions pos into its caches.
func (d Dataset) prefetch(pos []int) {
	if d.Mapped != nil {
		return // rows are read with pread: touching the mapping would fault pages in
	}
	ni := d.NumInputs
	for _, p := range pos {
		r := d.row(p)
		elementwise.Prefetch(d.X[r*ni : (r+1)*ni])
	}
}

// materialize gathers the whole dataset into fresh contiguous buffers.
func materialize(d Dataset) (nn.Batch, nn.Targets) {
	n := d.Len()
	pos := make([]int, n)
	for i := range pos {
		pos[i] = i
	}
	return newBatchBuffers(d, n).gather(d, pos)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
