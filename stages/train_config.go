package stages

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/pipe-ml/pipe/bundle"
	"math"
	"sort"

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
		{Name: "tasks", Type: pipeline.TypeTable, Doc: "Per-target settings of a multi-task model: { <target> = { task = \"binary\", loss_weight = 0.5, label_smoothing = 0.1, class_weight = \"balanced\" } }."},
		{Name: "layers", Type: pipeline.TypeList, Doc: "The trunk, bottom to top: { dense = 128, activation = \"relu\", dropout = 0.2, init = \"he_normal\", l2 = 1e-4, name = \"enc_1\" }, { batch_norm = true }, { layer_norm = true }, { dropout = 0.3 }, { gaussian_noise = 0.1 }, { residual = 64, norm = \"layer_norm\" }, { activation = \"tanh\" }, { custom = \"name\" } (a block a Go program registered with nn.RegisterCustom, e.g. a gorgonia graph: see nn/gorgonia). Default: [{ dense = 128 }, { dense = 64 }]."},
		{Name: "activation", Type: pipeline.TypeString, Default: "relu", Enum: []string{"relu", "leaky_relu", "gelu", "elu", "tanh", "sigmoid", "linear"}, Doc: "The activation of dense layers that do not name one. The initializer follows it: He for the ReLU family, Glorot otherwise."},
		{Name: "embedding_dim", Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), Doc: "Width of the embedding of each index-encoded categorical column. 0: min(50, ceil(cardinality/2))."},
		{Name: "optimizer", Type: pipeline.TypeTable, Doc: "{ name = \"adam\" | \"adamw\" | \"sgd\" | \"rmsprop\" | \"adagrad\", lr = 1e-3 | \"auto\", momentum, nesterov, beta1, beta2, eps, rho, weight_decay }. Default: Adam with its documented defaults. lr = \"auto\" runs the LR range test (~100 steps) and starts slightly above the best LR it saw."},
		{Name: "schedule", Type: pipeline.TypeTable, Doc: "{ name = \"constant\" | \"step\" | \"exponential\" | \"cosine\" | \"plateau\", warmup_steps, step_epochs, gamma, t0, t_mult, min_lr, factor, patience, min_delta, cooldown }. Default: constant; cosine when fine-tuning from init_from."},
		{Name: "epochs", Type: pipeline.TypeInt, Default: int64(200), Min: pipeline.Bound(1), Doc: "The maximum number of epochs (early stopping usually ends training sooner)."},
		{Name: "batch_size", Type: pipeline.TypeInt, Default: int64(64), Min: pipeline.Bound(1), Doc: "The mini-batch size."},
		{Name: "batch_growth", Type: pipeline.TypeTable, Doc: "{ every_epochs = 10, factor = 2, max = 1024 }: grow the batch size during training. Default: fixed."},
		{Name: "early_stopping", Type: pipeline.TypeAny, Doc: "{ metric = \"val_loss\", patience = 15, min_delta = 0 }, or false to train every epoch. On by default; the best epoch's weights are restored. Without a val table a seeded 10% of train is held out, and the manifest says so."},
		{Name: "clip", Type: pipeline.TypeTable, Doc: "Gradient clipping: { norm = 1.0 } (global L2 norm) and/or { value = 0.5 }. Default: off."},
		{Name: "ema", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(0.99999), Doc: "Polyak averaging: decay of an exponential moving average of the weights, used for evaluation and the saved model (e.g. 0.999). 0: off."},
		{Name: "l1", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Doc: "L1 penalty on every weight matrix (not biases or norms)."},
		{Name: "l2", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Doc: "L2 penalty on every weight matrix (not biases or norms). For decoupled weight decay use optimizer = { name = \"adamw\", weight_decay = ... }."},
		{Name: "input_noise", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Doc: "Standard deviation of Gaussian noise added to the inputs while training."},
		{Name: "target_noise", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Doc: "Standard deviation of Gaussian noise added to (standardised) regression targets while training."},
		{Name: "label_smoothing", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(0.5), Doc: "Label smoothing of classification heads."},
		{Name: "class_weight", Type: pipeline.TypeAny, Doc: "\"balanced\" (inverse class frequency in train), or a list of weights in class order. Default: none."},
		{Name: "workers", Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), Doc: "GEMM threads, taken from the run's CPU budget. 0: as many as the budget has free. Results do not depend on it."},
		{Name: "monitor_every", Type: pipeline.TypeInt, Default: int64(100), Min: pipeline.Bound(0), Doc: "Every this many steps, record per layer the activation mean, std, histogram and dead-ReLU share and the output-gradient norm, and per parameter ‖g‖/‖w‖ and the update/param ratio, to monitor.csv (0: off). Warnings go to the log: dead ReLUs over half a layer, update ratios far from 1e-3."},
	}
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
	classWeight any
	tasks       map[string]taskSettings
	targets     []string
	features    []string
	task        string
	embDim      int
	workers     int
	monitor     int
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
	Value(key string) any
	List(key string) []any
	Table(key string) map[string]any
	Errorf(key, format string, args ...any) *pipeline.ConfigError
}

