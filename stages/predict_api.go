package stages

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/schema"
)

// LoadPredictor loads a bundle directory written by a train, ensemble or combine stage.
func LoadPredictor(dir string) (Predictor, error) {
	b, kind, err := loadBundleMeta(dir)
	if err != nil {
		return nil, err
	}
	if kind == "ensemble" {
		return loadEnsembleBundle(b)
	}
	return LoadBundle(dir)
}

// PredictionSchema is the schema of the batches Predict emits: _row, then per target
// <target>_pred and <target>_prob_<class>.
func PredictionSchema(p Predictor) *arrow.Schema { return predictionSchema(p.InputPlan(), "") }

// Predict scores raw batches (as a source reads them: the bundle applies its whole
// preprocessing chain) and calls emit with each prediction batch, which emit must not keep
// without Retain. Rows keep their _row id, or are numbered from 0 when the input has none. The
// input must have every column the model was trained on; others are ignored.
func Predict(ctx context.Context, p Predictor, in pipeline.RecordReader, mem memory.Allocator, emit func(arrow.RecordBatch) error) error {
	if b, ok := p.(interface{ CheckInput(*arrow.Schema) error }); ok {
		if err := b.CheckInput(in.Schema()); err != nil {
			return err
		}
	}
	plan := p.InputPlan()
	outSchema := PredictionSchema(p)
	hasRow := in.Schema().FieldIndices(schema.RowIDColumn) != nil
	withRow := pipeline.WithRowIDField(in.Schema())
	var next int64
	for in.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec := in.RecordBatch()
		if !hasRow {
			rec = pipeline.AddRowID(mem, rec, next, withRow)
		} else {
			rec.Retain()
		}
		next += rec.NumRows()
		pre, err := p.PreprocessFrom(ctx, mem, rec, 0)
		rec.Release()
		if err != nil {
			return err
		}
		data := &tensors{}
		data.ds.NumInputs = len(plan.Numeric)
		data.ds.Cat = make([][]int32, len(plan.Categorical))
		err = plan.appendBatch("predict", "input", pre, false, nil, data)
		pre.Release()
		if err != nil {
			return err
		}
		out, err := forwardAll(p, data)
		if err != nil {
			return err
		}
		res, err := predictionBatch(mem, plan, outSchema, data.rowIDs, out, 0, len(data.rowIDs))
		if err != nil {
			return err
		}
		err = emit(res)
		res.Release()
		if err != nil {
			return err
		}
	}
	if err := in.Err(); err != nil {
		return err
	}
	if next == 0 {
		return fmt.Errorf("the input has no rows")
	}
	return nil
}
