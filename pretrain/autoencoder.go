package pretrain

import (
	"bytes"
	"context"
	"encoding/gob"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// Autoencoder types of AutoencoderConfig.Type.
const (
	TypePlain     = "plain"
	TypeDenoising = "denoising"
	TypeSparse    = "sparse"
)

// Corruption kinds of Corruption.Kind.
const (
	CorruptMask     = "mask"
	CorruptGaussian = "gaussian"
)

// Column group kinds of ColumnGroup.Kind.
const (
	GroupNumeric = "numeric"
	GroupOneHot  = "onehot"
)

// Defaults of AutoencoderConfig.
const (
	DefaultMaskRate      = 0.25
	DefaultGaussianStd   = 0.1
	DefaultSparsity      = 1e-3
	numericHeadName      = "recon_numeric"
	oneHotHeadNameFormat = "recon_onehot_%d"
)

// Corruption is the input corruption of a denoising autoencoder.
type Corruption struct {
	// Kind is "mask" (default: every input value is set to 0 independently with probability
	// Rate, masking noise of Vincent et al. 2010) or "gaussian" (N(0, Rate²) is added to every
	// input value).
	Kind string
	// Rate is the mask probability (default 0.25) or the noise standard deviation (default
	// 0.1).
	Rate float64
	// Unscaled leaves the values a mask keeps as they are (the masking noise of Vincent et al.
	// 2010). Default false: kept values are divided by 1-Rate (inverted dropout), so that a
	// corrupted input has the clean input's expectation. Without it the encoder trains on
	// inputs whose sum is (1-Rate) times that of the clean inputs it encodes afterwards (in
	// validation and fine-tuning). Measured on MNIST (rate 0.25, 10 epochs, as in
	// pipelines/mnist-semisupervised.toml): unscaled, the clean validation loss ends above the
	// corrupted training loss (0.017 vs 0.013); scaled, below it (0.0105 vs 0.014). Ignored
	// by gaussian noise, whose mean is 0.
	Unscaled bool
}

// ColumnGroup is a contiguous block of input columns with its reconstruction loss.
type ColumnGroup struct {
	Start, Len int
	// Kind is "numeric" (reconstructed by regression with MSE; the default) or "onehot" (a
	// one-hot block reconstructed by a softmax head with cross-entropy; the target is the
	// arg-max of the block, a row whose block is all zero counts as missing).
	Kind string
}

// AutoencoderConfig configures TrainAutoencoder. The zero value of every field but Encoder
// means the documented default.
type AutoencoderConfig struct {
	// Encoder is the encoder trunk, input side first, e.g. dense 512 relu, dense 256 relu.
	// Required, with at least one dense layer. A layer without a name is named enc_<i>
	// (1-based position in this slice); the last layer's output is the code.
	Encoder []nn.LayerSpec
	// Type is "plain" (the default), "denoising" (inputs corrupted by Corruption during
	// training, reconstruction targets clean) or "sparse" (an L1 activity penalty of Sparsity
	// on the code layer).
	Type string
	// Corruption is used by type denoising (default mask, rate 0.25).
	Corruption Corruption
	// Tied makes the decoder reuse the transposed encoder weights (nn LayerSpec.Tie with
	// TieTranspose); every decoder layer keeps its own bias. Default false: own weights.
	//
	// Layout: untied, the decoder mirrors the dense encoder layers below the code (dec_1 ...)
	// and the reconstruction heads read the last decoder layer directly. Tied, the decoder
	// mirrors every dense encoder layer including the first one (dec_out, input width, linear,
	// tied to enc_1ᵀ), and each head is a frozen 0/1 selection of dec_out's columns, so the
	// whole decoder is tied (the selection costs one extra input×input product per row).
	Tied bool
	// Sparsity is the L1 activity penalty on the code layer, (Sparsity·Σ|code|)/rows; used by
	// type sparse (default 1e-3) and ignored by the other types.
	Sparsity float64
	// Groups splits the inputs into reconstruction groups; columns not covered by a group, or
	// Groups empty (the default), are numeric. All numeric columns share one regression head
	// (recon_numeric, MSE); each one-hot group gets a softmax head (recon_onehot_<i>).
	//
	// Inputs scaled to [0, 1] (pixels) are reconstructed with MSE on linear outputs: nn has no
	// multi-output Bernoulli head with soft targets (its binary head is one unit with 0/1
	// labels), so sigmoid+BCE is not offered; squared error is Vincent et al.'s (2010) loss
	// for real-valued inputs and works well for pretraining.
	Groups []ColumnGroup
	// InputShape is [C, H, W] when the inputs are an image (each row's C·H·W values in
	// channel, row, column order): the autoencoder is convolutional. Its Encoder is conv,
	// max_pool, avg_pool and image residual layers (with batch_norm, activation, dropout and
	// gaussian_noise between them); the decoder mirrors it with upsample and conv layers
	// (dec_1, ..., then dec_out, a conv back to the C input channels), every pixel is
	// reconstructed with MSE, and the encoder keeps InputShape, so that a supervised model
	// with the same input shape and layer names loads it. Tied and Groups do not apply.
	// Default nil: plain features and a dense autoencoder.
	InputShape []int
	// Output is the activation of a convolutional decoder's last layer: "linear" (the
	// default, as the dense autoencoder's linear outputs) or "sigmoid" (outputs in (0, 1), for
	// pixels scaled to [0, 1]; the loss stays MSE). Only with InputShape.
	Output string
}

// Report describes an autoencoder training run.
type Report struct {
	// TrainLoss is, per epoch, the mean reconstruction loss of the training batches (on the
	// corrupted inputs of a denoising autoencoder, and including the sparsity penalty);
	// ValLoss is the validation reconstruction loss on clean inputs without penalties.
	TrainLoss, ValLoss []float64
	// BestEpoch is the epoch of lowest val_loss; with early stopping on (tc's default) the
	// encoder holds that epoch's weights, with it disabled the last epoch's.
	BestEpoch int
	// CorruptionKind and CorruptionRate are the configured corruption ("" and 0 when none).
	CorruptionKind string
	CorruptionRate float64
	// MeasuredCorruption is what was actually applied over all training batches: the share
	// of masked input values (mask) or the standard deviation of the added noise (gaussian).
	MeasuredCorruption float64
	// Seconds is the wall time of training.
	Seconds float64
}

// aeLayout is the resolved configuration of an autoencoder.
type aeLayout struct {
	cfg       AutoencoderConfig
	encoder   []nn.LayerSpec // named, without the added sparsity penalty
	numeric   []int          // numeric input columns, in order
	oneHot    []ColumnGroup
	codeWidth int
	// inputShape and decoder are set for a convolutional autoencoder: the image's [C, H, W]
	// and the decoder layers, dec_out last.
	inputShape []int
	decoder    []nn.LayerSpec
}

func resolveAutoencoder(cfg AutoencoderConfig, numInputs int) (aeLayout, error) {
	lay := aeLayout{cfg: cfg}
	if numInputs < 1 {
		return lay, fmt.Errorf("pretrain: autoencoder: the data has no numeric inputs")
	}
	switch cfg.Type {
	case "":
		lay.cfg.Type = TypePlain
	case TypePlain, TypeDenoising, TypeSparse:
	default:
		return lay, fmt.Errorf("pretrain: autoencoder type %q: want plain, denoising or sparse", cfg.Type)
	}
	if lay.cfg.Type == TypeDenoising {
		c := &lay.cfg.Corruption
		if c.Kind == "" {
			c.Kind = CorruptMask
		}
		switch c.Kind {
		case CorruptMask:
			if c.Rate == 0 {
				c.Rate = DefaultMaskRate
			}
			if c.Rate < 0 || c.Rate >= 1 {
				return lay, fmt.Errorf("pretrain: mask corruption rate %g not in [0, 1)", c.Rate)
			}
		case CorruptGaussian:
			if c.Rate == 0 {
				c.Rate = DefaultGaussianStd
			}
			if c.Rate < 0 {
				return lay, fmt.Errorf("pretrain: gaussian corruption std %g < 0", c.Rate)
			}
		default:
			return lay, fmt.Errorf("pretrain: corruption kind %q: want mask or gaussian", c.Kind)
		}
	}
	if lay.cfg.Type == TypeSparse {
		if lay.cfg.Sparsity == 0 {
			lay.cfg.Sparsity = DefaultSparsity
		}
		if lay.cfg.Sparsity < 0 {
			return lay, fmt.Errorf("pretrain: sparsity %g < 0", lay.cfg.Sparsity)
		}
	}
	if len(cfg.Encoder) == 0 {
		return lay, fmt.Errorf("pretrain: autoencoder: Encoder has no layers (e.g. dense 256 relu)")
	}
	lay.encoder = append([]nn.LayerSpec(nil), cfg.Encoder...)
	width, dense := numInputs, 0
	for i := range lay.encoder {
		l := &lay.encoder[i]
		if l.Name == "" {
			l.Name = fmt.Sprintf("enc_%d", i+1)
		}
		if l.Tie != "" {
			return lay, fmt.Errorf("pretrain: encoder layer %s: tie is for decoders, not encoder layers", l.Name)
		}
		if cfg.InputShape != nil {
			continue
		}
		switch l.Type {
		case nn.LayerDense:
			dense++
			width = l.Units
		case nn.LayerResidual:
			width = l.Units
		}
	}
	if cfg.InputShape != nil {
		return lay, lay.resolveConv(cfg.InputShape, numInputs)
	}
	if cfg.Output != "" {
		return lay, fmt.Errorf("pretrain: autoencoder: output %q is for a convolutional autoencoder (set InputShape); a dense autoencoder's outputs are linear", cfg.Output)
	}
	if dense == 0 {
		return lay, fmt.Errorf("pretrain: autoencoder: Encoder needs at least one dense layer (or, on an image, set InputShape for a convolutional autoencoder)")
	}
	lay.codeWidth = width
	covered := make([]bool, numInputs)
	for i, g := range cfg.Groups {
		if g.Start < 0 || g.Len < 1 || g.Start+g.Len > numInputs {
			return lay, fmt.Errorf("pretrain: column group %d [%d, %d) is outside the %d inputs", i+1, g.Start, g.Start+g.Len, numInputs)
		}
		for c := g.Start; c < g.Start+g.Len; c++ {
			if covered[c] {
				return lay, fmt.Errorf("pretrain: column group %d overlaps another group at column %d", i+1, c)
			}
			covered[c] = true
		}
		switch g.Kind {
		case "", GroupNumeric:
		case GroupOneHot:
			if g.Len < 2 {
				return lay, fmt.Errorf("pretrain: one-hot group %d has %d column, want >= 2", i+1, g.Len)
			}
			lay.oneHot = append(lay.oneHot, g)
		default:
			return lay, fmt.Errorf("pretrain: column group %d kind %q: want numeric or onehot", i+1, g.Kind)
		}
	}
	isOneHot := make([]bool, numInputs)
	for _, g := range lay.oneHot {
		for c := g.Start; c < g.Start+g.Len; c++ {
			isOneHot[c] = true
		}
	}
	for c := range numInputs {
		if !isOneHot[c] {
			lay.numeric = append(lay.numeric, c)
		}
	}
	return lay, nil
}

// denseActivation is the effective activation of encoder layer i: its inline activation, or
// that of an activation layer right after it.
func denseActivation(enc []nn.LayerSpec, i int) string {
	if enc[i].Activation != "" {
		return enc[i].Activation
	}
	if i+1 < len(enc) && enc[i+1].Type == nn.LayerActivation {
		return enc[i+1].Activation
	}
	return ""
}

// spec builds the autoencoder's nn.Spec.
func (lay aeLayout) spec(numInputs int, embeddings []nn.EmbeddingSpec) nn.Spec {
	layers := append([]nn.LayerSpec(nil), lay.encoder...)
	if lay.cfg.Type == TypeSparse {
		code := &layers[len(layers)-1]
		code.ActivityL1 += lay.cfg.Sparsity
	}
	if lay.inputShape != nil {
		layers = append(layers, lay.decoder...)
		return nn.Spec{NumInputs: numInputs, InputShape: lay.inputShape, Layers: layers,
			Heads: []nn.HeadSpec{{Name: numericHeadName, Kind: nn.HeadRegression, Outputs: numInputs, Loss: nn.LossMSE}}}
	}
	var denseIdx []int
	for i, l := range lay.encoder {
		if l.Type == nn.LayerDense {
			denseIdx = append(denseIdx, i)
		}
	}
	// Mirror the dense layers: dense j (1-based among dense layers) is rebuilt by dec_{j-1}
	// with the width and activation of dense j-1.
	for j := len(denseIdx) - 1; j >= 1; j-- {
		below := lay.encoder[denseIdx[j-1]]
		d := nn.LayerSpec{Type: nn.LayerDense, Name: fmt.Sprintf("dec_%d", j), Units: below.Units, Activation: denseActivation(lay.encoder, denseIdx[j-1])}
		if lay.cfg.Tied {
			d.Tie, d.TieTranspose = lay.encoder[denseIdx[j]].Name, true
		}
		layers = append(layers, d)
	}
	if lay.cfg.Tied {
		layers = append(layers, nn.LayerSpec{Type: nn.LayerDense, Name: "dec_out", Units: numInputs,
			Tie: lay.encoder[denseIdx[0]].Name, TieTranspose: true})
	}
	var heads []nn.HeadSpec
	if len(lay.numeric) > 0 {
		heads = append(heads, nn.HeadSpec{Name: numericHeadName, Kind: nn.HeadRegression, Outputs: len(lay.numeric), Loss: nn.LossMSE})
	}
	for i, g := range lay.oneHot {
		heads = append(heads, nn.HeadSpec{Name: fmt.Sprintf(oneHotHeadNameFormat, i+1), Kind: nn.HeadSoftmax, Classes: g.Len})
	}
	return nn.Spec{NumInputs: numInputs, Embeddings: embeddings, Layers: layers, Heads: heads}
}

// headColumns returns, per head, the input columns it reconstructs.
func (lay aeLayout) headColumns() [][]int {
	var out [][]int
	if len(lay.numeric) > 0 {
		out = append(out, lay.numeric)
	}
	for _, g := range lay.oneHot {
		cols := make([]int, g.Len)
		for i := range cols {
			cols[i] = g.Start + i
		}
		out = append(out, cols)
	}
	return out
}

// targets builds the reconstruction targets of d's base rows from its clean X. A numeric
// block covering every column aliases d.X (the trainer never modifies a dataset).
func (lay aeLayout) targets(d train.Dataset) []train.Target {
	n := len(d.X) / d.NumInputs
	ni := d.NumInputs
	var out []train.Target
	if k := len(lay.numeric); k > 0 {
		if k == ni {
			out = append(out, train.Target{Values: d.X, Outputs: k})
		} else {
			v := make([]float32, n*k)
			for r := range n {
				for j, c := range lay.numeric {
					v[r*k+j] = d.X[r*ni+c]
				}
			}
			out = append(out, train.Target{Values: v, Outputs: k})
		}
	}
	for _, g := range lay.oneHot {
		labels := make([]int32, n)
		for r := range n {
			labels[r] = -1
			best := float32(0)
			for j := range g.Len {
				if v := d.X[r*ni+g.Start+j]; v > best {
					best, labels[r] = v, int32(j)
				}
			}
		}
		out = append(out, train.Target{Labels: labels})
	}
	return out
}

// selectionHeads makes every head of a tied autoencoder a frozen 0/1 selection of the
// decoder output columns it reconstructs.
func selectionHeads(m *nn.Model, lay aeLayout, numInputs int) error {
	for h, cols := range lay.headColumns() {
		name := "head_" + m.Heads()[h].Name
		w, b := m.Param(name+"/W"), m.Param(name+"/b")
		if w == nil || b == nil || len(w.Value) != numInputs*len(cols) {
			return fmt.Errorf("pretrain: internal: head %s has an unexpected shape", name)
		}
		clear(w.Value)
		clear(b.Value)
		for j, c := range cols {
			w.Value[c*len(cols)+j] = 1
		}
		if _, err := m.Freeze(name); err != nil {
			return err
		}
	}
	return nil
}

// corruptor applies and measures the input corruption of a denoising autoencoder.
type corruptor struct {
	kind      string
	rate      float64
	unscaled  bool // mask: keep values as they are instead of dividing them by 1-rate
	masked    int64
	values    int64
	noiseSumS float64
}

// augment corrupts only b.X; t (the clean reconstruction targets) is left as it is.
func (c *corruptor) augment(b *nn.Batch, t *nn.Targets, rng *rand.Rand) {
	x := b.X
	switch c.kind {
	case CorruptMask:
		// Two independent 32-bit uniforms per draw: value i is masked when its uniform is
		// below rate·2³² (resolution 2⁻³²); a kept value is scaled by 1/(1-rate) so that
		// E[corrupted] = clean (unless unscaled).
		thr := uint64(c.rate * (1 << 32))
		keep := float32(1 / (1 - c.rate))
		if c.unscaled {
			keep = 1
		}
		for i := 0; i < len(x); i += 2 {
			u := rng.Uint64()
			if u&0xffffffff < thr {
				x[i] = 0
				c.masked++
			} else {
				x[i] *= keep
			}
			if i+1 < len(x) {
				if u>>32 < thr {
					x[i+1] = 0
					c.masked++
				} else {
					x[i+1] *= keep
				}
			}
		}
	case CorruptGaussian:
		for i := range x {
			e := rng.NormFloat64() * c.rate
			x[i] += float32(e)
			c.noiseSumS += e * e
		}
	}
	c.values += int64(len(x))
}

// corruptorState is the part of a corruptor that a checkpoint carries (train.Config's
// AugmentState), so that a resumed training measures over every batch, as an uninterrupted one.
type corruptorState struct {
	Masked, Values int64
	NoiseSumS      float64
}

// MarshalBinary encodes the counters (gob; floats bit-exact).
func (c *corruptor) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	err := gob.NewEncoder(&buf).Encode(corruptorState{Masked: c.masked, Values: c.values, NoiseSumS: c.noiseSumS})
	return buf.Bytes(), err
}

