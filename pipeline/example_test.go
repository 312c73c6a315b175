package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/pipeline"
)

// numbers is a custom source: the integers 1..n in one column.
type numbers struct{ n int }

func (s numbers) Open(ctx context.Context, sc *pipeline.StageContext) (pipeline.RecordReader, error) {
	b := array.NewInt64Builder(sc.Mem)
	defer b.Release()
	for i := 1; i <= s.n; i++ {
		b.Append(int64(i))
	}
	col := b.NewArray()
	defer col.Release()
	sch := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	rec := array.NewRecordBatch(sch, []arrow.Array{col}, int64(s.n))
	defer rec.Release()
	return array.NewRecordReader(sch, []arrow.RecordBatch{rec})
}

// Example_customStage registers two custom stage kinds, a source and a stage that sums a
// column into a metric, and runs a pipeline that uses them from TOML.
func Example_customStage() {
	reg := pipeline.NewRegistry()
	reg.MustRegister(pipeline.KindSpec{
		Kind: "numbers", Shape: pipeline.ShapeSource, Doc: "The integers 1..n.",
		Fields: []pipeline.Field{{Name: "n", Type: pipeline.TypeInt, Default: int64(10), Min: pipeline.Bound(1), Doc: "How many."}},
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			return pipeline.SourceStage(numbers{n: c.Int("n")}), nil
		},
	})
	reg.MustRegister(pipeline.KindSpec{
		Kind: "sum", Shape: pipeline.ShapeSink, Doc: "Sums column x.",
		Fields:  []pipeline.Field{{Name: "input", Type: pipeline.TypeInput, Required: true, Doc: "The table."}},
		Outputs: func(*pipeline.StageConfig) []pipeline.Port { return nil },
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			return pipeline.SinkStage(func(ctx context.Context, sc *pipeline.StageContext, t *pipeline.Table) error {
				r := sc.Scan(ctx, t)
				defer r.Release()
				var sum int64
				for r.Next() {
					for _, v := range r.RecordBatch().Column(0).(*array.Int64).Int64Values() {
						sum += v
					}
				}
				sc.Metrics.Set("all_sum", float64(sum))
				return r.Err()
			}), nil
		},
	})
	src := []byte(`
[stages.gen]
kind = "numbers"
n = 100

[stages.total]
kind = "sum"
input = "gen"
`)
	p, err := pipeline.Parse(src, "example.toml", ".", reg, pipeline.LoadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, _ := os.MkdirTemp("", "pipe-example-")
	defer os.RemoveAll(dir)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	res, err := pipeline.Run(context.Background(), p, pipeline.RunOptions{Dir: filepath.Join(dir, "run"), Mem: mem})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Manifest.Status, res.Manifest.Stages["total"].Metrics["all_sum"], mem.CurrentAlloc())
	// Output: succeeded 5050 0
}
