package features

import (
	"context"
	"math"
	"strings"
	"testing"
)

// TestNormalizeVarianceOverflowIsLocated: a column whose variance overflows float64 (1e308
// next to small values; ±1e200; two batches whose means differ by 2e200) is an error at fit
// time naming the column and saying that its variance overflows, for every method, instead of
// an Inf or NaN scale that later fails to save with an unhelpful message.
func TestNormalizeVarianceOverflowIsLocated(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	cases := []struct {
		name    string
		batches [][]float64
	}{
		{"1e308 among small", [][]float64{{1, 2, 1e308}}},
		{"±1e200", [][]float64{{1e200, -1e200, 3}}},
		{"across batches", [][]float64{{1e200, 1e200}, {-1e200, -1e200}}},
	}
	for _, method := range []string{NormalizeStandard, NormalizeMinMax, NormalizeRobust, NormalizeLog1p} {
		for _, c := range cases {
			if method == NormalizeLog1p && c.name != "1e308 among small" {
				continue // negative values: log1p's own error comes first
			}
			f := NewNormalizeFitter(NormalizeOptions{Method: method})
			var err error
			for _, b := range c.batches {
				rec := makeRecord(t, mem, "train", testColumn{name: "big", f64: b}, testColumn{name: "ok", f64: make([]float64, len(b))})
				err = f.Observe(rec)
				rec.Release()
				if err != nil {
					break
				}
			}
			if err == nil {
				var tr Transform
				tr, err = f.Finish()
				if err == nil {
					_, err = Marshal(tr)
					t.Errorf("%s/%s: fitted without error (std %v); marshal: %v", method, c.name, tr.Describe()["columns"], err)
					continue
				}
			}
			for _, want := range []string{`column "big"`, "variance overflows", "rescale"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s/%s: error lacks %q: %v", method, c.name, want, err)
				}
			}
		}
	}
}

// TestNormalizeApplyOverflowIsLocated: a value so far outside the training range that its
// scaled value overflows float32 is an error naming the column and the row, not an Inf in the
// table.
func TestNormalizeApplyOverflowIsLocated(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	for _, method := range []string{NormalizeStandard, NormalizeMinMax, NormalizeRobust} {
		train := makeRecord(t, mem, "train", rowColumn(0, 1, 2), testColumn{name: "x", f64: []float64{0, 1, 2}})
		f := NewNormalizeFitter(NormalizeOptions{Method: method})
		if err := f.Observe(train); err != nil {
			t.Fatal(err)
		}
		train.Release()
		tr, err := f.Finish()
		if err != nil {
			t.Fatal(err)
		}
		test := makeRecord(t, mem, "test", rowColumn(7, 8), testColumn{name: "x", f64: []float64{1, 1e300}})
		out, err := tr.Apply(context.Background(), mem, test)
		test.Release()
		if out != nil {
			out.Release()
		}
		if err == nil {
			t.Errorf("%s: 1e300 scaled without error", method)
			continue
		}
		for _, want := range []string{`column "x"`, "overflows float32", "_row=8"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error lacks %q: %v", method, want, err)
			}
		}
	}
}

// TestImputeExtremeValues: the mean of values whose sum overflows is an error naming the
// column and the row; the median of -1e308 and 1e308 is their midpoint 0, not NaN.
func TestImputeExtremeValues(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	rec := makeRecord(t, mem, "train", rowColumn(0, 1, 2, 3), testColumn{name: "x", f64: []float64{1e308, 1e308, 0, -1e308}, valid: []bool{true, true, false, false}})
	f := NewImputeFitter(ImputeOptions{Numeric: ImputeMean})
	err := f.Observe(rec)
	rec.Release()
	if err == nil || !strings.Contains(err.Error(), `column "x"`) || !strings.Contains(err.Error(), "overflows") || !strings.Contains(err.Error(), "_row=1") {
		t.Errorf("mean: %v", err)
	}
	rec = makeRecord(t, mem, "train", testColumn{name: "x", f64: []float64{-1e308, 1e308, 0}, valid: []bool{true, true, false}})
	f = NewImputeFitter(ImputeOptions{Numeric: ImputeMedian})
	if err := f.Observe(rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	tr, err := f.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Marshal(tr); err != nil {
		t.Fatalf("the fitted median does not save: %v", err)
	}
	fill := tr.(*imputeTransform).Columns[0].NumberFill
	if math.IsNaN(fill) || math.Abs(fill) > 1e-300 {
		t.Errorf("median of -1e308 and 1e308: %v, want 0", fill)
	}
}

// TestLerpOverflow: the quantile interpolation between -1e308 and 1e308 is finite and exact
// where a + frac·(b - a) would overflow, and unchanged elsewhere.
func TestLerpOverflow(t *testing.T) {
	cases := []struct{ a, b, frac, want float64 }{
		{-1e308, 1e308, 0.5, 0},
		{-1e308, 1e308, 0.25, -5e307},
		{1, 3, 0.25, 1.5},
	}
	for _, c := range cases {
		if got := lerp(c.a, c.b, c.frac); math.Abs(got-c.want) > 1e-12*math.Max(1, math.Abs(c.want)) {
			t.Errorf("lerp(%g, %g, %g) = %g, want %g", c.a, c.b, c.frac, got, c.want)
		}
	}
}
