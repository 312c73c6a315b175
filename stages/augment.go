package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/pipe-ml/pipe/bundle"
	"math/rand/v2"
	"strings"
	"sync"

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
	// Mixup is the Beta(α, α) parameter of mixup (0: off); see tableMixup.
	Mixup float64 `json:"mixup,omitempty"`
}

// Kind is "augment".
func (a *AugmentSpec) Kind() string { return augmentKindName }

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
		Doc: "Data augmentation for the training table: Gaussian input noise, feature dropout and mixup for tables; random shifts and small rotations for image-shaped columns (digits 8×8, MNIST 28×28). " +
			"The table flows through unchanged; a train stage that reads it applies the augmentation to every training batch, drawn afresh at each step from its seeded stream. Validation, test and prediction data are never augmented. " +
			"Place it after normalization (shifted-in pixels are filled with 0, the background after minmax scaling).",
		Fields: []pipeline.Field{
			{Name: "input", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Splits: []string{schema.SplitTrain}, Doc: "The training table (its split role must be train)."},
			{Name: "noise", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Doc: "Standard deviation of Gaussian noise added to every numeric feature."},
			{Name: "feature_dropout", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(0.95), Doc: "Probability of zeroing each feature of each row."},
			{Name: "image", Type: pipeline.TypeTable, Fields: []pipeline.Field{
				{Name: "height", Type: pipeline.TypeInt, Required: true, Min: pipeline.Bound(1), Doc: "Rows of pixels."},
				{Name: "width", Type: pipeline.TypeInt, Required: true, Min: pipeline.Bound(1), Doc: "Columns of pixels."},
				{Name: "first", Type: pipeline.TypeString, Required: true, Doc: "The column of the top-left pixel; the others follow it, row-major."},
			}, Doc: "The image-shaped columns: { height = 28, width = 28, first = \"px0\" } (height×width consecutive numeric columns from `first`, row-major). " +
				"Leave it out when the model's stage sets image (image = true, or image = { shape = [C, H, W] }): shift and rotate then take that shape and move every channel alike."},
			{Name: "shift", Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), Doc: "Largest random shift of the image, in pixels, in each direction (the image is this stage's image key, or else the image input of the stage that trains on the table)."},
			{Name: "rotate", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(45), Doc: "Largest random rotation of the image, in degrees (bilinear)."},
			{Name: "mixup", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(10), Doc: "Mixup's α (0.2 is typical; 0: off). Each training row becomes λ·itself + (1−λ)·another row of its batch, λ ~ Beta(α, α) drawn per row, and so do its targets: " +
				"class labels become the same mix of the two one-hot labels (soft targets), regression targets and sample weights mix as values. " +
				"Every numeric feature is mixed (image columns too); embedding index columns are taken from the dominant row (λ ≥ 0.5). " +
				"A target missing in either row is missing in the mix (that head skips the row). The other augmentations run first. The train loss reported is then the loss on the mixed batches."},
		},
		Outputs: func(c *pipeline.StageConfig) []pipeline.Port {
			return []pipeline.Port{{Name: "out", Kind: pipeline.PortTable, From: firstRef(c, "input")}}
		},
		Example: "[stages.aug]\nkind = \"augment\"\ninput = \"scale.train\"\nimage = { height = 28, width = 28, first = \"px0\" }\nshift = 2\nrotate = 10",
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			spec := &AugmentSpec{Noise: c.Float("noise"), FeatureDropout: c.Float("feature_dropout"), Shift: c.Int("shift"), Rotate: c.Float("rotate"), Mixup: c.Float("mixup")}
			if img := c.Table("image"); img != nil {
				if err := decodeStrict(img, &spec.Image); err != nil {
					return nil, c.Errorf("image", "%v", jsonErr(err))
				}
				if spec.Image.Height < 1 || spec.Image.Width < 1 || spec.Image.First == "" {
					return nil, c.Errorf("image", "needs height, width and first")
				}
			}
			if *spec == (AugmentSpec{}) {
				return nil, c.Errorf("", "no augmentation set: give noise, feature_dropout, shift, rotate or mixup")
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
				step := pipeline.LineageStep{Stage: sc.Name, Kind: "augment", FitOn: in.Split(), Transform: spec, TrainOnly: true, Input: in.Schema()}
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
// training table's lineage, or nil when there is none. shape is the model's image input,
// [C, H, W] over all of plan's numeric columns (see imageShape), or nil: an augment step that
// shifts or rotates without an image key of its own moves that image, every channel alike.
func augmenterFor(lineage []pipeline.LineageStep, plan *bundle.InputPlan, shape []int) (func(*nn.Batch, *nn.Targets, *rand.Rand), error) {
	feat, mix, _, err := augmentParts(lineage, plan, shape)
	if err != nil || (feat == nil && mix == nil) {
		return nil, err
	}
	return func(b *nn.Batch, t *nn.Targets, rng *rand.Rand) {
		if feat != nil {
			feat(b.X, b.Rows, rng)
		}
		if mix != nil {
			mix.apply(b, t, rng)
		}
	}, nil
}

// unlabeledAugmenter builds, for semi-supervised training's unlabelled rows (train.Semi's
// Augment), the feature transforms of the augment steps of a lineage: noise, feature
// dropout, shifts and rotations, but not mixup, which needs labels. It also returns the
// stage that sets mixup ("" when none). The function is nil when there is no transform.
func unlabeledAugmenter(lineage []pipeline.LineageStep, plan *bundle.InputPlan, shape []int) (func(x []float32, rows int, rng *rand.Rand), string, error) {
	feat, _, mixStage, err := augmentParts(lineage, plan, shape)
	return feat, mixStage, err
}

// augmentParts reads the augment steps of a lineage: their feature transforms as one
// function over rows of the model's inputs, in order (nil without), the mixup (nil without)
// and the stage that sets it.
func augmentParts(lineage []pipeline.LineageStep, plan *bundle.InputPlan, shape []int) (func(x []float32, rows int, rng *rand.Rand), *tableMixup, string, error) {
	var augs []features.Augmenter
	var mix *tableMixup
	var mixStages []string
	cols := plan.Width() // numeric columns, then tensor (image) values
	for _, st := range lineage {
		a, ok := st.Transform.(*AugmentSpec)
		if !ok {
			continue
		}
		if a.Mixup > 0 {
			mixStages = append(mixStages, st.Stage)
			m := features.Mixup{Alpha: a.Mixup}
			if err := m.Validate(); err != nil {
				return nil, nil, "", fmt.Errorf("augment stage %q: %w", st.Stage, err)
			}
			mix = &tableMixup{mix: m, cols: cols, heads: plan.Heads()}
		}
		if a.Noise > 0 {
			augs = append(augs, features.GaussianNoise{Std: a.Noise})
		}
		if a.FeatureDropout > 0 {
			augs = append(augs, features.FeatureDropout{Rate: a.FeatureDropout})
		}
		if a.Image == nil && (a.Shift > 0 || a.Rotate > 0) {
			if len(shape) != 3 {
				return nil, nil, "", fmt.Errorf("augment stage %q: shift and rotate need an image: set image on the stage that trains on this table (image = true for the digits and mnist datasets, or image = { shape = [channels, height, width] }), "+
					"or give the augment stage image = { height = 28, width = 28, first = \"px0\" }", st.Stage)
			}
			if a.Shift > 0 {
				augs = append(augs, features.ImageShift{Channels: shape[0], Height: shape[1], Width: shape[2], MaxShift: a.Shift})
			}
			if a.Rotate > 0 {
				augs = append(augs, features.ImageRotate{Channels: shape[0], Height: shape[1], Width: shape[2], MaxDegrees: a.Rotate})
			}
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
				return nil, nil, "", fmt.Errorf("augment stage %q: image column %q is not a numeric feature of the model", st.Stage, a.Image.First)
			}
			if a.Shift > 0 {
				augs = append(augs, features.ImageShift{Height: a.Image.Height, Width: a.Image.Width, MaxShift: a.Shift, Offset: off})
			}
			if a.Rotate > 0 {
				augs = append(augs, features.ImageRotate{Height: a.Image.Height, Width: a.Image.Width, MaxDegrees: a.Rotate, Offset: off})
			}
		}
	}
	if len(mixStages) > 1 {
		return nil, nil, "", fmt.Errorf("augment stages %s all set mixup: set it in one stage (mixing twice per step is not mixup)", strings.Join(mixStages, ", "))
	}
	for _, a := range augs {
		if err := a.Validate(cols); err != nil {
			return nil, nil, "", err
		}
	}
	mixStage := ""
	if mix != nil {
		mixStage = mixStages[0]
	}
	if len(augs) == 0 {
		return nil, mix, mixStage, nil
	}
	return func(x []float32, rows int, rng *rand.Rand) {
		for _, a := range augs {
			a.Augment(x, rows, cols, rng)
		}
	}, mix, mixStage, nil
}

