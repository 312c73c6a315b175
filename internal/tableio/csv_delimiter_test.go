package tableio_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/tableio"
)

// TestDelimiterHints: a file read with the wrong delimiter gets a warning (a header that reads
// as one column holding another separator) or a hint in the error it causes, naming the
// delimiter to set; a file that mixes separators is told so.
func TestDelimiterHints(t *testing.T) {
	cases := []struct {
		name, text string
		delim      rune
		sample     int
		warn       string   // in Warnings(), "" for none
		errWant    []string // in the read's error, nil for none
	}{
		{name: "semicolon", text: "a;b;c\n1;2;3\n4;5;6\n", warn: `set delimiter = ";"`},
		{name: "tab", text: "a\tb\n1\t2\n", warn: `set delimiter = "\t"`},
		{name: "comma read as semicolon", text: "a,b\n1,2\n", delim: ';', warn: `set delimiter = ","`},
		{name: "decimal commas", text: "a;b\n1;2\n1,5;2,5\n", warn: `set delimiter = ";"`,
			errWant: []string{"row 2", "expected 1 fields, found 3", `set delimiter = ";"`}},
		{name: "mixed", text: "a,b,c\nx,y,z\nu;v;w\n", errWant: []string{"row 2", "expected 3 fields, found 1", `looks separated by ";"`, "mixes separators"}},
		{name: "mixed numbers", text: "a,b,c\n1,2,3\n4;5;6\n", errWant: []string{"row 2", `column "a"`, `"4;5;6"`, `set delimiter = ";"`, "one separator"}},
		{name: "decimal comma", text: "a;b\n1.5;2\n2,5;3\n", delim: ';', sample: 1, errWant: []string{"row 2", `"2,5"`, "decimal comma"}},
		{name: "right", text: "a,b\n1,2\n"},
		{name: "one column", text: "a\n1\n2\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			r, err := tableio.NewCSVReader(strings.NewReader(c.text), mem, tableio.CSVOptions{Delimiter: c.delim, SampleRows: c.sample, Name: "d.csv"})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Release()
			w := strings.Join(r.Warnings(), "\n")
			switch {
			case c.warn == "" && w != "":
				t.Errorf("unexpected warning: %s", w)
			case c.warn != "" && (!strings.Contains(w, c.warn) || !strings.Contains(w, "d.csv")):
				t.Errorf("warnings %q lack %q and the file name", w, c.warn)
			}
			_, err = drain(t, r)
			if c.errWant == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var re *tableio.RowError
			if !errors.As(err, &re) {
				t.Fatalf("error %v, want a *RowError", err)
			}
			for _, want := range c.errWant {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
		})
	}
}
