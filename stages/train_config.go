package stages

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pipe-ml/pipe/bundle"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
)

// Defaults of the train stage, chosen once (see README): two ReLU layers of 128 and 64 units,
// He init, Adam at 1e-3, batch 64, up to 200 epochs with early stopping on the validation loss
// (patience 15) restoring the best weights.
var defaultLayers = []any{map[string]any{"dense": int64(128)}, map[string]any{"dense": int64(64)}}

func trainFields() []pipeline.Field {
	return []pipeline.Field{
		{Name: "target", Type: pipeline.TypeStrings, Doc: "The target column(s); several make a multi-task model with one head each. Default: the columns with the target role."},
		{Name: "features", Type: pipeline.TypeStrings, Doc: "The feature columns. Default: every feature column (numeric, or int32 index columns from encode, which feed embeddings)."},
		{Name: "task", Type: pipeline.TypeString, Default: "auto", Enum: []string{"auto", "classification", "binary", "regression"}, Doc: "The task of a single target. auto: strings and booleans are classes; integers with at most 50 distinct values (and at least 2 rows per value) are classes; otherwise regression. 2 classes give a binary (sigmoid) head."},
		{Name: "tasks", Type: pipeline.TypeTable, Elem: &pipeline.Field{Name: "<target>", Type: pipeline.TypeTable, Fields: taskFields(), Doc: "The settings of one target."}, Doc: "Per-target settings of a multi-task model: { <target> = { task = \"binary\", loss_weight = 0.5, label_smoothing = 0.1, class_weight = \"balanced\" } }."},
		{Name: "layers", Type: pipeline.TypeList, Elem: &pipeline.Field{Type: pipeline.TypeTable, Fields: layerFields(), Doc: "One layer: a short form ({ dense = 64 }, { dropout = 0.3 }...) or type = \"...\" with its keys."}, Doc: "The trunk, bottom to top: { dense = 128, activation = \"relu\", dropout = 0.2, init = \"he_normal\", l2 = 1e-4, name = \"enc_1\" }, { batch_norm = true }, { layer_norm = true }, { dropout = 0.3 }, { gaussian_noise = 0.1 }, { residual = 64, norm = \"layer_norm\" }, { activation = \"tanh\" }, { custom = \"name\" } (a block a Go program registered with nn.RegisterCustom, e.g. a gorgonia graph: see nn/gorgonia); on an image input (the train stage's image key): { conv = 32, kernel = 3, stride = 1, padding = \"same\" }, { max_pool = 2 }, { avg_pool = 2 }, { batch_norm = true } (per channel), { type = \"residual\", filters = 32, stride = 2, norm = \"batch_norm\" }, { upsample = 2 } (nearest neighbour, a decoder's counterpart of pooling), then { global_avg_pool = true } or { flatten = true } before dense layers. Default: [{ dense = 128 }, { dense = 64 }]."},
		{Name: "activation", Type: pipeline.TypeString, Default: "relu", Enum: []string{"relu", "leaky_relu", "gelu", "elu", "tanh", "sigmoid", "linear"}, Doc: "The activation of dense layers that do not name one. The initializer follows it: He for the ReLU family, Glorot otherwise."},
		{Name: "embedding_dim", Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), Doc: "Width of the embedding of each index-encoded categorical column. 0: min(50, ceil(cardinality/2))."},
		{Name: "optimizer", Type: pipeline.TypeTable, Fields: optimizerFields(), Doc: "{ name = \"adam\" | \"adamw\" | \"sgd\" | \"rmsprop\" | \"adagrad\" | \"svrg\", lr = 1e-3 | \"auto\", momentum, nesterov, beta1, beta1_decay, beta2, eps, rho, weight_decay, inner, snapshot_epochs }. Default: Adam with its documented defaults. lr = \"auto\" runs the LR range test (~100 steps) and starts slightly above the best LR it saw. svrg (variance-reduced SGD): every snapshot_epochs epochs it takes the full gradient over the training rows at a snapshot of the weights, and each step feeds g(w) - g(snapshot) + full gradient for the same batch to the inner optimizer (sgd by default; the other keys apply to it); a step costs two gradient evaluations, and history.csv gets a grad_evals column. With a constant step it converges linearly on strongly convex problems where sgd stalls at its noise floor (bench/svrg)."},
		{Name: "schedule", Type: pipeline.TypeTable, Fields: scheduleFields(), Doc: "{ name = \"constant\" | \"step\" | \"exponential\" | \"cosine\" | \"plateau\" | \"linear\", warmup_steps, step_epochs, gamma, t0, t_mult, decay_start, min_lr, factor, patience, min_delta, cooldown }. Default: constant; cosine when fine-tuning from init_from."},
		{Name: "epochs", Type: pipeline.TypeInt, Default: int64(200), Min: pipeline.Bound(1), Doc: "The maximum number of epochs (early stopping usually ends training sooner)."},
		{Name: "batch_size", Type: pipeline.TypeInt, Default: int64(64), Min: pipeline.Bound(1), Doc: "The mini-batch size."},
		{Name: "batch_growth", Type: pipeline.TypeTable, Fields: batchGrowthFields(), Doc: "{ every_epochs = 10, factor = 2, max = 1024 }: grow the batch size during training. Default: fixed."},
		{Name: "early_stopping", Type: pipeline.TypeBoolOrTable, Fields: earlyStoppingFields(), Doc: "{ metric = \"val_loss\", patience = 15, min_delta = 0 }, or false to train every epoch. On by default; the best epoch's weights are restored. Without a val table a seeded 10% of train is held out, and the manifest says so."},
		{Name: "clip", Type: pipeline.TypeTable, Fields: clipFields(), Doc: "Gradient clipping: { norm = 1.0 } (global L2 norm) and/or { value = 0.5 }. Default: off."},
		{Name: "ema", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(0.99999), Doc: "Polyak averaging: decay of an exponential moving average of the weights, used for evaluation and the saved model (e.g. 0.999). 0: off."},
		{Name: "recompute_bn", Type: pipeline.TypeBool, Default: false, Doc: "After training, recompute every batch norm's running statistics as the average over one pass of the training rows (with semi, the unlabeled pool) in batches of batch_size, with no noise or dropout (as PyTorch's swa_utils.update_bn, and the VAT and ladder authors' code before testing): the statistics training leaves are a moving average of the last few dozen batches under changing weights. The validation metric before and after is logged. Default false."},
		{Name: "l1", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Doc: "L1 penalty on every weight matrix (not biases or norms)."},
		{Name: "l2", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Doc: "L2 penalty on every weight matrix (not biases or norms). For decoupled weight decay use optimizer = { name = \"adamw\", weight_decay = ... }."},
		{Name: "input_noise", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Doc: "Standard deviation of Gaussian noise added to the inputs while training."},
		{Name: "target_noise", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Doc: "Standard deviation of Gaussian noise added to (standardised) regression targets while training."},
		{Name: "label_smoothing", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(0.5), Doc: "Label smoothing of classification heads."},
		{Name: "head_batch_norm", Type: pipeline.TypeBool, Default: false, Doc: "Batch-normalise the logits of every classification head before its softmax or sigmoid (a learned scale and shift per class; running statistics at inference), as the VAT authors' networks do (\"top BN\"). Regression heads keep plain outputs; a model without a classification head refuses it."},
		{Name: "head_noise", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: "Gaussian noise of this stddev added to every classification head's logits in training passes, before the loss (with head_batch_norm to the normalised logits, before the learned scale and shift): the ladder network's corruption of its top layer, which with semi.method = \"ladder\" is also the top level's noise in the denoising cost (instead of semi.noise). Default 0: none."},
		{Name: "class_weight", Type: pipeline.TypeAny, Doc: "\"balanced\" (inverse class frequency in train), or a list of weights in class order. Default: none."},
		{Name: "workers", Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), KeyExempt: true, Doc: "GEMM threads, taken from the run's CPU budget. 0: as many as the budget has free. Results do not depend on it."},
		{Name: "monitor_every", Type: pipeline.TypeInt, Default: int64(100), Min: pipeline.Bound(0), Doc: "Every this many steps, record per layer the activation mean, std, histogram and dead-ReLU share and the output-gradient norm, and per parameter ‖g‖/‖w‖ and the update/param ratio, to monitor.csv (0: off). Warnings go to the log: dead ReLUs over half a layer, update ratios far from 1e-3 (a tiny one not while the schedule has decayed the learning rate below a tenth of its peak)."},
	}
}

