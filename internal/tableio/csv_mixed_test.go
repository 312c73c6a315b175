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
		{name: "typo", text: rows(100, 37, "1O2"), warn: []string{"d.csv", `column "x"`, `"1O2"`, "row 37", "1 of its 100", "99 are", "float64"}},
		{name: "n/a", text: rows(40, 3, "n/a"), warn: []string{`column "x"`, `"n/a"`, "row 3"}},
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
