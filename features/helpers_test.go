package features

import (
	"bytes"
	"encoding/csv"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/schema"
)

// testColumn describes one column of a hand-built test record: exactly one of the value slices
// is set; valid (nil = all valid) marks nulls.
type testColumn struct {
	name  string
	role  string // "" = feature (no role metadata)
	meta  map[string]string
	f32   []float32
	f64   []float64
	i64   []int64
	i32   []int32
	str   []string
	large []string
	boo   []bool
	dict  []string // dictionary<int32, utf8>
	valid []bool
}

// makeRecord builds a record from columns; split ("" = none) goes in the schema metadata.
// The caller releases it.
func makeRecord(t testing.TB, mem memory.Allocator, split string, cols ...testColumn) arrow.RecordBatch {
	t.Helper()
	fields := make([]arrow.Field, len(cols))
	arrs := make([]arrow.Array, len(cols))
	n := -1
	for i, c := range cols {
		var arr arrow.Array
		switch {
		case c.f32 != nil:
			b := array.NewFloat32Builder(mem)
			b.AppendValues(c.f32, c.valid)
			arr = b.NewArray()
			b.Release()
		case c.f64 != nil:
			b := array.NewFloat64Builder(mem)
			b.AppendValues(c.f64, c.valid)
			arr = b.NewArray()
			b.Release()
		case c.i64 != nil:
			b := array.NewInt64Builder(mem)
			b.AppendValues(c.i64, c.valid)
			arr = b.NewArray()
			b.Release()
		case c.i32 != nil:
			b := array.NewInt32Builder(mem)
			b.AppendValues(c.i32, c.valid)
			arr = b.NewArray()
			b.Release()
		case c.str != nil:
			b := array.NewStringBuilder(mem)
			b.AppendValues(c.str, c.valid)
			arr = b.NewArray()
			b.Release()
		case c.large != nil:
			b := array.NewLargeStringBuilder(mem)
			b.AppendValues(c.large, c.valid)
			arr = b.NewArray()
			b.Release()
		case c.boo != nil:
			b := array.NewBooleanBuilder(mem)
			b.AppendValues(c.boo, c.valid)
			arr = b.NewArray()
			b.Release()
		case c.dict != nil:
			dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
			b := array.NewDictionaryBuilder(mem, dt).(*array.BinaryDictionaryBuilder)
			for k, s := range c.dict {
				if c.valid != nil && !c.valid[k] {
					b.AppendNull()
				} else if err := b.AppendString(s); err != nil {
					t.Fatal(err)
				}
			}
			arr = b.NewArray()
			b.Release()
		default:
			t.Fatalf("column %q has no values", c.name)
		}
		if n >= 0 && arr.Len() != n {
			t.Fatalf("column %q has %d rows, want %d", c.name, arr.Len(), n)
		}
		n = arr.Len()
		f := arrow.Field{Name: c.name, Type: arr.DataType(), Nullable: true}
		if len(c.meta) > 0 {
			f.Metadata = arrow.MetadataFrom(c.meta)
		}
		if c.role != "" {
			f = schema.WithRole(f, c.role)
		}
		fields[i], arrs[i] = f, arr
	}
	s := arrow.NewSchema(fields, nil)
	if split != "" {
		s = schema.WithSplit(s, split)
	}
	rec := array.NewRecordBatch(s, arrs, int64(n))
	releaseAll(arrs)
	return rec
}

func rowColumn(ids ...int64) testColumn {
	return testColumn{name: schema.RowIDColumn, role: schema.RoleID, i64: ids}
}

func seq(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i)
	}
	return out
}

// dataset is an embedded CSV parsed into columns: numeric columns as float64 (NaN = missing),
// others as strings ("" = missing); split holds each row's shipped split.
type dataset struct {
	names   []string
	numeric []bool
	nums    [][]float64
	strs    [][]string
	split   []string
}

