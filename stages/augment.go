package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/schema"
)

// AugmentSpec is the train-time augmentation an augment stage attaches to a table's lineage.
// It does nothing to the data as it flows (Apply is the identity, and prediction never applies
// it); the train stage finds it in its training table's lineage and applies it to every
// training batch, freshly at each step, from the trainer's seeded augmentation stream.
type AugmentSpec struct {
	Noise          float64 `json:"noise,omitempty"`
	FeatureDropout float64 `json:"feature_dropout,omitempty"`
	Image          *struct {
		Height int    `json:"height"`
		Width  int    `json:"width"`
		First  string `json:"first"`
	} `json:"image,omitempty"`
	Shift  int     `json:"shift,omitempty"`
	Rotate float64 `json:"rotate,omitempty"`
}

// Kind is "augment".
func (a *AugmentSpec) Kind() string { return "augment" }

// Apply is the identity: augmentation happens per batch inside training.
func (a *AugmentSpec) Apply(_ context.Context, _ memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	rec.Retain()
	return rec, nil
}

// Marshal returns the spec as JSON.
func (a *AugmentSpec) Marshal() ([]byte, error) { return json.Marshal(a) }

func augmentKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "augment", Shape: pipeline.ShapeTransform,
		Doc: "Data augmentation for the training table: Gaussian input noise and feature dropout for tables; random shifts and small rotations for image-shaped columns (digits 8×8, MNIST 28×28). " +
			"The table flows through unchanged; a train stage that reads it applies the augmentation to every training batch, drawn afresh at each step from its seeded stream. Validation, test and prediction data are never augmented. " +
			"Place it after normalization (shifted-in pixels are filled with 0, the background after minmax scaling).",
		Fields: []pipeline.Field{
			{Name: "input", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The training table (its split role must be train)."},
			{Name: "noise", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Doc: "Standard deviation of Gaussian noise added to every numeric feature."},
			{Name: "feature_dropout", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(0.95), Doc: "Probability of zeroing each feature of each row."},
			{Name: "image", Type: pipeline.TypeTable, Doc: "The image-shaped columns: { height = 28, width = 28, first = \"px0\" } (height×width consecutive numeric columns from `first`, row-major)."},
			{Name: "shift", Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), Doc: "Largest random shift of the image, in pixels, in each direction."},
			{Name: "rotate", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(45), Doc: "Largest random rotation of the image, in degrees (bilinear)."},
		},
		Example: "[stages.aug]\nkind = \"augment\"\ninput = \"scale.train\"\nimage = { height = 28, width = 28, first = \"px0\" }\nshift = 2\nrotate = 10",
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			spec := &AugmentSpec{Noise: c.Float("noise"), FeatureDropout: c.Float("feature_dropout"), Shift: c.Int("shift"), Rotate: c.Float("rotate")}
			if img := c.Table("image"); img != nil {
				if err := decodeStrict(img, &spec.Image); err != nil {
					return nil, c.Errorf("image", "%v", jsonErr(err))
				}
				if spec.Image.Height < 1 || spec.Image.Width < 1 || spec.Image.First == "" {
					return nil, c.Errorf("image", "needs height, width and first")
				}
			} else if spec.Shift > 0 || spec.Rotate > 0 {
				return nil, c.Errorf("image", "shift and rotate need the image's shape: image = { height = 28, width = 28, first = \"px0\" }")
			}
			if *spec == (AugmentSpec{}) {
				return nil, c.Errorf("", "no augmentation set: give noise, feature_dropout, shift or rotate")
			}
			return pipeline.StageFunc(func(ctx context.Context, sc *pipeline.StageContext) error {
				in, err := sc.Input(ctx, "input")
				if err != nil {
					return err
				}
				if in.Split() != schema.SplitTrain {
					return &pipeline.DataError{Stage: sc.Name, Msg: fmt.Sprintf("%s is the %s split: augmentation applies to training data only", in.Name(), in.Split()),
						Hint: "augment the train split; val and test stay as they are"}
				}
				step := pipeline.LineageStep{Stage: sc.Name, Kind: "augment", FitOn: in.Split(), Transform: spec, Input: in.Schema()}
				out, err := sc.NewTable("out", in.Schema(), in.Split(), append(in.Lineage(), step))
				if err != nil {
					return err
				}
				return pipeline.MapTable(ctx, sc, in, out, func(_ context.Context, _ *pipeline.StageContext, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
					rec.Retain()
					return rec, nil
				})
			}), nil
		},
	}
}

// augmenterFor builds the trainer's per-batch augmentation from the augment steps of a
// training table's lineage, or nil when there is none.
func augmenterFor(lineage []pipeline.LineageStep, plan *InputPlan) (func(*nn.Batch, *nn.Targets, *rand.Rand), error) {
	var augs []features.Augmenter
	cols := len(plan.Numeric)
	for _, st := range lineage {
		a, ok := st.Transform.(*AugmentSpec)
		if !ok {
			continue
		}
		if a.Noise > 0 {
			augs = append(augs, features.GaussianNoise{Std: a.Noise})
		}
		if a.FeatureDropout > 0 {
			augs = append(augs, features.FeatureDropout{Rate: a.FeatureDropout})
		}
		if a.Image != nil && (a.Shift > 0 || a.Rotate > 0) {
			off := -1
			for i, n := range plan.Numeric {
				if n == a.Image.First {
					off = i
					break
				}
			}
			if off < 0 {
				return nil, fmt.Errorf("augment stage %q: image column %q is not a numeric feature of the model", st.Stage, a.Image.First)
			}
			if a.Shift > 0 {
				augs = append(augs, features.ImageShift{Height: a.Image.Height, Width: a.Image.Width, MaxShift: a.Shift, Offset: off})
			}
			if a.Rotate > 0 {
				augs = append(augs, features.ImageRotate{Height: a.Image.Height, Width: a.Image.Width, MaxDegrees: a.Rotate, Offset: off})
			}
		}
	}
	if len(augs) == 0 {
		return nil, nil
	}
	for _, a := range augs {
		if err := a.Validate(cols); err != nil {
			return nil, err
		}
	}
	return func(b *nn.Batch, _ *nn.Targets, rng *rand.Rand) {
		for _, a := range augs {
			a.Augment(b.X, b.Rows, cols, rng)
		}
	}, nil
}
