package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Fake stage kinds for executor tests: the executor coordinates, these compute.

type countArtifact struct{ total int64 }

func (countArtifact) ArtifactKind() string { return "count" }

var genSchema = arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}, {Name: "y", Type: arrow.PrimitiveTypes.Float64}}, nil)

type genReader struct {
	mem                 memory.Allocator
	rows, batch, failAt int
	slow                time.Duration
	next                int
	cur                 arrow.RecordBatch
	err                 error
	ctx                 context.Context
}

func (g *genReader) Schema() *arrow.Schema { return genSchema }
func (g *genReader) Next() bool {
	if g.cur != nil {
		g.cur.Release()
		g.cur = nil
	}
	if g.next >= g.rows || g.err != nil {
		return false
	}
	if g.slow > 0 {
		select {
		case <-time.After(g.slow):
		case <-g.ctx.Done():
			g.err = context.Cause(g.ctx)
			return false
		}
	}
	if g.failAt >= 0 && g.next >= g.failAt {
		g.err = &DataError{File: "gen", Row: int64(g.next + 1), Column: "x", Msg: "injected failure"}
		return false
	}
	n := min(g.batch, g.rows-g.next)
	xb := array.NewInt64Builder(g.mem)
	yb := array.NewFloat64Builder(g.mem)
	for i := 0; i < n; i++ {
		xb.Append(int64(g.next + i))
		yb.Append(float64(g.next+i) * 0.5)
	}
	xa, ya := xb.NewArray(), yb.NewArray()
	xb.Release()
	yb.Release()
	g.cur = array.NewRecordBatch(genSchema, []arrow.Array{xa, ya}, int64(n))
	xa.Release()
	ya.Release()
	g.next += n
	return true
}
func (g *genReader) RecordBatch() arrow.RecordBatch { return g.cur }
func (g *genReader) Err() error                     { return g.err }
func (g *genReader) Release() {
	if g.cur != nil {
		g.cur.Release()
		g.cur = nil
	}
}

func testRegistry() *Registry {
	r := NewRegistry()
	r.MustRegister(KindSpec{
		Kind: "gen", Shape: ShapeSource, Doc: "Generates rows x = 0..rows-1, y = x/2.",
		Fields: []Field{
			{Name: "rows", Type: TypeInt, Default: int64(100), Min: Bound(0), Doc: "Rows to generate."},
			{Name: "batch", Type: TypeInt, Default: int64(10), Min: Bound(1), Doc: "Rows per batch."},
			{Name: "fail_at", Type: TypeInt, Default: int64(-1), Doc: "Fail when reaching this row."},
			{Name: "slow_ms", Type: TypeInt, Default: int64(0), Doc: "Sleep per batch."},
			{Name: "mode", Type: TypeString, Default: "plain", Enum: []string{"plain", "fancy"}, Doc: "A mode."},
			{Name: "ratio", Type: TypeFloat, Default: 0.5, Min: Bound(0), Max: Bound(1), Doc: "A ratio."},
		},
		New: func(c *StageConfig) (Stage, error) {
			return SourceStage(SourceFunc(func(ctx context.Context, sc *StageContext) (RecordReader, error) {
				return &genReader{mem: sc.Mem, rows: c.Int("rows"), batch: c.Int("batch"), failAt: c.Int("fail_at"),
					slow: time.Duration(c.Int("slow_ms")) * time.Millisecond, ctx: ctx}, nil
			})), nil
		},
	})
	r.MustRegister(KindSpec{
		Kind: "double", Shape: ShapeTransform, Doc: "Doubles x.",
		Fields: []Field{{Name: "input", Type: TypeInput, Required: true, Port: PortTable, Doc: "The table."}},
		New: func(c *StageConfig) (Stage, error) {
			return TransformStage(func(in *arrow.Schema) (*arrow.Schema, error) { return in, nil },
				func(ctx context.Context, sc *StageContext, in arrow.RecordBatch) (arrow.RecordBatch, error) {
					xs := in.Column(0).(*array.Int64)
					b := array.NewInt64Builder(sc.Mem)
					defer b.Release()
					for i := 0; i < xs.Len(); i++ {
						b.Append(2 * xs.Value(i))
					}
					a := b.NewArray()
					defer a.Release()
					cols := append([]arrow.Array{a}, in.Columns()[1:]...)
					return array.NewRecordBatch(in.Schema(), cols, in.NumRows()), nil
				}), nil
		},
	})
	r.MustRegister(KindSpec{
		Kind: "total", Shape: ShapeFit, Doc: "Sums x into an artifact and a metric.",
		Fields: []Field{
			{Name: "input", Type: TypeInputs, Required: true, Port: PortTable, Doc: "Tables to sum."},
			{Name: "epochs", Type: TypeInt, Default: int64(1), Doc: "Passes over the input (replay)."},
		},
		Outputs: func(c *StageConfig) []Port { return []Port{{Name: "total", Kind: PortArtifact}} },
		New: func(c *StageConfig) (Stage, error) {
			return StageFunc(func(ctx context.Context, sc *StageContext) error {
				ts, err := sc.Inputs(ctx, "input")
				if err != nil {
					return err
				}
				var sum int64
				for e := 0; e < c.Int("epochs"); e++ {
					sum = 0
					for _, t := range ts {
						r := sc.Scan(ctx, t)
						for r.Next() {
							xs := r.RecordBatch().Column(0).(*array.Int64)
							for _, v := range xs.Int64Values() {
								sum += v
							}
						}
						r.Release()
						if r.Err() != nil {
							return r.Err()
						}
					}
				}
				sc.Metrics.Set("all_sum", float64(sum))
				return sc.SetArtifact("total", countArtifact{sum})
			}), nil
		},
	})
	r.MustRegister(KindSpec{
		Kind: "report", Shape: ShapeSink, Doc: "Reads an artifact.",
		Fields:  []Field{{Name: "model", Type: TypeInput, Required: true, Port: PortArtifact, Doc: "The artifact."}},
		Outputs: func(c *StageConfig) []Port { return nil },
		New: func(c *StageConfig) (Stage, error) {
			return StageFunc(func(ctx context.Context, sc *StageContext) error {
				a, err := sc.Artifact(ctx, "model")
				if err != nil {
					return err
				}
				ca, ok := a.(countArtifact)
				if !ok {
					return fmt.Errorf("not a count")
				}
				sc.Metrics.Set("test_total", float64(ca.total))
				return nil
			}), nil
		},
	})
	return r
}