// UnmarshalBinary restores counters written by MarshalBinary.
func (c *corruptor) UnmarshalBinary(b []byte) error {
	var st corruptorState
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&st); err != nil {
		return fmt.Errorf("pretrain: corruption counters: %w", err)
	}
	c.masked, c.values, c.noiseSumS = st.Masked, st.Values, st.NoiseSumS
	return nil
}

func (c *corruptor) measured() float64 {
	if c.values == 0 {
		return 0
	}
	if c.kind == CorruptMask {
		return float64(c.masked) / float64(c.values)
	}
	return math.Sqrt(c.noiseSumS / float64(c.values))
}

// CheckAutoencoder reports what is wrong with cfg for data of numInputs numeric inputs (an
// encoder a convolutional decoder cannot mirror, say) without training: the error
// TrainAutoencoder would return before it starts.
func CheckAutoencoder(cfg AutoencoderConfig, numInputs int) error {
	_, err := resolveAutoencoder(cfg, numInputs)
	return err
}

// TrainAutoencoder trains an autoencoder on the inputs of data (X, and Cat for the model's
// embeddings; targets and labels are ignored, every row counts) and returns its encoder.
// val, when it has rows, is the validation set of early stopping on the clean reconstruction
// loss; empty, Fit carves tc.ValFraction of data. The reconstruction targets are built from
// the clean X; the denoising corruption runs as tc.Augment on the input batch only, so tc
// must not carry an Augment of its own (it would corrupt inputs and targets inconsistently).
// X must be finite (impute missing values first). data and val are not modified.
//
// Checkpoints and resume go through tc: hooks in tc.Hooks see every epoch's end (and can take
// its checkpoint: train.EpochInfo.Checkpoint, which also carries the corruption's measurement
// counters), and tc.Resume continues an interrupted training bit-identically (encoder weights
// and Report, timing aside). A checkpoint that does not fit is an error wrapping
// train.ErrCheckpoint.
func TrainAutoencoder(ctx context.Context, cfg AutoencoderConfig, data, val train.Dataset, tc train.Config) (*Encoder, Report, error) {
	return trainAutoencoder(ctx, cfg, data, val, tc, nil)
}

