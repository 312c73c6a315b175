package train

import (
	"encoding"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// Config configures Fit. The zero value trains with the documented defaults.
type Config struct {
	// Epochs is the maximum number of epochs; default 100.
	Epochs int
	// BatchSize is the initial mini-batch size; default 64.
	BatchSize int
	// BatchGrowth grows the batch size during training (default: fixed).
	BatchGrowth BatchGrowth
	// Optimizer selects the optimizer (default Adam at its default LR, 1e-3).
	Optimizer optim.Config
	// AutoLR runs optim.RangeTest before training (on the same weights, which are restored
	// afterwards) and uses its suggestion as the base LR instead of Optimizer.LR. The sweep is
	// returned in Result.RangeTest and logged. Default off.
	AutoLR bool
	// RangeTest configures the AutoLR sweep (defaults: optim.RangeTestConfig's).
	RangeTest optim.RangeTestConfig
	// Schedule selects the learning-rate schedule (default constant).
	Schedule optim.ScheduleConfig
	// Seed drives every random choice of training (default 0 is a valid seed).
	Seed uint64
	// EarlyStopping is on by default (see EarlyStopping).
	EarlyStopping EarlyStopping
	// ValFraction is the share of the training rows carved out (seeded) as validation data
	// when Fit gets no validation set; default 0.1. Result.CarvedValidation reports it.
	ValFraction float64
	// ClipNorm rescales the gradients so that their global L2 norm is at most ClipNorm
	// (default 0: off). ClipValue clamps every gradient to [−ClipValue, ClipValue] (default 0:
	// off); it is applied first when both are set.
	ClipNorm  float64
	ClipValue float64
	// EMADecay > 0 keeps an exponential moving average of the weights (optim.EMA), used for
	// every evaluation and returned as the final model. Default 0: off.
	EMADecay float64
	// RecomputeBN recomputes every batch norm's running statistics after training
	// (RecomputeBatchNorm over the training rows, with Semi over its unlabeled pool, in
	// batches of BatchSize), once the final weights are in place; the validation loss and
	// early-stopping metric before and after are logged and kept in Result. Default off.
	RecomputeBN bool
	// Workers is the number of goroutines for matrix products (the caller's CPU budget);
	// default 1. Results do not depend on it.
	Workers int
	// TargetNoise adds N(0, TargetNoise²) to regression targets of training batches (default
	// 0).
	TargetNoise float64
	// TrainMetricRows bounds the fixed, seeded sample of training rows on which train metrics
	// other than loss (accuracy, rmse, ...) are computed in eval mode each epoch; default 2048.
	// The train "loss" is the running mean of the batch losses of the epoch.
	TrainMetricRows int
	// Augment, when set, transforms every training batch in place after it is gathered and
	// before the step: data augmentation, or the corruption of a denoising autoencoder. The
	// batch is a copy (the dataset is never modified), so augmentations are drawn afresh at
	// every step. It must draw randomness only from rng, the trainer's augmentation stream
	// (seeded from Seed and saved in checkpoints), so that training stays deterministic and
	// resumable. Evaluation batches are never augmented. Default nil.
	//
	// Soft targets: t.Heads[h].Soft of a classification head comes as an empty slice with
	// room for Rows×Classes values (Rows×2 for a binary head); an augmenter that mixes labels
	// (mixup) reslices it, fills it and leaves it set, and the step trains on it (see
	// nn.HeadTargets.Soft). That room, like the batch, belongs to this Fit, so one Augment
	// function may be shared by concurrent Fits (ensemble members) as long as it keeps no
	// per-call state of its own. The train "loss" of History is then the loss on the
	// augmented batches (with mixup, the cross-entropy with the mixed targets), not on the
	// clean training rows; the other train metrics are computed on clean rows.
	Augment func(b *nn.Batch, t *nn.Targets, rng *rand.Rand)
	// AugmentState, when set, is the state that the owner of Augment keeps across steps
	// (counters of what it did, say) and that a resumed Fit must continue from: every
	// checkpoint carries its MarshalBinary, and Fit with Resume restores it with
	// UnmarshalBinary before training. Default nil: Augment keeps no state of its own.
	AugmentState interface {
		encoding.BinaryMarshaler
		encoding.BinaryUnmarshaler
	}
	// Resume continues from a checkpoint taken by a previous Fit with the same data and
	// config (see EpochInfo.Checkpoint). A checkpoint that does not fit the model or the
	// config (another spec, optimizer or tensor layout, or a damaged state) is an error
	// wrapping ErrCheckpoint, returned before the model is changed, so that the caller can
	// discard it and train afresh.
	Resume *Checkpoint
	// Hogwild trains with lock-free asynchronous threads (see Hogwild): not reproducible bit
	// for bit. Default: off (synchronous).
	Hogwild Hogwild
	// Hooks are run like the hooks passed to Fit, which come after them in the list that is
	// ordered by priority and name (so between two hooks of the same priority and name, the
	// one of Hooks runs first). They let a caller give hooks to code that calls Fit for it
	// (pretraining, ensembles). Default none.
	Hooks []Hook
	// Semi, when set, trains semi-supervised: labeled and unlabeled rows in the same
	// mini-batches with a consistency loss (VAT, Π-model, Mean Teacher; see Semi). Default
	// nil: supervised.
	Semi *Semi
	// Logger receives progress messages (default: the zero zerolog.Logger, which discards).
	Logger zerolog.Logger
}

// BatchGrowth multiplies the batch size by Factor every EveryEpochs epochs, up to Max.
type BatchGrowth struct {
	EveryEpochs int // 0: no growth
	Factor      int // default 2
	Max         int // default: no limit other than the training rows
}

// EarlyStopping stops training when the monitored metric has not improved for Patience
// epochs, and restores the weights of the best epoch.
type EarlyStopping struct {
	// Disabled turns early stopping off (training runs all Epochs, and the final weights are
	// kept).
	Disabled bool
	// Metric is a History key; default "val_loss". Metrics named *accuracy, *auc, *f1 or *r2
	// are maximised, all others minimised.
	Metric string
	// Patience is the number of epochs without improvement before stopping; default 10.
	Patience int
	// MinDelta is the improvement that counts (absolute); default 0.
	MinDelta float64
	// TieBreak is a second History key that decides between epochs whose Metric is equal (a
	// validation accuracy takes few values: many epochs tie): the epoch with the better
	// TieBreak (lower, or higher for the maximised kinds) counts as an improvement. Default
	// none.
	TieBreak string
}

func (c Config) withDefaults() (Config, error) {
	if c.Epochs == 0 {
		c.Epochs = 100
	}
	if c.BatchSize == 0 {
		c.BatchSize = 64
	}
	if c.BatchGrowth.Factor == 0 {
		c.BatchGrowth.Factor = 2
	}
	if c.ValFraction == 0 {
		c.ValFraction = 0.1
	}
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.TrainMetricRows == 0 {
		c.TrainMetricRows = 2048
	}
	if c.EarlyStopping.Metric == "" {
		c.EarlyStopping.Metric = "val_loss"
	}
	if c.EarlyStopping.Patience == 0 {
		c.EarlyStopping.Patience = 10
	}
	switch {
	case c.Epochs < 0:
		return c, fmt.Errorf("train: epochs %d < 0", c.Epochs)
	case c.BatchSize < 1:
		return c, fmt.Errorf("train: batch size %d < 1", c.BatchSize)
	case c.ValFraction <= 0 || c.ValFraction >= 1:
		return c, fmt.Errorf("train: val fraction %g not in (0, 1)", c.ValFraction)
	case c.ClipNorm < 0 || c.ClipValue < 0:
		return c, fmt.Errorf("train: clip norm %g and clip value %g must be >= 0", c.ClipNorm, c.ClipValue)
	case c.TargetNoise < 0:
		return c, fmt.Errorf("train: target noise %g < 0", c.TargetNoise)
	case c.BatchGrowth.Factor < 1 || c.BatchGrowth.EveryEpochs < 0:
		return c, fmt.Errorf("train: batch growth factor %d and every %d epochs must be >= 1 and >= 0", c.BatchGrowth.Factor, c.BatchGrowth.EveryEpochs)
	}
	if err := c.Hogwild.Check(c); err != nil {
		return c, err
	}
	if c.EMADecay != 0 {
		if err := optim.CheckEMADecay(c.EMADecay); err != nil {
			return c, fmt.Errorf("train: %w", err)
		}
	}
	return c, nil
}

// batchSize returns the batch size of an epoch under the growth schedule.
func (c Config) batchSize(epoch, rows int) int {
	bs := c.BatchSize
	if g := c.BatchGrowth; g.EveryEpochs > 0 {
		for i := 0; i < epoch/g.EveryEpochs; i++ {
			if g.Max > 0 && bs*g.Factor > g.Max {
				bs = max(bs, g.Max)
				break
			}
			bs *= g.Factor
			if bs >= rows {
				break
			}
		}
	}
	return max(1, min(bs, rows))
}

// MaxBatchSize is the largest mini-batch Fit draws from rows training rows over its epochs
// (batch growth included).
func (c Config) MaxBatchSize(rows int) int {
	bs := c.batchSize(c.Epochs, rows)
	for e := 0; e < c.Epochs; e++ {
		bs = max(bs, c.batchSize(e, rows))
	}
	return bs
}

// ActivationBytes estimates the bytes of activation buffers m holds while Fit trains it on
// trainRows rows with valRows validation rows (0: carved from the training rows, see
// ValFraction): sized for the largest mini-batch or for the largest inference pass
// (validation and train metrics run in chunks of at most m.InferenceRows() rows), whichever
// is larger, plus one mini-batch for each hogwild thread's model.
func ActivationBytes(m *nn.Model, c Config, trainRows, valRows int) int64 {
	if d, err := c.withDefaults(); err == nil {
		c = d
	}
	if valRows == 0 {
		valRows = int(c.ValFraction*float64(trainRows)) + 1
		trainRows -= valRows
	}
	bs := c.MaxBatchSize(trainRows)
	infer := min(m.InferenceRows(), max(valRows, min(c.TrainMetricRows, trainRows)))
	return m.ActivationBytesPerRow() * int64(max(bs, infer)+c.Hogwild.Threads*bs)
}

// maximize reports whether a larger value of metric is better.
func maximize(metric string) bool {
	for _, s := range []string{"accuracy", "auc", "f1", "r2"} {
		if strings.HasSuffix(metric, s) {
			return true
		}
	}
	return false
}
