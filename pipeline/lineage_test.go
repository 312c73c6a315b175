package pipeline

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// identity is a fitted transform that changes nothing; its saved form is "{}".
type identity struct{}

func (identity) Kind() string { return "ident" }
func (identity) Apply(_ context.Context, _ memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	rec.Retain()
	return rec, nil
}
func (identity) Marshal() ([]byte, error) { return []byte("{}"), nil }

// TestLineageRecordsEveryTransform: a table's lineage names every stage that transformed it.
// A TransformStage is recorded as a step that cannot be replayed; a kind that declares
// KeepsFeatures adds nothing; a ReplayableTransformStage records its transform.
func TestLineageRecordsEveryTransform(t *testing.T) {
	reg := testRegistry()
	pass := func(in *arrow.Schema) (*arrow.Schema, error) { return in, nil }
	same := func(_ context.Context, _ *StageContext, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		rec.Retain()
		return rec, nil
	}
	input := []Field{{Name: "input", Type: TypeInput, Required: true, Port: PortTable, Doc: "The table."}}
	reg.MustRegister(KindSpec{Kind: "keep", Shape: ShapeTransform, Doc: "Selects rows.", KeepsFeatures: true, Fields: input,
		New: func(*StageConfig) (Stage, error) { return TransformStage(pass, same), nil }})
	reg.MustRegister(KindSpec{Kind: "replay", Shape: ShapeTransform, Doc: "A saved transform.", Fields: input,
		New: func(*StageConfig) (Stage, error) { return ReplayableTransformStage(pass, identity{}), nil }})
	var mu sync.Mutex
	seen := map[string][]LineageStep{}
	reg.MustRegister(KindSpec{Kind: "lineage", Shape: ShapeSink, Doc: "Records its input's lineage.", Fields: input,
		Outputs: func(*StageConfig) []Port { return nil },
		New: func(c *StageConfig) (Stage, error) {
			return SinkStage(func(ctx context.Context, sc *StageContext, tb *Table) error {
				if err := tb.Wait(ctx); err != nil {
					return err
				}
				mu.Lock()
				seen[sc.Name] = tb.Lineage()
				mu.Unlock()
				return nil
			}), nil
		}})
	src := `
[stages.load]
kind = "gen"
[stages.dbl]
kind = "double"
input = "load"
[stages.kept]
kind = "keep"
input = "load"
[stages.saved]
kind = "replay"
input = "kept"
[stages.both]
kind = "keep"
input = "dbl"
[stages.at_dbl]
kind = "lineage"
input = "dbl"
[stages.at_kept]
kind = "lineage"
input = "kept"
[stages.at_saved]
kind = "lineage"
input = "saved"
[stages.at_both]
kind = "lineage"
input = "both"
`
	p, err := Parse([]byte(src), "lineage.toml", ".", reg, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	if _, err := Run(context.Background(), p, RunOptions{Dir: filepath.Join(t.TempDir(), "run"), Mem: mem}); err != nil {
		t.Fatal(err)
	}
	describe := func(l []LineageStep) string {
		var parts []string
		for _, st := range l {
			d := st.Stage + ":" + st.Kind
			if st.Transform == nil {
				d += "(opaque)"
			}
			parts = append(parts, d)
		}
		return strings.Join(parts, " ")
	}
	for stage, want := range map[string]string{
		"at_dbl":   "dbl:double(opaque)",
		"at_kept":  "",
		"at_saved": "saved:ident",
		"at_both":  "dbl:double(opaque)", // a row selection keeps what came before it
	} {
		if got := describe(seen[stage]); got != want {
			t.Errorf("%s: lineage %q, want %q", stage, got, want)
		}
	}
}