// Layer types, activations and initializers, as nn names them.
var (
	layerTypes = []string{nn.LayerDense, nn.LayerActivation, nn.LayerDropout, nn.LayerBatchNorm, nn.LayerLayerNorm, nn.LayerGaussianNoise, nn.LayerResidual, nn.LayerCustom,
		nn.LayerConv, nn.LayerMaxPool, nn.LayerAvgPool, nn.LayerGlobalAvgPool, nn.LayerFlatten, nn.LayerUpsample}
	// imageLayerTypes need an image input (the stage's image key).
	imageLayerTypes = []string{nn.LayerConv, nn.LayerMaxPool, nn.LayerAvgPool, nn.LayerGlobalAvgPool, nn.LayerFlatten, nn.LayerUpsample}
	activations     = []string{"relu", "leaky_relu", "gelu", "elu", "tanh", "sigmoid", "linear"}
	inits           = []string{"he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal", "zeros"}
	optimizers      = []string{optim.NameAdam, optim.NameAdamW, optim.NameSGD, optim.NameRMSProp, optim.NameAdagrad, optim.NameSVRG}
	// innerOptimizers are those svrg can wrap.
	innerOptimizers = []string{optim.NameSGD, optim.NameAdam, optim.NameAdamW, optim.NameRMSProp, optim.NameAdagrad}
	schedules       = []string{optim.ScheduleConstant, optim.ScheduleStep, optim.ScheduleExponential, optim.ScheduleCosine, optim.SchedulePlateau, optim.ScheduleLinear}
)

// layerShapes are the keys that say what a layer is; a layer has exactly one of them.
var layerShapes = []string{"type", "dense", "residual", "batch_norm", "layer_norm", "gaussian_noise", "custom",
	"conv", "max_pool", "avg_pool", "global_avg_pool", "flatten", "upsample"}

