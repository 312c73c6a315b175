package stages

import (
	"context"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
)

// Data paths of a table read for training, evaluation or prediction, recorded in the stage's
// info as "data_path_<role>".
const (
	// pathDense: the dense float32 copy fits the run's memory budget and is held in memory
	// (reserved in the budget until the stage is done with it).
	pathDense = "dense"
	// pathMapped: the copy does not fit. The table is read batch by batch and its numeric
	// block written to a file in the run's spill directory, which is mapped read-only: the
	// trainer draws its shuffled mini-batches through the mapping (an index permutation, the
	// same rows in the same order as the dense path, so the same results), and evaluation
	// and prediction forward it chunk by chunk. The resident pages of the mapping are dropped
	// every quarter budget of rows read, so the process does not hold the copy.
	pathMapped = "mapped"
	// pathTargets: only the table's targets are read, not its inputs (an ensemble stage that
	// builds the ensemble from the records of members trained apart: see loadTargets).
	pathTargets = "targets"
)

// denseBytes estimates the memory of the dense tensors of rows rows under plan p.
func denseBytes(p *bundle.InputPlan, rows int64, withTargets bool) int64 {
	per := int64(len(p.Numeric))*4 + int64(len(p.Categorical))*4 + 8 // + the _row id
	if withTargets {
		per += int64(len(p.Targets)) * 8
	}
	return rows * per
}

// tensors is a table read into tensors, dense or mapped (see pathDense, pathMapped). Call
// done when finished with it.
type tensors struct {
	*bundle.Tensors
	path string
	done func()
}

// loadTensors reads table t into tensors for role ("train", "val", "eval", "predict"),
// choosing the data path from the run's memory budget. The choice is logged and recorded in
// the stage's info (data_path_<role>, with the estimated dense bytes).
func loadTensors(ctx context.Context, sc *pipeline.StageContext, p *bundle.InputPlan, t *pipeline.Table, withTargets bool, pre func(arrow.RecordBatch) (arrow.RecordBatch, error), role string) (*tensors, error) {
	if err := t.Wait(ctx); err != nil {
		return nil, err
	}
	est := denseBytes(p, t.Rows(), withTargets)
	if sc.ReserveMemory(est) {
		data, err := materializeShared(ctx, sc, p, t, withTargets, pre, est)
		if err != nil {
			sc.FreeMemory(est)
			return nil, err
		}
		sc.SetInfo("data_path_"+role, map[string]any{"path": pathDense, "dense_bytes": est})
		sc.Log.Debug().Str("table", t.Name()).Str("path", pathDense).Int64("dense_bytes", est).Msg("data path")
		return &tensors{Tensors: data, path: pathDense, done: func() { sc.FreeMemory(est) }}, nil
	}
	data, err := mapTable(ctx, sc, p, t, withTargets, pre)
	if err != nil {
		return nil, err
	}
	sc.SetInfo("data_path_"+role, map[string]any{"path": pathMapped, "dense_bytes": est, "budget_bytes": sc.MemoryBudget()})
	sc.Note("%s: the dense copy of %s (%d MiB) does not fit the memory budget (%d MiB): it is read through a file mapping", role, t.Name(), est>>20, sc.MemoryBudget()>>20)
	sc.Log.Info().Str("table", t.Name()).Str("path", pathMapped).Int64("dense_bytes", est).Int64("budget_bytes", sc.MemoryBudget()).Msg("data path")
	m := data.Data.Mapped
	return &tensors{Tensors: data, path: pathMapped, done: func() {
		if m.Reads() > 0 {
			// How the training reads went: rows read, the system calls they took (one pread
			// a row, or one io_uring_enter a chunk of rows), and of the mini-batch rows read
			// ahead, how many the read-ahead goroutines read while a step ran.
			sc.SetInfo("data_path_"+role, map[string]any{"path": pathMapped, "dense_bytes": est, "budget_bytes": sc.MemoryBudget(),
				"rows_read": m.Reads(), "read_system_calls": m.ReadCalls(), "rows_read_ahead": m.AheadReads(), "rows_read_in_background": m.BackgroundReads()})
		}
		if err := m.Close(); err != nil {
			sc.Log.Warn().Err(err).Str("file", m.Path()).Msg("remove mapped rows")
		}
	}}, nil
}

// dropWindow is how many bytes of rows read through a mapping may stay resident.
func dropWindow(budget int64) int64 {
	return min(max(budget/4, 8<<20), 256<<20)
}

