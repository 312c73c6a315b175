package cli_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pipe-ml/pipe/cli"
	"github.com/pipe-ml/pipe/pipeline"
)

// ExampleCommand is the pipe command of a program with a stage kind of its own: one call
// gives it run, validate, docs, graph, predict and summary, with pipe's flags, progress bar,
// signal handling and exit codes.
func ExampleCommand() {
	passthrough := pipeline.KindSpec{
		Kind: "passthrough", Shape: pipeline.ShapeTransform, KeepsFeatures: true,
		Doc:    "Passes its input through unchanged.",
		Fields: []pipeline.Field{{Name: "input", Type: pipeline.TypeInput, Required: true, Doc: "The table."}},
		New: func(*pipeline.StageConfig) (pipeline.Stage, error) {
			return pipeline.TransformStage(func(s *arrow.Schema) (*arrow.Schema, error) { return s, nil },
				func(_ context.Context, _ *pipeline.StageContext, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
					rec.Retain()
					return rec, nil
				}), nil
		},
	}
	cmd := cli.Command{Name: "mypipe", Register: func(r *pipeline.Registry) error { return r.Register(passthrough) }}

	dir, _ := os.MkdirTemp("", "example-")
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "p.toml")
	_ = os.WriteFile(file, []byte(`
[stages.load]
kind = "dataset"
name = "iris"

[stages.same]
kind = "passthrough"
input = "load"
`), 0o644)
	code := cmd.Main([]string{"validate", file}, discard{}, os.Stdout)
	fmt.Println("exit code", code)
	// Output: exit code 0
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
