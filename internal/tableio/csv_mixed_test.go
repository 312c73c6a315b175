package tableio_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/tableio"
)

// TestMostlyNumericColumnWarns: a column whose sampled values are numbers but for a stray
// text (a typo, "n/a") is read as string, as declared-free inference must, and the reader
// warns, naming the file, the column, the first such value and its row; a text column, a
// column declared in schema and a column with many texts do not warn.
func TestMostlyNumericColumnWarns(t *testing.T) {
	rows := func(n int, at int, bad string) string {
		var b strings.Builder
		b.WriteString("x,name\n")
		for i := range n {
			v := fmt.Sprint(i)
			if i == at {
				v = bad
			}
			fmt.Fprintf(&b, "%s,n%d\n", v, i)
		}
		return b.String()
	}
	cases := []struct {
		name, text string
		schema     *arrow.Schema
		warn       []string // all in the one warning; nil for no warning
	}{
		{name: "typo", text: rows(100, 37, "1O2"), warn: []string{"d.csv", `column "x"`, `"1O2"`, "row 38", "1 of its 100", "99 are", "float64"}},
		{name: "n/a", text: rows(40, 3, "n/a"), warn: []string{`column "x"`, `"n/a"`, "row 4"}},
		{name: "all numbers", text: rows(100, -1, "")},
		{name: "declared string", text: rows(100, 37, "1O2"), schema: arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)},
		{name: "many texts", text: "x\n1\na\n2\nb\n3\nc\n4\n5\n6\n7\n8\n9\n10\n"},
		{name: "few values", text: "x\n1\n2\nq\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			r, err := tableio.NewCSVReader(strings.NewReader(c.text), mem, tableio.CSVOptions{Name: "d.csv", Schema: c.schema})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Release()
			if c.schema == nil && c.warn != nil {
				if typ := r.Schema().Field(0).Type; typ.ID() != arrow.STRING {
					t.Errorf("column x read as %s, want string", typ)
				}
			}
			w := r.Warnings()
			if c.warn == nil {
				if len(w) != 0 {
					t.Errorf("unexpected warnings: %q", w)
				}
				return
			}
			if len(w) != 1 {
				t.Fatalf("want one warning, got %q", w)
			}
			for _, s := range c.warn {
				if !strings.Contains(w[0], s) {
					t.Errorf("warning %q does not say %q", w[0], s)
				}
			}
		})
	}
}

// TestRowErrorHintsNameTheStage: a bad value's hint names the schema table and on_bad_row
// of the stage that reads the file; for an input no stage reads (pipe predict's), it says
// to fix or remove the row and names neither.
func TestRowErrorHintsNameTheStage(t *testing.T) {
	text := "x\n1\n2\n3\nabc\n"
	for _, c := range []struct {
		stage       string
		want, never []string
	}{
		{stage: "raw", want: []string{"[stages.raw.schema]", `on_bad_row = "skip"`}, never: []string{"[stages.load"}},
		{stage: "", want: []string{"Fix the value", "remove the row from the input"}, never: []string{"[stages.", "on_bad_row", "schema"}},
	} {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		r, err := tableio.NewCSVReader(strings.NewReader(text), mem, tableio.CSVOptions{Name: "d.csv", Stage: c.stage, SampleRows: 2})
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
		}
		err = r.Err()
		r.Release()
		mem.AssertSize(t, 0)
		if err == nil {
			t.Fatalf("stage %q: no error for abc in an int64 column", c.stage)
		}
		for _, s := range c.want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("stage %q: %q does not say %q", c.stage, err, s)
			}
		}
		for _, s := range c.never {
			if strings.Contains(err.Error(), s) {
				t.Errorf("stage %q: %q says %q", c.stage, err, s)
			}
		}
	}
}
