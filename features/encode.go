package features

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/schema"
)

// Encoding methods.
const (
	EncodeOneHot = "onehot" // one float32 0/1 column per category
	EncodeIndex  = "index"  // one int32 column: 0 = unknown or null, 1..K = categories
)

// KeyCardinality is the field-metadata key that an index-encoded column carries: the number of
// distinct codes (K categories + the 0 bucket), so that an embedding layer can size itself.
const KeyCardinality = "pipe.cardinality"

// DefaultMaxCardinality is EncodeOptions.MaxCardinality's default.
const DefaultMaxCardinality = 50

// EncodeOptions configures NewEncodeFitter. The zero value one-hot encodes every string,
// dictionary and bool feature column with at most 50 categories.
type EncodeOptions struct {
	// Categorical is EncodeOneHot or EncodeIndex. Default (empty): EncodeOneHot.
	Categorical string
	// MaxCardinality is the most categories a one-hot encoded column may have in the training
	// rows; more is an error that suggests EncodeIndex. It does not limit EncodeIndex.
	// Default (0): DefaultMaxCardinality (50).
	MaxCardinality int
	// Columns lists the feature columns to encode. Default (nil or empty): every utf8,
	// large_utf8, string-dictionary and bool feature column of the first batch; when there
	// is none, the transform encodes nothing, passes batches through, and says so in Notes.
	Columns []string
}

// NewEncodeFitter returns a Fitter of an encode transform. The categories of each column are
// the distinct non-null values seen in the training rows, sorted by byte order (bool: "false",
// "true") so that the output does not depend on row order.
//
//   - onehot: the column is replaced, in place, by one float32 column per category, named
//     "<col>=<value>", each keeping the source field's metadata. A null or a category first
//     seen at apply time maps to all zeros; Counters counts them.
//   - index: the column becomes an int32 column of the same name: 0 for null or unknown,
//     1..K for the sorted categories; its field metadata gains KeyCardinality = K+1.
func NewEncodeFitter(opts EncodeOptions) Fitter {
	return &encodeFitter{opts: opts}
}

type encodeFitter struct {
	opts    EncodeOptions
	mode    string
	maxCard int
	started bool
	rows    int64
	cols    []encodeAccumulator
}

type encodeAccumulator struct {
	name   string
	counts map[string]int64
	nulls  int64
}

func encodeMode(m string) (string, error) {
	switch m {
	case "":
		return EncodeOneHot, nil
	case EncodeOneHot, EncodeIndex:
		return m, nil
	}
	return "", fmt.Errorf("encode: unknown method %q (use %q or %q)", m, EncodeOneHot, EncodeIndex)
}

func (f *encodeFitter) Observe(rec arrow.RecordBatch) error {
	if !f.started {
		mode, err := encodeMode(f.opts.Categorical)
		if err != nil {
			return err
		}
		if f.opts.MaxCardinality < 0 {
			return fmt.Errorf("encode: MaxCardinality %d is negative; use 0 for the default (%d)", f.opts.MaxCardinality, DefaultMaxCardinality)
		}
		// With no column listed and none to encode, the transform is a no-op (Notes says so):
		// a pipeline that encodes "whatever is categorical" also runs on numeric data.
		var names []string
		if len(f.opts.Columns) > 0 || slices.ContainsFunc(rec.Schema().Fields(), func(f arrow.Field) bool {
			return schema.IsFeature(f) && isCategorical(f.Type)
		}) {
			if names, err = selectColumns(rec.Schema(), f.opts.Columns, KindEncode, isCategorical, "string, dictionary or bool"); err != nil {
				return err
			}
		}
		f.mode = mode
		f.maxCard = f.opts.MaxCardinality
		if f.maxCard == 0 {
			f.maxCard = DefaultMaxCardinality
		}
		f.cols = make([]encodeAccumulator, len(names))
		for i, name := range names {
			f.cols[i] = encodeAccumulator{name: name, counts: map[string]int64{}}
		}
		f.started = true
	}
	for i := range f.cols {
		c := &f.cols[i]
		j, err := fieldByName(rec.Schema(), c.name, KindEncode)
		if err != nil {
			return err
		}
		if err := countCategories(c, rec.Column(j)); err != nil {
			return fmt.Errorf("encode: column %q: %w", c.name, err)
		}
		if f.mode == EncodeOneHot && len(c.counts) > f.maxCard {
			return fmt.Errorf("encode: column %q has more than %d categories (MaxCardinality) in the training rows; one-hot would add that many columns: use categorical = %q (an embedding), raise MaxCardinality, or drop the column", c.name, f.maxCard, EncodeIndex)
		}
	}
	f.rows += rec.NumRows()
	return nil
}