func parseTrainSpec(c settings) (*trainSpec, error) {
	ts := &trainSpec{targets: c.Strings("target"), features: c.Strings("features"), task: c.String("task"),
		inputNoise: c.Float("input_noise"), l1: c.Float("l1"), l2: c.Float("l2"), smoothing: c.Float("label_smoothing"),
		classWeight: c.Value("class_weight"), embDim: c.Int("embedding_dim"), workers: c.Int("workers"), monitor: c.Int("monitor_every"), tasks: map[string]taskSettings{}}
	layers := c.List("layers")
	if layers == nil {
		layers = defaultLayers
	}
	act := c.String("activation")
	for i, l := range layers {
		var ls nn.LayerSpec
		if err := decodeStrict(l, &ls); err != nil {
			return nil, c.Errorf(fmt.Sprintf("layers[%d]", i), "%v", jsonErr(err))
		}
		if (ls.Type == nn.LayerDense) && ls.Activation == "" {
			ls.Activation = act
		}
		ts.layers = append(ts.layers, ls)
	}
	if t := c.Table("tasks"); t != nil {
		for name, v := range t {
			var s taskSettings
			if err := decodeStrict(v, &s); err != nil {
				return nil, c.Errorf("tasks."+name, "%v", jsonErr(err))
			}
			ts.tasks[name] = s
		}
	}
	cfg := &ts.cfg
	cfg.Epochs = c.Int("epochs")
	cfg.BatchSize = c.Int("batch_size")
	cfg.EMADecay = c.Float("ema")
	cfg.TargetNoise = c.Float("target_noise")
	if o := c.Table("optimizer"); o != nil {
		var oc struct {
			Name        string  `json:"name"`
			LR          any     `json:"lr"`
			Momentum    float64 `json:"momentum"`
			Nesterov    bool    `json:"nesterov"`
			Beta1       float64 `json:"beta1"`
			Beta2       float64 `json:"beta2"`
			Eps         float64 `json:"eps"`
			Rho         float64 `json:"rho"`
			WeightDecay float64 `json:"weight_decay"`
		}
		if err := decodeStrict(o, &oc); err != nil {
			return nil, c.Errorf("optimizer", "%v", jsonErr(err))
		}
		cfg.Optimizer = optim.Config{Name: oc.Name, Momentum: oc.Momentum, Nesterov: oc.Nesterov, Beta1: oc.Beta1, Beta2: oc.Beta2, Eps: oc.Eps, Rho: oc.Rho, WeightDecay: oc.WeightDecay}
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
			MinLR: sc.MinLR, Factor: sc.Factor, Patience: sc.Patience, MinDelta: sc.MinDelta, Cooldown: sc.Cooldown}
		if _, err := optim.NewSchedule(cfg.Schedule); err != nil {
			return nil, c.Errorf("schedule", "%v", err)
		}
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
			Patience int     `json:"patience"`
			MinDelta float64 `json:"min_delta"`
			Enabled  *bool   `json:"enabled"`
		}
		if err := decodeStrict(es, &e); err != nil {
			return nil, c.Errorf("early_stopping", "%v", jsonErr(err))
		}
		cfg.EarlyStopping.Metric, cfg.EarlyStopping.MinDelta = e.Metric, e.MinDelta
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
	return ts, nil
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

// modelSpec builds the network for a plan.
func (ts *trainSpec) modelSpec(plan *bundle.InputPlan) (nn.Spec, error) {
	spec := nn.Spec{NumInputs: len(plan.Numeric), L1: ts.l1, L2: ts.l2}
	spec.Embeddings = ts.embeddingSpecs(plan)
	if ts.inputNoise > 0 {
		spec.Layers = append(spec.Layers, nn.LayerSpec{Type: nn.LayerGaussianNoise, Name: "input_noise", Stddev: ts.inputNoise})
	}
	spec.Layers = append(spec.Layers, ts.layers...)
	spec.Heads = plan.Heads()
	for i := range spec.Heads {
		h := &spec.Heads[i]
		t := ts.tasks[plan.Targets[i].Column]
		h.LossWeight = t.LossWeight
		h.Loss = t.Loss
		h.HuberDelta = t.HuberDelta
		if h.Kind != nn.HeadRegression {
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
	return spec, nil
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
