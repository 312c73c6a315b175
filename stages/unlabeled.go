package stages

import (
	"context"
	"fmt"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/pipe-ml/pipe/bundle"
	"math"
	"strings"

	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
)

// unlabeledField is the `unlabeled` input of pretrain and pseudo_label: tables of extra
// unlabeled rows, e.g. a separate source of raw data.
func unlabeledField(use string) pipeline.Field {
	return pipeline.Field{Name: "unlabeled", Type: pipeline.TypeInputs, Port: pipeline.PortTable,
		Doc: "More tables of unlabeled rows, e.g. a separate source: " + use + " They need the main table's feature columns; a raw table gets the main table's fitted preprocessing replayed (impute, encode, normalize), and a target column, if present, is ignored."}
}

// unlabeledTable is one materialized table of the `unlabeled` field.
type unlabeledTable struct {
	name string
	*bundle.Tensors
}

// readUnlabeled reads every table of the `unlabeled` field as features only (plan's inputs;
// pre, when not nil, returns the batch transform of a table) and returns them with their
// total number of rows.
func readUnlabeled(ctx context.Context, sc *pipeline.StageContext, plan *bundle.InputPlan, pre func(*pipeline.Table) (func(arrow.RecordBatch) (arrow.RecordBatch, error), error)) ([]unlabeledTable, int, error) {
	tables, err := sc.Inputs(ctx, "unlabeled")
	if err != nil {
		return nil, 0, err
	}
	var out []unlabeledTable
	rows := 0
	for _, t := range tables {
		if err := t.Wait(ctx); err != nil {
			return nil, 0, err
		}
		var f func(arrow.RecordBatch) (arrow.RecordBatch, error)
		if pre != nil {
			if f, err = pre(t); err != nil {
				return nil, 0, err
			}
		}
		d, err := materialize(ctx, sc, plan, t, false, f)
		if err != nil {
			return nil, 0, err
		}
		if d.Data.Len() == 0 {
			return nil, 0, &pipeline.DataError{Stage: sc.Name, Msg: "the unlabeled table " + t.Name() + " has no rows", Hint: "check its source, or remove it from unlabeled"}
		}
		rows += d.Data.Len()
		out = append(out, unlabeledTable{name: t.Name(), Tensors: d})
	}
	return out, rows, nil
}

// appendRows appends the rows of src (a materialized dataset: no Index) to dst's base rows,
// with every target of dst missing for them (label -1, value NaN) and, when dst has
// weights, weight 1. dst must not have an Index either.
func appendRows(dst *train.Dataset, src train.Dataset) {
	n := src.Len()
	dst.X = append(dst.X, src.X...)
	appendRowsButX(dst, src, n)
}

// appendRowsButX is appendRows for all but the numeric block X, of src's n rows.
func appendRowsButX(dst *train.Dataset, src train.Dataset, n int) {
	for c := range dst.Cat {
		dst.Cat[c] = append(dst.Cat[c], src.Cat[c]...)
	}
	for h := range dst.Targets {
		t := &dst.Targets[h]
		if t.Labels != nil {
			for range n {
				t.Labels = append(t.Labels, -1)
			}
		}
		if t.Values != nil {
			nan := float32(math.NaN())
			for range n * max(t.Outputs, 1) {
				t.Values = append(t.Values, nan)
			}
		}
	}
	if dst.Weights != nil {
		for range n {
			dst.Weights = append(dst.Weights, 1)
		}
	}
}

// replayLineage returns, for a table t, the batch transform that applies the fitted steps of
// want (the main input's lineage) that t has not been through yet, so that a raw source gets
// the main table's preprocessing; nil when t already has it all. A table that went through
// steps want lacks (or others) is an error: its features would not mean the same.
func replayLineage(ctx context.Context, sc *pipeline.StageContext, want []pipeline.LineageStep, t *pipeline.Table) (func(arrow.RecordBatch) (arrow.RecordBatch, error), error) {
	have := t.Lineage()
	n := 0
	for n < len(want) && n < len(have) && want[n].Stage == have[n].Stage && want[n].Kind == have[n].Kind {
		n++
	}
	steps := func(l []pipeline.LineageStep) string {
		var s []string
		for _, st := range l {
			s = append(s, st.Kind+" ("+st.Stage+")")
		}
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	if n < len(have) {
		return nil, &pipeline.DataError{Stage: sc.Name, Msg: fmt.Sprintf("the unlabeled table %s went through %s, and the main input through %s: their features do not mean the same", t.Name(), steps(have), steps(want)),
			Hint: "feed the unlabeled table through the same fitted stages (list it in their apply), or feed it raw and let this stage replay them"}
	}
	if n == len(want) {
		return nil, nil
	}
	for _, st := range want[n:] {
		if st.Transform == nil {
			return nil, &pipeline.DataError{Stage: sc.Name, Msg: fmt.Sprintf("the unlabeled table %s lacks the %s step of stage %q, which cannot be replayed", t.Name(), st.Kind, st.Stage),
				Hint: "list the unlabeled table in that stage's inputs"}
		}
	}
	rest := want[n:]
	sc.Note("unlabeled table %s: replaying %s", t.Name(), steps(rest))
	return func(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		rec.Retain()
		for _, st := range rest {
			out, err := st.Transform.Apply(ctx, sc.Mem, rec)
			rec.Release()
			if err != nil {
				return nil, fmt.Errorf("unlabeled table %s: %s (stage %q): %w", t.Name(), st.Kind, st.Stage, err)
			}
			rec = out
		}
		return rec, nil
	}, nil
}
