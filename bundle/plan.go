package bundle

import (
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pipe-ml/pipe/internal/arrowutil"
	"github.com/pipe-ml/pipe/internal/names"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/schema"
)

// Task kinds of a target.
const (
	TaskClassification = "classification" // softmax head
	TaskBinary         = "binary"         // sigmoid head
	TaskRegression     = "regression"     // linear head
	TaskAuto           = "auto"           // decided from the training table (see Plan)
)

// MaxClassesAuto is the integer-target rule: an integer target with at most this many distinct
// values, and at least two rows per distinct value, is a class label; otherwise a regression
// target. A float target is always regression, a string target always classes.
const MaxClassesAuto = 50

// Reader is what Plan and Tensorize read: arrow-go's record-reader shape (Next, RecordBatch,
// Err). array.RecordReader and the engine's table readers satisfy it. The batch RecordBatch
// returns is valid until the next call to Next; the reader is not released here.
type Reader interface {
	Schema() *arrow.Schema
	Next() bool
	RecordBatch() arrow.RecordBatch
	Err() error
}

// InputPlan says how a table becomes a model's input: which numeric columns, in which order,
// make the dense block, and which int32 index columns feed embeddings. It travels in the bundle.
type InputPlan struct {
	Numeric     []string   `json:"numeric"`
	Categorical []CatInput `json:"categorical,omitempty"`
	// Tensors are FixedSizeList<float32> columns (images): their values follow the numeric
	// columns in the dense block, row by row.
	Tensors []TensorInput `json:"tensors,omitempty"`
	Targets []TargetPlan  `json:"targets"`
	Schema  []ColumnEntry `json:"input_schema"`
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

// Classes is the number of classes of a class target (0 for regression).
func (t TargetPlan) Classes() int { return len(t.Labels) }

// PlanOptions tune Plan. The zero value plans every feature column against every target-role
// column, with tasks decided from the data.
type PlanOptions struct {
	// Table names the table in errors.
	Table string
	// Features are the input columns, in order. Default: every feature-role column that is not a
	// target.
	Features []string
	// Targets are the target columns. Default: every target-role column.
	Targets []string
	// Tasks sets the task of target columns by name: classification, binary, regression or
	// auto (the default).
	Tasks map[string]string
	// Unsupervised plans the inputs only: targets are neither needed nor read, and every
	// target-role column is left out of the inputs.
	Unsupervised bool
}

// Plan decides a model's inputs from r's schema, and each target's task and encoding from one
// pass over r's rows (not read when opts.Unsupervised). The rules:
//   - a feature is an int32 index column with pipe.cardinality metadata (an embedding input),
//     a numeric or boolean column (the dense block), or a FixedSizeList<float32> column (a
//     tensor, such as an image, whose values follow the numeric columns in the dense block);
//     any other type is an error that says to encode it;
//   - a string target is classes; a float target is regression; an integer target is classes
//     when it has at most MaxClassesAuto distinct values and at least two rows per value,
//     otherwise regression; classes with exactly two labels become a binary (sigmoid) head;
//   - class labels are sorted (numerically for integer targets), so class ids are stable;
//   - regression targets are standardised with the training rows' mean and standard
//     deviation; a value that a float32 network cannot hold is an error naming its row.
func Plan(r Reader, opts PlanOptions) (*InputPlan, error) {
	sch := r.Schema()
	plan := &InputPlan{}
	targets := opts.Targets
	if len(targets) == 0 && !opts.Unsupervised {
		for _, f := range sch.Fields() {
			if schema.Role(f) == schema.RoleTarget {
				targets = append(targets, f.Name)
			}
		}
		if len(targets) == 0 {
			return nil, &ColumnError{Table: opts.Table, Msg: "no target: the table has no column with the target role",
				Hint: "name it with target = \"<column>\" here or on the source stage"}
		}
	}
	isTarget := map[string]bool{}
	for _, tg := range targets {
		if sch.FieldIndices(tg) == nil {
			return nil, missingColumn(opts.Table, tg, "target", sch)
		}
		isTarget[tg] = true
	}
	features := opts.Features
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
			return nil, missingColumn(opts.Table, name, "feature", sch)
		}
		f := sch.Field(idx[0])
		size, shape, isTensor, terr := TensorField(f)
		if terr != nil {
			return nil, &ColumnError{Table: opts.Table, Column: name, Msg: terr.Error(), Hint: "fix the column's extension metadata in the source, or write it as a plain fixed_size_list<float32>"}
		}
		switch {
		case isTensor:
			plan.Tensors = append(plan.Tensors, TensorInput{Column: name, Size: size, Shape: shape})
		case f.Type.ID() == arrow.INT32 && f.HasMetadata() && f.Metadata.FindKey(schema.KeyCardinality) >= 0:
			card, _ := strconv.Atoi(f.Metadata.Values()[f.Metadata.FindKey(schema.KeyCardinality)])
			plan.Categorical = append(plan.Categorical, CatInput{Column: name, Cardinality: card})
		case schema.IsNumeric(f.Type) || f.Type.ID() == arrow.BOOL:
			plan.Numeric = append(plan.Numeric, name)
		default:
			return nil, &ColumnError{Table: opts.Table, Column: name, Msg: fmt.Sprintf("feature column has type %s, which a network cannot take", f.Type),
				Hint: "encode it first (kind = \"encode\"), or drop it with ignore = [...] on the source"}
		}
		plan.Schema = append(plan.Schema, ColumnEntry{Name: name, Type: f.Type.String(), Role: schema.Role(f)})
	}
	if len(plan.Numeric) == 0 && len(plan.Categorical) == 0 && len(plan.Tensors) == 0 {
		return nil, &ColumnError{Table: opts.Table, Msg: "no feature columns left",
			Hint: "the table's feature columns are all targets or have other roles; check target and ignore on the source"}
	}
	if opts.Unsupervised {
		return plan, nil
	}
	tps, err := planTargets(r, targets, opts.Tasks, opts.Table)
	if err != nil {
		return nil, err
	}
	for i := range tps {
		if len(targets) == 1 {
			tps[i].Head = "out"
		} else {
			tps[i].Head = tps[i].Column
		}
	}
	plan.Targets = tps
	return plan, nil
}

