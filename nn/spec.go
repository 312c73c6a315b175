package nn

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// FormatVersion is the version of the model.json / weights.bin format written by Save.
const FormatVersion = 1

// Layer types of LayerSpec.Type.
const (
	LayerDense         = "dense"
	LayerActivation    = "activation"
	LayerDropout       = "dropout"
	LayerBatchNorm     = "batch_norm" // over channels on an image (per channel over batch×H×W)
	LayerLayerNorm     = "layer_norm"
	LayerGaussianNoise = "gaussian_noise"
	LayerResidual      = "residual"
	// LayerCustom is a block registered with RegisterCustom and named by LayerSpec.Custom.
	LayerCustom = "custom"
	// Image layers (they need Spec.InputShape): a 2-D convolution, max and average pooling,
	// global average pooling (an image to one value per channel) and flatten (ends the image
	// shape; the data passes unchanged).
	LayerConv          = "conv"
	LayerMaxPool       = "max_pool"
	LayerAvgPool       = "avg_pool"
	LayerGlobalAvgPool = "global_avg_pool"
	LayerFlatten       = "flatten"
	// LayerUpsample repeats every pixel Factor×Factor times (nearest neighbour): [C, H, W] →
	// [C, H·Factor, W·Factor], the decoder's counterpart of pooling.
	LayerUpsample = "upsample"
)

// Head kinds of HeadSpec.Kind.
const (
	HeadSoftmax    = "softmax"
	HeadBinary     = "binary"
	HeadRegression = "regression"
)

// Loss names of HeadSpec.Loss.
const (
	LossCrossEntropy = "cross_entropy" // softmax and binary heads
	LossMSE          = "mse"
	LossMAE          = "mae"
	LossHuber        = "huber"
)

// Spec declares a model: inputs, trunk layers and heads. It is what model.json holds and what
// the `layers = [...]` table of a train stage maps onto. The zero value of every optional field
// means the documented default.
type Spec struct {
	// FormatVersion is written by Save and checked by Load; leave it 0 when building.
	FormatVersion int `json:"format_version,omitempty"`
	// NumInputs is the width of the dense numeric feature block (may be 0 when every input is
	// categorical).
	NumInputs int `json:"num_inputs"`
	// Embeddings are the categorical inputs, in the order of Batch.Cat. Their outputs are
	// concatenated after the numeric block.
	Embeddings []EmbeddingSpec `json:"embeddings,omitempty"`
	// Layers is the trunk, applied in order.
	Layers []LayerSpec `json:"layers"`
	// Heads are the task outputs; at least one.
	Heads []HeadSpec `json:"heads"`
	// L1 and L2 are global weight penalties, L1·Σ|w| and L2·Σw², on every param that is not
	// NoDecay (biases and normalisation scales are NoDecay). A layer's own L1/L2 replaces them
	// for that layer. Default 0.
	L1 float64 `json:"l1,omitempty"`
	L2 float64 `json:"l2,omitempty"`
	// ParamDiffPenalties add Weight·Σ‖A−B‖² between two groups of params (default none).
	ParamDiffPenalties []ParamDiffPenalty `json:"param_diff_penalties,omitempty"`
	// InputShape is [C, H, W] when the numeric inputs are an image: each row's NumInputs =
	// C·H·W features are its pixels flattened row-major (channel, then row, then column). The
	// image layers (conv, max_pool, avg_pool, global_avg_pool, flatten, upsample) need it. Default nil:
	// plain features.
	InputShape []int `json:"input_shape,omitempty"`
}

// EmbeddingSpec is a categorical input column looked up in a learned table. Index 0 is the
// "unknown" bucket: indices < 0 or >= Cardinality are mapped to 0.
type EmbeddingSpec struct {
	// Name is the layer name; default embedding_<i> (1-based).
	Name string `json:"name,omitempty"`
	// Column is the source column (informational; the caller maps it to Batch.Cat).
	Column      string `json:"column,omitempty"`
	Cardinality int    `json:"cardinality"` // number of rows of the table, including bucket 0
	Dim         int    `json:"dim"`         // embedding width
}

