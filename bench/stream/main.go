package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/stages"
)

const (
	features = 50
	classes  = 4
	batch    = 65536
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: stream gen|run [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "run":
		err = run(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: gen or run", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stream:", err)
		os.Exit(1)
	}
}

func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	dir := fs.String("dir", "", "output directory")
	rows := fs.Int("rows", 1_000_000, "training rows")
	_ = fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("gen: -dir is required")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	// The class is the argmax of classes fixed random projections of the features, plus noise:
	// a linear-ish problem an MLP learns to about 90%.
	w := make([]float64, classes*features)
	wr := rand.New(rand.NewPCG(1, 2))
	for i := range w {
		w[i] = wr.NormFloat64()
	}
	for _, f := range []struct {
		name string
		rows int
		seed uint64
	}{{"train", *rows, 10}, {"val", 20000, 20}, {"test", 20000, 30}} {
		start := time.Now()
		if err := writeSplit(filepath.Join(*dir, f.name+".parquet"), f.rows, f.seed, w); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: %d rows in %.1fs\n", f.name, f.rows, time.Since(start).Seconds())
	}
	return nil
}

func writeSplit(path string, rows int, seed uint64, w []float64) error {
	fields := make([]arrow.Field, 0, features+1)
	for j := range features {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("f%02d", j), Type: arrow.PrimitiveTypes.Float32})
	}
	fields = append(fields, arrow.Field{Name: "target", Type: arrow.PrimitiveTypes.Int64})
	s := arrow.NewSchema(fields, nil)
	mem := memory.NewGoAllocator()
	done := 0
	return tableio.WriteFile(path, s, mem, func() (arrow.RecordBatch, error) {
		if done >= rows {
			return nil, nil
		}
		n := min(batch, rows-done)
		rng := rand.New(rand.NewPCG(seed, uint64(done)))
		x := make([][]float32, features)
		for j := range x {
			x[j] = make([]float32, n)
		}
		y := make([]int64, n)
		for i := range n {
			for j := range features {
				x[j][i] = float32(rng.NormFloat64())
			}
			best, bestV := 0, math.Inf(-1)
			for k := range classes {
				v := rng.NormFloat64() * 2
				for j := range features {
					v += w[k*features+j] * float64(x[j][i])
				}
				if v > bestV {
					best, bestV = k, v
				}
			}
			y[i] = int64(best)
		}
		cols := make([]arrow.Array, 0, features+1)
		for j := range features {
			b := array.NewFloat32Builder(mem)
			b.AppendValues(x[j], nil)
			cols = append(cols, b.NewArray())
			b.Release()
		}
		b := array.NewInt64Builder(mem)
		b.AppendValues(y, nil)
		cols = append(cols, b.NewArray())
		b.Release()
		rec := array.NewRecordBatch(s, cols, int64(n))
		for _, c := range cols {
			c.Release()
		}
		done += n
		return rec, nil
	})
}

const pipelineTOML = `
[pipeline]
name = "stream-bench"
seed = 1
memory_budget = %q

[stages.train_data]
kind = "parquet"
path = %q
limit = %d

[stages.val_data]
kind = "parquet"
path = %q

[stages.test_data]
kind = "parquet"
path = %q

[stages.model]
kind = "train"
train = "train_data"
val = "val_data"
target = "target"
task = "classification"
layers = [ { dense = 64 } ]
optimizer = { name = "adam", lr = 1e-3 }
batch_size = 256
epochs = %d
early_stopping = false

[stages.eval]
kind = "evaluate"
models = ["model.model"]
tables = ["test_data"]
`

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	dir := fs.String("dir", "", "the directory gen wrote")
	budget := fs.String("budget", "512MiB", "the run's memory_budget")
	limit := fs.Int("limit", 0, "train on the first rows only (0: all)")
	epochs := fs.Int("epochs", 1, "epochs")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	_ = fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("run: -dir is required")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	src := fmt.Sprintf(pipelineTOML, *budget, filepath.Join(abs, "train.parquet"), *limit,
		filepath.Join(abs, "val.parquet"), filepath.Join(abs, "test.parquet"), *epochs)
	reg := pipeline.NewRegistry()
	if err := stages.Register(reg); err != nil {
		return err
	}
	p, err := pipeline.Parse([]byte(src), "stream-bench.toml", abs, reg, pipeline.LoadOptions{})
	if err != nil {
		return err
	}
	runDir, err := os.MkdirTemp(abs, "run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(runDir)
	res, err := pipeline.Run(context.Background(), p, pipeline.RunOptions{Dir: runDir, Mem: memory.NewGoAllocator()})
	if err != nil {
		return err
	}
	m := res.Manifest
	model := m.Stages["model"]
	var acc float64
	for k, v := range m.Stages["eval"].Metrics {
		if strings.HasSuffix(k, "accuracy") {
			acc = v
		}
	}
	path := ""
	var reads any
	if dp, ok := model.Info["data_path_train"].(map[string]any); ok {
		path = fmt.Sprint(dp["path"])
		if dp["rows_read"] != nil {
			reads = map[string]any{"rows": dp["rows_read"], "system_calls": dp["read_system_calls"], "ahead": dp["rows_read_ahead"], "background": dp["rows_read_in_background"]}
		}
	}
	out := map[string]any{
		"budget": *budget, "rows": model.RowsIn, "epochs": *epochs, "data_path": path,
		"train_seconds": model.Seconds, "rows_per_second": float64(trainRows(m)) * float64(*epochs) / model.Seconds,
		"test_accuracy": acc, "peak_rss_bytes": peakRSS(), "peak_table_memory_bytes": m.PeakTableMem,
		"run_seconds": m.Seconds, "mapped_reads": reads,
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// trainRows is the rows the train stage trained on (its train input).
func trainRows(m *pipeline.Manifest) int64 { return m.Stages["train_data"].RowsOut }

// peakRSS is the process's peak resident set (VmHWM), in bytes; 0 where /proc is absent.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
