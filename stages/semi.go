package stages

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
)

// semiField is the train stage's `semi` table: semi-supervised training (train.Semi).
func semiField() pipeline.Field {
	return pipeline.Field{Name: "semi", Type: pipeline.TypeTable, Fields: semiFields(),
		Doc: "Semi-supervised training: every step trains on a mini-batch of the labelled rows plus unlabeled_batch rows drawn from the unlabeled pool " +
			"(the train table's rows with a null target, e.g. from mask_labels, the labelled rows themselves, and the tables of unlabeled = [...]), " +
			"with the supervised loss on the labelled rows and a consistency loss on all, whose weight ramps up (exp(-5(1-t)^2) over rampup_epochs). " +
			"{ method = \"vat\" } virtual adversarial training (KL between the predictions at x and at x + r_adv, one power iteration; entropy = true adds entropy minimisation), " +
			"\"pi\" the Pi-model (softmax MSE between two passes with input noise and dropout), \"mean_teacher\" (the same against an EMA of the weights), " +
			"\"ladder\" the ladder network's Gamma-model (a clean and a corrupted pass, whose batch-norm statistics are kept apart, and a denoising cost on the top layer through the vanilla combinator; " +
			"put { gaussian_noise = 0.3 } after each batch_norm of the layers; decoder = \"full\" with weights = [...] makes it the full ladder, with a decoder and a denoising cost at every layer). " +
			"An epoch is a pass over the labelled rows. Needs one classification target (softmax head). Default: off."}
}

// withDoc is f with another doc string.
func withDoc(f pipeline.Field, doc string) pipeline.Field {
	f.Doc = doc
	return f
}

func semiFields() []pipeline.Field {
	return []pipeline.Field{
		{Name: "method", Type: pipeline.TypeString, Required: true, Enum: []string{train.SemiVAT, train.SemiPi, train.SemiMeanTeacher, train.SemiLadder}, Doc: "vat, pi, mean_teacher or ladder."},
		{Name: "weight", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: "The consistency weight after ramp-up. Default: 1 for vat and ladder (the top layer's denoising cost, a mean over rows and classes), 10 for pi and mean_teacher (softmax MSE summed over classes)."},
		{Name: "rampup_epochs", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: "Length of the sigmoid ramp-up of the weight, in epochs (passes over the labelled rows). Default 10; 0: none."},
		{Name: "unlabeled_batch", Type: pipeline.TypeInt, Min: pipeline.Bound(1), Doc: "Unlabeled rows added to every step's batch (drawn with replacement, seeded). Default: 2 × batch_size."},
		{Name: "eps", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), MinExclusive: true, Doc: "vat: the L2 norm of the adversarial perturbation of a row's numeric inputs. Default 2.0, meant for inputs in [0, 1] with hundreds of features such as MNIST's 784 pixels (a row's norm is then about 9): scale it with your inputs' norm."},
		{Name: "xi", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), MinExclusive: true, Doc: "vat: the norm of the probe perturbation of the power iteration. Default 0.1."},
		{Name: "entropy", Type: pipeline.TypeBool, Doc: "vat: add entropy minimisation of the predictions (VAT+EntMin), ramped up like the weight. Default false."},
		{Name: "separate_batches", Type: pipeline.TypeBool, Doc: "vat: run each step's labelled rows as a pass of their own (the supervised loss) and VAT's passes and the entropy term over the unlabeled_batch rows only, as the VAT authors' code does, so batch norm normalises each with its own statistics (the running statistics follow the unlabelled clean pass). " +
			"With few labels and batch norm, in particular head_batch_norm, this keeps VAT from a flat function on the pool. " +
			"ladder: run the corrupted pass of the labelled rows (the supervised loss) and of the unlabeled_batch rows (the denoising costs) as two passes, and the clean pass over the unlabelled rows only, as the ladder authors' code does: batch norm normalises each part by its own statistics, and the denoising costs are on the unlabelled rows alone (the running statistics follow the unlabelled clean pass). Default false: one joint batch."},
		{Name: "noise", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: "pi, mean_teacher: stddev of the Gaussian noise added to the inputs of each pass; ladder: to the inputs and to the batch-normalised logits of the corrupted pass, in the denoising cost only (the hidden layers' noise is the layers' gaussian_noise; with the train stage's head_noise set, that is the logits' noise, in the supervised loss too, and this is the inputs' only) (0: none). Default 0.3."},
		{Name: "decoder", Type: pipeline.TypeString, Enum: []string{train.LadderTop, train.LadderFull}, Doc: "ladder: \"top\", the Gamma-model (the denoising cost of the top layer only), or \"full\", the full ladder (Rasmus et al. 2015, Algorithm 1): a decoder with a learned V per layer, a lateral connection and a denoising cost at the inputs, at every dense layer's batch-normalised pre-activation and at the logits. " +
			"The full ladder mirrors layers of the form { dense = N, activation = \"linear\" }, { batch_norm = true }, { gaussian_noise = 0.3 }, { activation = \"relu\" } only: any other layer (conv, residual, dropout, layer_norm, custom, a dense layer with an activation of its own) is an error naming it, and so are embeddings. Default \"top\"."},
		{Name: "weights", Type: pipeline.TypeList, Elem: &pipeline.Field{Name: "weight", Type: pipeline.TypeFloat, Min: pipeline.Bound(0)}, Doc: "ladder with decoder = \"full\" (required there, not allowed otherwise): the denoising cost's weight of each layer, inputs first, then each dense layer, then the logits; each is multiplied by weight (default 1) and the ramp-up. The paper's for 784-1000-500-250-250-250-10: [1000, 10, 0.1, 0.1, 0.1, 0.1, 0.1]."},
		{Name: "estimate_norm", Type: pipeline.TypeString, Enum: []string{train.LadderEstimateClean, train.LadderEstimateNone}, Doc: "ladder with decoder = \"full\": how each layer's estimate is normalised before it is compared with the clean pass's batch-normalised pre-activation: \"clean\", with the clean batch's mean and stddev of the pre-activation (the paper's Algorithm 1), or \"none\", the estimate itself (as the Gamma-model compares at the top). Default \"clean\"."},
		{Name: "augment", Type: pipeline.TypeBool, Doc: "Augment the unlabelled rows too, with the feature transforms of the augment stages the train table comes through (noise, feature_dropout, shift, rotate; mixup needs labels and stays on the labelled rows): vat and ladder augment each unlabelled row once a step (every pass sees the same augmented row); pi and mean_teacher augment it once for each of their two passes, so that the consistency loss compares two views of the row, as the Π-model and Mean Teacher papers do. Needs an augment stage before train. Default false: only the labelled rows are augmented."},
		{Name: "teacher_decay", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), MinExclusive: true, Max: pipeline.Bound(1), MaxExclusive: true, Doc: "mean_teacher: EMA decay of the teacher's weights. Default 0.99."},
	}
}

