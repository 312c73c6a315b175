package tableio_test

import (
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/pipe-ml/pipe/internal/tableio"
)

// copyFile reads src with OpenFile and writes every batch to dst with WriteFile.
func copyFile(t *testing.T, mem memory.Allocator, src, dst string, opts tableio.CSVOptions) {
	t.Helper()
	r, err := tableio.OpenFile(src, mem, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	err = tableio.WriteFile(dst, r.Schema(), mem, func() (arrow.RecordBatch, error) {
		if !r.Next() {
			return nil, r.Err()
		}
		rec := r.RecordBatch()
		rec.Retain() // WriteFile releases what next returns
		return rec, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRoundTripCSVParquetIPCCSV(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	// A canonical CSV: what the CSV writer writes for these values, so the final file must
	// be byte-identical to it.
	original := "id,x,name,ok,y\n" +
		"1,0.1,plain,true,3\n" +
		"2,,\"a,b\",false,\n" +
		"3,-1.5e-07,\"say \"\"hi\"\"\",,1\n" +
		",1e+21,\"two\nlines\",true,2\n" +
		"5,3.141592653589793,\"\",false,0\n" +
		"6,2,\"NA\",true,4\n"
	src := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(src, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	role := arrow.NewMetadata([]string{"pipe.role"}, []string{"target"})
	declared := arrow.NewSchema([]arrow.Field{
		{Name: "name", Type: arrow.BinaryTypes.String},
		{Name: "y", Type: arrow.PrimitiveTypes.Int64, Metadata: role},
	}, nil)
	pq := filepath.Join(dir, "t.parquet")
	ipcPath := filepath.Join(dir, "t.arrow")
	out := filepath.Join(dir, "out.csv")
	copyFile(t, mem, src, pq, tableio.CSVOptions{Schema: declared, BatchRows: 4})
	copyFile(t, mem, pq, ipcPath, tableio.CSVOptions{BatchRows: 3})
	copyFile(t, mem, ipcPath, out, tableio.CSVOptions{})
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != original {
		t.Errorf("round trip changed the table:\n%s\nwant:\n%s", got, original)
	}
	for _, path := range []string{pq, ipcPath} {
		r, err := tableio.OpenFile(path, mem, tableio.CSVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := r.Schema()
		r.Release()
		var types []string
		for _, f := range s.Fields() {
			types = append(types, f.Type.String())
		}
		if strings.Join(types, ",") != "int64,float64,utf8,bool,int64" {
			t.Errorf("%s: types %v", filepath.Base(path), types)
		}
		y := s.Field(4)
		if i := y.Metadata.FindKey("pipe.role"); i < 0 || y.Metadata.Values()[i] != "target" {
			t.Errorf("%s: column y lost its role metadata: %v", filepath.Base(path), y)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("directory holds %d files, want 4 (no temporary files)", len(entries))
	}
}

func TestOpenFileLimitAndGzip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("a,b\n")
	for i := 0; i < 1000; i++ {
		b.WriteString("1,2.5\n")
	}
	gz := filepath.Join(dir, "t.csv.gz")
	f, err := os.Create(gz)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write([]byte(b.String()))
	zw.Close()
	f.Close()
	pq := filepath.Join(dir, "t.parquet")
	ipcPath := filepath.Join(dir, "t.feather")
	copyFile(t, mem, gz, pq, tableio.CSVOptions{BatchRows: 300})
	copyFile(t, mem, pq, ipcPath, tableio.CSVOptions{BatchRows: 300})
	for _, path := range []string{gz, pq, ipcPath} {
		for _, limit := range []int64{0, 1, 450} {
			r, err := tableio.OpenFile(path, mem, tableio.CSVOptions{Limit: limit, BatchRows: 300})
			if err != nil {
				t.Fatal(err)
			}
			got, err := drain(t, r)
			r.Release()
			if err != nil {
				t.Fatal(err)
			}
			want := limit
			if want == 0 {
				want = 1000
			}
			if int64(len(got.rows)) != want || got.rows[0][1] != "2.5" {
				t.Errorf("%s limit %d: %d rows (first %v), want %d", filepath.Base(path), limit, len(got.rows), got.rows[0], want)
			}
		}
	}
}

func TestOpenFileErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.csv")
	_, err := tableio.OpenFile(missing, mem, tableio.CSVOptions{})
	if err == nil || !strings.Contains(err.Error(), "table file "+missing+" does not exist: check the path") {
		t.Errorf("missing file: %v", err)
	}
	_, err = tableio.OpenFile(filepath.Join(dir, "t.xlsx"), mem, tableio.CSVOptions{})
	if err == nil || !strings.Contains(err.Error(), "must end in .csv, .csv.gz, .parquet, .arrow, .ipc or .feather") {
		t.Errorf("unknown extension: %v", err)
	}
	bad := filepath.Join(dir, "bad.parquet")
	os.WriteFile(bad, []byte("not parquet"), 0o644)
	if _, err = tableio.OpenFile(bad, mem, tableio.CSVOptions{}); err == nil || !strings.Contains(err.Error(), "not a readable Parquet file") {
		t.Errorf("bad parquet: %v", err)
	}
	// A CSV error names the path.
	csvPath := filepath.Join(dir, "bad.csv")
	os.WriteFile(csvPath, []byte("a\nx\n"), 0o644)
	s := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64}}, nil)
	r, err := tableio.OpenFile(csvPath, mem, tableio.CSVOptions{Schema: s})
	if err != nil {
		t.Fatal(err)
	}
	_, err = drain(t, r)
	r.Release()
	if err == nil || !strings.HasPrefix(err.Error(), csvPath+":2: row 1, column \"a\"") {
		t.Errorf("csv error does not name the file: %v", err)
	}
}

func TestWriterAtomic(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64}}, nil)
	for _, ext := range []string{".csv", ".csv.gz", ".parquet", ".arrow"} {
		t.Run(ext, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			dir := t.TempDir()
			path := filepath.Join(dir, "out"+ext)
			rec := func() arrow.RecordBatch {
				r, err := tableio.NewCSVReader(strings.NewReader("a\n1\n2\n"), mem, tableio.CSVOptions{Schema: schema})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Release()
				r.Next()
				rec := r.RecordBatch()
				rec.Retain()
				return rec
			}()
			defer rec.Release()

			// Abort: nothing anywhere.
			w, err := tableio.NewWriter(path, schema, mem)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(rec); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "out"+ext+".tmp-") {
				t.Fatalf("while writing, directory holds %v, want one temporary file", entries)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("final path exists before Close")
			}
			w.Abort()
			w.Abort()
			if entries, _ = os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("after Abort, directory holds %v", entries)
			}

			// A failing producer: nothing anywhere.
			err = tableio.WriteFile(path, schema, mem, func() (arrow.RecordBatch, error) {
				return nil, errors.New("upstream failed")
			})
			if err == nil || !strings.Contains(err.Error(), "upstream failed") {
				t.Fatalf("WriteFile error = %v", err)
			}
			if entries, _ = os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("after a failed WriteFile, directory holds %v", entries)
			}

			// Close: exactly the final file, which reads back.
			w, err = tableio.NewWriter(path, schema, mem)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(rec); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			w.Abort() // no effect after Close
			if entries, _ = os.ReadDir(dir); len(entries) != 1 || entries[0].Name() != "out"+ext {
				t.Fatalf("after Close, directory holds %v", entries)
			}
			r, err := tableio.OpenFile(path, mem, tableio.CSVOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := drain(t, r)
			r.Release()
			if err != nil || rowsText(got.rows) != "1\n2\n" {
				t.Errorf("read back %q, %v", rowsText(got.rows), err)
			}
		})
	}
}