// trainAutoencoder is TrainAutoencoder that also hands the trained autoencoder to keep.
func trainAutoencoder(ctx context.Context, cfg AutoencoderConfig, data, val train.Dataset, tc train.Config, keep func(*nn.Model)) (*Encoder, Report, error) {
	var rep Report
	if tc.Augment != nil {
		return nil, rep, fmt.Errorf("pretrain: autoencoder: train.Config.Augment is set; the autoencoder installs its own corruption (configure AutoencoderConfig.Corruption instead)")
	}
	lay, err := resolveAutoencoder(cfg, data.NumInputs)
	if err != nil {
		return nil, rep, err
	}
	if len(data.X) == 0 || len(data.X)%data.NumInputs != 0 {
		return nil, rep, fmt.Errorf("pretrain: autoencoder: X has %d values, not a multiple of %d inputs", len(data.X), data.NumInputs)
	}
	var embeds []nn.EmbeddingSpec
	if len(data.Cat) > 0 {
		return nil, rep, fmt.Errorf("pretrain: autoencoder: categorical inputs are not reconstructed; pretrain embeddings with PretrainEmbeddings and pass the numeric block here")
	}
	spec := lay.spec(data.NumInputs, embeds)
	m, err := nn.Build(spec, rand.New(rand.NewPCG(tc.Seed, 0x5eed)))
	if err != nil {
		return nil, rep, fmt.Errorf("pretrain: build autoencoder: %w", err)
	}
	if lay.cfg.Tied || lay.inputShape != nil {
		// A conv decoder's dec_out is the reconstruction: its head is the identity.
		if err := selectionHeads(m, lay, data.NumInputs); err != nil {
			return nil, rep, err
		}
	}
	trainSet := train.Dataset{X: data.X, NumInputs: data.NumInputs, Index: data.Index, Targets: lay.targets(data)}
	valSet := train.Dataset{Index: []int{}}
	if val.Len() > 0 {
		if val.NumInputs != data.NumInputs {
			return nil, rep, fmt.Errorf("pretrain: autoencoder: validation data has %d inputs, training data %d", val.NumInputs, data.NumInputs)
		}
		valSet = train.Dataset{X: val.X, NumInputs: val.NumInputs, Index: val.Index, Targets: lay.targets(val)}
	}
	var cor *corruptor
	if lay.cfg.Type == TypeDenoising {
		cor = &corruptor{kind: lay.cfg.Corruption.Kind, rate: lay.cfg.Corruption.Rate, unscaled: lay.cfg.Corruption.Unscaled}
		tc.Augment, tc.AugmentState = cor.augment, cor
		rep.CorruptionKind, rep.CorruptionRate = cor.kind, cor.rate
	}
	start := time.Now()
	res, err := train.Fit(ctx, m, trainSet, valSet, tc)
	rep.Seconds = time.Since(start).Seconds()
	rep.TrainLoss = res.History.Series("loss")
	rep.ValLoss = res.History.Series("val_loss")
	rep.BestEpoch = res.BestEpoch
	if cor != nil {
		rep.MeasuredCorruption = cor.measured()
	}
	if err != nil {
		return nil, rep, fmt.Errorf("pretrain: train autoencoder: %w", err)
	}
	if keep != nil {
		keep(m)
	}
	enc, err := newEncoder(m, data.NumInputs, lay.inputShape, embeds, lay.encoder, lay.codeWidth)
	if err != nil {
		return nil, rep, err
	}
	return enc, rep, nil
}