// addCount adds k to the count of s, copying s when it becomes a key: s may point into an
// Arrow buffer that is released later.
func (c *encodeAccumulator) addCount(s string, k int64) {
	if v, ok := c.counts[s]; ok {
		c.counts[s] = v + k
		return
	}
	c.counts[strings.Clone(s)] = k
}

func countCategories(c *encodeAccumulator, arr arrow.Array) error {
	val := validityOf(arr)
	c.nulls += int64(arr.NullN())
	switch a := arr.(type) {
	case *array.String:
		for i := 0; i < a.Len(); i++ {
			if val.valid(i) {
				c.addCount(a.Value(i), 1)
			}
		}
	case *array.LargeString:
		for i := 0; i < a.Len(); i++ {
			if val.valid(i) {
				c.addCount(a.Value(i), 1)
			}
		}
	case *array.Boolean:
		var nTrue, nFalse int64
		for i := 0; i < a.Len(); i++ {
			if val.valid(i) {
				if a.Value(i) {
					nTrue++
				} else {
					nFalse++
				}
			}
		}
		if nTrue > 0 {
			c.addCount("true", nTrue)
		}
		if nFalse > 0 {
			c.addCount("false", nFalse)
		}
	case *array.Dictionary:
		idx, err := dictionaryIndices(a)
		if err != nil {
			return err
		}
		words, err := dictionaryWords(a)
		if err != nil {
			return err
		}
		perEntry := make([]int64, len(words))
		for i, k := range idx {
			if val.valid(i) {
				perEntry[k]++
			}
		}
		for k, n := range perEntry {
			if n > 0 {
				c.addCount(words[k], n)
			}
		}
	default:
		return fmt.Errorf("type %s is not categorical (string, dictionary or bool)", arr.DataType())
	}
	return nil
}

// dictionaryIndices returns a dictionary array's indices as ints (unspecified at null slots).
func dictionaryIndices(d *array.Dictionary) ([]int, error) {
	switch ix := d.Indices().(type) {
	case *array.Int8:
		return toInts(ix.Int8Values()), nil
	case *array.Int16:
		return toInts(ix.Int16Values()), nil
	case *array.Int32:
		return toInts(ix.Int32Values()), nil
	case *array.Int64:
		return toInts(ix.Int64Values()), nil
	case *array.Uint8:
		return toInts(ix.Uint8Values()), nil
	case *array.Uint16:
		return toInts(ix.Uint16Values()), nil
	case *array.Uint32:
		return toInts(ix.Uint32Values()), nil
	case *array.Uint64:
		return toInts(ix.Uint64Values()), nil
	}
	return nil, fmt.Errorf("dictionary index type %s is not an integer type", d.Indices().DataType())
}

func toInts[T integer](src []T) []int {
	out := make([]int, len(src))
	for i, v := range src {
		out[i] = int(v)
	}
	return out
}

// dictionaryWords returns the string values of a string dictionary (views of its buffer).
func dictionaryWords(d *array.Dictionary) ([]string, error) {
	switch w := d.Dictionary().(type) {
	case *array.String:
		out := make([]string, w.Len())
		for i := range out {
			out[i] = w.Value(i)
		}
		return out, nil
	case *array.LargeString:
		out := make([]string, w.Len())
		for i := range out {
			out[i] = w.Value(i)
		}
		return out, nil
	}
	return nil, fmt.Errorf("dictionary value type %s is not a string type", d.Dictionary().DataType())
}

func (f *encodeFitter) Finish() (Transform, error) {
	if !f.started || f.rows == 0 {
		if _, err := encodeMode(f.opts.Categorical); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("encode: fitted on zero rows: the training table is empty; check the split ratios and the source")
	}
	t := &encodeTransform{Method: f.mode, MaxCardinality: f.maxCard, RowsSeen: f.rows}
	for _, c := range f.cols {
		if len(c.counts) == 0 {
			return nil, fmt.Errorf("encode: column %q is entirely null in the %d training rows; impute it first or drop it", c.name, f.rows)
		}
		ec := EncodeColumn{Name: c.name, Nulls: c.nulls}
		for k := range c.counts {
			ec.Categories = append(ec.Categories, k)
		}
		slices.Sort(ec.Categories)
		for _, k := range ec.Categories {
			ec.Counts = append(ec.Counts, c.counts[k])
		}
		t.Columns = append(t.Columns, ec)
	}
	t.init()
	return t, nil
}