// layerFields are the keys of one entry of `layers` (nn.LayerSpec): the short forms
// ({ dense = 64 }, { dropout = 0.3 }, { activation = "tanh" }...) and the long form with type.
func layerFields() []pipeline.Field {
	share := func(name, doc string) pipeline.Field {
		return pipeline.Field{Name: name, Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Max: pipeline.Bound(1), MaxExclusive: true, Doc: doc}
	}
	nonNeg := func(name, doc string) pipeline.Field {
		return pipeline.Field{Name: name, Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: doc}
	}
	return []pipeline.Field{
		{Name: "dense", Type: pipeline.TypeInt, Min: pipeline.Bound(1), Doc: "A dense layer of this many units."},
		{Name: "residual", Type: pipeline.TypeInt, Min: pipeline.Bound(1), Doc: "A residual block of this width (two dense layers and a skip connection)."},
		{Name: "batch_norm", Type: pipeline.TypeBool, Doc: "true: a batch normalisation layer."},
		{Name: "layer_norm", Type: pipeline.TypeBool, Doc: "true: a layer normalisation layer."},
		{Name: "gaussian_noise", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: "A layer that adds Gaussian noise of this standard deviation while training."},
		{Name: "custom", Type: pipeline.TypeString, Doc: "A block a Go program registered with nn.RegisterCustom."},
		{Name: "conv", Type: pipeline.TypeInt, Min: pipeline.Bound(1), Doc: "A 2-D convolution with this many filters (output channels), kernel × kernel windows (needs kernel and an image input)."},
		{Name: "max_pool", Type: pipeline.TypeInt, Min: pipeline.Bound(1), Doc: "Max pooling over windows of this side (stride: the same, unless set)."},
		{Name: "avg_pool", Type: pipeline.TypeInt, Min: pipeline.Bound(1), Doc: "Average pooling over windows of this side (stride: the same, unless set)."},
		{Name: "global_avg_pool", Type: pipeline.TypeBool, Doc: "true: the mean of each channel over the image (ends the image: plain features after it)."},
		{Name: "flatten", Type: pipeline.TypeBool, Doc: "true: ends the image (the values pass unchanged; dense layers may follow)."},
		{Name: "upsample", Type: pipeline.TypeInt, Min: pipeline.Bound(1), Doc: "Nearest-neighbour upsampling by this integer factor (each pixel repeated factor × factor times), as in a convolutional decoder: upsample then conv."},
		{Name: "factor", Type: pipeline.TypeInt, Min: pipeline.Bound(1), Doc: "With type = \"upsample\": the integer factor (default 2)."},
		{Name: "filters", Type: pipeline.TypeInt, Min: pipeline.Bound(1), Doc: "With type = \"conv\": the output channels; with type = \"residual\": an image residual block (two same-padded convolutions of this many filters and a skip connection)."},
		{Name: "kernel", Type: pipeline.TypeInt, Min: pipeline.Bound(1), Doc: "The window side of a convolution (required), pooling (default 2) or image residual block (default 3)."},
		{Name: "stride", Type: pipeline.TypeInt, Min: pipeline.Bound(1), Doc: "The step of a convolution or image residual block (default 1) or pooling (default its kernel)."},
		{Name: "padding", Type: pipeline.TypeString, Enum: []string{nn.PaddingValid, nn.PaddingSame}, Doc: "Of a convolution or pooling: valid (default: windows that fit) or same (output ceil(size/stride)); an image residual block always pads same."},
		share("dropout", "On a dense or residual layer: dropout after it (inside the block). Alone: a dropout layer with this rate."),
		{Name: "activation", Type: pipeline.TypeString, Enum: activations, Doc: "On a dense, conv or residual layer: its activation (default: the stage's activation for dense and conv, relu for residual). Alone: an activation layer."},
		{Name: "type", Type: pipeline.TypeString, Enum: layerTypes, Doc: "The long form: the layer type, with units, filters, rate, stddev... as keys."},
		{Name: "units", Type: pipeline.TypeInt, Min: pipeline.Bound(1), Doc: "With type = \"dense\" or \"residual\": the width; with \"custom\": the block's output width (optional)."},
		share("rate", "With type = \"dropout\": the drop probability."),
		nonNeg("stddev", "With type = \"gaussian_noise\": the noise's standard deviation."),
		{Name: "name", Type: pipeline.TypeString, Doc: "The layer's name (params are named <name>/W); init_from and freeze match layers by name. Default: <type>_<n>."},
		{Name: "init", Type: pipeline.TypeString, Enum: inits, Doc: "The weight initializer. Default: He normal for the ReLU family, Glorot uniform otherwise."},
		{Name: "no_bias", Type: pipeline.TypeBool, Doc: "A dense layer without a bias."},
		{Name: "no_scale", Type: pipeline.TypeBool, Doc: "A batch_norm layer without its learned scale (output x̂ + β, as Keras's scale = false): before a ReLU the scale is redundant, and with gaussian_noise after the batch norm it keeps the noise at its stated size against the normalised signal, which a learned scale can grow away from (the ladder network's layers)."},
		{Name: "norm", Type: pipeline.TypeString, Enum: []string{nn.LayerBatchNorm, nn.LayerLayerNorm}, Doc: "The normalisation inside a residual block (default none)."},
		{Name: "momentum", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Max: pipeline.Bound(1), Doc: "Batch normalisation's running-statistics momentum (0: 0.1)."},
		nonNeg("eps", "The normalisation epsilon (0: 1e-5)."),
		{Name: "tie", Type: pipeline.TypeString, Doc: "A dense layer that uses the weights of the named dense layer."},
		{Name: "tie_transpose", Type: pipeline.TypeBool, Doc: "With tie: use the transposed weights (tied autoencoders)."},
		nonNeg("l1", "L1 penalty on this layer's weights (replaces the stage's l1)."),
		nonNeg("l2", "L2 penalty on this layer's weights (replaces the stage's l2)."),
		nonNeg("activity_l1", "L1 penalty on this layer's outputs."),
		nonNeg("activity_l2", "L2 penalty on this layer's outputs."),
	}
}

// layerKeys are the keys each layer type takes besides name and the penalties (l1, l2,
// activity_l1, activity_l2): in the short form ({ dense = 64, ... }) and in the long form
// ({ type = "dense", units = 64, ... }). A key outside them would be ignored by nn, so it is
// an error.
var layerKeys = map[string]struct{ short, long []string }{
	nn.LayerDense:         {[]string{"dense", "activation", "init", "no_bias", "dropout", "tie", "tie_transpose"}, []string{"units", "activation", "init", "no_bias", "dropout", "tie", "tie_transpose"}},
	nn.LayerResidual:      {[]string{"residual", "activation", "init", "dropout", "norm", "momentum", "eps"}, []string{"units", "filters", "kernel", "stride", "padding", "activation", "init", "dropout", "norm", "momentum", "eps"}},
	nn.LayerBatchNorm:     {[]string{"batch_norm", "momentum", "eps", "no_scale"}, []string{"momentum", "eps", "no_scale"}},
	nn.LayerLayerNorm:     {[]string{"layer_norm", "eps"}, []string{"eps"}},
	nn.LayerGaussianNoise: {[]string{"gaussian_noise"}, []string{"stddev"}},
	nn.LayerDropout:       {[]string{"dropout"}, []string{"rate"}},
	nn.LayerActivation:    {[]string{"activation"}, []string{"activation"}},
	nn.LayerCustom:        {[]string{"custom", "units", "dropout"}, []string{"custom", "units", "dropout"}},
	nn.LayerConv:          {[]string{"conv", "kernel", "stride", "padding", "activation", "init", "no_bias"}, []string{"filters", "kernel", "stride", "padding", "activation", "init", "no_bias"}},
	nn.LayerMaxPool:       {[]string{"max_pool", "stride", "padding"}, []string{"kernel", "stride", "padding"}},
	nn.LayerAvgPool:       {[]string{"avg_pool", "stride", "padding"}, []string{"kernel", "stride", "padding"}},
	nn.LayerGlobalAvgPool: {[]string{"global_avg_pool"}, nil},
	nn.LayerFlatten:       {[]string{"flatten"}, nil},
	nn.LayerUpsample:      {[]string{"upsample"}, []string{"factor"}},
}

