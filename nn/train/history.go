package train

import (
	"math"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/metrics"
)

// History holds the per-epoch metrics of a run. Keys: "loss" and "val_loss" (total loss),
// and per head "accuracy", "logloss" (classification) or "rmse", "mae", "r2" (regression),
// prefixed with "val_" for the validation set. With several heads the per-head keys are
// "<task>/<key>" (e.g. "parity/val_accuracy") and "<task>/loss", "<task>/val_loss" are added.
// The train "loss" is the running mean of the epoch's batch losses, on the batches as trained
// (augmented, e.g. mixed, when Config.Augment is set); the other train metrics are computed on
// a clean sample of the training rows.
type History struct {
	Epochs []map[string]float64
}

// Series returns one metric over the epochs (NaN where absent).
func (h History) Series(key string) []float64 {
	out := make([]float64, len(h.Epochs))
	for i, e := range h.Epochs {
		v, ok := e[key]
		if !ok {
			v = math.NaN()
		}
		out[i] = v
	}
	return out
}

// headMetrics adds the metrics of every head's predictions to dst.
func headMetrics(dst map[string]float64, prefix string, heads []nn.HeadSpec, out nn.Outputs, t nn.Targets) {
	for i, h := range heads {
		key := func(k string) string {
			if len(heads) > 1 {
				return h.Name + "/" + prefix + k
			}
			return prefix + k
		}
		p, w := out.Heads[i], out.Width[i]
		switch h.Kind {
		case nn.HeadSoftmax, nn.HeadBinary:
			dst[key("accuracy")] = metrics.Accuracy(t.Heads[i].Labels, p, w)
			dst[key("logloss")] = metrics.LogLoss(t.Heads[i].Labels, p, w)
		default:
			y := t.Heads[i].Values
			dst[key("rmse")] = metrics.RMSE(y, p)
			dst[key("mae")] = metrics.MAE(y, p)
			dst[key("r2")] = metrics.R2(y, p)
		}
	}
}
