package tableio_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	arrowcsv "github.com/apache/arrow-go/v18/arrow/csv"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/internal/tableio"
)

// mnistCSV writes MNIST (70,000 rows: px0..px783 and target, integers) as CSV once, to a
// cache directory under os.TempDir, and returns its path and the schema to read it with.
func mnistCSV(b *testing.B) (string, *arrow.Schema) {
	b.Helper()
	fields := make([]arrow.Field, 0, 785)
	for p := 0; p < 784; p++ {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("px%d", p), Type: arrow.PrimitiveTypes.Int64, Nullable: true})
	}
	fields = append(fields, arrow.Field{Name: "target", Type: arrow.PrimitiveTypes.Int64, Nullable: true})
	schema := arrow.NewSchema(fields, nil)
	dir := filepath.Join(os.TempDir(), "pipe-bench")
	path := filepath.Join(dir, "mnist.csv")
	if st, err := os.Stat(path); err == nil && st.Size() > 100<<20 {
		return path, schema
	}
	if _, err := datasets.MNISTDir(""); err != nil {
		b.Skipf("MNIST idx files absent: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(b, 0)
	r, err := datasets.Open(context.Background(), "mnist", mem, datasets.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Release()
	err = tableio.WriteFile(path, schema, mem, func() (arrow.RecordBatch, error) {
		if !r.Next() {
			return nil, r.Err()
		}
		rec := r.RecordBatch()
		n := int(rec.NumRows())
		cols := make([]arrow.Array, 785)
		for j := 0; j < 785; j++ {
			ib := array.NewInt64Builder(mem)
			ib.Reserve(n)
			switch c := rec.Column(j).(type) {
			case *array.Float32:
				for i := 0; i < n; i++ {
					ib.UnsafeAppend(int64(c.Value(i)))
				}
			case *array.Int64:
				ib.AppendValues(c.Int64Values(), nil)
			}
			cols[j] = ib.NewArray()
			ib.Release()
		}
		out := array.NewRecordBatch(schema, cols, int64(n))
		for _, c := range cols {
			c.Release()
		}
		return out, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return path, schema
}

// BenchmarkCSVIngest reads MNIST as CSV (~128 MB, 70,000 rows x 785 integer columns) from
// the page cache; MB/s is input bytes per second.
func BenchmarkCSVIngest(b *testing.B) {
	path, schema := mnistCSV(b)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, read func(f *os.File, mem memory.Allocator) int64) {
		b.SetBytes(st.Size())
		b.ReportAllocs()
		var rows int64
		cpu0 := cpuSeconds()
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			rows = read(f, mem)
			f.Close()
			mem.AssertSize(b, 0)
		}
		if rows != 70000 {
			b.Fatalf("read %d rows, want 70000", rows)
		}
		b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		// Throughput per CPU-second (user+system, whole process) is steadier than MB/s on a
		// shared machine, where the wall clock includes time the process was not running.
		b.ReportMetric(float64(st.Size())*float64(b.N)/1e6/(cpuSeconds()-cpu0), "MB/cpu-s")
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("pipe/workers=%d", workers), func(b *testing.B) {
			run(b, func(f *os.File, mem memory.Allocator) int64 {
				r, err := tableio.NewCSVReader(f, mem, tableio.CSVOptions{Schema: schema, Workers: workers})
				if err != nil {
					b.Fatal(err)
				}
				defer r.Release()
				var n int64
				for r.Next() {
					n += r.RecordBatch().NumRows()
				}
				if err := r.Err(); err != nil {
					b.Fatal(err)
				}
				return n
			})
		})
	}
	b.Run("arrow-go-csv", func(b *testing.B) {
		run(b, func(f *os.File, mem memory.Allocator) int64 {
			r := arrowcsv.NewReader(f, schema, arrowcsv.WithHeader(true), arrowcsv.WithChunk(tableio.DefaultBatchRows), arrowcsv.WithAllocator(mem))
			defer r.Release()
			var n int64
			for r.Next() {
				n += r.RecordBatch().NumRows()
			}
			if err := r.Err(); err != nil {
				b.Fatal(err)
			}
			return n
		})
	})
}

// cpuSeconds is the user+system CPU time of the process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkCSVInfer measures opening MNIST as CSV without a schema: reading the header and
// inferring 785 column types from the default 10,000-row sample (~18 MB).
func BenchmarkCSVInfer(b *testing.B) {
	path, _ := mnistCSV(b)
	b.ReportAllocs()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		r, err := tableio.NewCSVReader(f, mem, tableio.CSVOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if r.Schema().Field(0).Type.ID() != arrow.INT64 {
			b.Fatalf("px0 inferred as %s", r.Schema().Field(0).Type)
		}
		r.Release()
		f.Close()
		mem.AssertSize(b, 0)
	}
	b.ReportMetric(float64(tableio.DefaultSampleRows)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkParquetWrite writes MNIST's first 16,384 rows (784 float32 pixel columns, the
// target and the row id, as the dataset stage makes them) to a Parquet file the way every
// stage output is written; MB/s is the in-memory Arrow bytes written per second, and file_MB
// the file's size.
func BenchmarkParquetWrite(b *testing.B) {
	if _, err := datasets.MNISTDir(""); err != nil {
		b.Skipf("MNIST idx files absent: %v", err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(b, 0)
	r, err := datasets.Open(context.Background(), "mnist", mem, datasets.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if !r.Next() {
		b.Fatalf("no MNIST batch: %v", r.Err())
	}
	rec := r.RecordBatch()
	rec.Retain()
	defer rec.Release()
	r.Release()
	var bytes int64
	for _, c := range rec.Columns() {
		for _, buf := range c.Data().Buffers() {
			if buf != nil {
				bytes += int64(buf.Len())
			}
		}
	}
	path := filepath.Join(b.TempDir(), "out.parquet")
	b.SetBytes(bytes)
	var size int64
	for b.Loop() {
		done := false
		err := tableio.WriteFile(path, rec.Schema(), mem, func() (arrow.RecordBatch, error) {
			if done {
				return nil, nil
			}
			done = true
			rec.Retain()
			return rec, nil
		})
		if err != nil {
			b.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		size = st.Size()
	}
	b.ReportMetric(float64(rec.NumRows())*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(size)/1e6, "file_MB")
}
