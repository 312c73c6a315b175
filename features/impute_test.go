package features

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pipe-ml/pipe/schema"
)

// TestImputeCreditData fits on credit_data's train split, checks every fill value against a
// naive computation on the train rows, and checks the val rows: nulls replaced by the train
// fill, other values unchanged, indicators 1 exactly at the nulls.
func TestImputeCreditData(t *testing.T) {
	d := loadDataset(t, "credit_data")
	trainRows, valRows := d.rows(schema.SplitTrain), d.rows(schema.SplitVal)
	naiveMostFrequent := func(j int) string {
		count := map[string]int{}
		for _, i := range trainRows {
			if s := d.strs[j][i]; s != "" {
				count[s]++
			}
		}
		best := ""
		for s, n := range count {
			if n > count[best] || (n == count[best] && s < best) {
				best = s
			}
		}
		return best
	}
	tests := []struct {
		opts    ImputeOptions
		numeric func(train []float64) float64
		str     func(j int) string
	}{
		{ImputeOptions{}, func(x []float64) float64 { return naiveQuantile(x, 0.5) }, naiveMostFrequent},
		{ImputeOptions{Numeric: ImputeMean, Indicator: true}, func(x []float64) float64 { m, _ := naiveMeanStd(x); return m }, naiveMostFrequent},
		{ImputeOptions{Numeric: ImputeConstant, NumericFill: -1, Categorical: ImputeConstant}, func([]float64) float64 { return -1 }, func(int) string { return DefaultCategoricalFill }},
	}
	for _, tc := range tests {
		t.Run(tc.opts.Numeric+"/"+tc.opts.Categorical, func(t *testing.T) {
			mem := newCheckedAllocator()
			defer mem.AssertSize(t, 0)
			train := d.record(t, mem, schema.SplitTrain, trainRows)
			defer train.Release()
			tr := fitBatches(t, NewImputeFitter(tc.opts), train, 500)
			cols := tr.Describe()["columns"].(map[string]any)
			val := d.record(t, mem, schema.SplitVal, valRows)
			defer val.Release()
			out, err := tr.Apply(context.Background(), mem, val)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			indicators := 0
			for j, name := range d.names[:len(d.names)-1] {
				st := cols[name].(map[string]any)
				var nulls int64
				for _, i := range trainRows {
					if d.strs[j][i] == "" {
						nulls++
					}
				}
				if st["nulls"].(int64) != nulls {
					t.Errorf("%s: %d nulls, want %d", name, st["nulls"], nulls)
				}
				oi := out.Schema().FieldIndices(name)[0]
				if d.numeric[j] {
					fill := tc.numeric(pick(d.nums[j], trainRows))
					if !near(st["fill"].(float64), fill, 1e-12) {
						t.Errorf("%s: fill %g, want %g", name, st["fill"], fill)
					}
					got := out.Column(oi).(*array.Float64)
					for k, i := range valRows {
						want := d.nums[j][i]
						if math.IsNaN(want) {
							want = fill
						}
						if !got.IsValid(k) || got.Value(k) != want {
							t.Fatalf("%s val row %d: %g, want %g", name, i, got.Value(k), want)
						}
					}
				} else {
					fill := tc.str(j)
					if st["fill"].(string) != fill {
						t.Errorf("%s: fill %q, want %q", name, st["fill"], fill)
					}
					got := out.Column(oi).(*array.String)
					for k, i := range valRows {
						want := d.strs[j][i]
						if want == "" {
							want = fill
						}
						if got.Value(k) != want {
							t.Fatalf("%s val row %d: %q, want %q", name, i, got.Value(k), want)
						}
					}
				}
				ind := out.Schema().FieldIndices(indicatorName(name))
				if !tc.opts.Indicator || nulls == 0 {
					if len(ind) != 0 {
						t.Errorf("%s: unexpected indicator column", name)
					}
					continue
				}
				indicators++
				got := out.Column(ind[0]).(*array.Float32)
				for k, i := range valRows {
					var want float32
					if d.strs[j][i] == "" {
						want = 1
					}
					if got.Value(k) != want {
						t.Fatalf("%s_missing val row %d: %g, want %g", name, i, got.Value(k), want)
					}
				}
			}
			if tc.opts.Indicator && indicators == 0 {
				t.Fatal("no indicator column: credit_data's train split has nulls")
			}
		})
	}
}

// TestImputeTypesAndPassThrough: float32 stays float32 and a null-free batch shares the array;
// integers become float64; dictionaries decode to utf8.
func TestImputeTypesAndPassThrough(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	rec := makeRecord(t, mem, "", rowColumn(1, 2, 3, 4),
		testColumn{name: "f", f32: []float32{1, 2, 3, 4}},
		testColumn{name: "i", i64: []int64{1, 0, 4, 10}, valid: []bool{true, false, true, true}},
		testColumn{name: "d", dict: []string{"x", "", "y", "y"}, valid: []bool{true, false, true, true}},
		testColumn{name: "g", f32: []float32{1, 0, 2, 9}, valid: []bool{true, false, true, true}},
		testColumn{name: "l", large: []string{"", "u", "v", "v"}, valid: []bool{false, true, true, true}})
	defer rec.Release()
	tr := fitBatches(t, NewImputeFitter(ImputeOptions{}), rec, 4)
	out, err := tr.Apply(context.Background(), mem, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if out.Column(1) != rec.Column(1) {
		t.Error("null-free float32 column was copied, want it shared")
	}
	if got := out.Column(2).(*array.Float64).Float64Values(); !slices.Equal(got, []float64{1, 4, 4, 10}) {
		t.Errorf("int column %v, want median 4 at the null", got)
	}
	d := out.Column(3).(*array.String)
	var got []string
	for i := range d.Len() {
		got = append(got, d.Value(i))
	}
	if !slices.Equal(got, []string{"x", "y", "y", "y"}) {
		t.Errorf("dictionary column %v, want most frequent y at the null", got)
	}
	if got := out.Column(4).(*array.Float32).Float32Values(); !slices.Equal(got, []float32{1, 2, 2, 9}) {
		t.Errorf("float32 column %v, want median 2 at the null", got)
	}
	l := out.Column(5).(*array.LargeString)
	if l.Value(0) != "v" || l.Value(1) != "u" || l.NullN() != 0 {
		t.Errorf("large_utf8 column %v, want most frequent v at the null", l)
	}
	if c := tr.Counters(); c["filled"] != 4 {
		t.Errorf("counters %v, want 4 filled", c)
	}
}

func TestImputeErrors(t *testing.T) {
	tests := []struct {
		name   string
		opts   ImputeOptions
		cols   []testColumn
		errHas string
	}{
		{"entirely null", ImputeOptions{}, []testColumn{{name: "x", f64: []float64{0, 0}, valid: []bool{false, false}}}, "entirely null"},
		{"entirely null string", ImputeOptions{}, []testColumn{{name: "s", str: []string{"", ""}, valid: []bool{false, false}}}, "entirely null"},
		{"nan", ImputeOptions{}, []testColumn{rowColumn(5, 6), {name: "x", f64: []float64{1, math.NaN()}}}, "_row=6"},
		{"strategy", ImputeOptions{Numeric: "mode"}, []testColumn{{name: "x", f64: []float64{1}}}, `"mode"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := newCheckedAllocator()
			defer mem.AssertSize(t, 0)
			rec := makeRecord(t, mem, "", tc.cols...)
			defer rec.Release()
			f := NewImputeFitter(tc.opts)
			err := f.Observe(rec)
			if err == nil {
				_, err = f.Finish()
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.errHas)
			}
		})
	}
}
