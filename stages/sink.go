package stages

import (
	"context"
	"path/filepath"

	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/pipeline"
)

func writeKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "write", Shape: pipeline.ShapeSink,
		Doc: "Writes a table to a CSV, Parquet or Arrow IPC file, chosen by the extension (.csv, .parquet, .arrow), in the stage's run directory. The file is written to a temporary name and renamed when complete, so a crash never leaves a half-written file.",
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
			return pipeline.SinkStage(func(ctx context.Context, sc *pipeline.StageContext, t *pipeline.Table) error {
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
