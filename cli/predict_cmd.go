package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/pipeline"
)

// csvTypes maps the type names a bundle records for its input columns to the CSV reader's
// types.
var csvTypes = map[string]arrow.DataType{
	"int64": arrow.PrimitiveTypes.Int64, "int32": arrow.PrimitiveTypes.Int32, "float64": arrow.PrimitiveTypes.Float64,
	"float32": arrow.PrimitiveTypes.Float32, "bool": arrow.FixedWidthTypes.Boolean, "utf8": arrow.BinaryTypes.String,
}

const predictUsage = "usage: pipe predict --model BUNDLE --input FILE --output FILE [--keep col1,col2]"

func (a *app) cmdPredict(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("predict", stderr)
	model := fs.String("model", "", "the bundle: stages/<name>/bundle of a run, that stage's directory, or a run directory with one bundle")
	input := fs.String("input", "", "the rows to score: .csv, .csv.gz, .parquet or .arrow")
	output := fs.String("output", "", "where to write the predictions: .csv, .parquet or .arrow (a new file, not the input)")
	keep := fs.String("keep", "", "input columns to copy into the output after _row, comma-separated (ids to join the predictions back)")
	if _, err := parseInterspersed(fs, args); err != nil || *model == "" || *input == "" || *output == "" {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, predictUsage)
		return pipeline.ExitConfig
	}
	if msg := checkPredictPaths(*input, *output); msg != "" {
		fmt.Fprintf(stderr, "pipe predict: %s\n", msg)
		return pipeline.ExitConfig
	}
	dec, err := a.decoders()
	if err != nil {
		fmt.Fprintf(stderr, "pipe predict: %v\n", err)
		return pipeline.ExitConfig
	}
	p, err := bundle.Load(*model, dec)
	if err != nil {
		fmt.Fprintf(stderr, "pipe predict: %v\n", err)
		return pipeline.ExitConfig
	}
	if p.Base().Meta.Partial {
		fmt.Fprintln(stderr, "pipe predict: warning: this bundle holds the best-so-far weights of an interrupted training (partial)")
	}
	opts := bundle.PredictOptions{Table: *input}
	if *keep != "" {
		for _, k := range strings.Split(*keep, ",") {
			if k = strings.TrimSpace(k); k != "" {
				opts.Keep = append(opts.Keep, k)
			}
		}
	}
	mem := memory.DefaultAllocator
	r, err := tableio.OpenFile(*input, mem, tableio.CSVOptions{Name: *input, TypeHints: inputTypes(p)})
	if err != nil {
		fmt.Fprintf(stderr, "pipe predict: %v\n", err)
		return pipeline.ExitFailed
	}
	defer r.Release()
	outSchema, err := bundle.OutputSchema(p, r.Schema(), opts)
	if err == nil {
		err = p.Base().CheckInput(r.Schema())
	}
	if err != nil {
		fmt.Fprintf(stderr, "pipe predict: %s: %v\n", *input, err)
		return pipeline.ExitFailed
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	w, err := tableio.NewWriter(*output, outSchema, mem)
	if err != nil {
		fmt.Fprintf(stderr, "pipe predict: %v\n", err)
		return pipeline.ExitFailed
	}
	rep, err := bundle.Predict(ctx, p, r, mem, opts, w.Write)
	if err != nil {
		w.Abort()
		fmt.Fprintf(stderr, "pipe predict: %v\n", err)
		if ctx.Err() != nil {
			return pipeline.ExitCanceled
		}
		return pipeline.ExitFailed
	}
	if err := w.Close(); err != nil {
		fmt.Fprintf(stderr, "pipe predict: %v\n", err)
		return pipeline.ExitFailed
	}
	for col, n := range rep.Unknown {
		fmt.Fprintf(stderr, "pipe predict: warning: column %q: %d row(s) have a category not seen in training (scored as the unknown category)\n", col, n)
	}
	fmt.Fprintf(stdout, "predicted %d rows: %s\n", rep.Rows, *output)
	return 0
}

// checkPredictPaths refuses an output that would destroy the input or cannot be a file.
func checkPredictPaths(input, output string) string {
	if st, err := os.Stat(output); err == nil && st.IsDir() {
		return fmt.Sprintf("--output %s is a directory; give the path of a new file", output)
	}
	if _, _, err := tableio.FormatOf(output); err != nil {
		return fmt.Sprintf("--output: %v", err)
	}
	if sameFile(input, output) {
		return fmt.Sprintf("--output %s is the input file; writing it would destroy the rows being scored: choose another path", output)
	}
	return ""
}

// sameFile reports whether two paths name the same file (the same path, or links to one).
func sameFile(a, b string) bool {
	aa, errA := filepath.Abs(a)
	bb, errB := filepath.Abs(b)
	if errA == nil && errB == nil && filepath.Clean(aa) == filepath.Clean(bb) {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// inputTypes gives the CSV reader the types the model was trained on. A column the network
// reads as a number is read as float64 whatever its training type, so that 37.5 in a column
// that held only integers in training is scored rather than refused; other columns (strings,
// categories) keep their training type.
func inputTypes(p bundle.Predictor) map[string]arrow.DataType {
	numeric := p.InputPlan().Numeric
	out := map[string]arrow.DataType{}
	for _, c := range p.Base().Meta.Input {
		t, ok := csvTypes[c.Type]
		if !ok {
			continue
		}
		if slices.Contains(numeric, c.Name) && (t.ID() == arrow.INT64 || t.ID() == arrow.INT32) {
			t = arrow.PrimitiveTypes.Float64
		}
		out[c.Name] = t
	}
	return out
}

func (a *app) cmdSummary(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, "usage: pipe summary BUNDLE|STAGE_DIR|RUN_DIR")
		return 0
	}
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: pipe summary BUNDLE|STAGE_DIR|RUN_DIR")
		return pipeline.ExitConfig
	}
	dec, err := a.decoders()
	if err != nil {
		fmt.Fprintf(stderr, "pipe summary: %v\n", err)
		return pipeline.ExitConfig
	}
	p, err := bundle.Load(args[0], dec)
	if err != nil {
		fmt.Fprintf(stderr, "pipe summary: %v\n", err)
		return pipeline.ExitConfig
	}
	fmt.Fprint(stdout, bundle.Summary(p))
	return 0
}
