package features

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/schema"
)

// naiveNormalize is the expected output of a method on x given the train values.
func naiveNormalize(t *testing.T, method string, train []float64, x float64) float64 {
	t.Helper()
	var shift, spread float64
	switch method {
	case NormalizeStandard:
		shift, spread = naiveMeanStd(train)
	case NormalizeMinMax:
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range train {
			if !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		shift, spread = lo, hi-lo
	case NormalizeRobust:
		shift, spread = naiveQuantile(train, 0.5), naiveQuantile(train, 0.75)-naiveQuantile(train, 0.25)
	case NormalizeLog1p:
		return math.Log1p(x)
	default:
		t.Fatalf("method %q", method)
	}
	if spread == 0 {
		return 0
	}
	return (x - shift) / spread
}

// TestNormalizeFitsOnTrainOnly fits each method on wine's shipped train split (fed in batches
// of 17 rows) and checks the statistics against a naive computation on the train rows, that they
// differ from the all-rows statistics, and that val and test are scaled with the train
// statistics.
func TestNormalizeFitsOnTrainOnly(t *testing.T) {
	d := loadDataset(t, "wine")
	trainRows := d.rows(schema.SplitTrain)
	for _, method := range []string{NormalizeStandard, NormalizeMinMax, NormalizeRobust, NormalizeLog1p} {
		t.Run(method, func(t *testing.T) {
			mem := newCheckedAllocator()
			defer mem.AssertSize(t, 0)
			train := d.record(t, mem, schema.SplitTrain, trainRows)
			defer train.Release()
			tr := fitBatches(t, NewNormalizeFitter(NormalizeOptions{Method: method}), train, 17)
			desc := tr.Describe()
			if got := desc["rows_seen"].(int64); got != int64(len(trainRows)) {
				t.Fatalf("rows_seen %d, want %d", got, len(trainRows))
			}
			cols := desc["columns"].(map[string]any)
			if len(cols) != len(d.names)-1 {
				t.Fatalf("fitted %d columns, want the %d numeric features (not target, not _row)", len(cols), len(d.names)-1)
			}
			differs := 0
			for j, name := range d.names[:len(d.names)-1] {
				st := cols[name].(map[string]any)
				trainVals := pick(d.nums[j], trainRows)
				mean, std := naiveMeanStd(trainVals)
				if !near(st["mean"].(float64), mean, 1e-12) || !near(st["std"].(float64), std, 1e-12) {
					t.Errorf("%s: mean, std = %g, %g; naive on train rows: %g, %g", name, st["mean"], st["std"], mean, std)
				}
				if method == NormalizeRobust {
					for _, q := range []struct {
						key string
						q   float64
					}{{"q25", 0.25}, {"median", 0.5}, {"q75", 0.75}} {
						if want := naiveQuantile(trainVals, q.q); !near(st[q.key].(float64), want, 1e-12) {
							t.Errorf("%s: %s = %g, sorted reference %g", name, q.key, st[q.key], want)
						}
					}
				}
				allMean, _ := naiveMeanStd(d.nums[j])
				if !near(allMean, mean, 1e-9) {
					differs++
				}
			}
			if differs == 0 {
				t.Fatalf("train-only means equal the all-rows means for every column: the test cannot tell leakage")
			}
			for _, split := range []string{schema.SplitTrain, schema.SplitVal, schema.SplitTest} {
				rows := d.rows(split)
				in := d.record(t, mem, split, rows)
				out, err := tr.Apply(context.Background(), mem, in)
				if err != nil {
					t.Fatalf("%s: Apply: %v", split, err)
				}
				for j, name := range d.names[:len(d.names)-1] {
					got := float32Column(t, out, name)
					trainVals := pick(d.nums[j], trainRows)
					for k, i := range rows {
						want := naiveNormalize(t, method, trainVals, d.nums[j][i])
						if !near(float64(got.Value(k)), want, 1e-5) {
							t.Fatalf("%s %s row %d: got %g, want %g (train statistics)", split, name, i, got.Value(k), want)
						}
					}
				}
				if schema.Split(out.Schema()) != split {
					t.Errorf("split metadata lost: %q", schema.Split(out.Schema()))
				}
				tgt := out.Schema().FieldIndices("target")[0]
				if out.Column(tgt) != in.Column(tgt) || out.Column(0) != in.Column(0) {
					t.Errorf("target or _row column was not passed through as the same array")
				}
				if schema.Role(out.Schema().Field(tgt)) != schema.RoleTarget {
					t.Errorf("target lost its role")
				}
				out.Release()
				in.Release()
			}
		})
	}
}

// TestNormalizeConstantColumn: a constant column maps to 0 and is reported, for every method
// that divides.
func TestNormalizeConstantColumn(t *testing.T) {
	for _, method := range []string{NormalizeStandard, NormalizeMinMax, NormalizeRobust} {
		t.Run(method, func(t *testing.T) {
			mem := newCheckedAllocator()
			defer mem.AssertSize(t, 0)
			rec := makeRecord(t, mem, schema.SplitTrain, rowColumn(seq(5)...),
				testColumn{name: "c", f32: []float32{3, 3, 3, 3, 3}},
				testColumn{name: "x", f32: []float32{1, 2, 3, 4, 5}})
			defer rec.Release()
			tr := fitBatches(t, NewNormalizeFitter(NormalizeOptions{Method: method}), rec, 2)
			out, err := tr.Apply(context.Background(), mem, rec)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			for i, v := range float32Column(t, out, "c").Float32Values() {
				if v != 0 {
					t.Errorf("row %d: constant column gives %g, want 0", i, v)
				}
			}
			constant := tr.Describe()["constant_columns"].([]string)
			if len(constant) != 1 || constant[0] != "c" {
				t.Errorf("constant_columns = %v, want [c]", constant)
			}
		})
	}
}

// TestNormalizeNullsAndTypes: nulls are skipped by the statistics and stay null; integer
// columns become float32 with their field metadata.
func TestNormalizeNullsAndTypes(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	rec := makeRecord(t, mem, schema.SplitTrain, rowColumn(seq(5)...),
		testColumn{name: "x", f64: []float64{1, 999, 3, 5, 999}, valid: []bool{true, false, true, true, false}},
		testColumn{name: "n", i32: []int32{2, 4, 4, 4, 6}, meta: map[string]string{"unit": "cm"}})
	defer rec.Release()
	tr := fitBatches(t, NewNormalizeFitter(NormalizeOptions{}), rec, 3)
	out, err := tr.Apply(context.Background(), mem, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	x := float32Column(t, out, "x")
	mean, std := naiveMeanStd([]float64{1, 3, 5})
	for i, want := range []float64{(1 - mean) / std, 0, (3 - mean) / std, (5 - mean) / std, 0} {
		if valid := rec.Column(1).IsValid(i); x.IsValid(i) != valid {
			t.Fatalf("row %d: valid = %v, want %v", i, x.IsValid(i), valid)
		}
		if x.IsValid(i) && !near(float64(x.Value(i)), want, 1e-6) {
			t.Errorf("row %d: %g, want %g", i, x.Value(i), want)
		}
	}
	n := float32Column(t, out, "n")
	// Hand calculation: mean 4, population variance (4+0+0+0+4)/5 = 1.6.
	for i, v := range []float64{2, 4, 4, 4, 6} {
		if want := (v - 4) / math.Sqrt(1.6); !near(float64(n.Value(i)), want, 1e-6) {
			t.Errorf("int row %d: %g, want %g", i, n.Value(i), want)
		}
	}
	f := out.Schema().Field(2)
	if f.Metadata.FindKey("unit") < 0 {
		t.Errorf("field metadata lost: %v", f.Metadata)
	}
}

// TestNormalizeErrors: each error names what to fix.
func TestNormalizeErrors(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name   string
		opts   NormalizeOptions
		cols   []testColumn
		apply  []testColumn // when set, fit on cols and apply to these
		errHas []string
	}{
		{"nan at fit", NormalizeOptions{}, []testColumn{rowColumn(10, 11, 12), {name: "x", f64: []float64{1, nan, 2}}}, nil, []string{`"x"`, "_row=11", "non-finite"}},
		{"inf at apply", NormalizeOptions{}, []testColumn{rowColumn(10, 11, 12), {name: "x", f32: []float32{1, 2, 3}}},
			[]testColumn{rowColumn(20, 21), {name: "x", f32: []float32{1, float32(math.Inf(1))}}}, []string{`"x"`, "_row=21"}},
		{"log1p at fit", NormalizeOptions{Method: NormalizeLog1p}, []testColumn{rowColumn(10, 11, 12), {name: "x", f64: []float64{0, 1, -1}}}, nil, []string{`"x"`, "_row=12", "-1"}},
		{"log1p at apply", NormalizeOptions{Method: NormalizeLog1p}, []testColumn{rowColumn(10, 11, 12), {name: "x", f64: []float64{0, 1, 2}}},
			[]testColumn{rowColumn(7), {name: "x", f64: []float64{-3}}}, []string{`"x"`, "_row=7"}},
		{"entirely null", NormalizeOptions{}, []testColumn{rowColumn(1, 2), {name: "x", f64: []float64{0, 0}, valid: []bool{false, false}}}, nil, []string{`"x"`, "entirely null"}},
		{"unknown method", NormalizeOptions{Method: "zscore"}, []testColumn{{name: "x", f64: []float64{1}}}, nil, []string{"zscore", "standard"}},
		{"not numeric", NormalizeOptions{Columns: []string{"s"}}, []testColumn{{name: "s", str: []string{"a"}}}, nil, []string{`"s"`, "numeric"}},
		{"target", NormalizeOptions{Columns: []string{"y"}}, []testColumn{{name: "y", role: schema.RoleTarget, f64: []float64{1}}}, nil, []string{`"y"`, "target"}},
		{"missing at apply", NormalizeOptions{}, []testColumn{{name: "x", f64: []float64{1, 2}}}, []testColumn{{name: "z", f64: []float64{1}}}, []string{`"x"`, "not in the table"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := newCheckedAllocator()
			defer mem.AssertSize(t, 0)
			rec := makeRecord(t, mem, "", tc.cols...)
			defer rec.Release()
			f := NewNormalizeFitter(tc.opts)
			err := f.Observe(rec)
			var tr Transform
			if err == nil {
				tr, err = f.Finish()
			}
			if tc.apply != nil {
				if err != nil {
					t.Fatalf("fit: %v", err)
				}
				in := makeRecord(t, mem, "", tc.apply...)
				defer in.Release()
				var out arrow.RecordBatch
				out, err = tr.Apply(context.Background(), mem, in)
				if out != nil {
					out.Release()
				}
			}
			if err == nil {
				t.Fatalf("no error, want one mentioning %v", tc.errHas)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestNormalizeZeroRows(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	f := NewNormalizeFitter(NormalizeOptions{})
	if _, err := f.Finish(); err == nil || !strings.Contains(err.Error(), "zero rows") {
		t.Fatalf("Finish without batches: %v, want a zero-rows error", err)
	}
	rec := makeRecord(t, mem, "", testColumn{name: "x", f64: []float64{}})
	defer rec.Release()
	f = NewNormalizeFitter(NormalizeOptions{})
	if err := f.Observe(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Finish(); err == nil || !strings.Contains(err.Error(), "zero rows") {
		t.Fatalf("Finish after an empty batch: %v, want a zero-rows error", err)
	}
}

// TestNormalizeMomentsAreStable: merging per-batch moments keeps the variance of values with a
// large offset, where a naive sum of squares in float64 would lose it.
func TestNormalizeMomentsAreStable(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	xs := make([]float64, 1000)
	for i := range xs {
		xs[i] = 1e9 + float64(i%10) // variance of 0..9 = 8.25
	}
	rec := makeRecord(t, mem, "", testColumn{name: "x", f64: xs})
	defer rec.Release()
	tr := fitBatches(t, NewNormalizeFitter(NormalizeOptions{}), rec, 37)
	st := tr.Describe()["columns"].(map[string]any)["x"].(map[string]any)
	if got := st["std"].(float64); !near(got, math.Sqrt(8.25), 1e-9) {
		t.Fatalf("std %g, want sqrt(8.25) = %g", got, math.Sqrt(8.25))
	}
}

// TestNormalizeConcurrentApply applies one transform from several goroutines (run with -race)
// and checks the outputs and the counter.
func TestNormalizeConcurrentApply(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	rec := makeRecord(t, mem, "", testColumn{name: "x", f32: []float32{1, 2, 3, 4}})
	defer rec.Release()
	tr := fitBatches(t, NewNormalizeFitter(NormalizeOptions{Method: NormalizeMinMax}), rec, 4)
	var wg sync.WaitGroup
	const workers = 4
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			out, err := tr.Apply(context.Background(), mem, rec)
			if err != nil {
				errs <- err
				return
			}
			defer out.Release()
			for i, v := range out.Column(0).(*array.Float32).Float32Values() {
				if want := float32(i) / 3; math.Abs(float64(v-want)) > 1e-6 {
					errs <- fmt.Errorf("row %d: %g, want %g", i, v, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := tr.Counters()["rows_applied"]; got != workers*4 {
		t.Errorf("rows_applied = %d, want %d", got, workers*4)
	}
}

// TestNormalizeLeavesIndexColumns: encode's index columns (category ids for an embedding) are
// not scaled by default, and listing one is an error; the numeric columns are scaled as usual.
func TestNormalizeLeavesIndexColumns(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := makeRecord(t, mem, "",
		testColumn{name: "colour", str: []string{"red", "blue", "red", "green"}},
		testColumn{name: "x", f64: []float64{1, 2, 3, 6}})
	defer rec.Release()
	enc := fitBatches(t, NewEncodeFitter(EncodeOptions{Categorical: EncodeIndex}), rec, 4)
	coded, err := enc.Apply(context.Background(), mem, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer coded.Release()
	ids := coded.Column(coded.Schema().FieldIndices("colour")[0]).(*array.Int32).Int32Values()
	tr := fitBatches(t, NewNormalizeFitter(NormalizeOptions{}), coded, 4)
	out, err := tr.Apply(context.Background(), mem, coded)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	col, ok := out.Column(out.Schema().FieldIndices("colour")[0]).(*array.Int32)
	if !ok {
		t.Fatalf("colour became %s, want encode's int32 indices untouched", out.Schema().Field(out.Schema().FieldIndices("colour")[0]).Type)
	}
	for i, v := range col.Int32Values() {
		if v != ids[i] {
			t.Errorf("colour row %d: index %d, encode gave %d", i, v, ids[i])
		}
	}
	mean, std := naiveMeanStd([]float64{1, 2, 3, 6})
	x := float32Column(t, out, "x")
	for i, v := range []float64{1, 2, 3, 6} {
		if want := (v - mean) / std; !near(float64(x.Value(i)), want, 1e-6) {
			t.Errorf("x row %d: %g, want %g", i, x.Value(i), want)
		}
	}
	f := NewNormalizeFitter(NormalizeOptions{Columns: []string{"colour", "x"}})
	if err := f.Observe(coded); err == nil || !strings.Contains(err.Error(), "category indices") {
		t.Errorf("normalizing an index column on request: %v, want an error saying it holds category indices", err)
	}
}
