package bundle

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/arrowutil"
	"github.com/pipe-ml/pipe/internal/names"
	"github.com/pipe-ml/pipe/schema"
)

// PredictOptions tune Predict. The zero value emits _row and the predictions.
type PredictOptions struct {
	// Keep names input columns passed through to the output after _row (ids, keys), so that
	// predictions can be joined back without row positions.
	Keep []string
	// Table names the input in errors. Default "input".
	Table string
}

// Report is what Predict met on the way.
type Report struct {
	// Rows is the number of rows predicted.
	Rows int64
	// Unknown counts, per input column, the rows whose category was not seen in training (and
	// was mapped to the unknown bucket).
	Unknown map[string]int64
}

// String summarises the report in one line.
func (r Report) String() string {
	s := fmt.Sprintf("%d rows", r.Rows)
	if len(r.Unknown) > 0 {
		cols := make([]string, 0, len(r.Unknown))
		for c := range r.Unknown {
			cols = append(cols, c)
		}
		sort.Strings(cols)
		parts := make([]string, len(cols))
		for i, c := range cols {
			parts[i] = fmt.Sprintf("%s: %d", c, r.Unknown[c])
		}
		s += "; categories not seen in training (mapped to the unknown bucket): " + strings.Join(parts, ", ")
	}
	return s
}

// OutputSchema is the schema of the batches Predict emits for an input of schema in: _row,
// the kept columns (with their input types), then per target <target>_pred and
// <target>_prob_<class>. A kept column the input lacks, or whose name clashes with a
// prediction column, is an error.
func OutputSchema(p Predictor, in *arrow.Schema, opts PredictOptions) (*arrow.Schema, error) {
	keep, err := keepFields(p.InputPlan(), in, opts)
	if err != nil {
		return nil, err
	}
	return PredictionSchema(p.InputPlan(), keep), nil
}

func keepFields(plan *InputPlan, in *arrow.Schema, opts PredictOptions) ([]arrow.Field, error) {
	taken := map[string]bool{schema.RowIDColumn: true}
	for _, f := range PredictionSchema(plan, nil).Fields() {
		taken[f.Name] = true
	}
	var out []arrow.Field
	seen := map[string]bool{}
	for _, name := range opts.Keep {
		if seen[name] {
			return nil, fmt.Errorf("keep: column %q is listed twice", name)
		}
		seen[name] = true
		if taken[name] {
			return nil, fmt.Errorf("keep: column %q would clash with an output column of the same name", name)
		}
		idx := in.FieldIndices(name)
		if idx == nil {
			have := make([]string, in.NumFields())
			for i, f := range in.Fields() {
				have[i] = f.Name
			}
			e := fmt.Errorf("keep: the input has no column %q (it has: %s)", name, names.List(have, 20))
			if s := names.Suggest(name, have); s != "" {
				e = fmt.Errorf("keep: the input has no column %q (did you mean %q?)", name, s)
			}
			return nil, e
		}
		f := in.Field(idx[0])
		out = append(out, arrow.Field{Name: f.Name, Type: f.Type, Nullable: true})
	}
	return out, nil
}

// Predict scores raw batches (as a source reads them: the whole preprocessing chain is
// applied) and calls emit with each prediction batch, which emit must not keep without
// Retain. Rows keep their _row id, or are numbered from 0 when the input has none. The input
// must have every column the model was trained on (all missing ones are named at once);
// other columns are ignored unless kept. p is not safe for concurrent use: Clone it for
// each goroutine.
func Predict(ctx context.Context, p Predictor, in Reader, mem memory.Allocator, opts PredictOptions, emit func(arrow.RecordBatch) error) (Report, error) {
	rep := Report{}
	if opts.Table == "" {
		opts.Table = "input"
	}
	if b := p.Base(); b != nil {
		if err := b.CheckInput(in.Schema()); err != nil {
			if ce, ok := err.(*ColumnError); ok {
				ce.Table = opts.Table
			}
			return rep, err
		}
	}
	plan := p.InputPlan()
	outSchema, err := OutputSchema(p, in.Schema(), opts)
	if err != nil {
		return rep, err
	}
	keepIdx := make([]int, len(opts.Keep))
	for i, k := range opts.Keep {
		keepIdx[i] = in.Schema().FieldIndices(k)[0]
	}
	before := counters(p)
	hasRow := in.Schema().FieldIndices(schema.RowIDColumn) != nil
	withRow := arrowutil.WithRowIDField(in.Schema())
	for in.Next() {
		if err := ctx.Err(); err != nil {
			return rep, context.Cause(ctx)
		}
		rec := in.RecordBatch()
		if !hasRow {
			rec = arrowutil.AddRowID(mem, rec, rep.Rows, withRow)
		} else {
			rec.Retain()
		}
		err := predictBatch(ctx, p, plan, rec, mem, opts, outSchema, keepIdx, emit)
		rep.Rows += rec.NumRows()
		rec.Release()
		if err != nil {
			return rep, err
		}
	}
	if err := in.Err(); err != nil {
		return rep, err
	}
	if rep.Rows == 0 {
		return rep, &ColumnError{Table: opts.Table, Msg: "the input has no rows"}
	}
	rep.Unknown = unknownSince(before, counters(p))
	return rep, nil
}

func predictBatch(ctx context.Context, p Predictor, plan *InputPlan, rec arrow.RecordBatch, mem memory.Allocator, opts PredictOptions, outSchema *arrow.Schema, keepIdx []int, emit func(arrow.RecordBatch) error) error {
	pre, err := p.PreprocessFrom(ctx, mem, rec, 0)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("%s: %w", opts.Table, err)
	}
	data := plan.NewTensors(false)
	err = plan.AppendBatch(pre, TensorizeOptions{Table: opts.Table}, data)
	pre.Release()
	if ce, ok := err.(*ColumnError); ok && ce.Row > 0 {
		ce.Hint = "the model cannot score this row: fix the value in the input; to score such rows, retrain with a pipeline that imputes or rescales this column"
	}
	if err != nil {
		return err
	}
	out, err := ForwardAll(p, data)
	if err != nil {
		return err
	}
	keep := make([]arrow.Array, len(keepIdx))
	for i, j := range keepIdx {
		keep[i] = rec.Column(j)
	}
	res, err := PredictionBatch(mem, plan, outSchema, data.RowIDs, keep, out, 0, len(data.RowIDs))
	if err != nil {
		return err
	}
	err = emit(res)
	res.Release()
	return err
}

// counters sums the Counting transforms' counters of p's chain.
func counters(p Predictor) map[string]int64 {
	out := map[string]int64{}
	b := p.Base()
	if b == nil {
		return out
	}
	for _, t := range b.Pre {
		if c, ok := t.(Counting); ok {
			for k, v := range c.Counters() {
				out[k] += v
			}
		}
	}
	return out
}

// unknownSince returns the per-column unknown-category counts added between two counter
// snapshots.
func unknownSince(before, after map[string]int64) map[string]int64 {
	var out map[string]int64
	for k, v := range after {
		col, ok := strings.CutPrefix(k, "unknown_by_column/")
		if !ok {
			continue
		}
		if d := v - before[k]; d > 0 {
			if out == nil {
				out = map[string]int64{}
			}
			out[col] += d
		}
	}
	return out
}
