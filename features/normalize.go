package features

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/schema"
)

// Normalization methods.
const (
	NormalizeStandard = "standard" // (x - mean) / std, population std as scikit-learn's StandardScaler
	NormalizeMinMax   = "minmax"   // (x - min) / (max - min): [0, 1] on the training rows
	NormalizeRobust   = "robust"   // (x - median) / (q75 - q25), as scikit-learn's RobustScaler
	NormalizeLog1p    = "log1p"    // log(1 + x); values ≤ -1 are an error
)

// NormalizeOptions configures NewNormalizeFitter. The zero value standardises every numeric
// feature column.
type NormalizeOptions struct {
	// Method is NormalizeStandard, NormalizeMinMax, NormalizeRobust or NormalizeLog1p.
	// Default (empty): NormalizeStandard.
	Method string
	// Columns lists the feature columns to scale. Default (nil or empty): every numeric
	// (integer or float) feature column of the first batch, except encode's index columns
	// (int32 category ids marked with KeyCardinality), which are never scaled.
	Columns []string
}

// NewNormalizeFitter returns a Fitter of a normalize transform. Every selected column becomes a
// float32 column of the same name and field metadata:
//
//   - standard: (x - mean) / std with the mean and the population standard deviation (ddof 0,
//     as scikit-learn's StandardScaler) of the training rows, accumulated in float64 by merging
//     per-batch moments (Chan et al.'s parallel form of Welford's algorithm);
//   - minmax: (x - min) / (max - min); values outside the training range map outside [0, 1];
//   - robust: (x - median) / (q75 - q25), the quantiles computed exactly (numpy's "linear"
//     interpolation) from one in-memory copy of each selected column's training values;
//   - log1p: log(1 + x); a value ≤ -1 is an error naming the column and the row's _row id.
//
// A constant column (std 0, IQR 0 or max == min on the training rows) maps to 0 and is listed
// in Describe()["constant_columns"]; nothing is divided by zero. Nulls stay null. A NaN or ±Inf
// value, at fit or apply time, is an error naming the column and the row's _row id, as is a
// value at apply time whose scaled value overflows float32. A column whose sum or variance
// overflows float64 (magnitudes beyond about 1e154 next to small ones) is an error at fit time
// naming the column, for every method (its statistics are recorded whatever the method).
// A column that is entirely null in the training rows is an error at Finish.
func NewNormalizeFitter(opts NormalizeOptions) Fitter {
	return &normalizeFitter{opts: opts}
}

type normalizeFitter struct {
	opts    NormalizeOptions
	workers int // SetWorkers; 0: GOMAXPROCS
	method  string
	started bool
	rows    int64
	cols    []normalizeAccumulator
}

type normalizeAccumulator struct {
	name          string
	n             int64
	mean, m2      float64
	min, max      float64
	values        columnValues // robust only
	keepAllValues bool
}

// SetWorkers bounds the goroutines Finish uses (robust: the columns' quantiles, selected
// concurrently) to n, the caller's CPU budget. Default (0 or never called): GOMAXPROCS.
func (f *normalizeFitter) SetWorkers(n int) { f.workers = n }

func normalizeMethod(m string) (string, error) {
	switch m {
	case "":
		return NormalizeStandard, nil
	case NormalizeStandard, NormalizeMinMax, NormalizeRobust, NormalizeLog1p:
		return m, nil
	}
	return "", fmt.Errorf("normalize: unknown method %q (use %q, %q, %q or %q)", m, NormalizeStandard, NormalizeMinMax, NormalizeRobust, NormalizeLog1p)
}

