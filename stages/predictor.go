package stages

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/pipeline"
)

// Predictor is a trained model that scores tables: a single-model Bundle, or an ensemble.
type Predictor interface {
	pipeline.Artifact
	// InputPlan says how a preprocessed table becomes the network's input, and the targets.
	InputPlan() *InputPlan
	// PreSteps lists the fitted preprocessing chain, oldest first.
	PreSteps() []PreStep
	// Preprocess applies the chain from step `from` on. The caller releases the result.
	PreprocessFrom(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, from int) (arrow.RecordBatch, error)
	// Forward returns per-head outputs for an input batch (probabilities, or standardised
	// regression values). It is not safe for concurrent use.
	Forward(b nn.Batch) (nn.Outputs, error)
}

// InputPlan implements Predictor.
func (b *Bundle) InputPlan() *InputPlan { return &b.Meta.Plan }

// PreSteps implements Predictor.
func (b *Bundle) PreSteps() []PreStep { return b.Meta.Preprocessing }

// PreprocessFrom implements Predictor.
func (b *Bundle) PreprocessFrom(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, from int) (arrow.RecordBatch, error) {
	rec.Retain()
	for i := from; i < len(b.Pre); i++ {
		out, err := b.Pre[i].Apply(ctx, mem, rec)
		rec.Release()
		if err != nil {
			return nil, fmt.Errorf("preprocessing step %d (%s, fitted by stage %q): %w", i+1, b.Pre[i].Kind(), b.Meta.Preprocessing[i].Stage, err)
		}
		rec = out
	}
	return rec, nil
}

// Forward implements Predictor.
func (b *Bundle) Forward(x nn.Batch) (nn.Outputs, error) { return b.Model.Predict(x) }

// alreadyApplied counts the leading preprocessing steps of p that a table's lineage already
// has (a table such as normalize.test was produced by the same fitted stages), so that they are
// not applied twice.
func alreadyApplied(p Predictor, lineage []pipeline.LineageStep) int {
	steps := p.PreSteps()
	n := 0
	for n < len(steps) && n < len(lineage) && steps[n].Stage == lineage[n].Stage && steps[n].Kind == lineage[n].Kind {
		n++
	}
	return n
}

// scoreTable runs a predictor over a table: preprocessing (the part the table lacks), then the
// network. It returns the tensors (with targets when withTargets) and the per-head outputs over
// all rows.
func scoreTable(ctx context.Context, sc *pipeline.StageContext, p Predictor, t *pipeline.Table, withTargets bool) (*tensors, nn.Outputs, error) {
	from := alreadyApplied(p, t.Lineage())
	plan := p.InputPlan()
	data, err := plan.materializeWith(ctx, sc, t, withTargets, func(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		out, err := p.PreprocessFrom(ctx, sc.Mem, rec, from)
		if err != nil && ctx.Err() != nil {
			return nil, context.Cause(ctx) // stopped by the run, not a data problem
		}
		if err != nil {
			return nil, &pipeline.DataError{Stage: sc.Name, Msg: fmt.Sprintf("%s: %v", t.Name(), err)}
		}
		return out, nil
	})
	if err != nil {
		return nil, nn.Outputs{}, err
	}
	out, err := forwardAll(p, data)
	return data, out, err
}

// forwardAll runs the network over every row in chunks and concatenates the outputs.
func forwardAll(p Predictor, data *tensors) (nn.Outputs, error) {
	rows := len(data.rowIDs)
	w := data.ds.NumInputs
	const chunk = 4096
	var all nn.Outputs
	for start := 0; start < rows; start += chunk {
		end := min(start+chunk, rows)
		b := nn.Batch{Rows: end - start, X: data.ds.X[start*w : end*w]}
		for _, c := range data.ds.Cat {
			b.Cat = append(b.Cat, c[start:end])
		}
		out, err := p.Forward(b)
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

// predictionBatch builds the output batch of predict: the _row column, then each target's
// prediction columns, for rows [start, end) of the outputs.
func predictionBatch(mem memory.Allocator, plan *InputPlan, s *arrow.Schema, ids []int64, out nn.Outputs, start, end int) (arrow.RecordBatch, error) {
	rows := end - start
	ib := array.NewInt64Builder(mem)
	defer ib.Release()
	ib.AppendValues(ids[start:end], nil)
	cols := []arrow.Array{ib.NewArray()}
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	for h, tp := range plan.Targets {
		w := out.Width[h]
		pc, err := appendPredictions(mem, tp, out.Heads[h][start*w:end*w], w, rows)
		if err != nil {
			return nil, err
		}
		cols = append(cols, pc...)
	}
	return array.NewRecordBatch(s, cols, int64(rows)), nil
}

// predictionSchema is the schema of predictionBatch.
func predictionSchema(plan *InputPlan, split string) *arrow.Schema {
	fields := []arrow.Field{{Name: "_row", Type: arrow.PrimitiveTypes.Int64}}
	for _, tp := range plan.Targets {
		fields = append(fields, predictionFields(tp)...)
	}
	return arrow.NewSchema(fields, nil)
}