func missingColumn(table, col, what string, sch *arrow.Schema) *ColumnError {
	e := &ColumnError{Table: table, Column: col, Msg: what + " column not found"}
	cols := make([]string, sch.NumFields())
	for i, f := range sch.Fields() {
		cols[i] = f.Name
	}
	if s := names.Suggest(col, cols); s != "" {
		e.Hint = fmt.Sprintf("did you mean %q?", s)
	} else {
		e.Hint = "the table's columns: " + names.List(cols, 20)
	}
	return e
}

// targetStats accumulates what one pass learns about a target column.
type targetStats struct {
	col      int
	isNum    bool
	isFloat  bool
	distinct map[string]bool
	sum      float64
	sumSq    float64
	n        int64
	err      *ColumnError
}

// distinctCap bounds the distinct values kept per target: more than this many is regression
// (or too many classes) anyway.
const distinctCap = 10000

func planTargets(r Reader, cols []string, tasks map[string]string, table string) ([]TargetPlan, error) {
	sch := r.Schema()
	stats := make([]*targetStats, len(cols))
	for i, c := range cols {
		ci := sch.FieldIndices(c)[0]
		t := sch.Field(ci).Type
		stats[i] = &targetStats{col: ci, isNum: schema.IsNumeric(t), distinct: map[string]bool{},
			isFloat: t.ID() == arrow.FLOAT32 || t.ID() == arrow.FLOAT64 || t.ID() == arrow.FLOAT16}
	}
	for r.Next() {
		rec := r.RecordBatch()
		var ids []int64
		for ti, st := range stats {
			if st.err != nil {
				continue
			}
			arr := rec.Column(st.col)
			vals, valid := arrowutil.Strings(arr)
			var nums []float64
			if st.isNum {
				nums, _ = arrowutil.Float64s(arr)
			}
			for i := range vals {
				if !valid[i] {
					continue
				}
				if st.isNum {
					v := nums[i]
					if math.IsNaN(v) {
						continue // a NaN target is a missing label, like a null
					}
					if math.IsInf(v, 0) || math.Abs(v) > math.MaxFloat32 {
						if ids == nil {
							ids = RowIDs(rec)
						}
						st.err = &ColumnError{Table: table, Row: ids[i] + 1, Column: cols[ti],
							Msg:  fmt.Sprintf("target value %g does not fit float32, the network's type (largest %g)", v, math.MaxFloat32),
							Hint: "rescale the target (e.g. divide by a constant, or log1p), or drop the row"}
						break
					}
					st.sum += v
					st.sumSq += v * v
					st.n++
				}
				if len(st.distinct) <= distinctCap {
					st.distinct[vals[i]] = true
				}
			}
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	out := make([]TargetPlan, len(cols))
	for i, st := range stats {
		if st.err != nil {
			return nil, st.err
		}
		tp, err := st.plan(cols[i], tasks[cols[i]], sch.Field(st.col).Type, table)
		if err != nil {
			return nil, err
		}
		out[i] = tp
	}
	return out, nil
}

// plan decides the task and the encoding of one target from its statistics.
func (st *targetStats) plan(col, task string, typ arrow.DataType, table string) (TargetPlan, error) {
	tp := TargetPlan{Column: col}
	if len(st.distinct) == 0 {
		return tp, &ColumnError{Table: table, Column: col, Msg: "the target has no value in the training table",
			Hint: "check the target column and the split"}
	}
	if task == "" || task == TaskAuto {
		task = InferTask(st.isNum, st.isFloat, len(st.distinct), st.n)
	}
	tp.Task = task
	tp.Integer = st.isNum && !st.isFloat
	switch task {
	case TaskClassification, TaskBinary:
		labels := make([]string, 0, len(st.distinct))
		for v := range st.distinct {
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
		if task == TaskBinary && len(labels) != 2 {
			return tp, &ColumnError{Table: table, Column: col, Msg: fmt.Sprintf("task \"binary\" needs 2 classes, the training table has %d", len(labels))}
		}
		if len(labels) < 2 {
			return tp, &ColumnError{Table: table, Column: col, Msg: "the training table has a single class (" + labels[0] + ")", Hint: "check the split and the target"}
		}
		tp.Labels = labels
	case TaskRegression:
		if !st.isNum {
			return tp, &ColumnError{Table: table, Column: col, Msg: "a regression target must be numeric, found " + typ.String()}
		}
		tp.Mean = st.sum / float64(st.n)
		tp.Std = math.Sqrt(max(st.sumSq/float64(st.n)-tp.Mean*tp.Mean, 0))
		if tp.Std == 0 {
			tp.Std = 1
		}
	default:
		return tp, &ColumnError{Table: table, Column: col, Msg: fmt.Sprintf("unknown task %q", task),
			Hint: "use classification, binary, regression or auto"}
	}
	return tp, nil
}

// InferTask is the task rule of Plan for a target with the given type and statistics:
// distinct is the number of distinct values, rows the number of labelled rows.
func InferTask(numeric, float bool, distinct int, rows int64) string {
	task := TaskRegression
	switch {
	case !numeric:
		task = TaskClassification
	case float:
		task = TaskRegression
	case distinct <= MaxClassesAuto && int64(distinct)*2 <= max(rows, 4):
		task = TaskClassification
	}
	if task == TaskClassification && distinct == 2 {
		task = TaskBinary
	}
	return task
}

// Heads returns the model heads the plan's targets need.
func (p *InputPlan) Heads() []nn.HeadSpec {
	var hs []nn.HeadSpec
	for _, t := range p.Targets {
		h := nn.HeadSpec{Name: t.Head, Target: t.Column}
		switch t.Task {
		case TaskClassification:
			h.Kind, h.Classes = nn.HeadSoftmax, t.Classes()
		case TaskBinary:
			h.Kind = nn.HeadBinary
		default:
			h.Kind, h.Outputs = nn.HeadRegression, 1
		}
		hs = append(hs, h)
	}
	return hs
}
