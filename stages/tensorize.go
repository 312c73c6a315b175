package stages

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pipe-ml/pipe/internal/arrowutil"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/schema"
)

// Task kinds of a target.
const (
	taskClassification = "classification" // softmax head
	taskBinary         = "binary"         // sigmoid head
	taskRegression     = "regression"     // linear head
)

// InputPlan says how a table becomes a model's input: which numeric columns, in which order,
// make the dense block, and which int32 index columns feed embeddings. It travels in the bundle.
type InputPlan struct {
	Numeric     []string      `json:"numeric"`
	Categorical []CatInput    `json:"categorical,omitempty"`
	Targets     []TargetPlan  `json:"targets"`
	Schema      []ColumnEntry `json:"input_schema"`
}

// CatInput is one embedding input.
type CatInput struct {
	Column      string `json:"column"`
	Cardinality int    `json:"cardinality"`
}

// ColumnEntry describes a column the bundle expects at prediction time.
type ColumnEntry struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Role string `json:"role"`
}

// TargetPlan is one head's target: its column, task and label encoding.
type TargetPlan struct {
	Column string   `json:"column"`
	Task   string   `json:"task"`
	Head   string   `json:"head"`
	Labels []string `json:"labels,omitempty"` // class labels, index = class id
	// Regression targets are standardised for training: y' = (y - Mean) / Std.
	Mean float64 `json:"mean,omitempty"`
	Std  float64 `json:"std,omitempty"`
	// Integer says the class labels or values were integers in the source.
	Integer bool `json:"integer,omitempty"`
}

func (t TargetPlan) classes() int { return len(t.Labels) }

// maxClassesAuto is the integer-target rule: an integer target with at most this many distinct
// values (and no more than half as many values as rows) is classification; otherwise regression.
const maxClassesAuto = 50

// planInputs decides the features and targets from the training table's schema and content.
// tasks overrides the task of a target column ("classification", "binary", "regression").
func planInputs(ctx context.Context, sc *pipeline.StageContext, t *pipeline.Table, features, targets []string, tasks map[string]string) (*InputPlan, error) {
	return planInputsOpt(ctx, sc, t, features, targets, tasks, true)
}

// planFeatures plans the inputs only (unsupervised stages): every target column is left out.
func planFeatures(ctx context.Context, sc *pipeline.StageContext, t *pipeline.Table, features []string) (*InputPlan, error) {
	return planInputsOpt(ctx, sc, t, features, nil, nil, false)
}

func planInputsOpt(ctx context.Context, sc *pipeline.StageContext, t *pipeline.Table, features, targets []string, tasks map[string]string, needTarget bool) (*InputPlan, error) {
	sch := t.Schema()
	plan := &InputPlan{}
	if len(targets) == 0 && needTarget {
		for _, f := range sch.Fields() {
			if schema.Role(f) == schema.RoleTarget {
				targets = append(targets, f.Name)
			}
		}
		if len(targets) == 0 {
			return nil, &pipeline.DataError{Stage: sc.Name, Msg: "no target: the table has no column with the target role",
				Hint: "name it with target = \"<column>\" here or on the source stage"}
		}
	}
	isTarget := map[string]bool{}
	for _, tg := range targets {
		if sch.FieldIndices(tg) == nil {
			e := &pipeline.DataError{Stage: sc.Name, Column: tg, Msg: "target column not found in " + t.Name()}
			if s := pipeline.Suggest(tg, fieldNames(sch)); s != "" {
				e.Hint = fmt.Sprintf("did you mean %q?", s)
			}
			return nil, e
		}
		isTarget[tg] = true
	}
	if len(features) == 0 {
		for _, f := range sch.Fields() {
			if schema.Role(f) == schema.RoleFeature && !isTarget[f.Name] {
				features = append(features, f.Name)
			}
		}
	}
	for _, name := range features {
		idx := sch.FieldIndices(name)
		if idx == nil {
			e := &pipeline.DataError{Stage: sc.Name, Column: name, Msg: "feature column not found in " + t.Name()}
			if s := pipeline.Suggest(name, fieldNames(sch)); s != "" {
				e.Hint = fmt.Sprintf("did you mean %q?", s)
			}
			return nil, e
		}
		f := sch.Field(idx[0])
		switch {
		case f.Type.ID() == arrow.INT32 && f.HasMetadata() && f.Metadata.FindKey("pipe.cardinality") >= 0:
			card, _ := strconv.Atoi(f.Metadata.Values()[f.Metadata.FindKey("pipe.cardinality")])
			plan.Categorical = append(plan.Categorical, CatInput{Column: name, Cardinality: card})
		case schema.IsNumeric(f.Type) || f.Type.ID() == arrow.BOOL:
			plan.Numeric = append(plan.Numeric, name)
		default:
			return nil, &pipeline.DataError{Stage: sc.Name, Column: name, Msg: fmt.Sprintf("feature column has type %s, which a network cannot take", f.Type),
				Hint: "encode it first (kind = \"encode\"), or drop it with ignore = [...] on the source"}
		}
		plan.Schema = append(plan.Schema, ColumnEntry{Name: name, Type: f.Type.String(), Role: schema.Role(f)})
	}
	if len(plan.Numeric) == 0 && len(plan.Categorical) == 0 {
		return nil, &pipeline.DataError{Stage: sc.Name, Msg: "no feature columns left"}
	}
	// Targets: read the column once to decide the task and the labels.
	if !needTarget {
		return plan, nil
	}
	for _, tg := range targets {
		tp, err := planTarget(ctx, sc, t, tg, tasks[tg])
		if err != nil {
			return nil, err
		}
		if len(targets) == 1 {
			tp.Head = "out"
		} else {
			tp.Head = tg
		}
		plan.Targets = append(plan.Targets, tp)
	}
	return plan, nil
}

