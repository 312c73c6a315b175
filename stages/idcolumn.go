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
	var cands []*idCandidate
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
		cands = append(cands, &idCandidate{name: name, col: idx[0], integerOrigin: integerOrigin})
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
			if c.out {
				continue
			}
			vals, err := arrowutil.Float64s(rec.Column(c.col))
			if err != nil {
				return err
			}
			c.add(vals[:take])
		}
		rows += take
		if allOut(cands) {
			break // no column can be an id: the rest of the table is not read
		}
	}
	if err := r.Err(); err != nil {
		return err
	}
	var ids []string
	for _, c := range cands {
		if !c.out && features.LooksLikeRowID(c.values, c.integerOrigin) {
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

// idCandidate is a numeric column that may be a row id. Its values are kept only while it
// still may be one: a repeated value, or a fractional one in a column that was not integer at
// the source, rules it out (features.LooksLikeRowID would say no) and frees them, so that
// the check does not hold a float64 copy of every feature column of the table.
type idCandidate struct {
	name          string
	col           int
	integerOrigin bool
	values        []float64
	seen          map[float64]struct{}
	out           bool
}

// allOut reports whether every candidate is ruled out.
func allOut(cands []*idCandidate) bool {
	for _, c := range cands {
		if !c.out {
			return false
		}
	}
	return true
}

func (c *idCandidate) add(vals []float64) {
	if c.out {
		return
	}
	if c.seen == nil {
		c.seen = map[float64]struct{}{}
	}
	for _, v := range vals {
		if math.IsNaN(v) { // a null
			continue
		}
		_, dup := c.seen[v]
		if dup || (!c.integerOrigin && v != math.Trunc(v)) || math.IsInf(v, 0) {
			c.out, c.values, c.seen = true, nil, nil
			return
		}
		c.seen[v] = struct{}{}
		c.values = append(c.values, v)
	}
}