func (f *normalizeFitter) Observe(rec arrow.RecordBatch) error {
	if !f.started {
		method, err := normalizeMethod(f.opts.Method)
		if err != nil {
			return err
		}
		names, err := selectColumns(rec.Schema(), f.opts.Columns, KindNormalize, schema.IsNumeric, "numeric")
		if err != nil {
			return err
		}
		if names, err = withoutIndexColumns(rec.Schema(), names, len(f.opts.Columns) > 0); err != nil {
			return err
		}
		f.method = method
		f.cols = make([]normalizeAccumulator, len(names))
		for i, name := range names {
			f.cols[i] = normalizeAccumulator{name: name, min: math.Inf(1), max: math.Inf(-1), keepAllValues: method == NormalizeRobust}
		}
		f.started = true
	}
	var ids []int64
	for i := range f.cols {
		c := &f.cols[i]
		j, err := fieldByName(rec.Schema(), c.name, KindNormalize)
		if err != nil {
			return err
		}
		col := rec.Column(j)
		f32, f64, err := numericSlices(col)
		if err != nil {
			return fmt.Errorf("normalize: column %q: %w", c.name, err)
		}
		val := validityOf(col)
		var bad int
		if f32 != nil {
			bad = c.accumulate32(f32, val)
		} else {
			bad = c.accumulate64(f64, val)
		}
		if bad < 0 && f.method == NormalizeLog1p {
			if low := firstAtMostMinusOne(f32, f64, val); low >= 0 {
				if ids == nil {
					ids = rowIDs(rec)
				}
				return fmt.Errorf("normalize: log1p: column %q has value %g ≤ -1 at %s; log1p is defined for x > -1: shift the column or use another method", c.name, valueAt(f32, f64, low), rowLabel(ids, low))
			}
		}
		switch bad {
		case sumOverflows:
			return fmt.Errorf("normalize: column %q: the values' sum overflows float64 (magnitudes near 1e308), so their mean and variance cannot be computed; %s", c.name, rescaleHint)
		case varianceOverflows:
			return fmt.Errorf("normalize: column %q: its variance overflows float64 (values up to %g in magnitude: a squared deviation beyond 1.8e308), so it cannot be scaled; %s",
				c.name, math.Max(math.Abs(c.min), math.Abs(c.max)), rescaleHint)
		}
		if bad >= 0 {
			if ids == nil {
				ids = rowIDs(rec)
			}
			return fmt.Errorf("normalize: column %q has non-finite value %g at %s; clean or impute the source", c.name, valueAt(f32, f64, bad), rowLabel(ids, bad))
		}
	}
	f.rows += rec.NumRows()
	return nil
}

func valueAt(f32 []float32, f64 []float64, i int) float64 {
	if f32 != nil {
		return float64(f32[i])
	}
	return f64[i]
}

func firstAtMostMinusOne(f32 []float32, f64 []float64, val validity) int {
	if f32 != nil {
		for i, v := range f32 {
			if v <= -1 && val.valid(i) {
				return i
			}
		}
		return -1
	}
	for i, v := range f64 {
		if v <= -1 && val.valid(i) {
			return i
		}
	}
	return -1
}

func (c *normalizeAccumulator) accumulate32(v []float32, val validity) int {
	if c.keepAllValues {
		c.values.add32(v, val)
	}
	return accumulateMoments(c, v, val)
}

func (c *normalizeAccumulator) accumulate64(v []float64, val validity) int {
	if c.keepAllValues {
		c.values.add64(v, val)
	}
	return accumulateMoments(c, v, val)
}

// Results of accumulateMoments for finite values whose moments overflow float64.
const (
	sumOverflows      = -2
	varianceOverflows = -3
)

// rescaleHint says what to do about a column whose statistics overflow float64.
const rescaleHint = "rescale the column at the source (divide it by a power of ten), clip its outliers, or drop it with ignore = [...] on the source"

// accumulateMoments merges one batch's count, mean, M2, min and max into c and returns the index
// of the first non-finite valid value, sumOverflows, or -1.
func accumulateMoments[T float32 | float64](c *normalizeAccumulator, v []T, val validity) int {
	var (
		n        int64
		sum      float64
		min, max = math.Inf(1), math.Inf(-1)
	)
	if val.all() {
		n = int64(len(v))
		for _, x := range v {
			f := float64(x)
			sum += f
			if f < min {
				min = f
			}
			if f > max {
				max = f
			}
		}
	} else {
		for i, x := range v {
			if !val.valid(i) {
				continue
			}
			f := float64(x)
			n++
			sum += f
			if f < min {
				min = f
			}
			if f > max {
				max = f
			}
		}
	}
	if n == 0 {
		return -1
	}
	if math.IsNaN(sum) || math.IsInf(sum, 0) {
		for i, x := range v {
			f := float64(x)
			if val.valid(i) && (math.IsNaN(f) || math.IsInf(f, 0)) {
				return i
			}
		}
		return sumOverflows
	}
	mean := sum / float64(n)
	var m2 float64
	if val.all() {
		for _, x := range v {
			d := float64(x) - mean
			m2 += d * d
		}
	} else {
		for i, x := range v {
			if val.valid(i) {
				d := float64(x) - mean
				m2 += d * d
			}
		}
	}
	if min < c.min {
		c.min = min
	}
	if max > c.max {
		c.max = max
	}
	// Chan, Golub & LeVeque: merge (n, mean, m2) of the batch into the running moments.
	total := c.n + n
	delta := mean - c.mean
	newMean := c.mean + delta*float64(n)/float64(total)
	newM2 := c.m2 + m2 + delta*delta*float64(c.n)*float64(n)/float64(total)
	if math.IsInf(m2, 0) || math.IsInf(newM2, 0) || math.IsNaN(newM2) || math.IsInf(newMean, 0) {
		return varianceOverflows
	}
	c.mean, c.m2, c.n = newMean, newM2, total
	return -1
}