// checkLayer says what is wrong with the shape of a decoded layer table (its keys' types and
// ranges are checked by its spec): one layer type, the keys that type needs, and no key it
// would ignore.
func checkLayer(m map[string]any) string {
	typ, long, msg := layerType(m)
	if msg != "" {
		return msg
	}
	if v, ok := m["batch_norm"].(bool); ok && !v {
		return "batch_norm = false is no layer: leave the table out"
	}
	if v, ok := m["layer_norm"].(bool); ok && !v {
		return "layer_norm = false is no layer: leave the table out"
	}
	for _, k := range []string{"global_avg_pool", "flatten"} {
		if v, ok := m[k].(bool); ok && !v {
			return k + " = false is no layer: leave the table out"
		}
	}
	if _, ok := m["filters"]; ok && typ == nn.LayerResidual && !long {
		return "an image residual block is written in the long form: { type = \"residual\", filters = 32 } ({ residual = 64 } is the MLP block of 64 units)"
	}
	keys := layerKeys[typ].short
	if long {
		keys = layerKeys[typ].long
		need := map[string]string{nn.LayerDense: "units", nn.LayerResidual: "units", nn.LayerActivation: "activation", nn.LayerCustom: "custom", nn.LayerConv: "filters"}
		_, hasFilters := m["filters"]
		if typ == nn.LayerResidual && hasFilters {
			delete(need, nn.LayerResidual)
			if _, has := m["units"]; has {
				return "type = \"residual\" takes units (an MLP block) or filters (an image block), not both"
			}
		}
		if k, ok := need[typ]; ok {
			if _, has := m[k]; !has {
				return fmt.Sprintf("type = %q needs %s", typ, k)
			}
		}
	}
	if _, has := m["kernel"]; typ == nn.LayerConv && !has {
		return "a conv layer needs kernel (the window side), e.g. { conv = 32, kernel = 3 }"
	}
	var extra []string
	for _, f := range layerFields() {
		if _, ok := m[f.Name]; ok && !layerTakes(typ, long, f.Name) {
			extra = append(extra, f.Name)
		}
	}
	if len(extra) > 0 {
		form := "{ " + keys[0] + " = ... }"
		if long {
			form = fmt.Sprintf("type = %q", typ)
		}
		return fmt.Sprintf("%s does not apply to a %s layer (%s takes %s)", strings.Join(extra, " and "), typ, form, strings.Join(keys, ", "))
	}
	if n, ok := m["name"].(string); ok && (n == "" || strings.Contains(n, "/")) {
		return fmt.Sprintf("layer name %q: a name is not empty and has no '/'", n)
	}
	return ""
}

// layerTakes reports whether a layer of type typ, in the long form or the short one, takes
// key.
func layerTakes(typ string, long bool, key string) bool {
	switch key {
	case "type", "name", "l1", "l2", "activity_l1", "activity_l2":
		return true
	}
	keys := layerKeys[typ].short
	if long {
		keys = layerKeys[typ].long
	}
	for _, k := range keys {
		if k == key {
			return true
		}
	}
	return false
}

// layerType says what type of layer a decoded layer table is, and whether it is written in
// the long form (type = "..."); msg says why it is no layer.
func layerType(m map[string]any) (typ string, long bool, msg string) {
	var shapes []string
	for _, k := range layerShapes {
		if _, ok := m[k]; ok {
			shapes = append(shapes, k)
		}
	}
	typ, long = m["type"].(string)
	if typ == nn.LayerCustom && len(shapes) == 2 && shapes[1] == "custom" {
		shapes = shapes[:1] // { type = "custom", custom = "name" }
	}
	switch {
	case len(shapes) > 1:
		return "", false, fmt.Sprintf("a layer has one type, found %s: write one layer per table", strings.Join(shapes, " and "))
	case len(shapes) == 1 && !long:
		typ = shapes[0]
	default:
		_, hasDropout := m["dropout"]
		_, hasActivation := m["activation"]
		switch {
		case long:
		case hasDropout && hasActivation:
			return "", false, "a dropout layer has no activation: put the activation on the layer before it, or in a table of its own"
		case hasDropout:
			typ = nn.LayerDropout
		case hasActivation:
			typ = nn.LayerActivation
		default:
			return "", false, "no layer type: write a short form such as { dense = 64 } or { dropout = 0.2 }, or type = \"...\""
		}
	}
	return typ, long, ""
}