// LayerSpec is one trunk layer. Type selects the layer; the other fields apply to the types
// noted on them.
//
// In JSON a layer may also be written in the short form {"dense": 128, "activation": "relu",
// "dropout": 0.2}, {"dropout": 0.1}, {"activation": "tanh"}, {"batch_norm": true},
// {"layer_norm": true}, {"gaussian_noise": 0.1}, {"residual": 64} or {"custom": "my_block"};
// image layers as {"conv": 32, "kernel": 3} (filters), {"max_pool": 2} and {"avg_pool": 2}
// (kernel), {"global_avg_pool": true}, {"flatten": true} or {"upsample": 2} (factor).
type LayerSpec struct {
	Type string `json:"type"`
	// Name is the stable layer name; default "<type>_<n>" with n counting layers of that type
	// from 1.
	Name string `json:"name,omitempty"`

	// Units is the output width (dense, residual). On a custom layer it is optional: when set it
	// is passed to the block's factory and the block's output width must equal it.
	Units int `json:"units,omitempty"`
	// Custom names the registered block of a custom layer (see RegisterCustom); required for
	// type custom, ignored otherwise.
	Custom string `json:"custom,omitempty"`
	// Activation is relu, leaky_relu (slope 0.01), gelu (exact, erf), elu (alpha 1), tanh,
	// sigmoid or linear. For dense and residual layers it is applied inline; default linear for
	// dense, relu for residual. For an activation layer it is required.
	Activation string `json:"activation,omitempty"`
	// Init is he_normal, he_uniform, glorot_normal, glorot_uniform, lecun_normal or zeros.
	// Default: He normal for the ReLU family (relu, leaky_relu, gelu, elu), Glorot uniform
	// otherwise.
	Init string `json:"init,omitempty"`
	// NoBias drops the bias of a dense layer (use_bias = false). Default: a bias.
	NoBias bool `json:"no_bias,omitempty"`
	// NoScale drops the learned scale γ of a batch_norm layer (Keras's scale = false): the
	// layer outputs x̂ + β. Before a ReLU the scale is redundant with the next layer's weights,
	// and with a gaussian_noise layer after the batch norm it keeps the noise at its stated
	// size relative to the normalised signal (a learned γ can grow and shrink it, as the
	// ladder network's authors avoid). Default: a scale.
	NoScale bool `json:"no_scale,omitempty"`
	// Dropout on a dense or residual layer adds inverted dropout after it (dense) or inside the
	// block (residual). Default 0.
	Dropout float64 `json:"dropout,omitempty"`
	// Rate is the drop probability of a dropout layer.
	Rate float64 `json:"rate,omitempty"`
	// Stddev is the standard deviation of a gaussian_noise layer (train only).
	Stddev float64 `json:"stddev,omitempty"`
	// Norm is the normalisation inside a residual block: "" (none), batch_norm or layer_norm.
	Norm string `json:"norm,omitempty"`
	// Momentum is the batch-norm running-statistics momentum (weight of the new batch);
	// default 0.1, as in PyTorch.
	Momentum float64 `json:"momentum,omitempty"`
	// Eps is the normalisation epsilon of batch_norm and layer_norm; default 1e-5.
	Eps float64 `json:"eps,omitempty"`
	// Tie makes a dense layer use the weight tensor of the named dense layer instead of its own
	// (gradients from both uses are summed). With TieTranspose it uses Wᵀ (tied autoencoders:
	// the decoder reuses the encoder's weights); the layer keeps its own bias.
	Tie          string `json:"tie,omitempty"`
	TieTranspose bool   `json:"tie_transpose,omitempty"`
	// L1 and L2 weight penalties for this layer's weights (replacing Spec.L1/L2). Default 0.
	L1 float64 `json:"l1,omitempty"`
	L2 float64 `json:"l2,omitempty"`
	// ActivityL1 and ActivityL2 penalise this layer's output: (ActivityL1·Σ|a| +
	// ActivityL2·Σa²)/rows (sparse hidden units). Default 0.
	ActivityL1 float64 `json:"activity_l1,omitempty"`
	ActivityL2 float64 `json:"activity_l2,omitempty"`

	// Filters is the number of output channels of a conv layer.
	Filters int `json:"filters,omitempty"`
	// Kernel is the square window side of a conv layer (required) or of max_pool/avg_pool
	// (default 2).
	Kernel int `json:"kernel,omitempty"`
	// Stride of conv (default 1) and max_pool/avg_pool (default Kernel).
	Stride int `json:"stride,omitempty"`
	// Padding of conv, max_pool and avg_pool: valid (the default: windows that fit, no
	// padding) or same (output ⌈size/stride⌉; zeros for conv, ignored cells for pooling).
	Padding string `json:"padding,omitempty"`
	// Factor is the integer scale of an upsample layer's height and width (default 2).
	Factor int `json:"factor,omitempty"`
}

