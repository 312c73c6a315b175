package bundle

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestPredictKeepsColumnsAndReports(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b, _, raw := savedBundle(t, mem)
	raw.Release()
	// Raw rows without _row, with an id column and a negative a (counted by the shift step).
	in := record(t, mem, col{name: "id", vals: []string{"u1", "u2", "u3"}}, col{name: "a", vals: []float64{-1, 2, -3}},
		col{name: "b", vals: []float64{0, 0, 0}})
	defer in.Release()
	r := reader(t, in)
	defer r.Release()
	var ids []string
	var rows []int64
	var header []string
	rep, err := Predict(context.Background(), b, r, mem, PredictOptions{Keep: []string{"id"}}, func(out arrow.RecordBatch) error {
		for _, f := range out.Schema().Fields() {
			header = append(header, f.Name)
		}
		for i := 0; i < int(out.NumRows()); i++ {
			rows = append(rows, out.Column(0).(interface{ Value(int) int64 }).Value(i))
			ids = append(ids, out.Column(1).ValueStr(i))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(header, ",") != "_row,id,y_pred,y_prob_p,y_prob_q,y_prob_r" {
		t.Errorf("header %v", header)
	}
	if strings.Join(ids, ",") != "u1,u2,u3" || rows[0] != 0 || rows[2] != 2 {
		t.Errorf("kept ids %v, rows %v", ids, rows)
	}
	if rep.Rows != 3 || rep.Unknown["a"] != 2 {
		t.Errorf("report %+v, want 3 rows and 2 unknown in a", rep)
	}
	if !strings.Contains(rep.String(), "a: 2") {
		t.Errorf("report text %q", rep.String())
	}
}

func TestPredictRefusals(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b, _, raw := savedBundle(t, mem)
	raw.Release()
	lacking := record(t, mem, col{name: "id", vals: []string{"u1"}}, col{name: "aa", vals: []float64{1}})
	defer lacking.Release()
	r := reader(t, lacking)
	_, err := Predict(context.Background(), b, r, mem, PredictOptions{}, func(arrow.RecordBatch) error { return nil })
	r.Release()
	// Every missing column is named at once, with what the input has.
	if err == nil || !strings.Contains(err.Error(), `input: 2 of the 2 columns the model was trained on are missing: a, b`) || !strings.Contains(err.Error(), "the rows have: id, aa") {
		t.Errorf("missing columns: %v", err)
	}
	in := record(t, mem, col{name: "id", vals: []string{"u1"}}, col{name: "y_pred", vals: []string{"x"}}, col{name: "a", vals: []float64{1}}, col{name: "b", vals: []float64{1}})
	defer in.Release()
	for _, c := range []struct {
		keep []string
		want string
	}{
		{[]string{"idd"}, `keep: the input has no column "idd" (did you mean "id"?)`},
		{[]string{"y_pred"}, `clash`},
		{[]string{"id", "id"}, `listed twice`},
	} {
		r := reader(t, in)
		_, err := Predict(context.Background(), b, r, mem, PredictOptions{Keep: c.keep}, func(arrow.RecordBatch) error { return nil })
		r.Release()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("keep %v: error %v, want %q", c.keep, err, c.want)
		}
	}
}
