package bundle

import (
	"fmt"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pipe-ml/pipe/internal/arrowutil"
	"github.com/pipe-ml/pipe/internal/names"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/schema"
)

// Tensors is a table read into the dense form a network trains on or scores.
type Tensors struct {
	// Data holds the dense numeric block (row-major, float32), the embedding index columns and,
	// with targets, each target's class ids or standardised values.
	Data train.Dataset
	// RowIDs are the rows' _row ids, in order.
	RowIDs []int64
	// Raw holds each regression target's values in its own unit (nil for class targets).
	Raw [][]float32
}

// TensorizeOptions tune Tensorize. The zero value reads the inputs only.
type TensorizeOptions struct {
	// Table names the table in errors.
	Table string
	// Targets reads the targets too. A class label the plan does not know is an error naming
	// its row; a missing label is kept as missing (-1, or NaN for regression).
	Targets bool
	// Pre, when set, transforms each batch before it is read (the part of a bundle's
	// preprocessing chain the table lacks). It does not release its argument; the caller of
	// Pre releases what it returns.
	Pre func(arrow.RecordBatch) (arrow.RecordBatch, error)
	// Rows, when known, sizes the buffers once.
	Rows int
}

// Tensorize reads every batch of r into dense tensors. A null or non-finite input value, a
// value too large for float32, a missing column and an unknown class label are
// *ColumnError values that name the table, the row (its _row id + 1) and the column. An
// empty table is an error.
func (p *InputPlan) Tensorize(r Reader, opts TensorizeOptions) (*Tensors, error) {
	out := p.NewTensors(opts.Targets)
	if opts.Rows > 0 {
		out.Data.X = make([]float32, 0, opts.Rows*p.Width())
	}
	enc := p.labelIndex()
	for r.Next() {
		rec := r.RecordBatch()
		if opts.Pre != nil {
			var err error
			if rec, err = opts.Pre(rec); err != nil {
				return nil, err
			}
		} else {
			rec.Retain()
		}
		err := p.appendBatch(rec, opts, enc, out)
		rec.Release()
		if err != nil {
			return nil, err
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if len(out.RowIDs) == 0 {
		return nil, &ColumnError{Table: opts.Table, Msg: "the table is empty", Hint: "check the split ratios and the source's limit"}
	}
	return out, nil
}

// NewTensors returns empty tensors shaped for the plan.
func (p *InputPlan) NewTensors(withTargets bool) *Tensors {
	out := &Tensors{}
	out.Data.NumInputs = p.Width()
	out.Data.Cat = make([][]int32, len(p.Categorical))
	if withTargets {
		out.Data.Targets = make([]train.Target, len(p.Targets))
		out.Raw = make([][]float32, len(p.Targets))
	}
	return out
}

// AppendBatch adds one batch's rows to out (made by NewTensors), as Tensorize does.
func (p *InputPlan) AppendBatch(rec arrow.RecordBatch, opts TensorizeOptions, out *Tensors) error {
	return p.appendBatch(rec, opts, p.labelIndex(), out)
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

// CheckColumns reports every input column of the plan that s lacks, in one error.
func (p *InputPlan) CheckColumns(s *arrow.Schema, table string) error {
	var missing []string
	for _, c := range p.Schema {
		if s.FieldIndices(c.Name) == nil {
			missing = append(missing, c.Name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	e := &ColumnError{Table: table, Msg: fmt.Sprintf("%d input column(s) the model was trained on are missing: %s", len(missing), names.List(missing, 20))}
	if len(missing) == 1 {
		e.Column = missing[0]
	}
	e.Hint = "the table must have every column the model was trained on, with the same names"
	return e
}

// appendBatch adds one batch's rows to out.
func (p *InputPlan) appendBatch(rec arrow.RecordBatch, opts TensorizeOptions, enc []map[string]int32, out *Tensors) error {
	sch := rec.Schema()
	if err := p.CheckColumns(sch, opts.Table); err != nil {
		return err
	}
	nNum := p.Width()
	n := int(rec.NumRows())
	ids := RowIDs(rec)
	out.RowIDs = append(out.RowIDs, ids...)
	// The rows are converted in place at the end of X: no intermediate copy.
	base := len(out.Data.X)
	out.Data.X = slices.Grow(out.Data.X, n*nNum)[:base+n*nNum]
	x := out.Data.X[base:]
	for j, name := range p.Numeric {
		col := rec.Column(sch.FieldIndices(name)[0])
		if bad, msg := columnInto(x, j, nNum, col); bad >= 0 {
			return &ColumnError{Table: opts.Table, Column: name, Row: ids[bad] + 1, Msg: msg,
				Hint: "impute missing values (kind = \"impute\") before training, and check the source for NaN, Inf or values beyond float32"}
		}
	}
	off := len(p.Numeric)
	for _, tc := range p.Tensors {
		if err := tensorInto(x, off, nNum, tc, rec.Column(sch.FieldIndices(tc.Column)[0]), ids, opts.Table); err != nil {
			return err
		}
		off += tc.Size
	}
	for k, c := range p.Categorical {
		arr, ok := rec.Column(sch.FieldIndices(c.Column)[0]).(*array.Int32)
		if !ok {
			return &ColumnError{Table: opts.Table, Column: c.Column, Msg: "an embedding input must be an int32 index column (encode with categorical = \"index\")"}
		}
		for i := 0; i < n; i++ {
			v := arr.Value(i)
			if arr.IsNull(i) || v < 0 || int(v) >= c.Cardinality {
				v = 0 // the unknown bucket
			}
			out.Data.Cat[k] = append(out.Data.Cat[k], v)
		}
	}
	if !opts.Targets {
		return nil
	}
	for ti, tp := range p.Targets {
		idx := sch.FieldIndices(tp.Column)
		if idx == nil {
			return &ColumnError{Table: opts.Table, Column: tp.Column, Msg: "the target column is missing"}
		}
		col := rec.Column(idx[0])
		if tp.Labels != nil {
			vals, valid := arrowutil.Strings(col)
			numeric := schema.IsNumeric(col.DataType())
			for i := range vals {
				lab := int32(-1)
				if valid[i] && !(numeric && vals[i] == "NaN") { // a NaN number is a missing label
					l, ok := enc[ti][vals[i]]
					if !ok {
						return &ColumnError{Table: opts.Table, Column: tp.Column, Row: ids[i] + 1,
							Msg:  fmt.Sprintf("label %q is not in the training set (classes: %s)", vals[i], names.List(tp.Labels, 20)),
							Hint: "stratify the split on this target so every class reaches train, or drop the rows of classes too rare to learn"}
					}
					lab = l
				}
				out.Data.Targets[ti].Labels = append(out.Data.Targets[ti].Labels, lab)
			}
			continue
		}
		nums, err := arrowutil.Float64s(col)
		if err != nil {
			return &ColumnError{Table: opts.Table, Column: tp.Column, Msg: err.Error()}
		}
		for i, v := range nums {
			if math.IsInf(v, 0) || math.Abs(v) > math.MaxFloat32 {
				return &ColumnError{Table: opts.Table, Column: tp.Column, Row: ids[i] + 1,
					Msg:  fmt.Sprintf("target value %g does not fit float32, the network's type", v),
					Hint: "rescale the target (e.g. divide by a constant, or log1p), or drop the row"}
			}
			out.Raw[ti] = append(out.Raw[ti], float32(v))
			out.Data.Targets[ti].Values = append(out.Data.Targets[ti].Values, float32((v-tp.Mean)/tp.Std))
		}
	}
	return nil
}

// columnInto writes column arr into column j of the row-major x (width w). It returns the
// index of the first row whose value a network cannot take (null, NaN, ±Inf, beyond float32)
// and what is wrong with it, or -1.
func columnInto(x []float32, j, w int, arr arrow.Array) (int, string) {
	if arr.NullN() > 0 {
		for i := 0; i < arr.Len(); i++ {
			if arr.IsNull(i) {
				return i, fmt.Sprintf("missing value (the column has %d)", arr.NullN())
			}
		}
	}
	switch a := arr.(type) {
	case *array.Float32:
		for i, v := range a.Float32Values() {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return i, fmt.Sprintf("non-finite value %v", v)
			}
			x[i*w+j] = v
		}
		return -1, ""
	}
	vals, err := arrowutil.Float64s(arr)
	if err != nil {
		return 0, err.Error()
	}
	for i, v := range vals {
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			return i, fmt.Sprintf("non-finite value %v", v)
		case math.Abs(v) > math.MaxFloat32:
			return i, fmt.Sprintf("value %g does not fit float32, the network's type (largest %g): normalize or rescale it first", v, math.MaxFloat32)
		}
		x[i*w+j] = float32(v)
	}
	return -1, ""
}

// RowIDs returns the _row column of a batch (0, 1, ... when it has none).
func RowIDs(rec arrow.RecordBatch) []int64 {
	idx := rec.Schema().FieldIndices(schema.RowIDColumn)
	n := int(rec.NumRows())
	out := make([]int64, n)
	if idx == nil {
		for i := range out {
			out[i] = int64(i)
		}
		return out
	}
	if a, ok := rec.Column(idx[0]).(*array.Int64); ok {
		copy(out, a.Int64Values())
		return out
	}
	vals, _ := arrowutil.Float64s(rec.Column(idx[0]))
	for i, v := range vals {
		out[i] = int64(v)
	}
	return out
}