func loadDataset(t testing.TB, name string) *dataset {
	t.Helper()
	raw, err := datasets.CSV(name)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	split, err := datasets.SplitColumn(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(split) != len(rows)-1 {
		t.Fatalf("%s: %d split labels for %d rows", name, len(split), len(rows)-1)
	}
	d := &dataset{names: rows[0], split: split}
	for j := range d.names {
		numeric := true
		nums := make([]float64, len(rows)-1)
		strs := make([]string, len(rows)-1)
		for i, r := range rows[1:] {
			strs[i] = r[j]
			if r[j] == "" {
				nums[i] = math.NaN()
				continue
			}
			v, err := strconv.ParseFloat(r[j], 64)
			if err != nil {
				numeric = false
			}
			nums[i] = v
		}
		d.numeric = append(d.numeric, numeric)
		d.nums = append(d.nums, nums)
		d.strs = append(d.strs, strs)
	}
	return d
}

// rows returns the indices of the rows of a split ("" = all rows).
func (d *dataset) rows(split string) []int {
	var out []int
	for i, s := range d.split {
		if split == "" || s == split {
			out = append(out, i)
		}
	}
	return out
}

// record builds an Arrow record of the given rows: a _row column (the row's index in the file),
// the dataset's columns (target with role target; empty fields as nulls).
func (d *dataset) record(t testing.TB, mem memory.Allocator, split string, rows []int) arrow.RecordBatch {
	t.Helper()
	ids := make([]int64, len(rows))
	for k, i := range rows {
		ids[k] = int64(i)
	}
	cols := []testColumn{rowColumn(ids...)}
	for j, name := range d.names {
		c := testColumn{name: name, valid: make([]bool, len(rows))}
		if name == "target" {
			c.role = schema.RoleTarget
		}
		if d.numeric[j] {
			c.f64 = make([]float64, len(rows))
			for k, i := range rows {
				v := d.nums[j][i]
				c.valid[k] = !math.IsNaN(v)
				if c.valid[k] {
					c.f64[k] = v
				}
			}
		} else {
			c.str = make([]string, len(rows))
			for k, i := range rows {
				c.str[k] = d.strs[j][i]
				c.valid[k] = c.str[k] != ""
			}
		}
		cols = append(cols, c)
	}
	return makeRecord(t, mem, split, cols...)
}

// column returns a dataset column's index.
func (d *dataset) column(t testing.TB, name string) int {
	t.Helper()
	j := slices.Index(d.names, name)
	if j < 0 {
		t.Fatalf("no column %q", name)
	}
	return j
}

// fitBatches fits f on rec fed in batches of batchRows rows.
func fitBatches(t testing.TB, f Fitter, rec arrow.RecordBatch, batchRows int) Transform {
	t.Helper()
	for lo := int64(0); lo < rec.NumRows(); lo += int64(batchRows) {
		hi := min(lo+int64(batchRows), rec.NumRows())
		part := rec.NewSlice(lo, hi)
		err := f.Observe(part)
		part.Release()
		if err != nil {
			t.Fatalf("Observe: %v", err)
		}
	}
	tr, err := f.Finish()
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	return tr
}

// naiveMeanStd is a two-pass population mean and standard deviation of the non-NaN values.
func naiveMeanStd(xs []float64) (mean, std float64) {
	var n float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			mean += x
			n++
		}
	}
	mean /= n
	for _, x := range xs {
		if !math.IsNaN(x) {
			std += (x - mean) * (x - mean)
		}
	}
	return mean, math.Sqrt(std / n)
}

// naiveQuantile sorts a copy of the non-NaN values and interpolates linearly between the
// closest ranks, as numpy.percentile's default.
func naiveQuantile(xs []float64, q float64) float64 {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	slices.Sort(v)
	h := q * float64(len(v)-1)
	lo := math.Floor(h)
	hi := math.Ceil(h)
	return v[int(lo)] + (h-lo)*(v[int(hi)]-v[int(lo)])
}

func pick(xs []float64, rows []int) []float64 {
	out := make([]float64, len(rows))
	for k, i := range rows {
		out[k] = xs[i]
	}
	return out
}

func near(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func float32Column(t testing.TB, rec arrow.RecordBatch, name string) *array.Float32 {
	t.Helper()
	idx := rec.Schema().FieldIndices(name)
	if len(idx) != 1 {
		t.Fatalf("output has %d columns %q (columns: %v)", len(idx), name, columnNames(rec.Schema()))
	}
	a, ok := rec.Column(idx[0]).(*array.Float32)
	if !ok {
		t.Fatalf("column %q is %s, want float32", name, rec.Column(idx[0]).DataType())
	}
	return a
}

func newCheckedAllocator() *memory.CheckedAllocator {
	return memory.NewCheckedAllocator(memory.NewGoAllocator())
}