// EncodeColumn is what an encode transform fitted on one column.
type EncodeColumn struct {
	Name       string   `json:"name"`
	Categories []string `json:"categories"` // sorted by byte order
	Counts     []int64  `json:"counts"`     // training rows per category
	Nulls      int64    `json:"nulls"`      // null training rows
}

type encodeTransform struct {
	Method         string         `json:"method"`
	MaxCardinality int            `json:"max_cardinality"`
	RowsSeen       int64          `json:"rows_seen"`
	Columns        []EncodeColumn `json:"columns"`

	byName  map[string]int
	lookup  []map[string]int32
	unknown []atomic.Int64
	nulls   []atomic.Int64
	applied atomic.Int64
}

func (t *encodeTransform) init() {
	t.byName = make(map[string]int, len(t.Columns))
	t.lookup = make([]map[string]int32, len(t.Columns))
	t.unknown = make([]atomic.Int64, len(t.Columns))
	t.nulls = make([]atomic.Int64, len(t.Columns))
	for i, c := range t.Columns {
		t.byName[c.Name] = i
		m := make(map[string]int32, len(c.Categories))
		for k, v := range c.Categories {
			m[v] = int32(k)
		}
		t.lookup[i] = m
	}
}

func unmarshalEncode(raw json.RawMessage) (Transform, error) {
	t := &encodeTransform{}
	if err := json.Unmarshal(raw, t); err != nil {
		return nil, err
	}
	if m, err := encodeMode(t.Method); err != nil || m != t.Method {
		return nil, fmt.Errorf("invalid method %q", t.Method)
	}
	for _, c := range t.Columns { // no columns: a no-op
		if !slices.IsSorted(c.Categories) || len(c.Categories) == 0 {
			return nil, fmt.Errorf("column %q: categories are empty or not sorted", c.Name)
		}
	}
	t.init()
	return t, nil
}

func (t *encodeTransform) state() any { return t }

func (t *encodeTransform) Kind() string { return KindEncode }

func (t *encodeTransform) OutputSchema(in *arrow.Schema) (*arrow.Schema, error) {
	for _, c := range t.Columns {
		j, err := fieldByName(in, c.Name, KindEncode)
		if err != nil {
			return nil, err
		}
		if !isCategorical(in.Field(j).Type) {
			return nil, fmt.Errorf("encode: column %q has type %s, but was fitted as a categorical column", c.Name, in.Field(j).Type)
		}
	}
	fields := make([]arrow.Field, 0, in.NumFields())
	seen := make(map[string]bool, in.NumFields())
	for _, f := range in.Fields() {
		ci, ok := t.byName[f.Name]
		if !ok {
			fields = append(fields, f)
			continue
		}
		c := t.Columns[ci]
		if t.Method == EncodeIndex {
			g := withFieldMetadata(f, KeyCardinality, strconv.Itoa(len(c.Categories)+1))
			g.Type, g.Nullable = arrow.PrimitiveTypes.Int32, false
			fields = append(fields, g)
			continue
		}
		for _, v := range c.Categories {
			g := f
			g.Name, g.Type, g.Nullable = c.Name+"="+v, arrow.PrimitiveTypes.Float32, false
			fields = append(fields, g)
		}
	}
	for _, f := range fields {
		if seen[f.Name] {
			return nil, fmt.Errorf("encode: output column %q would appear twice; rename the input column of that name", f.Name)
		}
		seen[f.Name] = true
	}
	return schemaWithFields(in, fields), nil
}

// Category codes of a row: 0..K-1, or one of these.
const (
	codeUnknown int32 = -1
	codeNull    int32 = -2
)

