package features

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/schema"
)

// Imputation strategies.
const (
	ImputeMean         = "mean"          // numeric: mean of the training values
	ImputeMedian       = "median"        // numeric: exact median of the training values
	ImputeMostFrequent = "most_frequent" // categorical: most frequent training value (ties: smallest)
	ImputeConstant     = "constant"      // numeric or categorical: the Fill option
)

// DefaultCategoricalFill is ImputeOptions.CategoricalFill's default.
const DefaultCategoricalFill = "missing"

// ImputeOptions configures NewImputeFitter. The zero value fills numeric nulls with the median
// and string nulls with the most frequent value of every numeric and string feature column.
type ImputeOptions struct {
	// Numeric is the strategy of numeric columns: ImputeMean, ImputeMedian or ImputeConstant.
	// Default (empty): ImputeMedian.
	Numeric string
	// Categorical is the strategy of string columns: ImputeMostFrequent or ImputeConstant.
	// Default (empty): ImputeMostFrequent.
	Categorical string
	// NumericFill is the value of Numeric == ImputeConstant. Default: 0.
	NumericFill float64
	// CategoricalFill is the value of Categorical == ImputeConstant.
	// Default (empty): DefaultCategoricalFill ("missing").
	CategoricalFill string
	// Indicator appends a float32 feature column "<col>_missing" (1 where the value was null,
	// else 0) for each imputed column that had a null in the training rows, as scikit-learn's
	// add_indicator with features="missing-only". Default: false.
	Indicator bool
	// Columns lists the feature columns to impute. Default (nil or empty): every numeric and
	// string (utf8, large_utf8, string dictionary) feature column of the first batch.
	Columns []string
}

// NewImputeFitter returns a Fitter of an impute transform. The fill values are statistics of
// the training rows only.
//
// Output types: a float32 column stays float32; every other numeric column becomes float64 (an
// integer column's mean or median need not be an integer). utf8 and large_utf8 columns keep
// their type; a dictionary column is decoded to utf8. A column whose type does not change and
// that has no null in a batch is passed through as the same array.
//
// Only Arrow nulls are missing values: a NaN at fit time is an error naming the column and the
// row's _row id. A column that is entirely null in the training rows is an error at Finish.
// Bool columns are not imputed: encode maps their nulls to its null bucket.
func NewImputeFitter(opts ImputeOptions) Fitter {
	return &imputeFitter{opts: opts}
}

func isImputable(t arrow.DataType) bool { return schema.IsNumeric(t) || isStringLike(t) }

type imputeFitter struct {
	opts        ImputeOptions
	numeric     string
	categorical string
	fill        string
	started     bool
	rows        int64
	cols        []imputeAccumulator
}

type imputeAccumulator struct {
	name    string
	numeric bool
	n       int64 // non-null values
	nulls   int64
	sum     float64
	values  columnValues      // numeric median only
	counts  encodeAccumulator // categorical most_frequent only
}

func (o ImputeOptions) strategies() (numeric, categorical, fill string, err error) {
	numeric, categorical, fill = o.Numeric, o.Categorical, o.CategoricalFill
	if numeric == "" {
		numeric = ImputeMedian
	}
	if categorical == "" {
		categorical = ImputeMostFrequent
	}
	if fill == "" {
		fill = DefaultCategoricalFill
	}
	switch numeric {
	case ImputeMean, ImputeMedian, ImputeConstant:
	default:
		return "", "", "", fmt.Errorf("impute: unknown numeric strategy %q (use %q, %q or %q)", numeric, ImputeMean, ImputeMedian, ImputeConstant)
	}
	switch categorical {
	case ImputeMostFrequent, ImputeConstant:
	default:
		return "", "", "", fmt.Errorf("impute: unknown categorical strategy %q (use %q or %q)", categorical, ImputeMostFrequent, ImputeConstant)
	}
	if math.IsNaN(o.NumericFill) || math.IsInf(o.NumericFill, 0) {
		return "", "", "", fmt.Errorf("impute: NumericFill %g is not finite", o.NumericFill)
	}
	return numeric, categorical, fill, nil
}