// UnmarshalJSON accepts both the canonical form (with "type") and the short forms described on
// LayerSpec.
func (l *LayerSpec) UnmarshalJSON(b []byte) error {
	type plain LayerSpec
	var aux struct {
		plain
		Dense         *int     `json:"dense"`
		Residual      *int     `json:"residual"`
		BatchNorm     *bool    `json:"batch_norm"`
		LayerNorm     *bool    `json:"layer_norm"`
		GaussianNoise *float64 `json:"gaussian_noise"`
		DropoutShort  *float64 `json:"dropout"`
		Conv          *int     `json:"conv"`
		MaxPool       *int     `json:"max_pool"`
		AvgPool       *int     `json:"avg_pool"`
		GlobalAvgPool *bool    `json:"global_avg_pool"`
		Flatten       *bool    `json:"flatten"`
		Upsample      *int     `json:"upsample"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*l = LayerSpec(aux.plain)
	if aux.DropoutShort != nil {
		l.Dropout = *aux.DropoutShort
	}
	if l.Type != "" {
		return nil
	}
	switch {
	case aux.Dense != nil:
		l.Type, l.Units = LayerDense, *aux.Dense
	case aux.Residual != nil:
		l.Type, l.Units = LayerResidual, *aux.Residual
	case aux.BatchNorm != nil && *aux.BatchNorm:
		l.Type = LayerBatchNorm
	case aux.LayerNorm != nil && *aux.LayerNorm:
		l.Type = LayerLayerNorm
	case aux.GaussianNoise != nil:
		l.Type, l.Stddev = LayerGaussianNoise, *aux.GaussianNoise
	case aux.Conv != nil:
		l.Type, l.Filters = LayerConv, *aux.Conv
	case aux.MaxPool != nil:
		l.Type, l.Kernel = LayerMaxPool, *aux.MaxPool
	case aux.AvgPool != nil:
		l.Type, l.Kernel = LayerAvgPool, *aux.AvgPool
	case aux.GlobalAvgPool != nil && *aux.GlobalAvgPool:
		l.Type = LayerGlobalAvgPool
	case aux.Flatten != nil && *aux.Flatten:
		l.Type = LayerFlatten
	case aux.Upsample != nil:
		l.Type, l.Factor = LayerUpsample, *aux.Upsample
	case l.Custom != "":
		l.Type = LayerCustom
	case aux.DropoutShort != nil:
		l.Type, l.Rate, l.Dropout = LayerDropout, *aux.DropoutShort, 0
	case l.Activation != "":
		l.Type = LayerActivation
	default:
		return fmt.Errorf("layer %s: no type (set \"type\" or use a short form such as {\"dense\": 64})", string(b))
	}
	return nil
}

// HeadSpec is one task output on top of the trunk: a linear layer plus a loss.
type HeadSpec struct {
	// Name is the task name ("digit", "parity"); params are named "head_<name>/W". Default
	// "out" for a single head, required with several.
	Name string `json:"name,omitempty"`
	// Kind is softmax (Classes ≥ 2), binary (one sigmoid unit) or regression (Outputs linear
	// units).
	Kind string `json:"kind"`
	// Target is the dataset column this head learns (informational for nn).
	Target string `json:"target,omitempty"`
	// Classes is the number of classes of a softmax head.
	Classes int `json:"classes,omitempty"`
	// Outputs is the number of regression outputs; default 1.
	Outputs int `json:"outputs,omitempty"`
	// Loss: cross_entropy for classification heads (the only choice, the default); mse
	// (default), mae or huber for regression.
	Loss string `json:"loss,omitempty"`
	// LossWeight multiplies this head's loss in the total; default 1.
	LossWeight float64 `json:"loss_weight,omitempty"`
	// LabelSmoothing ε mixes the one-hot target with the uniform distribution: (1−ε)·y + ε/k
	// (k = 2 for binary). Default 0.
	LabelSmoothing float64 `json:"label_smoothing,omitempty"`
	// HuberDelta is the Huber threshold; default 1.
	HuberDelta float64 `json:"huber_delta,omitempty"`
	// ClassWeight is "" (none) or "balanced": n/(k·count_c) from the training labels, set by
	// the trainer through Model.SetClassWeights. ClassWeights gives them explicitly.
	ClassWeight  string    `json:"class_weight,omitempty"`
	ClassWeights []float64 `json:"class_weights,omitempty"`
	// Init of the head's weights; default glorot_uniform.
	Init string `json:"init,omitempty"`
	// BatchNorm batch-normalises the head's logits (with a learned scale and shift, running
	// statistics for inference) before the softmax or sigmoid: the "top BN" of the VAT
	// authors' networks. Classification heads only.
	BatchNorm bool `json:"batch_norm,omitempty"`
	// Noise is the standard deviation of Gaussian noise added to a classification head's
	// logits in training passes (not in eval, nor with TrainPass.NoNoise), before the loss:
	// with BatchNorm to the normalised logits, before the scale and shift ((x̂ + n)·γ + β), as
	// the ladder network's top layer. Default 0: none.
	Noise float64 `json:"noise,omitempty"`
}

// ParamDiffPenalty adds Weight·Σ‖A_i−B_i‖² where A and B are the params matching two name
// patterns, paired in name order (shapes must match).
type ParamDiffPenalty struct {
	A      string  `json:"a"`
	B      string  `json:"b"`
	Weight float64 `json:"weight"`
}

// headOutputs is the width of a head's linear layer.
func (h HeadSpec) headOutputs() int {
	switch h.Kind {
	case HeadSoftmax:
		return h.Classes
	case HeadBinary:
		return 1
	default:
		if h.Outputs <= 0 {
			return 1
		}
		return h.Outputs
	}
}

// withDefaults returns a copy of s with generated names and defaults filled in, or an error
// describing the first invalid field.
func (s Spec) withDefaults() (Spec, error) {
	out := s
	out.Embeddings = append([]EmbeddingSpec(nil), s.Embeddings...)
	out.Layers = append([]LayerSpec(nil), s.Layers...)
	out.Heads = append([]HeadSpec(nil), s.Heads...)
	if s.NumInputs < 0 {
		return out, fmt.Errorf("nn: num_inputs = %d, want >= 0", s.NumInputs)
	}
	if s.NumInputs == 0 && len(s.Embeddings) == 0 {
		return out, fmt.Errorf("nn: the model has no inputs (num_inputs = 0 and no embeddings)")
	}
	if s.InputShape != nil {
		if err := checkInputShape(s.InputShape, s.NumInputs, len(s.Embeddings)); err != nil {
			return out, err
		}
		out.InputShape = append([]int(nil), s.InputShape...)
	}
	seen := map[string]bool{}
	claim := func(name string) error {
		if name == "" || strings.ContainsAny(name, "/") {
			return fmt.Errorf("nn: invalid layer name %q (non-empty, no '/')", name)
		}
		if seen[name] {
			return fmt.Errorf("nn: duplicate layer name %q", name)
		}
		seen[name] = true
		return nil
	}
	for i := range out.Embeddings {
		e := &out.Embeddings[i]
		if e.Name == "" {
			e.Name = fmt.Sprintf("embedding_%d", i+1)
		}
		if e.Cardinality < 1 || e.Dim < 1 {
			return out, fmt.Errorf("nn: embedding %q: cardinality %d and dim %d must be >= 1", e.Name, e.Cardinality, e.Dim)
		}
		if err := claim(e.Name); err != nil {
			return out, err
		}
	}
	counts := map[string]int{}
	for i := range out.Layers {
		l := &out.Layers[i]
		counts[l.Type]++
		if l.Name == "" {
			l.Name = fmt.Sprintf("%s_%d", l.Type, counts[l.Type])
		}
		if err := claim(l.Name); err != nil {
			return out, err
		}
		if err := l.validate(); err != nil {
			return out, fmt.Errorf("nn: layer %d (%s): %w", i+1, l.Name, err)
		}
	}
	if len(out.Heads) == 0 {
		return out, fmt.Errorf("nn: the model has no heads (add a softmax, binary or regression head)")
	}
	for i := range out.Heads {
		h := &out.Heads[i]
		if h.Name == "" {
			if len(out.Heads) > 1 {
				return out, fmt.Errorf("nn: head %d has no name (required with several heads)", i+1)
			}
			h.Name = "out"
		}
		if err := claim("head_" + h.Name); err != nil {
			return out, err
		}
		if err := h.validate(); err != nil {
			return out, fmt.Errorf("nn: head %q: %w", h.Name, err)
		}
	}
	return out, nil
}

func (l *LayerSpec) validate() error {
	if l.Activation != "" {
		if _, err := parseActivation(l.Activation); err != nil {
			return err
		}
	}
	if l.Init != "" {
		if _, err := parseInit(l.Init); err != nil {
			return err
		}
	}
	if l.Dropout < 0 || l.Dropout >= 1 {
		return fmt.Errorf("dropout %g not in [0, 1)", l.Dropout)
	}
	switch l.Type {
	case LayerResidual:
		if l.Filters > 0 {
			if err := l.validateConvResidual(); err != nil {
				return err
			}
			break
		}
		fallthrough
	case LayerDense:
		if l.Units < 1 {
			if l.Type == LayerResidual {
				return fmt.Errorf("residual needs units >= 1 (or, on an image input, filters >= 1), got units = %d", l.Units)
			}
			return fmt.Errorf("%s needs units >= 1, got %d", l.Type, l.Units)
		}
		if l.Type == LayerResidual && l.Activation == "" {
			l.Activation = "relu"
		}
		switch l.Norm {
		case "", LayerBatchNorm, LayerLayerNorm:
		default:
			return fmt.Errorf("norm %q: want \"\", batch_norm or layer_norm", l.Norm)
		}
	case LayerActivation:
		if l.Activation == "" {
			return fmt.Errorf("activation layer needs an activation (relu, leaky_relu, gelu, elu, tanh, sigmoid)")
		}
	case LayerDropout:
		if l.Rate < 0 || l.Rate >= 1 {
			return fmt.Errorf("dropout rate %g not in [0, 1)", l.Rate)
		}
	case LayerGaussianNoise:
		if l.Stddev < 0 {
			return fmt.Errorf("gaussian_noise stddev %g < 0", l.Stddev)
		}
	case LayerBatchNorm, LayerLayerNorm:
		if l.Momentum < 0 || l.Momentum > 1 {
			return fmt.Errorf("momentum %g not in [0, 1]", l.Momentum)
		}
	case LayerCustom:
		if err := l.validateCustom(); err != nil {
			return err
		}
	case LayerConv, LayerMaxPool, LayerAvgPool, LayerGlobalAvgPool, LayerFlatten:
		if err := l.validateImage(); err != nil {
			return err
		}
	case LayerUpsample:
		if err := l.validateUpsample(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown layer type %q (want dense, activation, dropout, batch_norm, layer_norm, gaussian_noise, residual, custom, conv, max_pool, avg_pool, global_avg_pool, flatten or upsample)", l.Type)
	}
	if l.Tie != "" && l.Type != LayerDense {
		return fmt.Errorf("tie is only supported on dense layers")
	}
	if l.NoScale && l.Type != LayerBatchNorm {
		return fmt.Errorf("no_scale is a setting of batch_norm layers, not %s", l.Type)
	}
	return nil
}

func (h *HeadSpec) validate() error {
	switch h.Kind {
	case HeadSoftmax:
		if h.Classes < 2 {
			return fmt.Errorf("softmax head needs classes >= 2, got %d", h.Classes)
		}
	case HeadBinary:
	case HeadRegression:
	default:
		return fmt.Errorf("unknown head kind %q (want softmax, binary or regression)", h.Kind)
	}
	switch h.Kind {
	case HeadSoftmax, HeadBinary:
		if h.Loss != "" && h.Loss != LossCrossEntropy {
			return fmt.Errorf("loss %q: classification heads use cross_entropy", h.Loss)
		}
		if h.LabelSmoothing < 0 || h.LabelSmoothing >= 1 {
			return fmt.Errorf("label_smoothing %g not in [0, 1)", h.LabelSmoothing)
		}
		if h.ClassWeight != "" && h.ClassWeight != "balanced" {
			return fmt.Errorf("class_weight %q: want \"\" or \"balanced\"", h.ClassWeight)
		}
		k := h.Classes
		if h.Kind == HeadBinary {
			k = 2
		}
		if h.ClassWeights != nil && len(h.ClassWeights) != k {
			return fmt.Errorf("class_weights has %d entries, want %d", len(h.ClassWeights), k)
		}
	case HeadRegression:
		switch h.Loss {
		case "", LossMSE, LossMAE, LossHuber:
		default:
			return fmt.Errorf("loss %q: regression heads use mse, mae or huber", h.Loss)
		}
		if h.HuberDelta < 0 {
			return fmt.Errorf("huber_delta %g < 0", h.HuberDelta)
		}
	}
	if h.LossWeight < 0 {
		return fmt.Errorf("loss_weight %g < 0", h.LossWeight)
	}
	if h.Noise < 0 || math.IsNaN(h.Noise) || math.IsInf(h.Noise, 0) {
		return fmt.Errorf("noise %g: want a finite stddev >= 0", h.Noise)
	}
	if h.Noise > 0 && h.Kind == HeadRegression {
		return fmt.Errorf("noise corrupts a classification head's logits; a regression head's outputs are its predictions: drop noise from this head")
	}
	if h.BatchNorm && h.Kind == HeadRegression {
		return fmt.Errorf("batch_norm normalises a classification head's logits; a regression head's outputs are its predictions: drop batch_norm from this head")
	}
	if h.Init != "" {
		if _, err := parseInit(h.Init); err != nil {
			return err
		}
	}
	return nil
}