// tableMixup is the augment stage's mixup of a training batch and its targets (Zhang et al.,
// 2018), with the pairs and per-row λ of features.Mixup.DrawTo:
//
//   - the numeric features (b.X) mix as λ_i·x_i + (1−λ_i)·x_π(i);
//   - each embedding index column takes the dominant row's index (row i's when λ_i ≥ 0.5, else
//     π(i)'s): an index cannot be mixed;
//   - a classification head's targets become soft targets, λ_i·onehot(y_i) + (1−λ_i)·onehot(y_π(i))
//     (binary heads over the classes [0, 1]), written into the trainer's per-Fit room
//     (t.Heads[h].Soft); the head's label becomes the dominant row's, or missing (−1) when
//     either row's label is missing, so the loss skips that row for that head only (the rule
//     regression targets follow too: a NaN in either row makes the mix NaN, i.e. missing);
//   - regression targets and sample weights mix as values, with the same λ_i.
//
// Its draws come only from the rng it is given. It keeps no per-batch state of its own (the
// scratch buffers are pooled per call), so one tableMixup may serve concurrent Fits (ensemble
// members). A call with no targets for the heads (t nil or without heads: a prediction view,
// not a training batch) or with fewer than 2 rows leaves the batch alone.
type tableMixup struct {
	mix     features.Mixup
	cols    int
	heads   []nn.HeadSpec
	scratch sync.Pool // *mixupScratch
}

