package stages

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/pipeline"
)

func datasetKind() pipeline.KindSpec {
	var names []string
	for _, d := range datasets.List() {
		names = append(names, d.Name)
	}
	return pipeline.KindSpec{
		Kind: "dataset", Shape: pipeline.ShapeSource,
		Doc: "Reads a built-in dataset (`pipe datasets` lists them): iris, wine, breast_cancer, digits, diabetes and credit_data are embedded in the binary; " +
			"MNIST is read from the GoMNIST module's files (--data-dir first, then the Go module cache). The target column is `target`. " +
			"With `peer_split`, adds the column `split` holding the split the peers in BENCH.md were measured on (use it as split_column for an apples-to-apples comparison). " +
			"MNIST also has `original_split` (its own 60,000 train / 10,000 test). Adds the row id column `_row`.",
		Fields: append([]pipeline.Field{
			{Name: "name", Type: pipeline.TypeString, Required: true, Enum: names, Doc: "The dataset."},
			{Name: "peer_split", Type: pipeline.TypeBool, Default: false, Doc: "Add the shipped split (train/val/test per row) as the column `split`."},
			{Name: "image_column", Type: pipeline.TypeString, Doc: "digits and mnist only: read the pixels as one fixed_size_list<float32> column of this name (an arrow.fixed_shape_tensor of shape [1, H, W]) in place of the per-pixel columns; a train stage takes it with image = { column = \"<name>\" }."},
		}, sourceFields()...),
		Example:     "[stages.load]\nkind = \"dataset\"\nname = \"digits\"\npeer_split = true",
		Fingerprint: datasetFingerprint,
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			name := c.String("name")
			peer := c.Bool("peer_split")
			imageColumn := c.String("image_column")
			if imageColumn != "" {
				if _, _, err := datasets.ImageShape(name); err != nil {
					return nil, c.Errorf("image_column", "%v", err)
				}
			}
			return sourceWithOptions(c, func(ctx context.Context, sc *pipeline.StageContext) (pipeline.RecordReader, func() int64, error) {
				opts := datasets.Options{DataDir: sc.DataDir, WithSplitColumn: peer, ImageColumn: imageColumn}
				r, err := datasets.Open(ctx, name, sc.Mem, opts)
				if err != nil {
					return nil, nil, err
				}
				if rows := budgetBatchRows(r.Schema(), sc.MemoryBudget()); rows < tableio.DefaultBatchRows {
					// Batches sized for the memory budget: a stage holds a few at a time, and
					// MNIST's default 16,384 rows are 51 MB.
					r.Release()
					opts.BatchRows = rows
					if r, err = datasets.Open(ctx, name, sc.Mem, opts); err != nil {
						return nil, nil, err
					}
					sc.SetInfo("batch_rows", rows)
				}
				return r, func() int64 { return 0 }, nil
			}), nil
		},
	}
}

// budgetBatchRows is the rows per batch that keep a batch of schema s within a 16th of the
// memory budget (at least 256 rows; the default without a budget).
func budgetBatchRows(s *arrow.Schema, budget int64) int {
	if budget <= 0 {
		return tableio.DefaultBatchRows
	}
	var row int64
	for _, f := range s.Fields() {
		if fw, ok := f.Type.(arrow.FixedWidthDataType); ok {
			row += int64(max(fw.BitWidth()/8, 1))
		} else {
			row += 16
		}
	}
	return int(min(max(budget/16/max(row, 1), 256), int64(tableio.DefaultBatchRows)))
}
