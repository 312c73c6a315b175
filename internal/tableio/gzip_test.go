package tableio_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/tableio"
)

// gzipBytes compresses b.
func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll opens path and reads it to the end; it returns the rows read and the error (of the
// open or of the read).
func readAll(t *testing.T, mem memory.Allocator, path string, opts tableio.CSVOptions) (int, error) {
	t.Helper()
	r, err := tableio.OpenFile(path, mem, opts)
	if err != nil {
		return 0, err
	}
	defer r.Release()
	got, err := drain(t, r)
	return len(got.rows), err
}

// TestDamagedGzipIsAFileError: a real .csv.gz cut short at several points, or with a corrupt
// byte, fails the read with a *CorruptFileError that names the file and says it is truncated
// or corrupt, whatever on_bad_row says: never a bad row, never a success on part of the file.
func TestDamagedGzipIsAFileError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	plain, err := os.ReadFile("../../datasets/data/credit_data/credit_data.csv")
	if err != nil {
		t.Fatal(err)
	}
	whole := gzipBytes(t, plain)
	dir := t.TempDir()
	intact := filepath.Join(dir, "intact.csv.gz")
	if err := os.WriteFile(intact, whole, 0o644); err != nil {
		t.Fatal(err)
	}
	wantRows := bytes.Count(plain, []byte("\n")) - 1
	type damage struct {
		name   string
		data   []byte
		reason string
	}
	var cases []damage
	for _, frac := range []float64{0.0001, 0.0005, 0.1, 0.5, 0.9} {
		cut := int(frac * float64(len(whole))) // 0.0001: inside the 10-byte gzip header
		cases = append(cases, damage{fmt.Sprintf("cut at %d of %d bytes", cut, len(whole)), whole[:cut], "truncated"})
	}
	// Inside the 8-byte trailer (CRC and size): every row is there, the end marker is not.
	cases = append(cases, damage{"cut in the trailer", whole[:len(whole)-3], "truncated"})
	for _, frac := range []float64{0.3, 0.6, 0.95} {
		at := int(frac * float64(len(whole)))
		b := bytes.Clone(whole)
		b[at] ^= 0x10
		cases = append(cases, damage{fmt.Sprintf("byte %d flipped", at), b, "corrupt"})
	}
	optsSets := []tableio.CSVOptions{
		{},
		{OnBadRow: tableio.OnBadRowSkip},
		{OnBadRow: tableio.OnBadRowSkip, SampleRows: 50, BatchRows: 200, Workers: 3},
		{SampleRows: 50, BatchRows: 200, Workers: 3},
	}
	n, err := readAll(t, mem, intact, tableio.CSVOptions{})
	if err != nil || n != wantRows {
		t.Fatalf("intact file: %d rows (want %d), %v", n, wantRows, err)
	}
	for _, c := range cases {
		path := filepath.Join(dir, "data.csv.gz")
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, opts := range optsSets {
			opts.Name = "data.csv.gz"
			name := fmt.Sprintf("%s/on_bad_row=%q/workers=%d", c.name, opts.OnBadRow, opts.Workers)
			n, err := readAll(t, mem, path, opts)
			var ce *tableio.CorruptFileError
			if !errors.As(err, &ce) {
				t.Errorf("%s: read %d rows, error %v; want a *CorruptFileError", name, n, err)
				continue
			}
			for _, want := range []string{"data.csv.gz", "truncated or corrupt", c.reason} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: error lacks %q: %v", name, want, err)
				}
			}
		}
	}
}

// TestBadGzipFiles: an empty .gz and a .gz that is plain text say what they are.
func TestBadGzipFiles(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	cases := []struct {
		name, data string
		want       []string
	}{
		{"empty", "", []string{"empty.csv.gz", "empty (0 bytes)"}},
		{"plain", "a,b\n1,2\n", []string{"plain.csv.gz", "not a gzip file", "rename"}},
		{"empty stream", string(gzipBytes(t, nil)), []string{"empty stream.csv.gz", "the input is empty"}},
		{"header only", string(gzipBytes(t, []byte("a,b\n"))), []string{"header only.csv.gz", "no data rows"}},
	}
	for _, c := range cases {
		path := filepath.Join(dir, c.name+".csv.gz")
		if err := os.WriteFile(path, []byte(c.data), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := readAll(t, mem, path, tableio.CSVOptions{})
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q: %v", c.name, w, err)
			}
		}
	}
}
