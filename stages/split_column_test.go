package stages

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeCSVWithSplit writes the rows of data (a CSV with a header) with one more column, split,
// holding splits[i] for data row i, to path.
func writeCSVWithSplit(t *testing.T, path string, data [][]string, splits []string) {
	t.Helper()
	if len(splits) != len(data)-1 {
		t.Fatalf("%d splits for %d rows", len(splits), len(data)-1)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	for i, row := range data {
		extra := "split"
		if i > 0 {
			extra = splits[i-1]
		}
		if err := w.Write(append(append([]string(nil), row...), extra)); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// irisWithSplit writes iris.csv with the shipped peer split as its column "split" into dir.
func irisWithSplit(t *testing.T, dir string) string {
	t.Helper()
	data := readCSV(t, "../datasets/data/iris/iris.csv")
	var splits []string
	for _, row := range readCSV(t, "../datasets/data/iris/iris.split.csv")[1:] {
		splits = append(splits, row[0])
	}
	path := filepath.Join(dir, "iris_split.csv")
	writeCSVWithSplit(t, path, data, splits)
	return path
}

// TestSplitColumnIsNotAFeature: a CSV's own split column used as split_column is not a model
// input: a model trained on the split tables scores a table that has no split column, and no
// categorical transform sees it.
func TestSplitColumnIsNotAFeature(t *testing.T) {
	dir := t.TempDir()
	irisWithSplit(t, dir)
	abs, err := filepath.Abs("../datasets/data/iris/iris.csv")
	if err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`
[pipeline]
seed = 3
[stages.load]
kind = "csv"
path = "iris_split.csv"
[stages.split]
kind = "split"
input = "load"
split_column = "split"
[stages.enc]
kind = "encode"
fit = "split.train"
apply = ["split.train", "split.val"]
[stages.scale]
kind = "normalize"
fit = "enc.train"
apply = ["enc.train", "enc.val"]
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 8 } ]
epochs = 2
[stages.raw]
kind = "csv"
path = %q
[stages.scores]
kind = "predict"
model = "model.model"
input = "raw"
`, abs)
	m, _, err := runTOML(t, dir, src)
	if err != nil {
		t.Fatalf("scoring a table without the split column: %v", err)
	}
	if n := m.Stages["enc"].Metrics["unknown_categories"]; n != 0 {
		t.Errorf("encode met %v unknown categories: it encoded the split column", n)
	}
	if notes := strings.Join(m.Stages["enc"].Notes, "\n"); !strings.Contains(notes, "no string, dictionary or bool feature column") {
		t.Errorf("encode found a categorical column to encode: %q", notes)
	}
	if got := m.Stages["scores"].RowsOut; got != 150 {
		t.Errorf("scored %d rows, want 150", got)
	}
	if got := m.Stages["split"].Metrics["train_rows"] + m.Stages["split"].Metrics["val_rows"] + m.Stages["split"].Metrics["test_rows"]; got != 150 {
		t.Errorf("split rows add up to %v, want 150", got)
	}
}

// TestSplitColumnAuditCountsDuplicates: the duplicate audit of a split read from a column
// equals the audit of pipe's own split on the same rows. The rows and the assignment come
// from a run of pipe's split (written as CSV files), then are read back as one CSV whose split
// column holds that assignment. iris reduced to its petal columns has many duplicates;
// credit_data is a real table as it is.
func TestSplitColumnAuditCountsDuplicates(t *testing.T) {
	cases := []struct{ name, ignore string }{
		{"iris", `["sepal_length_cm", "sepal_width_cm"]`},
		{"credit_data", `[]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			own := fmt.Sprintf(`
[pipeline]
seed = 11
[stages.load]
kind = "dataset"
name = %q
ignore = %s
[stages.split]
kind = "split"
input = "load"
`, c.name, c.ignore)
			for _, part := range []string{"train", "val", "test"} {
				own += fmt.Sprintf("[stages.save_%s]\nkind = \"write\"\ninput = \"split.%s\"\npath = %q\n", part, part, part+".csv")
			}
			m, runDir, err := runTOML(t, dir, own)
			if err != nil {
				t.Fatal(err)
			}
			want := m.Stages["split"].Metrics["duplicate_rows_across_splits"]
			if want < 1 {
				t.Fatalf("pipe's own split finds %v duplicates: the case tests nothing", want)
			}
			// One CSV: every split's rows, with the split as a column.
			var data [][]string
			var splits []string
			for _, part := range []string{"train", "val", "test"} {
				rows := readCSV(t, filepath.Join(runDir, "stages", "save_"+part, part+".csv"))
				if data == nil {
					data = rows[:1]
				} else if strings.Join(rows[0], ",") != strings.Join(data[0], ",") {
					t.Fatalf("headers differ: %v, %v", rows[0], data[0])
				}
				data = append(data, rows[1:]...)
				for range rows[1:] {
					splits = append(splits, part)
				}
			}
			writeCSVWithSplit(t, filepath.Join(dir, "all.csv"), data, splits)
			fromColumn := `
[stages.load]
kind = "csv"
path = "all.csv"
ignore = ["_row"]
[stages.split]
kind = "split"
input = "load"
split_column = "split"
`
			m, _, err = runTOML(t, dir, fromColumn)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Stages["split"].Metrics["duplicate_rows_across_splits"]; got != want {
				t.Errorf("split_column finds %v duplicates across splits, pipe's own split %v", got, want)
			}
			leak, _ := m.Run["leakage"].(map[string]any)
			if got := leak["duplicate_rows_across_splits"]; got != want {
				t.Errorf("the manifest's leakage audit says %v duplicates, want %v", got, want)
			}
		})
	}
}

// TestSplitColumnBadValues: a split value that names no split, or a null, is an error naming
// the stage, the row and the column, and says what to do.
func TestSplitColumnBadValues(t *testing.T) {
	cases := []struct {
		name, csv string
		want      []string
	}{
		{"unknown", "x,split\n1,train\n2,val\n3,validation\n", []string{`stage "split"`, "row 3", `column "split"`, `"validation"`, `did you mean "val"`}},
		{"case", "x,split\n1,Train\n", []string{"row 1", `"Train"`, `did you mean "train"`}},
		{"null", "x,split\n1,train\n2,\n3,test\n", []string{"row 2", `column "split"`, "null"}},
		{"target", "x,target\n1,train\n", []string{`column "target"`, "target role"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "d.csv"), []byte(c.csv), 0o644); err != nil {
				t.Fatal(err)
			}
			col := "split"
			if c.name == "target" {
				col = "target"
			}
			_, _, err := runTOML(t, dir, fmt.Sprintf("[stages.load]\nkind = \"csv\"\npath = \"d.csv\"\n[stages.split]\nkind = \"split\"\ninput = \"load\"\nsplit_column = %q\n", col))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}
