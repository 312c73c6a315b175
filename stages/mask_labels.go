package stages

import (
	"context"
	"fmt"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/arrowutil"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/schema"
)

// HiddenPrefix names the reserved column that mask_labels moves hidden labels to:
// "_hidden_<target>", with the hidden role, so that no stage uses it as a feature or a target.
const HiddenPrefix = "_hidden_"

func maskLabelsKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "mask_labels", Shape: pipeline.ShapeTransform, KeepsFeatures: true,
		Doc: "Hides labels, for honest semi-supervised experiments on fully labelled data. Keeps `per_class` labels per class (or a `fraction` of each class) in train, " +
			"moves `val_per_class` labelled rows per class to a val table, and hides every other label: the target becomes null and the true label moves to the reserved column " +
			"`_hidden_<target>` (role hidden), which no stage uses as a feature or a target; only the pseudo-label accuracy report reads it. Seeded.",
		Fields: []pipeline.Field{
			{Name: "input", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The labelled training table."},
			{Name: "target", Type: pipeline.TypeString, Doc: "The label column. Default: the table's target column."},
			{Name: "per_class", Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), Doc: "Labels kept per class in train (0: use fraction)."},
			{Name: "fraction", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(1), Doc: "Share of each class's labels kept in train, when per_class is 0."},
			{Name: "val_per_class", Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), Doc: "Labelled rows per class moved to the val output (they count among the labels you keep)."},
		},
		Outputs: func(c *pipeline.StageConfig) []pipeline.Port {
			return []pipeline.Port{{Name: "train", Kind: pipeline.PortTable, From: firstRef(c, "input")}, {Name: "val", Kind: pipeline.PortTable, Split: schema.SplitVal}}
		},
		DefaultOutput: "train",
		Example:       "[stages.few]\nkind = \"mask_labels\"\ninput = \"split.train\"\nper_class = 90\nval_per_class = 10",
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			if c.Int("per_class") == 0 && c.Float("fraction") == 0 {
				return nil, c.Errorf("per_class", "set per_class (labels kept per class) or fraction")
			}
			return &maskLabels{target: c.String("target"), perClass: c.Int("per_class"), fraction: c.Float("fraction"), valPerClass: c.Int("val_per_class")}, nil
		},
	}
}

type maskLabels struct {
	target      string
	perClass    int
	fraction    float64
	valPerClass int
}

const (
	keepHidden = iota
	keepLabel
	keepVal
)