func optimizerFields() []pipeline.Field {
	decay := func(name, doc string) pipeline.Field {
		return pipeline.Field{Name: name, Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Max: pipeline.Bound(1), MaxExclusive: true, Doc: doc}
	}
	return []pipeline.Field{
		{Name: "name", Type: pipeline.TypeString, Default: optim.NameAdam, Enum: optimizers, Doc: "The optimizer."},
		{Name: "lr", Type: pipeline.TypeFloatOrAuto, Min: pipeline.Bound(0), MinExclusive: true, Doc: "The learning rate, or \"auto\" (the LR range test). Default: the optimizer's (sgd and adagrad 0.01, the others 1e-3)."},
		decay("momentum", "sgd's momentum (0: none)."),
		{Name: "nesterov", Type: pipeline.TypeBool, Doc: "sgd: Nesterov momentum (needs momentum > 0)."},
		decay("beta1", "adam/adamw's first-moment decay (0: 0.9)."),
		decay("beta1_decay", "adam/adamw: β1 in the decay phase of schedule linear (its epochs from decay_start on), in place of beta1; the VAT authors use 0.5. Bias correction uses the product of the β1 values used. Needs schedule = { name = \"linear\" }. Default: off."),
		decay("beta2", "adam/adamw's second-moment decay (0: 0.999)."),
		{Name: "eps", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: "Added to the denominator (0: the optimizer's default)."},
		decay("rho", "rmsprop's squared-gradient decay (0: 0.9)."),
		{Name: "weight_decay", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: "adamw: decoupled weight decay (0: 0.01); the others: an L2 term added to the gradient."},
		{Name: "inner", Type: pipeline.TypeString, Enum: innerOptimizers, Doc: "svrg: the optimizer that takes the variance-reduced gradient (default sgd)."},
		{Name: "snapshot_epochs", Type: pipeline.TypeInt, Min: pipeline.Bound(1), Doc: "svrg: epochs between snapshots and full gradients (default 1)."},
	}
}

// hogwildField is the train stage's hogwild key. It is not among trainFields: the stages that
// reuse those (pretrain, ensemble members, pseudo_label, search) stay synchronous, so that the
// one stage whose manifest says a run is not reproducible is the one that can be.
func hogwildField() pipeline.Field {
	return pipeline.Field{Name: "hogwild", Type: pipeline.TypeTable, Fields: hogwildFields(), Doc: "{ threads = 2 }: Hogwild, lock-free asynchronous SGD: threads goroutines take mini-batches and update one shared set of weights without locks (atomic 32-bit loads and stores). Helps on wide, sparse inputs (large one-hot or hashed feature spaces), where steps rarely touch the same weights. Not reproducible bit for bit (the manifest and the log say so); everything else stays seeded. Needs optimizer sgd without momentum, and no batch_norm, ema, augmentation or target_noise; monitor_every is off. The threads' cores are taken from the run's CPU budget (workers, when unset, becomes threads). Default: off (synchronous)."}
}

func hogwildFields() []pipeline.Field {
	return []pipeline.Field{
		{Name: "threads", Type: pipeline.TypeInt, Required: true, Min: pipeline.Bound(1), Doc: "The number of goroutines updating the shared weights (each runs its matrix products on one core)."},
	}
}

func scheduleFields() []pipeline.Field {
	count := func(name, doc string) pipeline.Field {
		return pipeline.Field{Name: name, Type: pipeline.TypeInt, Min: pipeline.Bound(0), Doc: doc}
	}
	return []pipeline.Field{
		{Name: "name", Type: pipeline.TypeString, Default: optim.ScheduleConstant, Enum: schedules, Doc: "The schedule."},
		count("warmup_steps", "Linear warmup over this many steps, composed with any schedule (0: none)."),
		count("step_epochs", "step: epochs between decays (0: 30)."),
		{Name: "gamma", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: "step: the decay factor (0: 0.1); exponential: per epoch (0: 0.95)."},
		count("t0", "cosine: the first period in epochs (0: the planned epochs)."),
		count("t_mult", "cosine: warm restarts, each period this many times the last (0: no restarts)."),
		count("decay_start", "linear: the rate is constant for this many epochs, then falls linearly (per step) to min_lr at the last planned epoch (0: from the start)."),
		{Name: "min_lr", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: "cosine's and linear's final rate, and a floor for the others."},
		{Name: "factor", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Max: pipeline.Bound(1), MaxExclusive: true, Doc: "plateau: the rate is multiplied by this (0: 0.1)."},
		count("patience", "plateau: epochs without improvement before a reduction (0: 10)."),
		{Name: "min_delta", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: "plateau: the improvement that counts."},
		count("cooldown", "plateau: epochs after a reduction that are not counted."),
	}
}

func batchGrowthFields() []pipeline.Field {
	return []pipeline.Field{
		{Name: "every_epochs", Type: pipeline.TypeInt, Required: true, Min: pipeline.Bound(1), Doc: "Grow the batch every this many epochs."},
		{Name: "factor", Type: pipeline.TypeInt, Default: int64(2), Min: pipeline.Bound(2), Doc: "The batch size is multiplied by this."},
		{Name: "max", Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), Doc: "The largest batch size (0: the training rows)."},
	}
}

func earlyStoppingFields() []pipeline.Field {
	return []pipeline.Field{
		{Name: "metric", Type: pipeline.TypeString, Default: "val_loss", Doc: "The metric watched: val_loss, val_logloss, val_accuracy, <head>/val_loss... The default was chosen by measurement: on iris, wine, breast_cancer, digits and credit_data (peers' splits, 5 seeds each), stopping and restoring on val_loss gave a mean test accuracy at least that of val_accuracy with tie_break = \"val_loss\" (.957/.887, .985/.985, .947/.944, .978/.978, .814/.814), and both beat val_accuracy alone (.800, .956, .907, .974, .814): a small validation set's accuracy saturates early and stops training too soon."},
		{Name: "tie_break", Type: pipeline.TypeString, Doc: "A second metric that decides between epochs whose metric is equal (e.g. val_loss when the metric is val_accuracy, which takes few values)."},
		{Name: "patience", Type: pipeline.TypeInt, Default: int64(15), Min: pipeline.Bound(1), Doc: "Epochs without improvement before training stops."},
		{Name: "min_delta", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Doc: "The improvement that counts."},
		{Name: "enabled", Type: pipeline.TypeBool, Default: true, Doc: "false: train every epoch."},
	}
}

func clipFields() []pipeline.Field {
	return []pipeline.Field{
		{Name: "norm", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), MinExclusive: true, Doc: "Rescale the gradients so that their global L2 norm is at most this."},
		{Name: "value", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), MinExclusive: true, Doc: "Clamp every gradient to [-value, value]."},
	}
}

