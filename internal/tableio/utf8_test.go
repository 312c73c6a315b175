package tableio_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/tableio"
)

// TestNonUTF8TextIsAnError: a Latin-1 byte in a string column is an error naming the file, the
// row and the column, in CSV (a bad row: on_bad_row = "skip" drops it), Parquet and Arrow IPC
// files alike; in a CSV header it is an error naming the column's position.
func TestNonUTF8TextIsAnError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "latin1.csv")
	if err := os.WriteFile(csvPath, []byte("x,city\n1,Paris\n2,Montr\xe9al\n3,Lyon\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := readAll(t, mem, csvPath, tableio.CSVOptions{Name: "latin1.csv"})
	var re *tableio.RowError
	if !errors.As(err, &re) || re.Row != 2 || re.Column != "city" {
		t.Fatalf("CSV: %v; want a *RowError at row 2, column city", err)
	}
	for _, want := range []string{"latin1.csv:3", "not UTF-8", "0xe9", "iconv"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("CSV error lacks %q: %v", want, err)
		}
	}
	n, err := readAll(t, mem, csvPath, tableio.CSVOptions{OnBadRow: tableio.OnBadRowSkip})
	if err != nil || n != 2 {
		t.Errorf("CSV with skip: %d rows, %v; want 2 rows", n, err)
	}
	if err := os.WriteFile(csvPath, []byte("x,caf\xe9\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = readAll(t, mem, csvPath, tableio.CSVOptions{Name: "latin1.csv"})
	if err == nil || !strings.Contains(err.Error(), "latin1.csv:1") || !strings.Contains(err.Error(), "column 2") || !strings.Contains(err.Error(), "not UTF-8") {
		t.Errorf("CSV header: %v", err)
	}

	// Parquet and IPC files holding the same text in their second batch (rows 4..6).
	sch := arrow.NewSchema([]arrow.Field{{Name: "city", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	for _, ext := range []string{".parquet", ".arrow"} {
		path := filepath.Join(dir, "latin1"+ext)
		w, err := tableio.NewWriter(path, sch, mem)
		if err != nil {
			t.Fatal(err)
		}
		for _, vals := range [][]string{{"Paris", "Lyon", "Nice"}, {"Metz", "Montr\xe9al", "Lille"}} {
			b := array.NewStringBuilder(mem)
			b.AppendValues(vals, nil)
			col := b.NewArray()
			b.Release()
			rec := array.NewRecordBatch(sch, []arrow.Array{col}, int64(col.Len()))
			col.Release()
			err := w.Write(rec)
			rec.Release()
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		_, err = readAll(t, mem, path, tableio.CSVOptions{BatchRows: 3})
		if err == nil {
			t.Errorf("%s: no error", ext)
			continue
		}
		for _, want := range []string{path, "row 5", `column "city"`, "not UTF-8"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error lacks %q: %v", ext, want, err)
			}
		}
		// A limit that stops before the bad row reads without error.
		if n, err := readAll(t, mem, path, tableio.CSVOptions{BatchRows: 3, Limit: 4}); err != nil || n != 4 {
			t.Errorf("%s limit 4: %d rows, %v", ext, n, err)
		}
	}
}
