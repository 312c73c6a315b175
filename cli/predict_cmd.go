package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/stages"
)

var inputTypes = map[string]arrow.DataType{
	"int64": arrow.PrimitiveTypes.Int64, "int32": arrow.PrimitiveTypes.Int32, "float64": arrow.PrimitiveTypes.Float64,
	"float32": arrow.PrimitiveTypes.Float32, "bool": arrow.FixedWidthTypes.Boolean, "utf8": arrow.BinaryTypes.String,
}

func (a *app) cmdPredict(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("predict", stderr)
	model := fs.String("model", "", "the bundle directory (stages/<name>/bundle of a run)")
	input := fs.String("input", "", "the rows to score: .csv, .csv.gz, .parquet or .arrow")
	output := fs.String("output", "", "where to write the predictions: .csv, .parquet or .arrow")
	if _, err := parseInterspersed(fs, args); err != nil || *model == "" || *input == "" || *output == "" {
		fmt.Fprintln(stderr, "usage: pipe predict --model BUNDLE --input FILE --output FILE")
		return pipeline.ExitConfig
	}
	if _, _, err := tableio.FormatOf(*output); err != nil {
		fmt.Fprintf(stderr, "pipe predict: --output: %v\n", err)
		return pipeline.ExitConfig
	}
	p, err := stages.LoadPredictor(*model)
	if err != nil {
		fmt.Fprintf(stderr, "pipe predict: %v\n", err)
		return pipeline.ExitConfig
	}
	// Read CSV columns with the types the model was trained on, not re-inferred ones.
	opts := tableio.CSVOptions{Name: *input}
	if b, ok := p.(*stages.Bundle); ok {
		var fields []arrow.Field
		for _, c := range b.Meta.Input {
			if t, ok := inputTypes[c.Type]; ok {
				fields = append(fields, arrow.Field{Name: c.Name, Type: t, Nullable: true})
			}
		}
		opts.Schema = arrow.NewSchema(fields, nil)
	}
	mem := memory.DefaultAllocator
	r, err := tableio.OpenFile(*input, mem, opts)
	if err != nil {
		fmt.Fprintf(stderr, "pipe predict: %v\n", err)
		return pipeline.ExitFailed
	}
	defer r.Release()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w, err := tableio.NewWriter(*output, stages.PredictionSchema(p), mem)
	if err != nil {
		fmt.Fprintf(stderr, "pipe predict: %v\n", err)
		return pipeline.ExitFailed
	}
	err = stages.Predict(ctx, p, r, mem, w.Write)
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
	fmt.Fprintf(stdout, "predicted %d rows: %s\n", w.Rows(), *output)
	return 0
}

func (a *app) cmdSummary(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: pipe summary BUNDLE")
		return pipeline.ExitConfig
	}
	p, err := stages.LoadPredictor(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "pipe summary: %v\n", err)
		return pipeline.ExitConfig
	}
	fmt.Fprint(stdout, stages.Summary(p))
	return 0
}