func (f *normalizeFitter) Finish() (Transform, error) {
	if !f.started || f.rows == 0 {
		if _, err := normalizeMethod(f.opts.Method); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("normalize: fitted on zero rows: the training table is empty; check the split ratios and the source")
	}
	t := &normalizeTransform{Method: f.method, RowsSeen: f.rows, Columns: make([]NormalizeColumn, len(f.cols))}
	for i := range f.cols {
		c := &f.cols[i]
		if c.n == 0 {
			return nil, fmt.Errorf("normalize: column %q is entirely null in the %d training rows; impute it first or drop it", c.name, f.rows)
		}
		t.Columns[i] = NormalizeColumn{Name: c.name, N: c.n, Mean: c.mean, Std: math.Sqrt(c.m2 / float64(c.n)), Min: c.min, Max: c.max}
	}
	if f.method == NormalizeRobust {
		// Columns are independent: select their quantiles concurrently.
		forEachParallel(len(f.cols), f.workers, func(i int) {
			q := f.cols[i].values.quantiles(0.25, 0.5, 0.75)
			t.Columns[i].Q25, t.Columns[i].Median, t.Columns[i].Q75 = q[0], q[1], q[2]
			f.cols[i].values = columnValues{}
		})
	}
	t.init()
	return t, nil
}

// NormalizeColumn is what a normalize transform fitted on one column.
type NormalizeColumn struct {
	Name   string  `json:"name"`
	N      int64   `json:"n"` // non-null training values
	Mean   float64 `json:"mean"`
	Std    float64 `json:"std"` // population standard deviation (ddof 0)
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Q25    float64 `json:"q25,omitempty"` // robust only
	Median float64 `json:"median,omitempty"`
	Q75    float64 `json:"q75,omitempty"`
}

// shiftScale returns the affine map (x - shift) * scale of a method; scale 0 marks a constant
// column.
func (c NormalizeColumn) shiftScale(method string) (shift, scale float64) {
	var spread float64
	switch method {
	case NormalizeStandard:
		shift, spread = c.Mean, c.Std
	case NormalizeMinMax:
		shift, spread = c.Min, c.Max-c.Min
	case NormalizeRobust:
		shift, spread = c.Median, c.Q75-c.Q25
	default:
		return 0, 1
	}
	if spread == 0 {
		return shift, 0
	}
	return shift, 1 / spread
}

type normalizeTransform struct {
	Method   string            `json:"method"`
	RowsSeen int64             `json:"rows_seen"`
	Columns  []NormalizeColumn `json:"columns"`

	byName  map[string]int
	shift   []float64
	scale   []float64
	applied atomic.Int64
}

func (t *normalizeTransform) init() {
	t.byName = make(map[string]int, len(t.Columns))
	t.shift = make([]float64, len(t.Columns))
	t.scale = make([]float64, len(t.Columns))
	for i, c := range t.Columns {
		t.byName[c.Name] = i
		t.shift[i], t.scale[i] = c.shiftScale(t.Method)
	}
}

func unmarshalNormalize(raw json.RawMessage) (Transform, error) {
	t := &normalizeTransform{}
	if err := json.Unmarshal(raw, t); err != nil {
		return nil, err
	}
	if _, err := normalizeMethod(t.Method); err != nil || t.Method == "" {
		return nil, fmt.Errorf("invalid method %q", t.Method)
	}
	if len(t.Columns) == 0 {
		return nil, fmt.Errorf("no columns")
	}
	t.init()
	return t, nil
}

func (t *normalizeTransform) state() any { return t }

func (t *normalizeTransform) Kind() string { return KindNormalize }

func (t *normalizeTransform) OutputSchema(in *arrow.Schema) (*arrow.Schema, error) {
	fields := in.Fields()
	for _, c := range t.Columns {
		j, err := fieldByName(in, c.Name, KindNormalize)
		if err != nil {
			return nil, err
		}
		if !schema.IsNumeric(fields[j].Type) {
			return nil, fmt.Errorf("normalize: column %q has type %s, but was fitted as a numeric column", c.Name, fields[j].Type)
		}
		fields[j].Type = arrow.PrimitiveTypes.Float32
	}
	return schemaWithFields(in, fields), nil
}