func taskFields() []pipeline.Field {
	return []pipeline.Field{
		{Name: "task", Type: pipeline.TypeString, Enum: []string{"auto", "classification", "binary", "regression"}, Doc: "The target's task (default auto, as the stage's task)."},
		{Name: "loss", Type: pipeline.TypeString, Enum: []string{nn.LossCrossEntropy, nn.LossMSE, nn.LossMAE, nn.LossHuber}, Doc: "The head's loss: cross_entropy for classes; mse (default), mae or huber for regression."},
		{Name: "loss_weight", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: "The weight of this head's loss in the total (0: 1)."},
		{Name: "label_smoothing", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Max: pipeline.Bound(1), MaxExclusive: true, Doc: "Label smoothing of this head (default: the stage's)."},
		{Name: "class_weight", Type: pipeline.TypeAny, Doc: "\"balanced\" or a list of weights in class order (default: the stage's)."},
		{Name: "huber_delta", Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Doc: "The Huber threshold (0: 1)."},
	}
}

// checkClassWeight says what is wrong with a class_weight value: "balanced", or a list of
// non-negative numbers.
func checkClassWeight(v any) string {
	switch w := v.(type) {
	case nil:
	case string:
		if w != "balanced" {
			return fmt.Sprintf("%q is not \"balanced\" or a list of weights", w)
		}
	case []any:
		for i, x := range w {
			var f float64
			switch n := x.(type) {
			case float64:
				f = n
			case int64:
				f = float64(n)
			default:
				return fmt.Sprintf("element %d: expected a number, found %v", i, x)
			}
			if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Sprintf("element %d: %v is not a weight (a finite number >= 0)", i, x)
			}
		}
	default:
		return fmt.Sprintf("expected \"balanced\" or a list of weights, found %v", v)
	}
	return ""
}

func toJSON(v any) ([]byte, error) { return json.Marshal(v) }