// parseSemi decodes the `semi` table (nil when absent). The unlabeled data is filled in at
// run time (semiUnlabeled).
func parseSemi(c *pipeline.StageConfig) (*train.Semi, error) {
	t := c.Table("semi")
	if t == nil {
		if c.IsSet("unlabeled") {
			return nil, c.Errorf("unlabeled", "unlabeled tables are read only for semi-supervised training: add semi = { method = \"vat\" } (or \"pi\", \"mean_teacher\", \"ladder\"), or remove unlabeled")
		}
		return nil, nil
	}
	var v struct {
		Method         string    `json:"method"`
		Weight         float64   `json:"weight"`
		RampupEpochs   *float64  `json:"rampup_epochs"`
		UnlabeledBatch int       `json:"unlabeled_batch"`
		Eps            float64   `json:"eps"`
		Xi             float64   `json:"xi"`
		Entropy        bool      `json:"entropy"`
		Separate       bool      `json:"separate_batches"`
		Noise          *float64  `json:"noise"`
		TeacherDecay   float64   `json:"teacher_decay"`
		Decoder        string    `json:"decoder"`
		Weights        []float64 `json:"weights"`
		EstimateNorm   string    `json:"estimate_norm"`
		Augment        bool      `json:"augment"` // read again by semiAugment
	}
	if err := decodeStrict(t, &v); err != nil {
		return nil, c.Errorf("semi", "%v", jsonErr(err))
	}
	s := &train.Semi{Method: v.Method, Weight: v.Weight, UnlabeledBatch: v.UnlabeledBatch, Eps: v.Eps, Xi: v.Xi, Entropy: v.Entropy, SeparateBatches: v.Separate, TeacherDecay: v.TeacherDecay, Decoder: v.Decoder, Weights: v.Weights, EstimateNorm: v.EstimateNorm}
	if v.RampupEpochs != nil {
		s.RampupEpochs = *v.RampupEpochs
		if s.RampupEpochs == 0 {
			s.RampupEpochs = -1 // train.Semi: negative is no ramp-up, 0 the default
		}
	}
	if v.Noise != nil {
		s.Noise = *v.Noise
		if s.Noise == 0 {
			s.Noise = -1
		}
	}
	if s.Method != train.SemiVAT && (v.Eps != 0 || v.Xi != 0 || v.Entropy) {
		return nil, c.Errorf("semi", "eps, xi and entropy are settings of method = \"vat\", not %q", s.Method)
	}
	if s.Method != train.SemiVAT && s.Method != train.SemiLadder && v.Separate {
		return nil, c.Errorf("semi", "separate_batches is a setting of methods \"vat\" and \"ladder\", not %q", s.Method)
	}
	if s.Method != train.SemiMeanTeacher && v.TeacherDecay != 0 {
		return nil, c.Errorf("semi", "teacher_decay is a setting of method = \"mean_teacher\", not %q", s.Method)
	}
	if s.Method != train.SemiLadder && (v.Decoder != "" || v.Weights != nil) {
		return nil, c.Errorf("semi", "decoder and weights are settings of method = \"ladder\", not %q", s.Method)
	}
	if v.Decoder != train.LadderFull && v.EstimateNorm != "" {
		return nil, c.Errorf("semi", "estimate_norm is a setting of decoder = \"full\"")
	}
	if v.Decoder == train.LadderFull && len(v.Weights) == 0 {
		return nil, c.Errorf("semi", "decoder = \"full\" needs weights = [...], one denoising weight per layer: the inputs, each dense layer, the logits (the paper's for 784-1000-500-250-250-250-10: [1000, 10, 0.1, 0.1, 0.1, 0.1, 0.1])")
	}
	if v.Decoder != train.LadderFull && v.Weights != nil {
		return nil, c.Errorf("semi", "weights are the full ladder's per-layer weights: add decoder = \"full\", or use weight for the top layer's")
	}
	for i, w := range v.Weights {
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, c.Errorf("semi", "weights[%d] = %g: want a finite value >= 0", i, w)
		}
	}
	if s.Method == train.SemiVAT && v.Noise != nil {
		return nil, c.Errorf("semi", "noise is a setting of the pi, mean_teacher and ladder methods, not vat")
	}
	return s, nil
}