func (s *maskLabels) Run(ctx context.Context, sc *pipeline.StageContext) error {
	in, err := sc.Input(ctx, "input")
	if err != nil {
		return err
	}
	sch := in.Schema()
	target := s.target
	if target == "" {
		for _, f := range sch.Fields() {
			if schema.Role(f) == schema.RoleTarget {
				target = f.Name
				break
			}
		}
	}
	ti := sch.FieldIndices(target)
	if ti == nil {
		return &pipeline.DataError{Stage: sc.Name, Column: target, Msg: "no such target column in " + in.Name()}
	}
	// Pass 1: rows per class.
	byClass := map[string][]int{}
	n := 0
	r := sc.Scan(ctx, in)
	for r.Next() {
		vals, valid := arrowutil.Strings(r.RecordBatch().Column(ti[0]))
		for i, v := range vals {
			if valid[i] {
				byClass[v] = append(byClass[v], n+i)
			}
		}
		n += len(vals)
	}
	r.Release()
	if err := r.Err(); err != nil {
		return err
	}
	decision := make([]uint8, n)
	classes := make([]string, 0, len(byClass))
	for c := range byClass {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	rng := sc.Rand(0)
	kept := map[string]int{}
	for _, c := range classes {
		rows := byClass[c]
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		k := s.perClass
		if k == 0 {
			k = int(s.fraction*float64(len(rows)) + 0.5)
		}
		if k+s.valPerClass > len(rows) {
			return &pipeline.DataError{Stage: sc.Name, Column: target, Msg: fmt.Sprintf("class %s has %d rows, fewer than the %d train + %d val labels asked", c, len(rows), k, s.valPerClass)}
		}
		for _, i := range rows[:k] {
			decision[i] = keepLabel
		}
		for _, i := range rows[k : k+s.valPerClass] {
			decision[i] = keepVal
		}
		kept[c] = k
	}
	// Pass 2: write.
	outFields := append(append([]arrow.Field(nil), sch.Fields()...),
		schema.WithRole(arrow.Field{Name: HiddenPrefix + target, Type: sch.Field(ti[0]).Type, Nullable: true}, schema.RoleHidden))
	md := sch.Metadata()
	outSchema := arrow.NewSchema(outFields, &md)
	trainT, err := sc.NewTable("train", outSchema, in.Split(), in.Lineage())
	if err != nil {
		return err
	}
	valT, err := sc.NewTable("val", outSchema, schema.SplitVal, in.Lineage())
	if err != nil {
		return err
	}
	row := 0
	labelled, hidden := 0, 0
	r = sc.Scan(ctx, in)
	defer r.Release()
	for r.Next() {
		rec := r.RecordBatch()
		m := int(rec.NumRows())
		var trainIdx, valIdx []int
		mask := make([]bool, m) // true: hide the label
		for i := 0; i < m; i++ {
			switch decision[row+i] {
			case keepVal:
				valIdx = append(valIdx, i)
			case keepLabel:
				trainIdx = append(trainIdx, i)
				labelled++
			default:
				trainIdx = append(trainIdx, i)
				if rec.Column(ti[0]).IsValid(i) {
					mask[i] = true
					hidden++
				}
			}
		}
		row += m
		full, err := withHidden(sc.Mem, rec, outSchema, ti[0], mask)
		if err != nil {
			return err
		}
		for _, part := range []struct {
			t   *pipeline.Table
			idx []int
		}{{trainT, trainIdx}, {valT, valIdx}} {
			if len(part.idx) == 0 {
				continue
			}
			sub, err := arrowutil.Take(sc.Mem, full, part.idx)
			if err != nil {
				full.Release()
				return err
			}
			err = part.t.Append(sub)
			sub.Release()
			if err != nil {
				full.Release()
				return err
			}
		}
		full.Release()
	}
	if err := r.Err(); err != nil {
		return err
	}
	sc.SetInfo("labels_kept_per_class", kept)
	sc.Metrics.Set("train_labelled_rows", float64(labelled))
	sc.Metrics.Set("train_hidden_rows", float64(hidden))
	sc.Metrics.Set("val_rows", float64(valT.Rows()))
	sc.Note("kept %d labels in train and %d in val; hid %d labels in %s", labelled, valT.Rows(), hidden, HiddenPrefix+target)
	return nil
}

// withHidden returns rec plus the hidden-label column; the target is nulled where mask is true,
// and the hidden column holds the true label there (null elsewhere).
func withHidden(mem memory.Allocator, rec arrow.RecordBatch, out *arrow.Schema, ti int, mask []bool) (arrow.RecordBatch, error) {
	col := rec.Column(ti)
	visible, err := maskArray(mem, col, mask, false)
	if err != nil {
		return nil, err
	}
	defer visible.Release()
	hiddenCol, err := maskArray(mem, col, mask, true)
	if err != nil {
		return nil, err
	}
	defer hiddenCol.Release()
	cols := append([]arrow.Array(nil), rec.Columns()...)
	cols[ti] = visible
	cols = append(cols, hiddenCol)
	return array.NewRecordBatch(out, cols, rec.NumRows()), nil
}

// maskArray copies col with nulls where mask[i] != keepWhere (keepWhere=false: null where mask).
func maskArray(mem memory.Allocator, col arrow.Array, mask []bool, keepWhere bool) (arrow.Array, error) {
	b := array.NewBuilder(mem, col.DataType())
	defer b.Release()
	for i := range mask {
		if mask[i] != keepWhere || col.IsNull(i) {
			b.AppendNull()
			continue
		}
		switch a := col.(type) {
		case *array.Int64:
			b.(*array.Int64Builder).Append(a.Value(i))
		case *array.Int32:
			b.(*array.Int32Builder).Append(a.Value(i))
		case *array.Float64:
			b.(*array.Float64Builder).Append(a.Value(i))
		case *array.String:
			b.(*array.StringBuilder).Append(a.Value(i))
		case *array.Boolean:
			b.(*array.BooleanBuilder).Append(a.Value(i))
		default:
			return nil, fmt.Errorf("mask_labels: unsupported target type %s", col.DataType())
		}
	}
	return b.NewArray(), nil
}