// mapTable reads t batch by batch into tensors whose numeric block is a mapped file.
func mapTable(ctx context.Context, sc *pipeline.StageContext, p *bundle.InputPlan, t *pipeline.Table, withTargets bool, pre func(arrow.RecordBatch) (arrow.RecordBatch, error)) (*bundle.Tensors, error) {
	w, err := train.NewMappedWriter(sc.SpillDir(), sanitizeName(t.Name()), len(p.Numeric))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.Name(), err)
	}
	fail := func(err error) (*bundle.Tensors, error) {
		w.Abort()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, dataErr(sc, err)
	}
	r := sc.Scan(ctx, t)
	defer r.Release()
	out := p.NewTensors(withTargets)
	opts := bundle.TensorizeOptions{Table: t.Name(), Targets: withTargets}
	for r.Next() {
		rec := r.RecordBatch()
		if pre != nil {
			if rec, err = pre(rec); err != nil {
				return fail(err)
			}
		} else {
			rec.Retain()
		}
		err := p.AppendBatch(rec, opts, out)
		rec.Release()
		if err != nil {
			return fail(err)
		}
		if err := w.Append(out.Data.X); err != nil {
			return fail(err)
		}
		out.Data.X = out.Data.X[:0]
	}
	if err := r.Err(); err != nil {
		return fail(err)
	}
	if len(out.RowIDs) == 0 {
		return fail(&bundle.ColumnError{Table: t.Name(), Msg: "the table is empty", Hint: "check the split ratios and the source's limit"})
	}
	m, err := w.Finish(dropWindow(sc.MemoryBudget()))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.Name(), err)
	}
	out.Data.X = m.Floats()
	out.Data.Mapped = m
	return out, nil
}

func sanitizeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// forwardChunk is the rows forwarded at a time through a mapping: a multiple of
// bundle.ForwardAll's own chunk, so the batches, and so the outputs, are the dense path's.
const forwardChunk = 16 * 4096

// forward runs p over all rows of data; through a mapping, chunk by chunk, dropping the
// chunk's resident pages after each.
func forward(p bundle.Predictor, data *tensors) (nn.Outputs, error) {
	m := data.Data.Mapped
	if m == nil {
		return bundle.ForwardAll(p, data.Tensors)
	}
	rows := len(data.RowIDs)
	w := data.Data.NumInputs
	var all nn.Outputs
	for start := 0; start < rows; start += forwardChunk {
		end := min(start+forwardChunk, rows)
		part := &bundle.Tensors{RowIDs: data.RowIDs[start:end]}
		part.Data.NumInputs = w
		part.Data.X = data.Data.X[start*w : end*w]
		for _, c := range data.Data.Cat {
			part.Data.Cat = append(part.Data.Cat, c[start:end])
		}
		out, err := bundle.ForwardAll(p, part)
		m.Drop()
		if err != nil {
			return nn.Outputs{}, err
		}
		if all.Heads == nil {
			all.Heads = make([][]float32, len(out.Heads))
			all.Width = append([]int(nil), out.Width...)
		}
		for h := range out.Heads {
			all.Heads[h] = append(all.Heads[h], out.Heads[h]...)
		}
	}
	return all, nil
}

// scoreTableStream runs a predictor over a table: preprocessing (the part the table lacks),
// then the network, on the data path the memory budget allows. It returns the tensors (with
// targets when withTargets) and the per-head outputs over all rows. Call the tensors' done
// when finished with them.
func scoreTableStream(ctx context.Context, sc *pipeline.StageContext, p bundle.Predictor, t *pipeline.Table, withTargets bool, role string) (*tensors, nn.Outputs, error) {
	data, err := loadTensors(ctx, sc, p.InputPlan(), t, withTargets, preprocessor(ctx, sc, p, t), role)
	if err != nil {
		return nil, nn.Outputs{}, err
	}
	out, err := forward(p, data)
	if err != nil {
		data.done()
		return nil, nn.Outputs{}, err
	}
	return data, out, nil
}