// checkLadderLayers says, at the layers key of c, that the ladder's corrupted pass needs noise
// in the hidden layers, and at the semi key of semiAt that the full ladder needs a weight per
// level (a stage whose trunk comes from another model is checked by the trainer).
func checkLadderLayers(c, semiAt errorAt, semi *train.Semi, layers []nn.LayerSpec) error {
	if semi == nil || semi.Method != train.SemiLadder || len(layers) == 0 {
		return nil
	}
	if err := train.CheckLadderLayers(semi.Decoder, layers); err != nil {
		return c.Errorf("layers", "%v", err)
	}
	if semi.Decoder == train.LadderFull {
		taps := 0
		for _, l := range layers {
			if l.Type == nn.LayerDense {
				taps++
			}
		}
		if len(semi.Weights) != taps+2 {
			return semiAt.Errorf("semi", "weights has %d values; this stage's full ladder has %d layers (the inputs, %d dense layers, the logits), one weight each, inputs first", len(semi.Weights), taps+2, taps)
		}
	}
	for _, l := range layers {
		if l.Type == nn.LayerGaussianNoise && l.Stddev > 0 {
			return nil
		}
	}
	return c.Errorf("layers", "semi = { method = \"ladder\" } needs noise in the hidden layers of its corrupted pass: add { gaussian_noise = 0.3 } after each { batch_norm = true } (before the activation)")
}

// semiUnlabeled returns the unlabeled pool of semi-supervised training: every row of the
// materialised train table (its base rows: the labelled ones and those with a null target),
// then the rows of the `unlabeled` tables, which get the train table's fitted preprocessing
// replayed. Without unlabeled tables the pool shares the train table's data (no copy). It
// also returns how many pool rows have no label and how many came from the tables.
func semiUnlabeled(ctx context.Context, sc *pipeline.StageContext, d *supervised) (train.Dataset, int, int, error) {
	base := d.trainData.Data
	base.Index = nil
	pool := train.Dataset{X: base.X, NumInputs: base.NumInputs, Cat: base.Cat}
	unlabeled := base.Len() - d.trainData.Data.Len()
	extra, nExtra, err := readUnlabeled(ctx, sc, d.plan, func(t *pipeline.Table) (func(arrow.RecordBatch) (arrow.RecordBatch, error), error) {
		return replayLineage(ctx, sc, d.trainT.Lineage(), t)
	})
	if err != nil {
		return train.Dataset{}, 0, 0, err
	}
	if len(extra) > 0 {
		pool.X = append([]float32(nil), base.X...)
		pool.Cat = make([][]int32, len(base.Cat))
		for c := range base.Cat {
			pool.Cat[c] = append([]int32(nil), base.Cat[c]...)
		}
		for _, e := range extra {
			appendRows(&pool, e.Data)
		}
	}
	return pool, unlabeled, nExtra, nil
}

