package bundle

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/schema"
)

// TestInferTask pins the task rule at its boundaries.
func TestInferTask(t *testing.T) {
	for _, c := range []struct {
		numeric, float bool
		distinct       int
		rows           int64
		want           string
	}{
		{false, false, 3, 10, TaskClassification},
		{false, false, 2, 10, TaskBinary},
		{true, true, 3, 100, TaskRegression},       // a float target is never classes
		{true, true, 2, 100, TaskRegression},       // not even with two values
		{true, false, 50, 100, TaskClassification}, // 50 values, 2 rows each: classes
		{true, false, 51, 1000, TaskRegression},    // above MaxClassesAuto
		{true, false, 50, 99, TaskRegression},      // fewer than 2 rows per value
		{true, false, 2, 3, TaskBinary},            // tiny tables: rows count as at least 4
		{true, false, 3, 5, TaskRegression},
	} {
		if got := InferTask(c.numeric, c.float, c.distinct, c.rows); got != c.want {
			t.Errorf("InferTask(numeric=%v, float=%v, distinct=%d, rows=%d) = %s, want %s", c.numeric, c.float, c.distinct, c.rows, got, c.want)
		}
	}
}

func TestPlanDecidesInputsAndTargets(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	n := 40
	x, cls, reg, ids := make([]float64, n), make([]int64, n), make([]float64, n), make([]int64, n)
	flags, cat := make([]bool, n), make([]int32, n)
	for i := range n {
		x[i] = float64(i)
		cls[i] = int64([]int{9, 10, 2}[i%3]) // numeric sort must put 10 after 9
		reg[i] = float64(i) * 0.5
		ids[i] = int64(i)
		flags[i] = i%2 == 0
		cat[i] = int32(i % 4)
	}
	rec := record(t, mem,
		col{name: "x", vals: x},
		col{name: "flag", vals: flags},
		col{name: "job", vals: cat, meta: map[string]string{schema.KeyCardinality: "5"}},
		col{name: "y", role: schema.RoleTarget, vals: cls},
		col{name: "z", role: schema.RoleTarget, vals: reg, nulls: []int{3}},
		col{name: "_row", role: schema.RoleID, vals: ids},
	)
	defer rec.Release()
	r := reader(t, rec)
	defer r.Release()
	plan, err := Plan(r, PlanOptions{Table: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(plan.Numeric, ",") != "x,flag" || len(plan.Categorical) != 1 || plan.Categorical[0] != (CatInput{"job", 5}) {
		t.Errorf("inputs: numeric %v, categorical %v", plan.Numeric, plan.Categorical)
	}
	if len(plan.Targets) != 2 {
		t.Fatalf("targets %v", plan.Targets)
	}
	y, z := plan.Targets[0], plan.Targets[1]
	if y.Task != TaskClassification || strings.Join(y.Labels, ",") != "2,9,10" || !y.Integer || y.Head != "y" {
		t.Errorf("y: %+v", y)
	}
	// z's statistics skip the null row (3), computed independently here.
	var sum, sq float64
	var cnt float64
	for i, v := range reg {
		if i == 3 {
			continue
		}
		sum += v
		sq += v * v
		cnt++
	}
	mean := sum / cnt
	std := math.Sqrt(sq/cnt - mean*mean)
	if z.Task != TaskRegression || math.Abs(z.Mean-mean) > 1e-12 || math.Abs(z.Std-std) > 1e-9 {
		t.Errorf("z: %+v, want mean %v std %v", z, mean, std)
	}

	// Unsupervised: targets are left out and not read.
	r2 := reader(t, rec)
	defer r2.Release()
	up, err := Plan(r2, PlanOptions{Unsupervised: true})
	if err != nil || len(up.Targets) != 0 || len(up.Numeric) != 2 {
		t.Errorf("unsupervised plan %+v, %v", up, err)
	}
	// A single target gets the head "out"; a task override wins.
	r3 := reader(t, rec)
	defer r3.Release()
	one, err := Plan(r3, PlanOptions{Targets: []string{"y"}, Tasks: map[string]string{"y": TaskRegression}})
	if err != nil || one.Targets[0].Head != "out" || one.Targets[0].Task != TaskRegression {
		t.Errorf("override: %+v, %v", one.Targets, err)
	}
}

func TestPlanErrorsNameTheColumn(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := record(t, mem,
		col{name: "age", vals: []float64{1, 2, 3, 4}},
		col{name: "city", vals: []string{"a", "b", "a", "b"}},
		col{name: "y", role: schema.RoleTarget, vals: []float64{1, 2, 1e200, 4}},
		col{name: "_row", role: schema.RoleID, vals: []int64{10, 11, 12, 13}},
	)
	defer rec.Release()
	for _, c := range []struct {
		name string
		opts PlanOptions
		col  string
		row  int64
		want string
	}{
		{"string feature", PlanOptions{Features: []string{"city"}}, "city", 0, "encode it first"},
		{"misspelled feature", PlanOptions{Features: []string{"agee"}, Targets: []string{"y"}}, "agee", 0, `did you mean "age"?`},
		{"missing target", PlanOptions{Targets: []string{"label"}}, "label", 0, "target column not found"},
		// 1e200 does not fit float32: the error names its row (_row 12 → 13), not "no label".
		{"huge target", PlanOptions{Features: []string{"age"}}, "y", 13, "does not fit float32"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := reader(t, rec)
			defer r.Release()
			_, err := Plan(r, c.opts)
			var ce *ColumnError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ColumnError", err)
			}
			if ce.Column != c.col || ce.Row != c.row || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q: column %q row %d, want column %q row %d containing %q", err, ce.Column, ce.Row, c.col, c.row, c.want)
			}
		})
	}
}

func TestPlanSingleClassAndEmptyTarget(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	one := record(t, mem, col{name: "x", vals: []float64{1, 2}}, col{name: "y", role: schema.RoleTarget, vals: []string{"a", "a"}})
	defer one.Release()
	r := reader(t, one)
	defer r.Release()
	if _, err := Plan(r, PlanOptions{}); err == nil || !strings.Contains(err.Error(), "single class") {
		t.Errorf("single class: %v", err)
	}
	empty := record(t, mem, col{name: "x", vals: []float64{1, 2}}, col{name: "y", role: schema.RoleTarget, vals: []float64{0, 0}, nulls: []int{0, 1}})
	defer empty.Release()
	r2 := reader(t, empty)
	defer r2.Release()
	if _, err := Plan(r2, PlanOptions{}); err == nil || !strings.Contains(err.Error(), "no value") {
		t.Errorf("all-null target: %v", err)
	}
}