// mixupScratch is the per-call working memory of tableMixup.apply.
type mixupScratch struct {
	partner []int
	lambda  []float64
	src     []float32
	labels  []int32
	cat     []int32
}

func (m *tableMixup) apply(b *nn.Batch, t *nn.Targets, rng *rand.Rand) {
	n := b.Rows
	if t == nil || len(t.Heads) != len(m.heads) || n < 2 {
		return
	}
	s, _ := m.scratch.Get().(*mixupScratch)
	if s == nil {
		s = &mixupScratch{}
	}
	defer m.scratch.Put(s)
	s.partner, s.lambda = resized(s.partner, n), resized(s.lambda, n)
	m.mix.DrawTo(s.partner, s.lambda, rng)
	mixRows := func(dst []float32, width int) {
		s.src = append(s.src[:0], dst[:n*width]...)
		features.MixRowsTo(dst, s.src, width, s.partner, s.lambda)
	}
	mixRows(b.X, m.cols)
	for _, col := range b.Cat {
		s.cat = append(s.cat[:0], col[:n]...)
		for i, j := range s.partner {
			if s.lambda[i] < 0.5 {
				col[i] = s.cat[j]
			}
		}
	}
	for h, hs := range m.heads {
		ht := &t.Heads[h]
		switch hs.Kind {
		case nn.HeadSoftmax, nn.HeadBinary:
			k := hs.Classes
			if hs.Kind == nn.HeadBinary {
				k = 2
			}
			s.src = resized(s.src, n*k)
			clear(s.src)
			for i, l := range ht.Labels[:n] {
				if l >= 0 && int(l) < k { // an out-of-range label is the step's error to report
					s.src[i*k+int(l)] = 1
				}
			}
			soft := ht.Soft[:0]
			if cap(soft) < n*k {
				soft = make([]float32, n*k) // no room from the trainer (called outside Fit)
			}
			soft = soft[:n*k]
			features.MixRowsTo(soft, s.src, k, s.partner, s.lambda)
			ht.Soft = soft
			s.labels = append(s.labels[:0], ht.Labels[:n]...)
			for i, j := range s.partner {
				switch {
				case s.labels[i] < 0 || s.labels[j] < 0:
					ht.Labels[i] = -1
				case s.lambda[i] < 0.5:
					ht.Labels[i] = s.labels[j]
				}
			}
		default:
			mixRows(ht.Values, max(hs.Outputs, 1))
		}
	}
	if t.Weights != nil {
		mixRows(t.Weights, 1)
	}
}

// resized returns s with length n, reusing its storage when it is large enough.
func resized[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
