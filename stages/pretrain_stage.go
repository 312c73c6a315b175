package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/pipe-ml/pipe/bundle"
	"path/filepath"
	"strings"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/pretrain"
)

// EncoderArtifact is a pretrained encoder on an artifact edge: a train stage takes it as
// init_from.
type EncoderArtifact struct {
	Enc  *pretrain.Encoder
	Plan bundle.InputPlan // the inputs it was trained on
}

// ArtifactKind is "encoder".
func (e *EncoderArtifact) ArtifactKind() string { return "encoder" }

// TransferModel implements TransferSource.
func (e *EncoderArtifact) TransferModel() *nn.Model { return e.Enc.Model() }

// TransferLayers implements TransferSource: the encoder's layers, with their names.
func (e *EncoderArtifact) TransferLayers() []nn.LayerSpec { return e.Enc.Spec().Layers }

// unsupervisedExcluded are train fields that make no sense without a target.
var unsupervisedExcluded = map[string]bool{"target": true, "task": true, "tasks": true, "label_smoothing": true, "class_weight": true, "target_noise": true, "head_batch_norm": true, "head_noise": true}

func pretrainKind() pipeline.KindSpec {
	fields := []pipeline.Field{
		{Name: "input", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The table to learn from: every row counts, labelled or not (labels are ignored)."},
		unlabeledField("their rows are learnt from together with input's."),
		{Name: "val", Type: pipeline.TypeInput, Port: pipeline.PortTable, Doc: "Rows for early stopping on the reconstruction loss (default: a seeded 10% of input)."},
		{Name: "type", Type: pipeline.TypeString, Default: "denoising", Enum: []string{"plain", "denoising", "sparse", "embeddings"}, Doc: "Undercomplete (plain), denoising (inputs corrupted while training, targets clean), or sparse (L1 activity penalty on the code) autoencoder of the numeric and one-hot columns; or embeddings: masked-column prediction over the index-encoded categorical columns (encode categorical = \"index\"), which pretrains their embedding tables (emb_<column>, the names a train stage gives them): every row hides one of its categorical columns, chosen afresh at every step, and a softmax head per column predicts it from the other columns and the numeric ones through `layers` (default one dense layer of 64, not transferred). Needs at least two categorical columns."},
		{Name: "corruption", Type: pipeline.TypeTable, Fields: []pipeline.Field{
			{Name: "kind", Type: pipeline.TypeString, Default: pretrain.CorruptMask, Enum: []string{pretrain.CorruptMask, pretrain.CorruptGaussian}, Doc: "mask: inputs zeroed; gaussian: noise added."},
			{Name: "rate", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: "mask: the probability, in [0, 1) (0: 0.25); gaussian: the noise's standard deviation (0: 0.1)."},
			{Name: "unscaled", Type: pipeline.TypeBool, Doc: "mask: keep the kept values as they are instead of dividing them by 1 - rate."},
		}, Doc: "Denoising corruption: { kind = \"mask\", rate = 0.25 } (each input zeroed with probability rate, Vincent et al. 2010, and the kept ones divided by 1 - rate so that a corrupted input has the clean input's expectation; unscaled = true keeps them as they are) or { kind = \"gaussian\", rate = 0.1 } (noise std). Drawn afresh every step."},
		{Name: "tied", Type: pipeline.TypeBool, Default: false, Doc: "The decoder reuses the transposed encoder weights (own biases)."},
		{Name: "sparsity", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Doc: "L1 activity penalty on the code (type sparse; default 1e-3 there)."},
		{Name: "image", Type: pipeline.TypeBoolOrTable, Fields: imageFields(), Doc: "The feature columns are an image, as on a train stage ({ shape = [channels, height, width] }, true for the digits and mnist pixels, or { column = \"pixels\" } for a tensor column): the autoencoder is convolutional. Its layers are conv (padding = \"same\"), max_pool/avg_pool whose kernel equals the stride and divides the height and width, type = \"residual\" with filters, batch_norm, activation, dropout and gaussian_noise; the decoder mirrors them (upsample for every pooling or stride, a conv back to each conv's input channels, dec_out back to the image's channels) and every pixel is reconstructed with MSE. The encoder keeps the image shape: a train stage with the same image key loads its layers by name (init_from) and adds flatten and dense layers after them. tied does not apply."},
		{Name: "output", Type: pipeline.TypeString, Enum: []string{pretrain.OutputLinear, pretrain.OutputSigmoid}, Doc: "With image: the activation of the decoder's last conv, linear (the default, as the dense autoencoder's outputs) or sigmoid (outputs in (0, 1), for pixels scaled to [0, 1] by a minmax normalize)."},
		{Name: "revive_dead", Type: pipeline.TypeBool, Default: false, Doc: "After training, re-initialise (He normal, bias 0) the encoder's ReLU units that are zero on every training row: dead units pass nothing on and get no gradient when fine-tuned, so the transferred layer is narrower than it looks. The manifest's `revived` counts them per layer."},
	}
	for _, f := range trainFields() {
		if !unsupervisedExcluded[f.Name] {
			fields = append(fields, f)
		}
	}
	return pipeline.KindSpec{
		Kind: "pretrain", Shape: pipeline.ShapeTrain,
		Doc: "Trains an autoencoder on a table's feature columns, for unsupervised pretraining: rows with a null target count as unlabeled data. " +
			"The decoder mirrors the encoder; numeric columns are reconstructed with MSE, one-hot groups (encode's `<column>=<value>` columns) with softmax cross-entropy. " +
			"With image, the autoencoder is convolutional: conv and pooling layers, mirrored by upsample and conv layers, every pixel reconstructed with MSE. " +
			"Outputs the `encoder`, whose layers (named enc_1, enc_2, ... unless named) a train stage loads with init_from, and the per-epoch reconstruction loss. " +
			"With type = \"embeddings\" it pretrains the embedding tables of index-encoded categorical columns instead (masked-column prediction), and init_from loads those tables.",
		Fields: fields,
		Outputs: func(*pipeline.StageConfig) []pipeline.Port {
			return []pipeline.Port{{Name: "encoder", Kind: pipeline.PortArtifact}}
		},
		DefaultOutput: "encoder",
		Example:       "[stages.dae]\nkind = \"pretrain\"\ninput = \"scale.train\"\ntype = \"denoising\"\ncorruption = { kind = \"mask\", rate = 0.3 }\nlayers = [ { dense = 512 }, { dense = 256 } ]\nepochs = 30",
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			ts, err := parseTrainSpec(c)
			if err != nil {
				return nil, err
			}
			if c.String("type") == "embeddings" {
				if v := c.Value("image"); v != nil && v != false {
					return nil, c.Errorf("image", "type = \"embeddings\" pretrains categorical embedding tables and takes no image: use type = \"plain\", \"denoising\" or \"sparse\" for a convolutional autoencoder")
				}
				var trunk []nn.LayerSpec
				if c.IsSet("layers") {
					trunk = ts.layers
				}
				return &pretrainStage{ts: ts, embeddings: true, trunk: trunk}, nil
			}
			if c.Value("layers") == nil {
				return nil, c.Errorf("layers", "the encoder needs layers, e.g. [ { dense = 256 }, { dense = 64 } ]")
			}
			cfg := pretrain.AutoencoderConfig{Encoder: ts.layers, Type: c.String("type"), Tied: c.Bool("tied"), Sparsity: c.Float("sparsity"), Output: c.String("output")}
			image := c.Value("image") != nil && c.Value("image") != false
			if !image && c.IsSet("output") {
				return nil, c.Errorf("output", "output sets the last layer of a convolutional decoder, and this autoencoder is dense (its outputs are linear): drop output, or add image = { shape = [channels, height, width] }")
			}
			if image && c.Bool("tied") {
				return nil, c.Errorf("tied", "a convolutional autoencoder (image is set) has its own decoder filters: drop tied")
			}
			for i := range cfg.Encoder {
				if cfg.Encoder[i].Name == "" && cfg.Encoder[i].Type == nn.LayerDense {
					cfg.Encoder[i].Name = fmt.Sprintf("enc_%d", i+1)
				}
			}
			if cr := c.Table("corruption"); cr != nil {
				if err := decodeStrict(cr, &cfg.Corruption); err != nil {
					return nil, c.Errorf("corruption", "%v", jsonErr(err))
				}
				if cfg.Corruption.Kind == pretrain.CorruptMask && cfg.Corruption.Rate >= 1 {
					return nil, c.Errorf("corruption.rate", "a mask rate is a probability below 1, found %v", cfg.Corruption.Rate)
				}
			}
			im, _ := c.Value("image").(map[string]any)
			if sh, ok := im["shape"].([]any); ok && len(sh) == 3 {
				// The shape is known now: check that the decoder can mirror the encoder.
				shape := make([]int, 3)
				for i, v := range sh {
					shape[i] = int(v.(int64))
				}
				check := cfg
				check.InputShape = shape
				if err := pretrain.CheckAutoencoder(check, shape[0]*shape[1]*shape[2]); err != nil {
					return nil, c.Errorf("layers", "%v", err)
				}
			}
			return &pretrainStage{ts: ts, cfg: cfg, revive: c.Bool("revive_dead")}, nil
		},
	}
}

