package stages

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/pipeline"
)

func writeKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "write", Shape: pipeline.ShapeSink,
		Doc: "Writes a table to a CSV, Parquet or Arrow IPC file, chosen by the extension (.csv, .parquet, .arrow), in the stage's run directory. Parquet and Arrow IPC keep a tensor (fixed_size_list<float32>) column as it is, with its arrow.fixed_shape_tensor metadata; CSV, one value per field, refuses it. The file is written to a temporary name and renamed when complete, so a crash never leaves a half-written file.",
		Fields: []pipeline.Field{
			{Name: "input", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The table to write."},
			{Name: "path", Type: pipeline.TypeString, Required: true, Path: pipeline.PathName, Doc: "The output file's name: it is written under stages/<name>/ of the run, so it has no directory part."},
		},
		Outputs: func(*pipeline.StageConfig) []pipeline.Port { return nil },
		Example: "[stages.save]\nkind = \"write\"\ninput = \"normalize.test\"\npath = \"test.parquet\"",
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			path := c.String("path")
			if _, _, err := tableio.FormatOf(path); err != nil {
				return nil, c.Errorf("path", "%v", err)
			}
			format, _, _ := tableio.FormatOf(path)
			return pipeline.SinkStage(func(ctx context.Context, sc *pipeline.StageContext, t *pipeline.Table) error {
				if format == tableio.FormatCSV {
					if err := csvRefusesLists(sc.Name, path, t.Schema()); err != nil {
						return err
					}
				}
				p := path
				if !filepath.IsAbs(p) {
					dir, err := sc.Dir()
					if err != nil {
						return err
					}
					p = filepath.Join(dir, p)
				}
				w, err := tableio.NewWriter(p, t.Schema(), sc.Mem)
				if err != nil {
					return err
				}
				r := sc.Scan(ctx, t)
				defer r.Release()
				for r.Next() {
					if err := w.Write(r.RecordBatch()); err != nil {
						w.Abort()
						return err
					}
				}
				if err := r.Err(); err != nil {
					w.Abort()
					return err
				}
				if err := w.Close(); err != nil {
					return err
				}
				sc.SetInfo("file", p)
				sc.SetInfo("rows", w.Rows())
				return nil
			}), nil
		},
	}
}

// csvRefusesLists is the error of a CSV write of a table with a list column (a tensor, such
// as an image): a CSV field holds one value, and a text form of the list would come back as a
// string column, so the data would not survive the round trip.
func csvRefusesLists(stage, path string, s *arrow.Schema) error {
	for _, f := range s.Fields() {
		t := f.Type
		if ext, ok := t.(arrow.ExtensionType); ok {
			t = ext.StorageType()
		}
		switch t.ID() {
		case arrow.FIXED_SIZE_LIST, arrow.LIST, arrow.LARGE_LIST, arrow.LIST_VIEW, arrow.LARGE_LIST_VIEW, arrow.STRUCT, arrow.MAP:
			return &pipeline.DataError{Stage: stage, File: path, Column: f.Name,
				Msg:  fmt.Sprintf("the column has type %s, which CSV (one value per field) cannot hold", f.Type),
				Hint: "write a .parquet or .arrow file, which keep the column as it is, or drop the column before writing"}
		}
	}
	return nil
}