func (f *imputeFitter) Observe(rec arrow.RecordBatch) error {
	if !f.started {
		var err error
		f.numeric, f.categorical, f.fill, err = f.opts.strategies()
		if err != nil {
			return err
		}
		names, err := selectColumns(rec.Schema(), f.opts.Columns, KindImpute, isImputable, "numeric or string")
		if err != nil {
			return err
		}
		f.cols = make([]imputeAccumulator, len(names))
		for i, name := range names {
			j, _ := fieldByName(rec.Schema(), name, KindImpute)
			f.cols[i] = imputeAccumulator{name: name, numeric: schema.IsNumeric(rec.Schema().Field(j).Type)}
			f.cols[i].counts.counts = map[string]int64{}
		}
		f.started = true
	}
	for i := range f.cols {
		c := &f.cols[i]
		j, err := fieldByName(rec.Schema(), c.name, KindImpute)
		if err != nil {
			return err
		}
		col := rec.Column(j)
		if c.numeric != schema.IsNumeric(col.DataType()) || !isImputable(col.DataType()) {
			return fmt.Errorf("impute: column %q changed type to %s between batches", c.name, col.DataType())
		}
		c.nulls += int64(col.NullN())
		c.n += int64(col.Len() - col.NullN())
		if !c.numeric {
			if f.categorical == ImputeMostFrequent {
				if err := countCategories(&c.counts, col); err != nil {
					return fmt.Errorf("impute: column %q: %w", c.name, err)
				}
			}
			continue
		}
		f32, f64, err := numericSlices(col)
		if err != nil {
			return fmt.Errorf("impute: column %q: %w", c.name, err)
		}
		val := validityOf(col)
		for k := range col.Len() {
			if !val.valid(k) {
				continue
			}
			x := valueAt(f32, f64, k)
			if x-x != 0 {
				return fmt.Errorf("impute: column %q has non-finite value %g at %s; impute treats only nulls as missing: clean the source", c.name, x, rowLabel(rowIDs(rec), k))
			}
			c.sum += x
			if f.numeric == ImputeMean && math.IsInf(c.sum, 0) {
				return fmt.Errorf("impute: column %q: the sum of its values overflows float64 at %s (value %g), so their mean cannot be computed; "+
					"rescale the column at the source (divide it by a power of ten), or impute with numeric = %q", c.name, rowLabel(rowIDs(rec), k), x, ImputeMedian)
			}
		}
		if f.numeric == ImputeMedian {
			if f32 != nil {
				c.values.add32(f32, val)
			} else {
				c.values.add64(f64, val)
			}
		}
	}
	f.rows += rec.NumRows()
	return nil
}

