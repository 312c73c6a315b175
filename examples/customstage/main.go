// Command customstage is the pipe command with one stage kind of its own, "clip", usable from
// TOML next to the built-in kinds. It shows the two extension points a custom transform needs:
// the stage kind (cli.Command.Register) and the decoder of its saved form
// (cli.Command.Transforms), so that a model trained after it is bundled with it and `predict`
// replays it on raw rows.
//
//	go run ./examples/customstage run examples/customstage/iris-clipped.toml
//	go run ./examples/customstage predict --model runs/iris-clipped/<run-id> --input rows.csv --output p.csv
//
// Depend on the module with `go get github.com/pipe-ml/pipe` and import
// github.com/pipe-ml/pipe/cli (the command), pipeline (kinds) and bundle (saved transforms).
//
// The clip kind clips every numeric feature column to [min, max] and passes the other columns
// (the target, _row) through, shared rather than copied.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/cli"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/schema"
)

// clipKind declares the custom stage: its fields drive validation, `pipe docs` and the
// resolved config, exactly like a built-in kind's.
func clipKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "clip", Shape: pipeline.ShapeTransform,
		Doc: "Clips every numeric feature column to [min, max]. A model trained downstream replays it at prediction time.",
		Fields: []pipeline.Field{
			{Name: "input", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The table."},
			{Name: "min", Type: pipeline.TypeFloat, Doc: "Lower bound. Default: none."},
			{Name: "max", Type: pipeline.TypeFloat, Required: true, Doc: "Upper bound."},
		},
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			t := clipTransform{Min: -math.MaxFloat64, Max: c.Float("max")} // no lower bound unless set
			if c.IsSet("min") {
				t.Min = c.Float("min")
			}
			if t.Min > t.Max {
				return nil, c.Errorf("min", "min %v is above max %v", t.Min, t.Max)
			}
			// A replayable transform: the lineage of clip's output records t, so the bundle of
			// a model trained on it saves t (Marshal) and predict replays it (Apply).
			return pipeline.ReplayableTransformStage(clipSchema, t), nil
		},
	}
}

// clipTransform is the clip stage's transform, and its saved form in a model bundle.
type clipTransform struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// Kind names the transform; its decoder is registered under the same name.
func (t clipTransform) Kind() string { return "clip" }

// Apply clips one batch. It does not release rec; the caller releases the result.
func (t clipTransform) Apply(_ context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	return clipBatch(mem, rec, t.Min, t.Max)
}

// Marshal is the saved form: {"min":..,"max":..}.
func (t clipTransform) Marshal() ([]byte, error) { return json.Marshal(t) }

// decodeClip rebuilds a clipTransform from its saved form, strictly.
func decodeClip(state []byte) (bundle.Transform, error) {
	var t clipTransform
	d := json.NewDecoder(bytes.NewReader(state))
	d.DisallowUnknownFields()
	if err := d.Decode(&t); err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	if t.Min > t.Max || math.IsNaN(t.Min) || math.IsNaN(t.Max) {
		return nil, fmt.Errorf("clip: saved bounds [%v, %v] are invalid", t.Min, t.Max)
	}
	return t, nil
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

func clipBatch(mem memory.Allocator, in arrow.RecordBatch, lo, hi float64) (arrow.RecordBatch, error) {
	out, _ := clipSchema(in.Schema())
	cols := make([]arrow.Array, 0, in.NumCols())
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	for i, f := range in.Schema().Fields() {
		col := in.Column(i)
		if !(schema.IsFeature(f) && schema.IsNumeric(f.Type)) {
			col.Retain() // shared, not copied
			cols = append(cols, col)
			continue
		}
		b := array.NewFloat64Builder(mem)
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
		cols = append(cols, b.NewArray())
		b.Release()
	}
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
	case *array.Int32:
		return float64(a.Value(r)), nil
	}
	return 0, fmt.Errorf("clip: column of type %s is not supported", col.DataType())
}

// command is the pipe command with the clip kind and its transform added.
func command() *cli.Command {
	return &cli.Command{
		Name:       "customstage",
		Register:   func(r *pipeline.Registry) error { return r.Register(clipKind()) },
		Transforms: func(d *bundle.Decoders) error { return d.Register("clip", decodeClip) },
	}
}

func main() { os.Exit(command().Main(os.Args[1:], os.Stdout, os.Stderr)) }
