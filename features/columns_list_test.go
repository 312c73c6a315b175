package features

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestLongColumnListsAreCut: an error about a table's columns lists the first 20 and counts
// the rest.
func TestLongColumnListsAreCut(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	var cols []testColumn
	for i := range 30 {
		cols = append(cols, testColumn{name: fmt.Sprintf("c%02d", i), f64: []float64{1, 2}})
	}
	rec := makeRecord(t, mem, "train", cols...)
	defer rec.Release()
	// A listed column that is absent; an encode of listed columns on a numeric table.
	for name, f := range map[string]Fitter{
		"normalize": NewNormalizeFitter(NormalizeOptions{Columns: []string{"nope"}}),
		"impute":    NewImputeFitter(ImputeOptions{Columns: []string{"nope"}}),
	} {
		err := f.Observe(rec)
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		if !strings.Contains(err.Error(), "c19, ... (and 10 more)") || strings.Contains(err.Error(), "c20") {
			t.Errorf("%s: the column list is not cut after 20 names: %v", name, err)
		}
	}
	if got := columnList([]string{"a", "b"}); got != "a, b" {
		t.Errorf("short list: %q", got)
	}
}

// TestEncodeWithoutCategoricalColumnsIsANoOp: encode on a table with no categorical feature
// column fits a transform that passes batches through unchanged and says so in its notes;
// it survives a save and load; listing a column that is not categorical is still an error.
func TestEncodeWithoutCategoricalColumnsIsANoOp(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	rec := makeRecord(t, mem, "train", rowColumn(0, 1), testColumn{name: "x", f64: []float64{1, 2}},
		testColumn{name: "y", role: "target", str: []string{"a", "b"}})
	defer rec.Release()
	f := NewEncodeFitter(EncodeOptions{})
	if err := f.Observe(rec); err != nil {
		t.Fatal(err)
	}
	tr, err := f.Finish()
	if err != nil {
		t.Fatal(err)
	}
	notes := tr.(interface{ Notes() []string }).Notes()
	if len(notes) != 1 || !strings.Contains(notes[0], "no string, dictionary or bool feature column") {
		t.Errorf("notes %v", notes)
	}
	b, err := Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unmarshal(b)
	if err != nil {
		t.Fatalf("a no-op encode does not load back: %v", err)
	}
	for _, x := range []Transform{tr, back} {
		out, err := x.Apply(context.Background(), mem, rec)
		if err != nil {
			t.Fatal(err)
		}
		if !out.Schema().Equal(rec.Schema()) || out.NumRows() != 2 || out.Column(1) != rec.Column(1) {
			t.Errorf("the no-op changed the batch: %v", out.Schema())
		}
		out.Release()
	}
	f = NewEncodeFitter(EncodeOptions{Columns: []string{"x"}})
	if err := f.Observe(rec); err == nil || !strings.Contains(err.Error(), `column "x"`) {
		t.Errorf("listing a numeric column: %v", err)
	}
}
