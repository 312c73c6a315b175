package stages

import (
	"context"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/schema"
)

// A column is ruled out of the row-id check, and its values freed, as soon as it cannot be
// an id; the verdict is LooksLikeRowID's on the whole column.
func TestIDCandidateDropsValuesEarly(t *testing.T) {
	ids := make([]float64, features.MinIDRows+10)
	for i := range ids {
		ids[i] = float64(i * 3)
	}
	cases := []struct {
		name          string
		vals          []float64
		integerOrigin bool
	}{
		{"ids", ids, false},
		{"repeat", append([]float64{0, 0}, ids...), false},
		{"fraction", append([]float64{0.5}, ids...), false},
		{"fraction_integer_origin", append([]float64{0.5}, ids...), true},
	}
	for _, tc := range cases {
		c := &idCandidate{integerOrigin: tc.integerOrigin}
		half := len(tc.vals) / 2
		c.add(tc.vals[:half])
		c.add(tc.vals[half:])
		want := features.LooksLikeRowID(tc.vals, tc.integerOrigin)
		got := !c.out && features.LooksLikeRowID(c.values, c.integerOrigin)
		if got != want {
			t.Errorf("%s: id %v, LooksLikeRowID on all values says %v", tc.name, got, want)
		}
		if c.out && (c.values != nil || c.seen != nil) {
			t.Errorf("%s: ruled out but %d values kept", tc.name, len(c.values))
		}
		if tc.name == "repeat" && (!c.out || len(c.values) != 0) {
			t.Errorf("repeat: out %v with %d values, want ruled out at the repeat", c.out, len(c.values))
		}
	}
}

// The check stops reading the table once every candidate column is ruled out: a table
// spilled beyond the memory budget is not read back whole for it. The table here is never
// closed, so reading past its first batch would wait until the deadline.
func TestIDCheckStopsWhenAllRuledOut(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := arrow.NewSchema([]arrow.Field{
		schema.WithRole(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Float64}, schema.RoleFeature),
		schema.WithRole(arrow.Field{Name: "b", Type: arrow.PrimitiveTypes.Float64}, schema.RoleFeature),
	}, nil)
	tab := pipeline.NewTable("src.out", s, mem, 0, "")
	defer tab.Release()
	var cols []arrow.Array
	for _, vals := range [][]float64{{0.5, 1, 2}, {1, 1, 3}} { // a fraction; a repeat
		b := array.NewFloat64Builder(mem)
		b.AppendValues(vals, nil)
		cols = append(cols, b.NewArray())
		b.Release()
	}
	rec := array.NewRecordBatch(s, cols, 3)
	for _, c := range cols {
		c.Release()
	}
	if err := tab.Append(rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sc := &pipeline.StageContext{Name: "model"}
	if err := warnIDColumns(ctx, sc, tab, []string{"a", "b"}); err != nil {
		t.Fatalf("the check read past the batch that ruled every column out: %v", err)
	}
}
