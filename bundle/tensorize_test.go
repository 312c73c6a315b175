package bundle

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/schema"
)

func TestTensorizeLaysOutRowsAndTargets(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	plan := &InputPlan{
		Numeric:     []string{"b", "a"}, // the plan's order, not the table's
		Categorical: []CatInput{{Column: "c", Cardinality: 3}},
		Targets: []TargetPlan{
			{Column: "y", Task: TaskClassification, Labels: []string{"no", "yes", "maybe"}},
			{Column: "v", Task: TaskRegression, Mean: 10, Std: 2},
		},
		Schema: []ColumnEntry{{Name: "b"}, {Name: "a"}, {Name: "c"}},
	}
	b1 := record(t, mem,
		col{name: "a", vals: []float64{1, 2}}, col{name: "b", vals: []int64{10, 20}}, col{name: "c", vals: []int32{2, 7}},
		col{name: "y", vals: []string{"yes", "no"}, nulls: nil}, col{name: "v", vals: []float64{12, 8}},
		col{name: "_row", role: schema.RoleID, vals: []int64{5, 6}})
	defer b1.Release()
	b2 := record(t, mem,
		col{name: "a", vals: []float64{3}}, col{name: "b", vals: []int64{30}}, col{name: "c", vals: []int32{-1}},
		col{name: "y", vals: []string{""}, nulls: []int{0}}, col{name: "v", vals: []float64{math.NaN()}},
		col{name: "_row", role: schema.RoleID, vals: []int64{9}})
	defer b2.Release()
	r := reader(t, b1, b2)
	defer r.Release()
	out, err := plan.Tensorize(r, TensorizeOptions{Table: "t", Targets: true})
	if err != nil {
		t.Fatal(err)
	}
	wantX := []float32{10, 1, 20, 2, 30, 3}
	for i := range wantX {
		if out.Data.X[i] != wantX[i] {
			t.Fatalf("X = %v, want %v", out.Data.X, wantX)
		}
	}
	if g := out.Data.Cat[0]; g[0] != 2 || g[1] != 0 || g[2] != 0 {
		t.Errorf("cat %v: out-of-range and negative indexes go to the unknown bucket 0", g)
	}
	if g := out.Data.Targets[0].Labels; g[0] != 1 || g[1] != 0 || g[2] != -1 {
		t.Errorf("labels %v, want [1 0 -1] (a null label is missing)", g)
	}
	if v := out.Data.Targets[1].Values; v[0] != 1 || v[1] != -1 || !math.IsNaN(float64(v[2])) {
		t.Errorf("standardised values %v, want [1 -1 NaN]", v)
	}
	if raw := out.Raw[1]; raw[0] != 12 || raw[1] != 8 {
		t.Errorf("raw %v", raw)
	}
	if ids := out.RowIDs; ids[0] != 5 || ids[2] != 9 {
		t.Errorf("row ids %v", ids)
	}
}

func TestTensorizeErrorsNameRowAndColumn(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	plan := &InputPlan{Numeric: []string{"a"}, Targets: []TargetPlan{{Column: "y", Task: TaskBinary, Labels: []string{"0", "1"}}},
		Schema: []ColumnEntry{{Name: "a"}}}
	for _, c := range []struct {
		name   string
		a      []float64
		nulls  []int
		y      []int64
		target bool
		col    string
		row    int64
		want   string
	}{
		{"null", []float64{1, 2}, []int{1}, []int64{0, 1}, false, "a", 8, "missing value"},
		{"NaN", []float64{math.NaN(), 2}, nil, []int64{0, 1}, false, "a", 7, "non-finite"},
		{"beyond float32", []float64{1, 1e308}, nil, []int64{0, 1}, false, "a", 8, "does not fit float32"},
		{"unknown label", []float64{1, 2}, nil, []int64{0, 3}, true, "y", 8, `label "3" is not in the training set`},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := record(t, mem, col{name: "a", vals: c.a, nulls: c.nulls}, col{name: "y", vals: c.y},
				col{name: "_row", role: schema.RoleID, vals: []int64{6, 7}})
			defer rec.Release()
			r := reader(t, rec)
			defer r.Release()
			_, err := plan.Tensorize(r, TensorizeOptions{Table: "val", Targets: c.target})
			var ce *ColumnError
			if !errors.As(err, &ce) || ce.Column != c.col || ce.Row != c.row || ce.Table != "val" || !strings.Contains(ce.Msg, c.want) {
				t.Errorf("error %v, want table val, column %s, row %d, %q", err, c.col, c.row, c.want)
			}
		})
	}
}

func TestTensorizeMissingColumnsAndEmpty(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	plan := &InputPlan{Numeric: []string{"a", "b", "c"}, Schema: []ColumnEntry{{Name: "a"}, {Name: "b"}, {Name: "c"}}}
	rec := record(t, mem, col{name: "a", vals: []float64{1}})
	defer rec.Release()
	r := reader(t, rec)
	defer r.Release()
	_, err := plan.Tensorize(r, TensorizeOptions{})
	if err == nil || !strings.Contains(err.Error(), "2 input column(s)") || !strings.Contains(err.Error(), "b, c") {
		t.Errorf("missing columns: %v (want both named)", err)
	}
	empty := record(t, mem, col{name: "a", vals: []float64{}}, col{name: "b", vals: []float64{}}, col{name: "c", vals: []float64{}})
	defer empty.Release()
	r2 := reader(t, empty)
	defer r2.Release()
	if _, err := plan.Tensorize(r2, TensorizeOptions{Table: "test"}); err == nil || !strings.Contains(err.Error(), "test: the table is empty") {
		t.Errorf("empty table: %v", err)
	}
}

// TestTensorizeAppliesPre checks that the Pre hook's output, not its input, is read, and
// that what it returns is released (the checked allocator would see a leak).
func TestTensorizeAppliesPre(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	plan := &InputPlan{Numeric: []string{"a"}, Schema: []ColumnEntry{{Name: "a"}}}
	rec := record(t, mem, col{name: "a", vals: []float64{1, 2}})
	defer rec.Release()
	r := reader(t, rec)
	defer r.Release()
	sh := newShift("a", 100)
	out, err := plan.Tensorize(r, TensorizeOptions{Pre: func(b arrow.RecordBatch) (arrow.RecordBatch, error) {
		return sh.Apply(context.Background(), mem, b)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Data.X[0] != 101 || out.Data.X[1] != 102 {
		t.Errorf("X %v, want the shifted values", out.Data.X)
	}
}