func planTarget(ctx context.Context, sc *pipeline.StageContext, t *pipeline.Table, col, task string) (TargetPlan, error) {
	sch := t.Schema()
	f := sch.Field(sch.FieldIndices(col)[0])
	tp := TargetPlan{Column: col}
	ci := sch.FieldIndices(col)[0]
	distinct := map[string]bool{}
	var sum, sumSq float64
	var n int64
	isFloat := f.Type.ID() == arrow.FLOAT32 || f.Type.ID() == arrow.FLOAT64
	isNum := schema.IsNumeric(f.Type)
	r := t.Scan(ctx)
	for r.Next() {
		arr := r.RecordBatch().Column(ci)
		vals, valid := arrowutil.Strings(arr)
		var nums []float64
		if isNum {
			nums, _ = arrowutil.Float64s(arr)
		}
		for i := range vals {
			if !valid[i] {
				continue
			}
			if len(distinct) <= 10000 {
				distinct[vals[i]] = true
			}
			if isNum {
				sum += nums[i]
				sumSq += nums[i] * nums[i]
				n++
			}
		}
	}
	r.Release()
	if err := r.Err(); err != nil {
		return tp, err
	}
	if len(distinct) == 0 {
		return tp, &pipeline.DataError{Stage: sc.Name, Column: col, Msg: "the target has no value in the training table"}
	}
	if task == "" || task == "auto" {
		switch {
		case !isNum:
			task = taskClassification
		case isFloat:
			task = taskRegression
		case len(distinct) <= maxClassesAuto && int64(len(distinct))*2 <= max(n, 4):
			task = taskClassification
		default:
			task = taskRegression
		}
		if task == taskClassification && len(distinct) == 2 {
			task = taskBinary
		}
	}
	tp.Task = task
	tp.Integer = isNum && !isFloat
	switch task {
	case taskClassification, taskBinary:
		labels := make([]string, 0, len(distinct))
		for v := range distinct {
			labels = append(labels, v)
		}
		if tp.Integer {
			sort.Slice(labels, func(i, j int) bool {
				a, _ := strconv.ParseFloat(labels[i], 64)
				b, _ := strconv.ParseFloat(labels[j], 64)
				return a < b
			})
		} else {
			sort.Strings(labels)
		}
		if task == taskBinary && len(labels) != 2 {
			return tp, &pipeline.DataError{Stage: sc.Name, Column: col, Msg: fmt.Sprintf("task \"binary\" needs 2 classes, the training table has %d", len(labels))}
		}
		if len(labels) < 2 {
			return tp, &pipeline.DataError{Stage: sc.Name, Column: col, Msg: "the training table has a single class (" + labels[0] + ")", Hint: "check the split and the target"}
		}
		tp.Labels = labels
	case taskRegression:
		if !isNum {
			return tp, &pipeline.DataError{Stage: sc.Name, Column: col, Msg: "a regression target must be numeric, found " + f.Type.String()}
		}
		tp.Mean = sum / float64(n)
		tp.Std = math.Sqrt(max(sumSq/float64(n)-tp.Mean*tp.Mean, 0))
		if tp.Std == 0 {
			tp.Std = 1
		}
	default:
		return tp, fmt.Errorf("unknown task %q", task)
	}
	return tp, nil
}