type pretrainStage struct {
	ts  *trainSpec
	cfg pretrain.AutoencoderConfig
	// embeddings selects masked-column pretraining of the categorical embeddings, with
	// trunk as its layers (nil: the library's default).
	embeddings bool
	trunk      []nn.LayerSpec
	revive     bool
}

// oneHotGroups finds encode's one-hot blocks (<column>=<value>, contiguous) among the inputs.
func oneHotGroups(numeric []string) []pretrain.ColumnGroup {
	var groups []pretrain.ColumnGroup
	for i := 0; i < len(numeric); {
		col, _, ok := strings.Cut(numeric[i], "=")
		if !ok {
			i++
			continue
		}
		j := i + 1
		for j < len(numeric) && strings.HasPrefix(numeric[j], col+"=") {
			j++
		}
		if j-i >= 2 {
			groups = append(groups, pretrain.ColumnGroup{Start: i, Len: j - i, Kind: pretrain.GroupOneHot})
		}
		i = j
	}
	return groups
}

func (s *pretrainStage) Run(ctx context.Context, sc *pipeline.StageContext) error {
	in, err := sc.Input(ctx, "input")
	if err != nil {
		return err
	}
	if err := in.Wait(ctx); err != nil {
		return err
	}
	plan, err := planFeatures(ctx, sc, in, s.ts.features)
	if err != nil {
		return err
	}
	shape, err := imageShape(sc.Config, plan)
	if err != nil {
		return err
	}
	// The unlabeled tables are read whole, and their rows join the input's: the input's
	// dense copy is reserved in the memory budget, or the input read through a file mapping
	// when it does not fit (loadTensors), and theirs held.
	extra, nExtra, err := readUnlabeled(ctx, sc, plan, func(t *pipeline.Table) (func(arrow.RecordBatch) (arrow.RecordBatch, error), error) {
		return replayLineage(ctx, sc, in.Lineage(), t)
	})
	if err != nil {
		return err
	}
	freeExtra := holdUnlabeled(sc, plan, extra)
	defer freeExtra()
	data, err := loadTensors(ctx, sc, plan, in, false, nil, "input")
	if err != nil {
		return err
	}
	defer func() { data.done() }()
	var val = data.Data
	val.Index = []int{}
	if _, ok := sc.Config.Input("val"); ok {
		vt, err := sc.Input(ctx, "val")
		if err != nil {
			return err
		}
		vd, err := loadTensors(ctx, sc, plan, vt, false, nil, "val")
		if err != nil {
			return err
		}
		defer vd.done()
		val = vd.Data
	}
	if err := appendUnlabeled(sc, data, extra, freeExtra); err != nil {
		return err
	}
	sc.SetInfo("rows", data.Data.Len())
	if nExtra > 0 {
		sc.SetInfo("unlabeled_table_rows", nExtra)
	}
	if s.embeddings && len(plan.Categorical) < 2 {
		return &pipeline.DataError{Stage: sc.Name, Msg: fmt.Sprintf("type = \"embeddings\" predicts each categorical column from the others, and the input has %d index-encoded categorical column(s)", len(plan.Categorical)),
			Hint: "encode the categorical columns with an encode stage (categorical = \"index\"), or use an autoencoder type"}
	}
	if !s.embeddings && len(plan.Categorical) > 0 {
		var cols []string
		for _, c := range plan.Categorical {
			cols = append(cols, c.Column)
		}
		return &pipeline.DataError{Stage: sc.Name, Column: strings.Join(cols, ", "), Msg: fmt.Sprintf("a %s autoencoder reconstructs numeric and one-hot columns, and these are index-encoded categorical columns", s.cfg.Type),
			Hint: "encode them one-hot (encode categorical = \"onehot\") to reconstruct them with cross-entropy, leave them out with features = [...], or pretrain their embeddings in a separate stage with type = \"embeddings\""}
	}
	tc := s.ts.cfg
	tc.Seed = sc.Seed(1)
	tc.Logger = sc.Log
	n, release, err := takeCPU(ctx, sc, s.ts.workers)
	if err != nil {
		return err
	}
	defer release()
	tc.Workers = n
	epochs := tc.Epochs
	tc.Hooks = append(tc.Hooks, train.OnEpochEnd("progress", 100, func(e *train.EpochInfo) error {
		sc.Progress(int64(e.Epoch+1), int64(epochs), "epoch")
		return nil
	}))
	if s.embeddings {
		return s.runEmbeddings(ctx, sc, plan, data.Data, val, tc)
	}
	cfg := s.cfg
	cfg.Groups = oneHotGroups(plan.Numeric)
	cfg.InputShape = shape
	if cfg.InputShape != nil {
		cfg.Groups = nil
		if err := pretrain.CheckAutoencoder(cfg, data.Data.NumInputs); err != nil {
			return sc.Config.Errorf("layers", "%v", err)
		}
		sc.SetInfo("image_shape", cfg.InputShape)
	}
	var enc *pretrain.Encoder
	var rep pretrain.Report
	if err := runWithCheckpoints(ctx, sc, pretrainCheckpointName, tc, func(tc train.Config) (err error) {
		enc, rep, err = pretrain.TrainAutoencoder(ctx, cfg, data.Data, val, tc)
		return err
	}); err != nil {
		return err
	}
	if s.revive {
		n, err := pretrain.ReviveDeadUnits(enc, data.Data, sc.Rand(2))
		if err != nil {
			return err
		}
		sc.SetInfo("revived", n)
	}
	if cfg.Type == pretrain.TypeDenoising {
		sc.SetInfo("corruption", map[string]any{"kind": rep.CorruptionKind, "rate": rep.CorruptionRate, "measured": rep.MeasuredCorruption})
	}
	sc.SetInfo("code_width", enc.CodeWidth())
	sc.SetInfo("layers", enc.ParamLayers())
	return publishEncoder(sc, plan, enc, "reconstruction_loss", rep.TrainLoss, rep.ValLoss, rep.BestEpoch)
}