func (f *imputeFitter) Finish() (Transform, error) {
	if !f.started || f.rows == 0 {
		if _, _, _, err := f.opts.strategies(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("impute: fitted on zero rows: the training table is empty; check the split ratios and the source")
	}
	t := &imputeTransform{Numeric: f.numeric, Categorical: f.categorical, Indicator: f.opts.Indicator, RowsSeen: f.rows}
	for i := range f.cols {
		c := &f.cols[i]
		if c.n == 0 {
			return nil, fmt.Errorf("impute: column %q is entirely null in the %d training rows: there is nothing to impute from; drop the column or fill it at the source", c.name, f.rows)
		}
		ic := ImputeColumn{Name: c.name, Numeric: c.numeric, N: c.n, Nulls: c.nulls, Indicator: f.opts.Indicator && c.nulls > 0}
		switch {
		case c.numeric && f.numeric == ImputeMean:
			ic.NumberFill = c.sum / float64(c.n)
		case c.numeric && f.numeric == ImputeMedian:
			ic.NumberFill = c.values.quantiles(0.5)[0]
			c.values = columnValues{}
		case c.numeric:
			ic.NumberFill = f.opts.NumericFill
		case f.categorical == ImputeMostFrequent:
			keys := make([]string, 0, len(c.counts.counts))
			for k := range c.counts.counts {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			best := keys[0]
			for _, k := range keys[1:] {
				if c.counts.counts[k] > c.counts.counts[best] {
					best = k
				}
			}
			ic.StringFill = best
		default:
			ic.StringFill = f.fill
		}
		t.Columns = append(t.Columns, ic)
	}
	t.init()
	return t, nil
}

// ImputeColumn is what an impute transform fitted on one column.
type ImputeColumn struct {
	Name       string  `json:"name"`
	Numeric    bool    `json:"numeric"`
	N          int64   `json:"n"`     // non-null training values
	Nulls      int64   `json:"nulls"` // null training values
	NumberFill float64 `json:"number_fill,omitempty"`
	StringFill string  `json:"string_fill,omitempty"`
	Indicator  bool    `json:"indicator,omitempty"` // "<name>_missing" is appended
}

type imputeTransform struct {
	Numeric     string         `json:"numeric"`
	Categorical string         `json:"categorical"`
	Indicator   bool           `json:"indicator"`
	RowsSeen    int64          `json:"rows_seen"`
	Columns     []ImputeColumn `json:"columns"`

	byName  map[string]int
	filled  []atomic.Int64
	applied atomic.Int64
}

func (t *imputeTransform) init() {
	t.byName = make(map[string]int, len(t.Columns))
	t.filled = make([]atomic.Int64, len(t.Columns))
	for i, c := range t.Columns {
		t.byName[c.Name] = i
	}
}

func unmarshalImpute(raw json.RawMessage) (Transform, error) {
	t := &imputeTransform{}
	if err := json.Unmarshal(raw, t); err != nil {
		return nil, err
	}
	if len(t.Columns) == 0 {
		return nil, fmt.Errorf("no columns")
	}
	t.init()
	return t, nil
}

func (t *imputeTransform) state() any { return t }

func (t *imputeTransform) Kind() string { return KindImpute }

// indicatorName is the name of a column's missing-value indicator.
func indicatorName(col string) string { return col + "_missing" }

// outputType is the type of an imputed column.
func imputedType(in arrow.DataType) arrow.DataType {
	switch in.ID() {
	case arrow.FLOAT32:
		return arrow.PrimitiveTypes.Float32
	case arrow.STRING, arrow.DICTIONARY:
		return arrow.BinaryTypes.String
	case arrow.LARGE_STRING:
		return arrow.BinaryTypes.LargeString
	}
	return arrow.PrimitiveTypes.Float64
}

func (t *imputeTransform) OutputSchema(in *arrow.Schema) (*arrow.Schema, error) {
	fields := in.Fields()
	seen := make(map[string]bool, len(fields))
	for _, f := range fields {
		seen[f.Name] = true
	}
	for _, c := range t.Columns {
		j, err := fieldByName(in, c.Name, KindImpute)
		if err != nil {
			return nil, err
		}
		typ := fields[j].Type
		if !isImputable(typ) || schema.IsNumeric(typ) != c.Numeric {
			return nil, fmt.Errorf("impute: column %q has type %s, which does not match the fitted column (numeric: %v)", c.Name, typ, c.Numeric)
		}
		fields[j].Type = imputedType(typ)
		fields[j].Nullable = false
	}
	for _, c := range t.Columns {
		if !c.Indicator {
			continue
		}
		name := indicatorName(c.Name)
		if seen[name] {
			return nil, fmt.Errorf("impute: indicator column %q would clash with an existing column; rename that column", name)
		}
		seen[name] = true
		fields = append(fields, arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float32})
	}
	return schemaWithFields(in, fields), nil
}

func (t *imputeTransform) Apply(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	if err := checkContext(ctx, KindImpute); err != nil {
		return nil, err
	}
	out, err := t.OutputSchema(rec.Schema())
	if err != nil {
		return nil, err
	}
	n := int(rec.NumRows())
	cols := make([]arrow.Array, 0, out.NumFields())
	var owned []arrow.Array
	defer func() { releaseAll(owned) }()
	for j, f := range rec.Schema().Fields() {
		ci, ok := t.byName[f.Name]
		src := rec.Column(j)
		if !ok || (src.NullN() == 0 && arrow.TypeEqual(src.DataType(), imputedType(src.DataType()))) {
			cols = append(cols, src)
			continue
		}
		c := t.Columns[ci]
		arr, err := imputeColumn(mem, src, c)
		if err != nil {
			return nil, fmt.Errorf("impute: column %q: %w", c.Name, err)
		}
		owned = append(owned, arr)
		cols = append(cols, arr)
		t.filled[ci].Add(int64(src.NullN()))
	}
	for _, c := range t.Columns {
		if !c.Indicator {
			continue
		}
		j, _ := fieldByName(rec.Schema(), c.Name, KindImpute)
		src := rec.Column(j)
		arr, dst := newFloat32Column(mem, n, nil)
		owned = append(owned, arr)
		cols = append(cols, arr)
		if src.NullN() > 0 {
			val := validityOf(src)
			for i := range dst {
				if !val.valid(i) {
					dst[i] = 1
				}
			}
		}
	}
	t.applied.Add(int64(n))
	return array.NewRecordBatch(out, cols, int64(n)), nil
}

// imputeColumn returns a copy of src of the imputed type with its nulls filled.
func imputeColumn(mem memory.Allocator, src arrow.Array, c ImputeColumn) (arrow.Array, error) {
	n := src.Len()
	val := validityOf(src)
	if c.Numeric {
		f32, f64, err := numericSlices(src)
		if err != nil {
			return nil, err
		}
		if src.DataType().ID() == arrow.FLOAT32 {
			arr, dst := newFloat32Column(mem, n, nil)
			fill := float32(c.NumberFill)
			for i, x := range f32 {
				if val.valid(i) {
					dst[i] = x
				} else {
					dst[i] = fill
				}
			}
			return arr, nil
		}
		arr, dst := newFloat64Column(mem, n, nil)
		for i := range dst {
			if val.valid(i) {
				dst[i] = valueAt(f32, f64, i)
			} else {
				dst[i] = c.NumberFill
			}
		}
		return arr, nil
	}
	var words []string
	var idx []int
	if d, ok := src.(*array.Dictionary); ok {
		var err error
		if idx, err = dictionaryIndices(d); err != nil {
			return nil, err
		}
		if words, err = dictionaryWords(d); err != nil {
			return nil, err
		}
	}
	value := func(i int) string {
		switch a := src.(type) {
		case *array.String:
			return a.Value(i)
		case *array.LargeString:
			return a.Value(i)
		}
		return words[idx[i]]
	}
	if src.DataType().ID() == arrow.LARGE_STRING {
		b := array.NewLargeStringBuilder(mem)
		defer b.Release()
		b.Reserve(n)
		for i := range n {
			if val.valid(i) {
				b.Append(value(i))
			} else {
				b.Append(c.StringFill)
			}
		}
		return b.NewArray(), nil
	}
	b := array.NewStringBuilder(mem)
	defer b.Release()
	b.Reserve(n)
	for i := range n {
		if val.valid(i) {
			b.Append(value(i))
		} else {
			b.Append(c.StringFill)
		}
	}
	return b.NewArray(), nil
}

func (t *imputeTransform) Describe() map[string]any {
	cols := make(map[string]any, len(t.Columns))
	for _, c := range t.Columns {
		d := map[string]any{"n": c.N, "nulls": c.Nulls, "numeric": c.Numeric, "indicator": c.Indicator}
		if c.Numeric {
			d["fill"] = c.NumberFill
		} else {
			d["fill"] = c.StringFill
		}
		cols[c.Name] = d
	}
	return map[string]any{
		"kind":        KindImpute,
		"numeric":     t.Numeric,
		"categorical": t.Categorical,
		"indicator":   t.Indicator,
		"rows_seen":   t.RowsSeen,
		"columns":     cols,
	}
}

// Counters returns "rows_applied", "filled" (nulls replaced) and "filled_by_column/<col>".
func (t *imputeTransform) Counters() map[string]int64 {
	out := map[string]int64{"rows_applied": t.applied.Load()}
	var total int64
	for ci, c := range t.Columns {
		v := t.filled[ci].Load()
		total += v
		out["filled_by_column/"+c.Name] = v
	}
	out["filled"] = total
	return out
}
