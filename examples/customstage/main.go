// Command customstage shows how a Go program extends pipe with a stage kind of its own and
// uses it from TOML next to the built-in kinds.
//
//	go run ./examples/customstage
//
// The custom kind, "clip", clips every numeric feature column to [min, max] and passes the
// other columns (the target, _row) through, shared rather than copied.
package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/schema"
	"github.com/pipe-ml/pipe/stages"
)

// clipKind declares the custom stage: its fields drive validation, `pipe docs` and the
// resolved config, exactly like a built-in kind's.
func clipKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "clip", Shape: pipeline.ShapeTransform,
		Doc: "Clips every numeric feature column to [min, max].",
		Fields: []pipeline.Field{
			{Name: "input", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The table."},
			{Name: "min", Type: pipeline.TypeFloat, Doc: "Lower bound. Default: none."},
			{Name: "max", Type: pipeline.TypeFloat, Required: true, Doc: "Upper bound."},
		},
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			lo, hi := math.Inf(-1), c.Float("max")
			if c.IsSet("min") {
				lo = c.Float("min")
			}
			if lo > hi {
				return nil, c.Errorf("min", "min %v is above max %v", lo, hi)
			}
			return pipeline.TransformStage(clipSchema, func(ctx context.Context, sc *pipeline.StageContext, in arrow.RecordBatch) (arrow.RecordBatch, error) {
				return clipBatch(sc, in, lo, hi)
			}), nil
		},
	}
}

// clipSchema: numeric feature columns become float64; everything else passes through.
func clipSchema(in *arrow.Schema) (*arrow.Schema, error) {
	fields := append([]arrow.Field(nil), in.Fields()...)
	for i, f := range fields {
		if schema.IsFeature(f) && schema.IsNumeric(f.Type) {
			fields[i].Type = arrow.PrimitiveTypes.Float64
		}
	}
	md := in.Metadata()
	return arrow.NewSchema(fields, &md), nil
}

func clipBatch(sc *pipeline.StageContext, in arrow.RecordBatch, lo, hi float64) (arrow.RecordBatch, error) {
	out, _ := clipSchema(in.Schema())
	cols := make([]arrow.Array, in.NumCols())
	for i, f := range in.Schema().Fields() {
		col := in.Column(i)
		if !(schema.IsFeature(f) && schema.IsNumeric(f.Type)) {
			col.Retain() // shared, not copied
			cols[i] = col
			continue
		}
		b := array.NewFloat64Builder(sc.Mem)
		for r := 0; r < col.Len(); r++ {
			if col.IsNull(r) {
				b.AppendNull()
				continue
			}
			v, err := numberAt(col, r)
			if err != nil {
				b.Release()
				return nil, err
			}
			b.Append(math.Min(math.Max(v, lo), hi))
		}
		cols[i] = b.NewArray()
		b.Release()
	}
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	return array.NewRecordBatch(out, cols, in.NumRows()), nil
}

func numberAt(col arrow.Array, r int) (float64, error) {
	switch a := col.(type) {
	case *array.Float64:
		return a.Value(r), nil
	case *array.Int64:
		return float64(a.Value(r)), nil
	case *array.Float32:
		return float64(a.Value(r)), nil
	}
	return 0, fmt.Errorf("clip: unsupported column type %s", col.DataType())
}

const pipelineTOML = `
[pipeline]
name = "iris-clipped"
seed = 3

[stages.load]
kind = "dataset"
name = "iris"

[stages.clip]
kind = "clip"              # the custom kind
input = "load"
min = 0.0
max = 7.0

[stages.split]
kind = "split"
input = "clip"

[stages.normalize]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]

[stages.model]
kind = "train"
train = "normalize.train"
val = "normalize.val"
layers = [ { dense = 16 } ]

[stages.eval]
kind = "evaluate"
models = ["model.model"]
tables = ["normalize.test"]
`

// run builds the registry (built-ins plus the custom kind), loads the TOML and runs it.
func run(ctx context.Context, dir string) (*pipeline.Result, error) {
	reg := pipeline.NewRegistry()
	if err := stages.Register(reg); err != nil {
		return nil, err
	}
	if err := reg.Register(clipKind()); err != nil {
		return nil, err
	}
	p, err := pipeline.Parse([]byte(pipelineTOML), "iris-clipped.toml", ".", reg, pipeline.LoadOptions{})
	if err != nil {
		return nil, err
	}
	return pipeline.Run(ctx, p, pipeline.RunOptions{Dir: dir})
}

func main() {
	dir, err := os.MkdirTemp("", "pipe-customstage-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	res, err := run(context.Background(), filepath.Join(dir, "run"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%s: test accuracy %.3f\nrun: %s\n", res.Manifest.Status, res.Manifest.Stages["eval"].Metrics["test_accuracy"], res.Dir)
}