// decodeStrict decodes a TOML value through JSON into dst, rejecting unknown keys.
func decodeStrict(v any, dst any) error {
	b, err := toJSON(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(dst)
}

// trainSpec is the train stage's decoded model and training settings, before the data is seen.
type trainSpec struct {
	layers      []nn.LayerSpec
	cfg         train.Config
	inputNoise  float64
	l1, l2      float64
	smoothing   float64
	headBN      bool
	headNoise   float64
	classWeight any
	tasks       map[string]taskSettings
	targets     []string
	features    []string
	task        string
	embDim      int
	workers     int
	monitor     int
	// inputShape is [C, H, W] when the numeric inputs are an image (the train stage's image
	// key, resolved against the plan by imageShape); nil otherwise.
	inputShape []int
}

type taskSettings struct {
	Task           string  `json:"task"`
	LossWeight     float64 `json:"loss_weight"`
	LabelSmoothing float64 `json:"label_smoothing"`
	ClassWeight    any     `json:"class_weight"`
	Loss           string  `json:"loss"`
	HuberDelta     float64 `json:"huber_delta"`
}

// settings is what parseTrainSpec reads: a stage's config, or an ensemble's member table.
type settings interface {
	Strings(key string) []string
	String(key string) string
	Float(key string) float64
	Int(key string) int
	Bool(key string) bool
	Value(key string) any
	List(key string) []any
	Table(key string) map[string]any
	Errorf(key, format string, args ...any) *pipeline.ConfigError
}

func parseTrainSpec(c settings) (*trainSpec, error) {
	ts := &trainSpec{targets: c.Strings("target"), features: c.Strings("features"), task: c.String("task"),
		inputNoise: c.Float("input_noise"), l1: c.Float("l1"), l2: c.Float("l2"), smoothing: c.Float("label_smoothing"), headBN: c.Bool("head_batch_norm"), headNoise: c.Float("head_noise"),
		classWeight: c.Value("class_weight"), embDim: c.Int("embedding_dim"), workers: c.Int("workers"), monitor: c.Int("monitor_every"), tasks: map[string]taskSettings{}}
	layers := c.List("layers")
	if layers == nil {
		layers = defaultLayers
	}
	act := c.String("activation")
	names := map[string]int{}
	for i, l := range layers {
		key := fmt.Sprintf("layers[%d]", i)
		if m, ok := l.(map[string]any); ok {
			if msg := checkLayer(m); msg != "" {
				return nil, c.Errorf(key, "%s", msg)
			}
			if n, ok := m["name"].(string); ok {
				if j, dup := names[n]; dup {
					return nil, c.Errorf(key+".name", "layer name %q is taken by layers[%d]", n, j)
				}
				names[n] = i
			}
		}
		var ls nn.LayerSpec
		if err := decodeStrict(l, &ls); err != nil {
			return nil, c.Errorf(key, "%v", jsonErr(err))
		}
		if (ls.Type == nn.LayerDense || ls.Type == nn.LayerConv) && ls.Activation == "" {
			ls.Activation = act
		}
		ts.layers = append(ts.layers, ls)
	}
	if err := checkImageLayers(c, ts.layers); err != nil {
		return nil, err
	}
	if t := c.Table("tasks"); t != nil {
		targets := make([]string, 0, len(t))
		for name := range t {
			targets = append(targets, name)
		}
		sort.Strings(targets)
		for _, name := range targets {
			v := t[name]
			var s taskSettings
			if err := decodeStrict(v, &s); err != nil {
				return nil, c.Errorf("tasks."+name, "%v", jsonErr(err))
			}
			if msg := checkClassWeight(s.ClassWeight); msg != "" {
				return nil, c.Errorf("tasks."+name+".class_weight", "%s", msg)
			}
			ts.tasks[name] = s
		}
	}
	if msg := checkClassWeight(ts.classWeight); msg != "" {
		return nil, c.Errorf("class_weight", "%s", msg)
	}
	cfg := &ts.cfg
	cfg.Epochs = c.Int("epochs")
	cfg.BatchSize = c.Int("batch_size")
	cfg.EMADecay = c.Float("ema")
	cfg.RecomputeBN = c.Bool("recompute_bn")
	cfg.TargetNoise = c.Float("target_noise")
	if o := c.Table("optimizer"); o != nil {
		var oc struct {
			Name           string  `json:"name"`
			LR             any     `json:"lr"`
			Momentum       float64 `json:"momentum"`
			Nesterov       bool    `json:"nesterov"`
			Beta1          float64 `json:"beta1"`
			Beta1Decay     float64 `json:"beta1_decay"`
			Beta2          float64 `json:"beta2"`
			Eps            float64 `json:"eps"`
			Rho            float64 `json:"rho"`
			WeightDecay    float64 `json:"weight_decay"`
			Inner          string  `json:"inner"`
			SnapshotEpochs int     `json:"snapshot_epochs"`
		}
		if err := decodeStrict(o, &oc); err != nil {
			return nil, c.Errorf("optimizer", "%v", jsonErr(err))
		}
		cfg.Optimizer = optim.Config{Name: oc.Name, Momentum: oc.Momentum, Nesterov: oc.Nesterov, Beta1: oc.Beta1, Beta1Decay: oc.Beta1Decay, Beta2: oc.Beta2, Eps: oc.Eps, Rho: oc.Rho, WeightDecay: oc.WeightDecay,
			Inner: oc.Inner, SnapshotEpochs: oc.SnapshotEpochs}
		for _, k := range []string{"inner", "snapshot_epochs"} {
			if _, set := o[k]; set && !strings.EqualFold(oc.Name, optim.NameSVRG) {
				return nil, c.Errorf("optimizer."+k, "%s applies to name = \"svrg\" only (the optimizer is %q)", k, cmp.Or(oc.Name, optim.NameAdam))
			}
		}
		switch lr := oc.LR.(type) {
		case nil:
		case string:
			if lr != "auto" {
				return nil, c.Errorf("optimizer.lr", "expected a number or \"auto\", found %q", lr)
			}
			cfg.AutoLR = true
		case float64:
			if lr <= 0 || math.IsInf(lr, 0) {
				return nil, c.Errorf("optimizer.lr", "must be > 0, found %v", lr)
			}
			cfg.Optimizer.LR = lr
		default:
			return nil, c.Errorf("optimizer.lr", "expected a number or \"auto\"")
		}
		if _, err := optim.New(cfg.Optimizer); err != nil {
			return nil, c.Errorf("optimizer", "%v", err)
		}
	}
	if s := c.Table("schedule"); s != nil {
		var sc struct {
			Name        string  `json:"name"`
			WarmupSteps int     `json:"warmup_steps"`
			StepEpochs  int     `json:"step_epochs"`
			Gamma       float64 `json:"gamma"`
			T0          int     `json:"t0"`
			TMult       int     `json:"t_mult"`
			DecayStart  int     `json:"decay_start"`
			MinLR       float64 `json:"min_lr"`
			Factor      float64 `json:"factor"`
			Patience    int     `json:"patience"`
			MinDelta    float64 `json:"min_delta"`
			Cooldown    int     `json:"cooldown"`
		}
		if err := decodeStrict(s, &sc); err != nil {
			return nil, c.Errorf("schedule", "%v", jsonErr(err))
		}
		cfg.Schedule = optim.ScheduleConfig{Name: sc.Name, WarmupSteps: sc.WarmupSteps, StepEpochs: sc.StepEpochs, Gamma: sc.Gamma, T0: sc.T0, TMult: sc.TMult,
			DecayStart: sc.DecayStart, MinLR: sc.MinLR, Factor: sc.Factor, Patience: sc.Patience, MinDelta: sc.MinDelta, Cooldown: sc.Cooldown}
		if _, err := optim.NewSchedule(cfg.Schedule); err != nil {
			return nil, c.Errorf("schedule", "%v", err)
		}
	}
	if cfg.Optimizer.Beta1Decay != 0 && !strings.EqualFold(cfg.Schedule.Name, optim.ScheduleLinear) {
		return nil, c.Errorf("optimizer.beta1_decay", "sets β1 for the decay phase of the linear schedule, but the schedule is %q: set schedule = { name = \"linear\", decay_start = N }, or remove beta1_decay", cmp.Or(cfg.Schedule.Name, optim.ScheduleConstant))
	}
	if g := c.Table("batch_growth"); g != nil {
		var bg struct {
			EveryEpochs int `json:"every_epochs"`
			Factor      int `json:"factor"`
			Max         int `json:"max"`
		}
		if err := decodeStrict(g, &bg); err != nil {
			return nil, c.Errorf("batch_growth", "%v", jsonErr(err))
		}
		cfg.BatchGrowth = train.BatchGrowth{EveryEpochs: bg.EveryEpochs, Factor: bg.Factor, Max: bg.Max}
	}
	cfg.EarlyStopping.Patience = 15
	switch es := c.Value("early_stopping").(type) {
	case nil:
	case bool:
		cfg.EarlyStopping.Disabled = !es
	case map[string]any:
		var e struct {
			Metric   string  `json:"metric"`
			TieBreak string  `json:"tie_break"`
			Patience int     `json:"patience"`
			MinDelta float64 `json:"min_delta"`
			Enabled  *bool   `json:"enabled"`
		}
		if err := decodeStrict(es, &e); err != nil {
			return nil, c.Errorf("early_stopping", "%v", jsonErr(err))
		}
		cfg.EarlyStopping.Metric, cfg.EarlyStopping.MinDelta, cfg.EarlyStopping.TieBreak = e.Metric, e.MinDelta, e.TieBreak
		if e.Patience > 0 {
			cfg.EarlyStopping.Patience = e.Patience
		}
		if e.Enabled != nil {
			cfg.EarlyStopping.Disabled = !*e.Enabled
		}
	default:
		return nil, c.Errorf("early_stopping", "expected a table { metric, patience, min_delta } or false")
	}
	if cl := c.Table("clip"); cl != nil {
		var cc struct {
			Norm  float64 `json:"norm"`
			Value float64 `json:"value"`
		}
		if err := decodeStrict(cl, &cc); err != nil {
			return nil, c.Errorf("clip", "%v", jsonErr(err))
		}
		cfg.ClipNorm, cfg.ClipValue = cc.Norm, cc.Value
	}
	if err := parseHogwild(c, ts); err != nil {
		return nil, err
	}
	return ts, nil
}

// parseHogwild reads the hogwild table and says, at its key, what in the stage cannot work
// with it (the trainer checks the same again, with Config.Hogwild).
func parseHogwild(c settings, ts *trainSpec) error {
	h := c.Table("hogwild")
	if h == nil {
		return nil
	}
	var hc struct {
		Threads int `json:"threads"`
	}
	if err := decodeStrict(h, &hc); err != nil {
		return c.Errorf("hogwild", "%v", jsonErr(err))
	}
	if hc.Threads < 1 {
		return c.Errorf("hogwild.threads", "must be >= 1, found %d", hc.Threads)
	}
	ts.cfg.Hogwild.Threads = hc.Threads
	for i, l := range ts.layers {
		if l.Type == nn.LayerBatchNorm || l.Norm == nn.LayerBatchNorm {
			return c.Errorf("hogwild", "cannot train layers[%d] (batch normalisation): its running statistics would be shared state that every step updates; remove batch_norm or hogwild", i)
		}
	}
	if err := ts.cfg.Hogwild.Check(ts.cfg); err != nil {
		return c.Errorf("hogwild", "%s", strings.TrimPrefix(err.Error(), "train: "))
	}
	ts.monitor = 0 // the monitor reads one model between steps: there is none
	if ts.workers == 0 {
		ts.workers = hc.Threads // the threads' cores, from the run's CPU budget
	}
	return nil
}

// jsonErr turns encoding/json's messages into TOML terms.
func jsonErr(err error) string {
	msg := err.Error()
	msg = trimPrefix(msg, "json: ")
	return msg
}

func trimPrefix(s, p string) string {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// embeddingSpecs returns the embedding of every categorical input of plan: named
// emb_<column> (init_from transfers tables by these names), embedding_dim wide or
// min(50, ceil(cardinality/2)).
func (ts *trainSpec) embeddingSpecs(plan *bundle.InputPlan) []nn.EmbeddingSpec {
	var out []nn.EmbeddingSpec
	for _, c := range plan.Categorical {
		dim := ts.embDim
		if dim == 0 {
			dim = min(50, (c.Cardinality+1)/2)
		}
		out = append(out, nn.EmbeddingSpec{Name: "emb_" + c.Column, Column: c.Column, Cardinality: c.Cardinality, Dim: dim})
	}
	return out
}

// specKeyError is a modelSpec error about one key of the stage.
type specKeyError struct{ key, msg string }

func (e *specKeyError) Error() string { return e.key + ": " + e.msg }

// modelSpec builds the network for a plan.
func (ts *trainSpec) modelSpec(plan *bundle.InputPlan) (nn.Spec, error) {
	spec := nn.Spec{NumInputs: plan.Width(), L1: ts.l1, L2: ts.l2, InputShape: ts.inputShape}
	spec.Embeddings = ts.embeddingSpecs(plan)
	if ts.inputNoise > 0 {
		spec.Layers = append(spec.Layers, nn.LayerSpec{Type: nn.LayerGaussianNoise, Name: "input_noise", Stddev: ts.inputNoise})
	}
	spec.Layers = append(spec.Layers, ts.layers...)
	spec.Heads = plan.Heads()
	classification := false
	for i := range spec.Heads {
		h := &spec.Heads[i]
		t := ts.tasks[plan.Targets[i].Column]
		h.LossWeight = t.LossWeight
		h.Loss = t.Loss
		h.HuberDelta = t.HuberDelta
		if h.Kind != nn.HeadRegression {
			classification = true
			h.BatchNorm = ts.headBN
			h.Noise = ts.headNoise
			h.LabelSmoothing = ts.smoothing
			if t.LabelSmoothing > 0 {
				h.LabelSmoothing = t.LabelSmoothing
			}
			cw := ts.classWeight
			if t.ClassWeight != nil {
				cw = t.ClassWeight
			}
			switch w := cw.(type) {
			case nil:
			case string:
				if w != "balanced" {
					return spec, fmt.Errorf("class_weight: %q is not \"balanced\" or a list of weights", w)
				}
				h.ClassWeight = "balanced"
			case []any:
				for _, x := range w {
					f, ok := x.(float64)
					if !ok {
						if i, ok := x.(int64); ok {
							f = float64(i)
						} else {
							return spec, fmt.Errorf("class_weight: element %v is not a number", x)
						}
					}
					h.ClassWeights = append(h.ClassWeights, f)
				}
			}
		}
	}
	if ts.headBN && !classification {
		return spec, &specKeyError{key: "head_batch_norm", msg: "this model's targets are all regression targets, and batch norm applies to classification heads' logits: remove head_batch_norm"}
	}
	if ts.headNoise > 0 && !classification {
		return spec, &specKeyError{key: "head_noise", msg: "this model's targets are all regression targets, and the noise corrupts classification heads' logits: remove head_noise"}
	}
	return spec, nil
}

// build builds the network for a plan, with weights drawn from rng. c is the config ts was
// parsed from: a spec the plan makes invalid is an error about its keys.
func (ts *trainSpec) build(c settings, plan *bundle.InputPlan, rng *rand.Rand) (*nn.Model, error) {
	spec, err := ts.modelSpec(plan)
	if err != nil {
		var ke *specKeyError
		if errors.As(err, &ke) {
			return nil, c.Errorf(ke.key, "%s", ke.msg)
		}
		return nil, c.Errorf("class_weight", "%v", err)
	}
	m, err := nn.Build(spec, rng)
	if err != nil {
		return nil, c.Errorf("layers", "%v", err)
	}
	return m, nil
}

// unknownTasks reports tasks entries that name no target.
func (ts *trainSpec) unknownTasks(plan *bundle.InputPlan) []string {
	known := map[string]bool{}
	for _, t := range plan.Targets {
		known[t.Column] = true
	}
	var out []string
	for k := range ts.tasks {
		if !known[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
