package stages

import (
	"context"
	"math"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/internal/arrowutil"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/schema"
)

// idCheckRows bounds the rows read to look for id columns (8 bytes per row and column).
const idCheckRows = 1 << 20

// warnIDColumns warns (log and note) about each numeric feature column of the training table
// that looks like a row id (features.LooksLikeRowID), judged on its first idCheckRows rows:
// the model would learn the row order. The warning names the column and says how to drop it.
func warnIDColumns(ctx context.Context, sc *pipeline.StageContext, t *pipeline.Table, numeric []string) error {
	sch := t.Schema()
	// The type each column had at the source: the first lineage step's input schema.
	source := sch
	if lin := t.Lineage(); len(lin) > 0 && lin[0].Input != nil {
		source = lin[0].Input
	}
	type candidate struct {
		name          string
		col           int
		integerOrigin bool
		values        []float64
	}
	var cands []*candidate
	for _, name := range numeric {
		idx := sch.FieldIndices(name)
		if idx == nil {
			continue // a column the plan derived (one-hot), not one of the table's
		}
		f := sch.Field(idx[0])
		if !schema.IsFeature(f) || (f.HasMetadata() && f.Metadata.FindKey(features.KeyCardinality) >= 0) {
			continue
		}
		integerOrigin := isInteger(f.Type.ID())
		if sidx := source.FieldIndices(name); sidx != nil {
			integerOrigin = isInteger(source.Field(sidx[0]).Type.ID())
		}
		cands = append(cands, &candidate{name: name, col: idx[0], integerOrigin: integerOrigin})
	}
	if len(cands) == 0 {
		return nil
	}
	r := sc.Scan(ctx, t)
	defer r.Release()
	rows := 0
	for rows < idCheckRows && r.Next() {
		rec := r.RecordBatch()
		take := min(int(rec.NumRows()), idCheckRows-rows)
		for _, c := range cands {
			vals, err := arrowutil.Float64s(rec.Column(c.col))
			if err != nil {
				return err
			}
			for _, v := range vals[:take] {
				if !math.IsNaN(v) { // a null
					c.values = append(c.values, v)
				}
			}
		}
		rows += take
	}
	if err := r.Err(); err != nil {
		return err
	}
	var ids []string
	for _, c := range cands {
		if features.LooksLikeRowID(c.values, c.integerOrigin) {
			ids = append(ids, c.name)
		}
	}
	for _, name := range ids {
		warnNote(sc, "feature column %q looks like a row id (a distinct integer on every row): the model learns the row order, which says nothing about new rows; "+
			"drop it with ignore = [%q] on the source, or leave it out with features = [...]", name, name)
	}
	if len(ids) > 0 {
		sc.SetInfo("id_like_columns", ids)
	}
	return nil
}

func isInteger(id arrow.Type) bool {
	switch id {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}