// heads returns the model heads for the plan.
func (p *InputPlan) heads() []nn.HeadSpec {
	var hs []nn.HeadSpec
	for _, t := range p.Targets {
		h := nn.HeadSpec{Name: t.Head, Target: t.Column}
		switch t.Task {
		case taskClassification:
			h.Kind, h.Classes = nn.HeadSoftmax, t.classes()
		case taskBinary:
			h.Kind = nn.HeadBinary
		default:
			h.Kind, h.Outputs = nn.HeadRegression, 1
		}
		hs = append(hs, h)
	}
	return hs
}

// tensors is a table materialised for the network.
type tensors struct {
	ds     train.Dataset
	rowIDs []int64
	// raw regression targets (unstandardised) per target, for metrics in the original unit
	raw [][]float32
}

// materialize reads a table into a dense dataset. A label not seen in training is an error
// naming the row. pre, when not nil, transforms each batch first (the rest of a bundle's
// preprocessing chain).
func (p *InputPlan) materialize(ctx context.Context, sc *pipeline.StageContext, t *pipeline.Table, withTargets bool) (*tensors, error) {
	return p.materializeWith(ctx, sc, t, withTargets, nil)
}

func (p *InputPlan) materializeWith(ctx context.Context, sc *pipeline.StageContext, t *pipeline.Table, withTargets bool, pre func(arrow.RecordBatch) (arrow.RecordBatch, error)) (*tensors, error) {
	out := &tensors{}
	out.ds.NumInputs = len(p.Numeric)
	out.ds.Cat = make([][]int32, len(p.Categorical))
	if withTargets {
		out.ds.Targets = make([]train.Target, len(p.Targets))
		out.raw = make([][]float32, len(p.Targets))
	}
	enc := p.labelIndex()
	// A table whose producer has finished knows its size: allocate once.
	if rows := int(t.Rows()); rows > 0 {
		out.ds.X = make([]float32, 0, rows*len(p.Numeric))
	}
	r := sc.Scan(ctx, t)
	defer r.Release()
	for r.Next() {
		rec := r.RecordBatch()
		if pre != nil {
			var err error
			if rec, err = pre(rec); err != nil {
				return nil, err
			}
		} else {
			rec.Retain()
		}
		err := p.appendBatch(sc.Name, t.Name(), rec, withTargets, enc, out)
		rec.Release()
		if err != nil {
			return nil, err
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if len(out.rowIDs) == 0 {
		return nil, &pipeline.DataError{Stage: sc.Name, Msg: "table " + t.Name() + " is empty"}
	}
	return out, nil
}

func (p *InputPlan) labelIndex() []map[string]int32 {
	enc := make([]map[string]int32, len(p.Targets))
	for i, tp := range p.Targets {
		if tp.Labels != nil {
			enc[i] = map[string]int32{}
			for j, l := range tp.Labels {
				enc[i][l] = int32(j)
			}
		}
	}
	return enc
}

// appendBatch adds one batch's rows to out.
func (p *InputPlan) appendBatch(stage, table string, rec arrow.RecordBatch, withTargets bool, enc []map[string]int32, out *tensors) error {
	sch := rec.Schema()
	for _, c := range p.Schema {
		if sch.FieldIndices(c.Name) == nil {
			return &pipeline.DataError{Stage: stage, Column: c.Name, Msg: "the model's input column is missing from " + table,
				Hint: "the table must have the columns the model was trained on: " + strings.Join(columnNames(p.Schema), ", ")}
		}
	}
	nNum := len(p.Numeric)
	n := int(rec.NumRows())
	ids := rowIDs(rec)
	out.rowIDs = append(out.rowIDs, ids...)
	// The rows are converted in place at the end of X: no intermediate copy.
	base := len(out.ds.X)
	out.ds.X = slices.Grow(out.ds.X, n*nNum)[:base+n*nNum]
	x := out.ds.X[base:]
	for j, name := range p.Numeric {
		col := rec.Column(sch.FieldIndices(name)[0])
		if err := columnInto(x, j, nNum, col); err != nil {
			return &pipeline.DataError{Stage: stage, Column: name, Row: ids[firstBad(col)] + 1, Msg: table + ": " + err.Error(),
				Hint: "impute missing values (kind = \"impute\") before training, and check the source for NaN or Inf"}
		}
	}
	for k, c := range p.Categorical {
		arr, ok := rec.Column(sch.FieldIndices(c.Column)[0]).(*array.Int32)
		if !ok {
			return &pipeline.DataError{Stage: stage, Column: c.Column, Msg: "an embedding input must be an int32 index column (encode with categorical = \"index\")"}
		}
		for i := 0; i < n; i++ {
			v := arr.Value(i)
			if arr.IsNull(i) || v < 0 || int(v) >= c.Cardinality {
				v = 0
			}
			out.ds.Cat[k] = append(out.ds.Cat[k], v)
		}
	}
	if !withTargets {
		return nil
	}
	for ti, tp := range p.Targets {
		idx := sch.FieldIndices(tp.Column)
		if idx == nil {
			return &pipeline.DataError{Stage: stage, Column: tp.Column, Msg: "target column missing from " + table}
		}
		col := rec.Column(idx[0])
		if tp.Labels != nil {
			vals, valid := arrowutil.Strings(col)
			for i := range vals {
				lab := int32(-1)
				if valid[i] {
					l, ok := enc[ti][vals[i]]
					if !ok {
						return &pipeline.DataError{Stage: stage, Column: tp.Column, Row: ids[i] + 1,
							Msg:  fmt.Sprintf("label %q of table %s is not in the training set (classes: %s)", vals[i], table, strings.Join(tp.Labels, ", ")),
							Hint: "stratify the split on this target so every class reaches train, or drop the rows of classes too rare to learn"}
					}
					lab = l
				}
				out.ds.Targets[ti].Labels = append(out.ds.Targets[ti].Labels, lab)
			}
			continue
		}
		nums, err := arrowutil.Float64s(col)
		if err != nil {
			return &pipeline.DataError{Stage: stage, Column: tp.Column, Msg: err.Error()}
		}
		for _, v := range nums {
			out.raw[ti] = append(out.raw[ti], float32(v))
			out.ds.Targets[ti].Values = append(out.ds.Targets[ti].Values, float32((v-tp.Mean)/tp.Std))
		}
	}
	return nil
}

func columnNames(cs []ColumnEntry) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

// columnInto writes column arr into column j of the row-major x (width w). Nulls and
// non-finite values are errors.
func columnInto(x []float32, j, w int, arr arrow.Array) error {
	if arr.NullN() > 0 {
		return fmt.Errorf("has %d missing values", arr.NullN())
	}
	switch a := arr.(type) {
	case *array.Float32:
		for i, v := range a.Float32Values() {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("has a non-finite value %v", v)
			}
			x[i*w+j] = v
		}
		return nil
	}
	vals, err := arrowutil.Float64s(arr)
	if err != nil {
		return err
	}
	for i, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("has a non-finite value %v", v)
		}
		x[i*w+j] = float32(v)
	}
	return nil
}

func firstBad(arr arrow.Array) int {
	vals, err := arrowutil.Float64s(arr)
	if err != nil {
		return 0
	}
	for i, v := range vals {
		if arr.IsNull(i) || math.IsNaN(v) || math.IsInf(v, 0) {
			return i
		}
	}
	return 0
}

// arrowRecord is arrow.RecordBatch, named for the preprocessing callbacks.
type arrowRecord = arrow.RecordBatch