// loadTargets reads the targets of table t for role, not its inputs: its rows and labels,
// with p's NumInputs, no input values (X and Cat's columns empty) and an Index of every
// row (Len counts them). Such data can be neither trained nor predicted on. The (small)
// copy is held in the run's memory budget whatever it says, until done is called; the
// stage's info records the path (data_path_<role>: pathTargets).
func loadTargets(ctx context.Context, sc *pipeline.StageContext, p *bundle.InputPlan, t *pipeline.Table, role string) (*tensors, error) {
	if err := t.Wait(ctx); err != nil {
		return nil, err
	}
	targets := &bundle.InputPlan{Targets: p.Targets}
	est := denseBytes(targets, t.Rows(), true)
	sc.HoldMemory(est)
	data, err := materialize(ctx, sc, targets, t, true, nil)
	if err != nil {
		sc.FreeMemory(est)
		return nil, err
	}
	data.Data.NumInputs = p.Width()
	data.Data.Cat = make([][]int32, len(p.Categorical))
	data.Data.Index = make([]int, len(data.RowIDs))
	for i := range data.Data.Index {
		data.Data.Index[i] = i
	}
	sc.SetInfo("data_path_"+role, map[string]any{"path": pathTargets, "dense_bytes": est})
	sc.Log.Debug().Str("table", t.Name()).Str("path", pathTargets).Int64("dense_bytes", est).Msg("data path")
	return &tensors{Tensors: data, path: pathTargets, done: func() { sc.FreeMemory(est) }}, nil
}

// load reads the train (and val, when valT is not nil) tables of d, each on the data path the
// budget allows, and sets d.done to free them. Without inputs, it reads their targets only
// (loadTargets).
func (d *supervised) load(ctx context.Context, sc *pipeline.StageContext, valT *pipeline.Table, inputs bool) error {
	read := func(t *pipeline.Table, role string) (*tensors, error) {
		if !inputs {
			return loadTargets(ctx, sc, d.plan, t, role)
		}
		return loadTensors(ctx, sc, d.plan, t, true, nil, role)
	}
	tr, err := read(d.trainT, "train")
	if err != nil {
		return err
	}
	d.trainData, d.done = tr.Tensors, tr.done
	if valT == nil {
		return nil
	}
	va, err := read(valT, "val")
	if err != nil {
		tr.done()
		d.done = func() {}
		return err
	}
	d.valData = va.Tensors
	d.done = func() { va.done(); tr.done() }
	return nil
}

// holdUnlabeled counts the dense copies of the `unlabeled` tables (read whole, as their rows
// join the main table's) in the run's memory budget, whatever it says: when they do not fit,
// the stage says so. Call the returned function when they are no longer held.
func holdUnlabeled(sc *pipeline.StageContext, plan *bundle.InputPlan, extra []unlabeledTable) func() {
	var bytes int64
	for _, e := range extra {
		bytes += denseBytes(plan, int64(e.Data.Len()), false)
	}
	if bytes == 0 {
		return func() {}
	}
	if !sc.HoldMemory(bytes) {
		sc.Note("the unlabeled tables' dense copies (%d MiB) do not fit the memory budget (%d MiB) next to what the run holds: they are held in memory anyway, counted in the budget", bytes>>20, sc.MemoryBudget()>>20)
	}
	sc.SetInfo("unlabeled_dense_bytes", bytes)
	var once sync.Once
	return func() { once.Do(func() { sc.FreeMemory(bytes) }) }
}

// appendUnlabeled appends the rows of the `unlabeled` tables to data's base rows (see
// appendRows). When data is mapped, its rows and theirs are written to a new mapped file,
// which replaces data's, and free is called: their dense copies are no longer needed.
func appendUnlabeled(sc *pipeline.StageContext, data *tensors, extra []unlabeledTable, free func()) error {
	if len(extra) == 0 {
		return nil
	}
	m := data.Data.Mapped
	if m == nil {
		for _, e := range extra {
			appendRows(&data.Data, e.Data)
		}
		return nil
	}
	cols := data.Data.NumInputs
	fail := func(err error) error { return fmt.Errorf("add the unlabeled tables' rows to a mapped table: %w", err) }
	w, err := train.NewMappedWriter(sc.SpillDir(), "unlabeled", cols)
	if err != nil {
		return fail(err)
	}
	x := m.Floats()
	for start := 0; start < m.Rows(); start += forwardChunk {
		end := min(start+forwardChunk, m.Rows())
		err := w.Append(x[start*cols : end*cols])
		m.Drop()
		if err != nil {
			w.Abort()
			return fail(err)
		}
	}
	for _, e := range extra {
		if err := w.Append(e.Data.X); err != nil {
			w.Abort()
			return fail(err)
		}
	}
	nm, err := w.Finish(dropWindow(sc.MemoryBudget()))
	if err != nil {
		return fail(err)
	}
	for _, e := range extra {
		appendRowsButX(&data.Data, e.Data, e.Data.Len())
		e.Data.X = nil
	}
	data.Data.X, data.Data.Mapped = nm.Floats(), nm
	data.done()
	data.done = func() {
		if err := nm.Close(); err != nil {
			sc.Log.Warn().Err(err).Str("file", nm.Path()).Msg("remove mapped rows")
		}
	}
	free()
	return nil
}
