package stages

import (
	"context"

	"github.com/pipe-ml/pipe/datasets"
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
				r, err := datasets.Open(ctx, name, sc.Mem, datasets.Options{DataDir: sc.DataDir, WithSplitColumn: peer, ImageColumn: imageColumn})
				if err != nil {
					return nil, nil, err
				}
				return r, func() int64 { return 0 }, nil
			}), nil
		},
	}
}