func (t *normalizeTransform) Apply(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	if err := checkContext(ctx, KindNormalize); err != nil {
		return nil, err
	}
	out, err := t.OutputSchema(rec.Schema())
	if err != nil {
		return nil, err
	}
	n := int(rec.NumRows())
	cols := make([]arrow.Array, rec.NumCols())
	owned := make([]arrow.Array, 0, len(t.Columns))
	defer func() { releaseAll(owned) }()
	var ids []int64
	for j, f := range rec.Schema().Fields() {
		ci, ok := t.byName[f.Name]
		if !ok {
			cols[j] = rec.Column(j)
			continue
		}
		src := rec.Column(j)
		f32, f64, err := numericSlices(src)
		if err != nil {
			return nil, fmt.Errorf("normalize: column %q: %w", f.Name, err)
		}
		val := validityOf(src)
		arr, dst := newFloat32ColumnNoClear(mem, n, src) // the kernels write every value
		owned = append(owned, arr)
		cols[j] = arr
		bad, reason := -1, ""
		if t.Method == NormalizeLog1p {
			if f32 != nil {
				bad, reason = log1pTo(dst, f32, val)
			} else {
				bad, reason = log1pTo(dst, f64, val)
			}
		} else if f32 != nil {
			bad, reason = affineTo(dst, f32, val, t.shift[ci], t.scale[ci])
		} else {
			bad, reason = affineTo(dst, f64, val, t.shift[ci], t.scale[ci])
		}
		if bad >= 0 {
			if ids == nil {
				ids = rowIDs(rec)
			}
			return nil, fmt.Errorf("normalize: column %q has %s %g at %s", f.Name, reason, valueAt(f32, f64, bad), rowLabel(ids, bad))
		}
	}
	t.applied.Add(int64(n))
	return array.NewRecordBatch(out, cols, int64(n)), nil
}

// affineTo writes (src - shift) * scale into dst (0 where scale is 0, 0 at null slots) and
// returns the index of the first valid input that is not finite or whose scaled value is not
// a finite float32 (a value far outside the training range), or -1.
func affineTo[T float32 | float64](dst []float32, src []T, val validity, shift, scale float64) (int, string) {
	dst = dst[:len(src)]
	bad := false
	if val.all() {
		for i, x := range src {
			f := float64(x)
			y := float32((f - shift) * scale)
			bad = bad || f-f != 0 || y-y != 0
			dst[i] = y
		}
	} else {
		for i, x := range src {
			if !val.valid(i) {
				dst[i] = 0
				continue
			}
			f := float64(x)
			y := float32((f - shift) * scale)
			bad = bad || f-f != 0 || y-y != 0
			dst[i] = y
		}
	}
	if bad {
		for i, x := range src {
			if !val.valid(i) {
				continue
			}
			f := float64(x)
			if f-f != 0 {
				return i, "non-finite value"
			}
			if y := float32((f - shift) * scale); y-y != 0 {
				return i, fmt.Sprintf("a value so far outside the training range (shift %g, scale %g) that its scaled value overflows float32:", shift, scale)
			}
		}
	}
	return -1, ""
}

// log1pTo writes log(1 + src) into dst (0 at null slots) and returns the index of the first
// valid input that is non-finite or ≤ -1, or -1.
func log1pTo[T float32 | float64](dst []float32, src []T, val validity) (int, string) {
	dst = dst[:len(src)]
	for i, x := range src {
		if !val.valid(i) {
			dst[i] = 0
			continue
		}
		f := float64(x)
		if f-f != 0 {
			return i, "non-finite value"
		}
		if f <= -1 {
			return i, "(log1p needs x > -1) value"
		}
		dst[i] = float32(math.Log1p(f))
	}
	return -1, ""
}

func (t *normalizeTransform) Describe() map[string]any {
	cols := make(map[string]any, len(t.Columns))
	constant := []string{}
	for i, c := range t.Columns {
		d := map[string]any{"n": c.N, "mean": c.Mean, "std": c.Std, "min": c.Min, "max": c.Max}
		if t.Method == NormalizeRobust {
			d["median"], d["q25"], d["q75"], d["iqr"] = c.Median, c.Q25, c.Q75, c.Q75-c.Q25
		}
		if t.Method != NormalizeLog1p && t.scale[i] == 0 {
			d["constant"] = true
			constant = append(constant, c.Name)
		}
		cols[c.Name] = d
	}
	return map[string]any{
		"kind":             KindNormalize,
		"method":           t.Method,
		"std":              "population (ddof 0)",
		"rows_seen":        t.RowsSeen,
		"columns":          cols,
		"constant_columns": constant,
	}
}

func (t *normalizeTransform) Counters() map[string]int64 {
	return map[string]int64{"rows_applied": t.applied.Load()}
}

// withoutIndexColumns drops encode's index columns (int32 category ids, marked with
// KeyCardinality) from names: scaling them would turn category ids into numbers. Listed
// explicitly, such a column is an error.
func withoutIndexColumns(s *arrow.Schema, names []string, listed bool) ([]string, error) {
	out := names[:0:0]
	for _, name := range names {
		f := s.Field(s.FieldIndices(name)[0])
		if f.HasMetadata() && f.Metadata.FindKey(KeyCardinality) >= 0 {
			if listed {
				return nil, fmt.Errorf("%s: column %q holds encode's category indices (for an embedding), not numbers; remove it from columns", KindNormalize, name)
			}
			continue
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: the table has no numeric feature columns to scale (index-encoded categorical columns are left as they are); remove the stage", KindNormalize)
	}
	return out, nil
}
