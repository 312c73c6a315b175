package pipeline

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/arrowutil"
	"github.com/pipe-ml/pipe/schema"
)

// RecordReader is arrow-go's reader shape: Next / RecordBatch / Err, then Release.
type RecordReader interface {
	Schema() *arrow.Schema
	Next() bool
	// RecordBatch is valid until the next call to Next; Retain it to keep it.
	RecordBatch() arrow.RecordBatch
	Err() error
	Release()
}

// Source is the shape of a stage that brings a table in from outside: a file, a dataset.
type Source interface {
	// Open returns a reader of the source's rows. SourceStage releases it.
	Open(ctx context.Context, sc *StageContext) (RecordReader, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, sc *StageContext) (RecordReader, error)

// Open calls f.
func (f SourceFunc) Open(ctx context.Context, sc *StageContext) (RecordReader, error) {
	return f(ctx, sc)
}

// SourceStage runs a Source as a stage whose table output is "out" (split role "all"). It adds
// the stable row id column _row (int64, numbered from 0 in read order) unless the source
// already has one, so predictions, worst-k lists and pseudo-labels can refer back to input
// rows. An empty source is an error.
func SourceStage(src Source) Stage {
	return StageFunc(func(ctx context.Context, sc *StageContext) error {
		r, err := src.Open(ctx, sc)
		if err != nil {
			return err
		}
		defer r.Release()
		hasRow := r.Schema().FieldIndices(schema.RowIDColumn) != nil
		outSchema := r.Schema()
		if !hasRow {
			outSchema = WithRowIDField(outSchema)
		}
		t, err := sc.NewTable("out", outSchema, schema.SplitAll, nil)
		if err != nil {
			return err
		}
		var next int64
		for r.Next() {
			if err := ctx.Err(); err != nil {
				return context.Cause(ctx)
			}
			rec := r.RecordBatch()
			if !hasRow {
				rec = AddRowID(sc.Mem, rec, next, t.Schema())
			} else {
				rec.Retain()
			}
			next += rec.NumRows()
			err := t.Append(rec)
			rec.Release()
			if err != nil {
				return err
			}
			sc.Progress(next, 0, "rows")
		}
		if err := r.Err(); err != nil {
			return err
		}
		if next == 0 {
			return &DataError{Stage: sc.Name, Msg: "the source has no rows", Hint: "check the file or the limit option"}
		}
		return nil
	})
}

// WithRowIDField returns s with the _row column (int64, role id) appended.
func WithRowIDField(s *arrow.Schema) *arrow.Schema { return arrowutil.WithRowIDField(s) }

// AddRowID returns a new batch equal to rec plus the _row column numbered from start. out is
// the output schema (WithRowIDField of rec's schema, possibly with more metadata). The caller
// releases both rec and the result.
func AddRowID(mem memory.Allocator, rec arrow.RecordBatch, start int64, out *arrow.Schema) arrow.RecordBatch {
	return arrowutil.AddRowID(mem, rec, start, out)
}

// SinkFunc is the shape of a stage that writes a table out.
type SinkFunc func(ctx context.Context, sc *StageContext, t *Table) error

// SinkStage runs a sink on the table of input field "input".
func SinkStage(fn SinkFunc) Stage {
	return StageFunc(func(ctx context.Context, sc *StageContext) error {
		t, err := sc.Input(ctx, "input")
		if err != nil {
			return err
		}
		return fn(ctx, sc, t)
	})
}

// MapFunc transforms one batch; it does not retain or release in and returns a new batch the
// caller releases.
type MapFunc func(ctx context.Context, sc *StageContext, in arrow.RecordBatch) (arrow.RecordBatch, error)

// TransformStage runs a streaming, batch-by-batch transform from input field "input" to output
// "out". outSchema gives the output schema from the input's; the split role carries over. The
// transform cannot be replayed at prediction time, so the output's lineage records it as such
// and a model trained on the output is refused (unless the kind declares KeepsFeatures): use
// ReplayableTransformStage for a transform that changes features.
func TransformStage(outSchema func(in *arrow.Schema) (*arrow.Schema, error), fn MapFunc) Stage {
	return mapStage(outSchema, nil, fn)
}

// ReplayableTransformStage runs a saved, replayable transform as a streaming stage from input
// field "input" to output "out": each batch goes through t.Apply, and the output table's
// lineage records t, so that a model trained downstream is bundled with it and replays it on
// raw rows at prediction time. t.Kind names its decoder, which a program registers with
// bundle.Decoders.Register (see examples/customstage). outSchema gives the output schema from
// the input's; the split role carries over.
func ReplayableTransformStage(outSchema func(in *arrow.Schema) (*arrow.Schema, error), t FittedTransform) Stage {
	return mapStage(outSchema, t, func(ctx context.Context, sc *StageContext, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		return t.Apply(ctx, sc.Mem, rec)
	})
}

// mapStage streams input "input" through fn into output "out"; t, when not nil, is recorded
// in the output's lineage as this stage's replayable step.
func mapStage(outSchema func(in *arrow.Schema) (*arrow.Schema, error), t FittedTransform, fn MapFunc) Stage {
	return StageFunc(func(ctx context.Context, sc *StageContext) error {
		in, err := sc.Input(ctx, "input")
		if err != nil {
			return err
		}
		s, err := outSchema(in.Schema())
		if err != nil {
			return err
		}
		lineage := in.Lineage()
		if t != nil {
			lineage = append(lineage, LineageStep{Stage: sc.Name, Kind: t.Kind(), FitOn: in.Split(), Transform: t, Input: in.Schema()})
		}
		out, err := sc.NewTable("out", s, in.Split(), lineage)
		if err != nil {
			return err
		}
		return MapTable(ctx, sc, in, out, fn)
	})
}

// MapTable streams in through fn into out.
func MapTable(ctx context.Context, sc *StageContext, in, out *Table, fn MapFunc) error {
	r := sc.Scan(ctx, in)
	defer r.Release()
	for r.Next() {
		res, err := fn(ctx, sc, r.RecordBatch())
		if err != nil {
			return err
		}
		if !res.Schema().Equal(out.Schema()) {
			// Keep the table's metadata (split role) when fn built its own schema.
			fixed := array.NewRecordBatch(out.Schema(), res.Columns(), res.NumRows())
			res.Release()
			res = fixed
		}
		err = out.Append(res)
		res.Release()
		if err != nil {
			return fmt.Errorf("%s: %w", out.Name(), err)
		}
	}
	return r.Err()
}