// errorAt makes a config error at a key: a stage's (pipeline.StageConfig) or an ensemble
// member table's (memberSettings).
type errorAt interface {
	Errorf(key, format string, args ...any) *pipeline.ConfigError
}

// setupSemi fills cfg.Semi from the stage's semi settings and the run's data, and records
// the pool in the manifest.
func setupSemi(ctx context.Context, sc *pipeline.StageContext, semi *train.Semi, d *supervised, cfg *train.Config, shape []int) error {
	if semi == nil {
		return nil
	}
	augment, err := semiAugment(sc, d, shape)
	if err != nil {
		return err
	}
	if len(d.plan.Targets) != 1 || d.plan.Targets[0].Task != bundle.TaskClassification {
		return sc.Config.Errorf("semi", "semi-supervised training needs one target with task = \"classification\" (a softmax head); this stage has %v with tasks %v", targetNames(d.plan), targetTasks(d.plan))
	}
	pool, unlabeled, nExtra, err := semiUnlabeled(ctx, sc, d)
	if err != nil {
		return err
	}
	s := *semi
	s.Unlabeled = pool
	s.Augment = augment
	cfg.Semi = &s
	sc.SetInfo("semi_method", s.Method)
	if s.Method == train.SemiLadder {
		sc.SetInfo("semi_ladder_decoder", cmp.Or(s.Decoder, train.LadderTop))
	}
	if s.Method == train.SemiVAT || s.Method == train.SemiLadder {
		sc.SetInfo("semi_separate_batches", s.SeparateBatches)
	}
	sc.SetInfo("semi_pool_rows", pool.Len())
	sc.SetInfo("semi_labeled_rows", d.trainData.Data.Len())
	if nExtra > 0 {
		sc.SetInfo("unlabeled_table_rows", nExtra)
	}
	if unlabeled+nExtra == 0 {
		sc.Note("semi = %s: no unlabeled rows (no null target, no unlabeled tables); the consistency loss uses the labelled rows only", s.Method)
	} else {
		sc.Note("semi = %s on %d labelled rows and a pool of %d rows (%d unlabeled)", s.Method, d.trainData.Data.Len(), pool.Len(), unlabeled+nExtra)
	}
	return nil
}

// semiAugment returns the augmentation of the unlabelled rows (train.Semi's Augment) when
// the semi table sets augment = true: the feature transforms of the train table's augment
// stages, for inputs of the image shape shape (nil: none). It says at the semi key what is
// missing, and notes that a mixup stays on the labelled rows.
func semiAugment(sc *pipeline.StageContext, d *supervised, shape []int) (func([]float32, int, *rand.Rand), error) {
	if on, _ := sc.Config.Table("semi")["augment"].(bool); !on {
		return nil, nil
	}
	lineage := d.trainT.Lineage()
	aug, mixStage, err := unlabeledAugmenter(lineage, d.plan, shape)
	if err != nil {
		return nil, err
	}
	if aug == nil {
		what := "the train table comes through no augment stage"
		if mixStage != "" {
			what = fmt.Sprintf("the train table's augment stage %s sets mixup only, which needs labels", mixStage)
		}
		return nil, sc.Config.Errorf("semi", "augment = true, but %s: feed train from an augment stage with noise, feature_dropout, shift or rotate, or remove augment", what)
	}
	if mixStage != "" {
		sc.Note("semi.augment: the unlabelled rows get the augment stages' transforms but not the mixup of %s, which needs labels", mixStage)
	}
	sc.Note("semi.augment: the unlabelled rows are augmented too (%s)", augmentStages(lineage))
	sc.SetInfo("semi_augment", true)
	return aug, nil
}

func targetTasks(p *bundle.InputPlan) []string {
	var out []string
	for _, t := range p.Targets {
		out = append(out, fmt.Sprintf("%s: %s", t.Column, t.Task))
	}
	return out
}