// publishEncoder records the per-epoch losses (metrics train_<loss> and val_<loss> at the
// best epoch, history.csv), saves the encoder in the stage directory and outputs it.
func publishEncoder(sc *pipeline.StageContext, plan *bundle.InputPlan, enc *pretrain.Encoder, loss string, trainLoss, valLoss []float64, best int) error {
	if len(trainLoss) > 0 {
		sc.Metrics.Set("train_"+loss, trainLoss[len(trainLoss)-1])
	}
	if len(valLoss) > 0 {
		sc.Metrics.Set("val_"+loss, valLoss[min(best, len(valLoss)-1)])
	}
	sc.SetInfo("epochs", len(trainLoss))
	dir, err := sc.Dir()
	if err != nil {
		return err
	}
	if err := writeSeries(filepath.Join(dir, "history.csv"), map[string][]float64{"train_" + loss: trainLoss, "val_" + loss: valLoss}); err != nil {
		return err
	}
	if err := enc.Save(filepath.Join(dir, encoderDir)); err != nil {
		return err
	}
	// The plan goes with the encoder, so that the stage store reads the artifact back whole.
	pj, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	if err := pipeline.WriteFileAtomic(filepath.Join(dir, encoderDir, encoderPlanFile), pj); err != nil {
		return err
	}
	return sc.SetArtifact("encoder", &EncoderArtifact{Enc: enc, Plan: *plan})
}

// runEmbeddings pretrains the categorical embedding tables by masked-column prediction.
func (s *pretrainStage) runEmbeddings(ctx context.Context, sc *pipeline.StageContext, plan *bundle.InputPlan, data, val train.Dataset, tc train.Config) error {
	spec := s.ts.embeddingSpecs(plan)
	var enc *pretrain.Encoder
	var rep pretrain.EmbeddingReport
	if err := runWithCheckpoints(ctx, sc, pretrainCheckpointName, tc, func(tc train.Config) (err error) {
		enc, rep, err = pretrain.PretrainEmbeddings(ctx, pretrain.EmbeddingConfig{Embeddings: spec, Trunk: s.trunk}, data, val, tc)
		return err
	}); err != nil {
		return err
	}
	for name, acc := range rep.ValAccuracy {
		sc.Metrics.Set("val_accuracy/"+name, acc)
	}
	var tables []string
	for _, e := range spec {
		tables = append(tables, e.Name)
	}
	sc.SetInfo("embeddings", tables)
	return publishEncoder(sc, plan, enc, "masked_loss", rep.TrainLoss, rep.ValLoss, rep.BestEpoch)
}
