package features

import (
	"context"
	"errors"
	"testing"

	"github.com/pipe-ml/pipe/schema"
)

// TestTransformsPassThrough: every transform leaves the non-feature columns (and unselected
// features) as the same arrays with the same fields, keeps the schema metadata, and keeps the
// field metadata of the columns it changes.
func TestTransformsPassThrough(t *testing.T) {
	cols := func() []testColumn {
		return []testColumn{
			rowColumn(1, 2, 3, 4),
			{name: "a", f64: []float64{1, 2, 0, 4}, valid: []bool{true, true, false, true}, meta: map[string]string{"unit": "kg"}},
			{name: "b", f64: []float64{5, 6, 7, 9}},
			{name: "s", str: []string{"x", "y", "x", ""}, valid: []bool{true, true, true, false}, meta: map[string]string{"unit": "none"}},
			{name: "s2", str: []string{"p", "q", "p", "q"}},
			{name: "y", role: schema.RoleTarget, f64: []float64{0, 1, 0, 1}},
			{name: "w", role: schema.RoleWeight, f32: []float32{1, 1, 2, 2}},
			{name: "original_split", role: schema.RoleSplit, str: []string{"train", "train", "test", "test"}},
			{name: "h", role: schema.RoleHidden, i64: []int64{3, 3, 3, 3}},
		}
	}
	tests := []struct {
		name    string
		fitter  Fitter
		changed map[string]bool
	}{
		{"normalize", NewNormalizeFitter(NormalizeOptions{Columns: []string{"a"}}), map[string]bool{"a": true}},
		{"impute", NewImputeFitter(ImputeOptions{Columns: []string{"a", "s"}, Indicator: true}), map[string]bool{"a": true, "s": true}},
		{"encode", NewEncodeFitter(EncodeOptions{Columns: []string{"s"}}), map[string]bool{"s": true}},
		{"encode index", NewEncodeFitter(EncodeOptions{Columns: []string{"s"}, Categorical: EncodeIndex}), map[string]bool{"s": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := newCheckedAllocator()
			defer mem.AssertSize(t, 0)
			rec := makeRecord(t, mem, schema.SplitVal, cols()...)
			defer rec.Release()
			tr := fitBatches(t, tc.fitter, rec, 3)
			out, err := tr.Apply(context.Background(), mem, rec)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			want, err := tr.OutputSchema(rec.Schema())
			if err != nil {
				t.Fatal(err)
			}
			if !out.Schema().Equal(want) {
				t.Errorf("Apply's schema %v differs from OutputSchema %v", out.Schema(), want)
			}
			if schema.Split(out.Schema()) != schema.SplitVal {
				t.Error("split metadata lost")
			}
			for j, f := range rec.Schema().Fields() {
				if tc.changed[f.Name] {
					// The changed column (or its one-hot column for "x") keeps the field metadata.
					for _, g := range out.Schema().Fields() {
						if g.Name != f.Name && g.Name != f.Name+"=x" {
							continue
						}
						for k, key := range f.Metadata.Keys() {
							if i := g.Metadata.FindKey(key); i < 0 || g.Metadata.Values()[i] != f.Metadata.Values()[k] {
								t.Errorf("%s: field metadata %v lost %s of the input's %v", g.Name, g.Metadata, key, f.Metadata)
							}
						}
					}
					continue
				}
				idx := out.Schema().FieldIndices(f.Name)
				if len(idx) != 1 {
					t.Fatalf("column %q missing from the output", f.Name)
				}
				if out.Column(idx[0]) != rec.Column(j) {
					t.Errorf("column %q was not passed through as the same array", f.Name)
				}
				if !out.Schema().Field(idx[0]).Equal(f) {
					t.Errorf("field %v changed to %v", f, out.Schema().Field(idx[0]))
				}
			}
		})
	}
}

// TestApplyHonoursContext: a cancelled context stops Apply with the context's error.
func TestApplyHonoursContext(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	rec := makeRecord(t, mem, "", testColumn{name: "x", f64: []float64{1, 2}}, testColumn{name: "s", str: []string{"a", "b"}})
	defer rec.Release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, f := range []Fitter{NewNormalizeFitter(NormalizeOptions{}), NewImputeFitter(ImputeOptions{}), NewEncodeFitter(EncodeOptions{})} {
		tr := fitBatches(t, f, rec, 2)
		out, err := tr.Apply(ctx, mem, rec)
		if out != nil {
			out.Release()
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v, want context.Canceled", tr.Kind(), err)
		}
	}
}