// categoryCodesTo writes each row's category code into dst and returns the counts of unknown
// and null rows.
func categoryCodesTo(dst []int32, arr arrow.Array, lookup map[string]int32) (unknown, nulls int64, err error) {
	val := validityOf(arr)
	code := func(s string) int32 {
		if k, ok := lookup[s]; ok {
			return k
		}
		return codeUnknown
	}
	switch a := arr.(type) {
	case *array.String:
		for i := range dst {
			if val.valid(i) {
				dst[i] = code(a.Value(i))
			} else {
				dst[i] = codeNull
			}
		}
	case *array.LargeString:
		for i := range dst {
			if val.valid(i) {
				dst[i] = code(a.Value(i))
			} else {
				dst[i] = codeNull
			}
		}
	case *array.Boolean:
		cf, ct := code("false"), code("true")
		for i := range dst {
			switch {
			case !val.valid(i):
				dst[i] = codeNull
			case a.Value(i):
				dst[i] = ct
			default:
				dst[i] = cf
			}
		}
	case *array.Dictionary:
		idx, err := dictionaryIndices(a)
		if err != nil {
			return 0, 0, err
		}
		words, err := dictionaryWords(a)
		if err != nil {
			return 0, 0, err
		}
		perEntry := make([]int32, len(words))
		for k, w := range words {
			perEntry[k] = code(w)
		}
		for i := range dst {
			if val.valid(i) {
				dst[i] = perEntry[idx[i]]
			} else {
				dst[i] = codeNull
			}
		}
	default:
		return 0, 0, fmt.Errorf("type %s is not categorical (string, dictionary or bool)", arr.DataType())
	}
	for _, c := range dst {
		switch c {
		case codeUnknown:
			unknown++
		case codeNull:
			nulls++
		}
	}
	return unknown, nulls, nil
}

func (t *encodeTransform) Apply(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	if err := checkContext(ctx, KindEncode); err != nil {
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
	codes := make([]int32, n)
	unknown := make([]int64, len(t.Columns))
	nulls := make([]int64, len(t.Columns))
	for j, f := range rec.Schema().Fields() {
		ci, ok := t.byName[f.Name]
		if !ok {
			cols = append(cols, rec.Column(j))
			continue
		}
		unknown[ci], nulls[ci], err = categoryCodesTo(codes, rec.Column(j), t.lookup[ci])
		if err != nil {
			return nil, fmt.Errorf("encode: column %q: %w", f.Name, err)
		}
		if t.Method == EncodeIndex {
			arr, dst := newInt32Column(mem, n)
			owned = append(owned, arr)
			cols = append(cols, arr)
			for i, c := range codes {
				dst[i] = max(c+1, 0) // unknown (-1) and null (-2) → 0
			}
			continue
		}
		k := len(t.Columns[ci].Categories)
		onehot := make([][]float32, k)
		for v := range k {
			arr, dst := newFloat32Column(mem, n, nil)
			owned = append(owned, arr)
			cols = append(cols, arr)
			onehot[v] = dst
		}
		for i, c := range codes {
			if c >= 0 {
				onehot[c][i] = 1
			}
		}
	}
	for ci := range t.Columns {
		t.unknown[ci].Add(unknown[ci])
		t.nulls[ci].Add(nulls[ci])
	}
	t.applied.Add(int64(n))
	return array.NewRecordBatch(out, cols, int64(n)), nil
}

func (t *encodeTransform) Describe() map[string]any {
	cols := make(map[string]any, len(t.Columns))
	for _, c := range t.Columns {
		cols[c.Name] = map[string]any{
			"categories":  append([]string(nil), c.Categories...),
			"counts":      append([]int64(nil), c.Counts...),
			"cardinality": len(c.Categories),
			"nulls":       c.Nulls,
		}
	}
	d := map[string]any{
		"kind":            KindEncode,
		"method":          t.Method,
		"max_cardinality": t.MaxCardinality,
		"rows_seen":       t.RowsSeen,
		"columns":         cols,
	}
	if notes := t.Notes(); len(notes) > 0 {
		d["notes"] = notes
	}
	return d
}

// Notes says what a person should know about the fitted transform: that it encodes nothing,
// when the training table had no categorical feature column.
func (t *encodeTransform) Notes() []string {
	if len(t.Columns) == 0 {
		return []string{"no string, dictionary or bool feature column to encode: the tables pass through unchanged"}
	}
	return nil
}

// Counters returns "rows_applied", "unknown_categories" and "null_categories" totals and
// per-column "unknown_by_column/<col>" and "null_by_column/<col>" counts of the rows that were
// encoded as the all-zero (onehot) or 0 (index) bucket.
func (t *encodeTransform) Counters() map[string]int64 {
	out := map[string]int64{"rows_applied": t.applied.Load()}
	var unknown, nulls int64
	for ci, c := range t.Columns {
		u, n := t.unknown[ci].Load(), t.nulls[ci].Load()
		unknown += u
		nulls += n
		out["unknown_by_column/"+c.Name] = u
		out["null_by_column/"+c.Name] = n
	}
	out["unknown_categories"] = unknown
	out["null_categories"] = nulls
	return out
}
