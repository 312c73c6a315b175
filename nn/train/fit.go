package train

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// Result summarises a Fit.
type Result struct {
	History History
	// Epochs is the number of epochs completed; Steps the number of optimizer steps.
	Epochs int
	Steps  int
	// Metric is the early-stopping metric; BestEpoch (0-based) and BestMetric its best value.
	// With early stopping on, the model holds the weights of BestEpoch.
	Metric       string
	BestEpoch    int
	BestMetric   float64
	StoppedEarly bool
	// CarvedValidation reports that no validation set was given and ValRows (positions in the
	// training dataset) were held out from training as validation data.
	CarvedValidation bool
	ValRows          []int
	// BaseLR is the base learning rate used (the range-test suggestion with AutoLR).
	BaseLR    float64
	RangeTest *optim.RangeTestResult
	// Interrupted reports that ctx was canceled after at least one completed epoch: the model
	// then holds the best weights so far (as after a finished run), usable as a partial model.
	Interrupted bool
	// BatchNormRows is the number of rows Config.RecomputeBN recomputed the batch-norm
	// statistics over (0: not done); ValBeforeBN and ValAfterBN are the early-stopping
	// metric on the validation rows before and after, and BNValMetrics every validation
	// metric after (the final model's; History has them before).
	BatchNormRows           int
	ValBeforeBN, ValAfterBN float64
	BNValMetrics            map[string]float64
}

// Seeds of the independent random streams derived from Config.Seed.
const (
	streamCarve   = 1
	streamShuffle = 2
	streamNoise   = 3
	streamSample  = 4
	streamRange   = 5
	streamAugment = 6
)

// Fit trains m on train, evaluating on val after every epoch (when val is empty, a seeded
// ValFraction of train is held out instead and reported in the Result). The model is trained
// in place: on return it holds the final weights (the best epoch's with early stopping, the
// EMA average with EMADecay). On error the model keeps its current weights: after a step whose
// loss or gradient was not finite those are the weights before that step (or, if they were
// already non-finite, the last completed epoch's), and the error names the epoch, step and
// layer. Cancelling ctx stops within one step and returns an error wrapping ctx's, with the
// Result so far; when an epoch had completed, the model then holds the best weights so far
// (the best epoch's with early stopping, the EMA average with EMADecay) and
// Result.Interrupted is set, so that the work done is not lost.
func Fit(ctx context.Context, m *nn.Model, trainSet, val Dataset, cfg Config, hooks ...Hook) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	if err := trainSet.validate(m, "training"); err != nil {
		return Result{}, err
	}
	res := Result{Metric: cfg.EarlyStopping.Metric, BestEpoch: -1}
	if val.Len() == 0 {
		n := trainSet.Len()
		nVal := int(math.Ceil(cfg.ValFraction * float64(n)))
		if nVal < 1 || nVal >= n {
			return res, fmt.Errorf("train: %d training rows are too few to carve a %g validation split; pass a validation set", n, cfg.ValFraction)
		}
		perm := rand.New(rand.NewPCG(cfg.Seed, streamCarve)).Perm(n)
		res.CarvedValidation, res.ValRows = true, append([]int(nil), perm[:nVal]...)
		val = trainSet.Subset(res.ValRows)
		trainSet = trainSet.Subset(perm[nVal:])
		cfg.Logger.Info().Int("rows", nVal).Msg("no validation set: held out a seeded share of the training rows")
	} else if err := val.validate(m, "validation"); err != nil {
		return res, err
	}
	r := &run{cfg: cfg, m: m, train: trainSet, val: val, res: &res}
	r.stepHooks, r.epochHooks = sortHooks(append(append([]Hook(nil), cfg.Hooks...), hooks...))
	if err := r.setup(ctx); err != nil {
		return res, err
	}
	err = r.loop(ctx)
	interrupted := err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) && r.bestEpoch >= 0
	r.finish(err == nil || interrupted)
	res.Interrupted = interrupted
	if err == nil && cfg.RecomputeBN && r.bestEpoch >= 0 {
		err = r.recomputeBN()
	}
	return res, err
}

// recomputeBN is Config.RecomputeBN on the final weights.
func (r *run) recomputeBN() error {
	d := r.train
	if r.semi != nil {
		d = r.semi.cfg.Unlabeled
	}
	before, err := r.valMetrics()
	if err != nil {
		return err
	}
	rows, err := RecomputeBatchNorm(r.m, d, max(r.cfg.BatchSize, 2))
	if err != nil || rows == 0 {
		return err
	}
	after, err := r.valMetrics()
	if err != nil {
		return err
	}
	es := r.cfg.EarlyStopping.Metric
	r.res.BatchNormRows, r.res.ValBeforeBN, r.res.ValAfterBN, r.res.BNValMetrics = rows, before[es], after[es], after
	r.cfg.Logger.Info().Int("rows", rows).Str("metric", es).Float64("before", before[es]).Float64("after", after[es]).Msg("batch-norm statistics recomputed over the training rows")
	return nil
}

// valMetrics are the validation metrics of the model as it is (val_loss, val_accuracy...).
func (r *run) valMetrics() (map[string]float64, error) {
	vout, vl, err := r.m.PredictLoss(r.valBatch, r.valTargets)
	if err != nil {
		return nil, fmt.Errorf("train: evaluate validation: %w", err)
	}
	dst := map[string]float64{"val_loss": vl.Total}
	headMetrics(dst, "val_", r.m.Heads(), vout, r.valTargets)
	return dst, nil
}

// run is the state of one Fit.
type run struct {
	cfg        Config
	m          *nn.Model
	train, val Dataset
	res        *Result
	stepHooks  []Hook
	epochHooks []Hook

	opt      optim.Optimizer
	svrg     *optim.SVRG // r.opt when it is SVRG, else nil
	hogwild  *hogwild    // nil: synchronous
	sched    optim.Schedule
	ema      *optim.EMA
	shuffle  *rand.PCG
	shuffleR *rand.Rand
	augment  *rand.PCG
	augmentR *rand.Rand
	semi     *semiRun // nil: supervised
	baseLR   float64
	epoch    int
	step     int

	bestMetric  float64
	bestTie     float64 // the TieBreak metric at the best epoch
	bestEpoch   int
	badEpochs   int
	bestWeights []Tensor
	lastGood    []Tensor // weights at the end of the last completed epoch
	// stopped: early stopping ended training at the last completed epoch (recorded in the
	// checkpoints taken at that epoch's end, so that a Fit resumed from one stops too).
	stopped bool

	buf        *batchBuffers
	perm       []int
	valBatch   nn.Batch
	valTargets nn.Targets
	trBatch    nn.Batch // fixed sample of training rows for train metrics
	trTargets  nn.Targets
}

func (r *run) setup(ctx context.Context) error {
	cfg := r.cfg
	m := r.m
	m.SetWorkers(cfg.Workers)
	for i, h := range m.Heads() {
		if h.ClassWeight == "balanced" && h.ClassWeights == nil {
			k := h.Classes
			if h.Kind == nn.HeadBinary {
				k = 2
			}
			labels := make([]int32, r.train.Len())
			for j := range labels {
				labels[j] = r.train.Targets[i].Labels[r.train.row(j)]
			}
			if err := m.SetClassWeights(h.Name, nn.BalancedClassWeights(labels, k)); err != nil {
				return err
			}
		}
	}
	var err error
	if r.opt, err = optim.New(cfg.Optimizer); err != nil {
		return fmt.Errorf("train: optimizer: %w", err)
	}
	r.svrg, _ = r.opt.(*optim.SVRG)
	if cfg.Hogwild.Threads > 0 {
		if r.hogwild, err = r.newHogwild(); err != nil {
			return err
		}
	}
	if r.sched, err = optim.NewSchedule(cfg.Schedule); err != nil {
		return fmt.Errorf("train: schedule: %w", err)
	}
	if cfg.Optimizer.Beta1Decay != 0 && !strings.EqualFold(cfg.Schedule.Name, optim.ScheduleLinear) {
		return fmt.Errorf("train: optimizer: beta1_decay is β1 in the linear schedule's decay phase; the schedule is %q (use schedule = { name = \"linear\", decay_start = N })", cmp.Or(cfg.Schedule.Name, optim.ScheduleConstant))
	}
	if cfg.Optimizer.Beta1Decay != 0 && r.hogwild != nil {
		return fmt.Errorf("train: optimizer: beta1_decay needs adam; Hogwild trains with sgd")
	}
	r.baseLR = cfg.Optimizer.EffectiveLR()
	r.shuffle = rand.NewPCG(cfg.Seed, streamShuffle)
	r.shuffleR = rand.New(r.shuffle)
	r.augment = rand.NewPCG(cfg.Seed, streamAugment)
	r.augmentR = rand.New(r.augment)
	m.SetNoiseSource(rand.NewPCG(cfg.Seed, streamNoise))
	r.bestMetric = math.Inf(1)
	if maximize(cfg.EarlyStopping.Metric) {
		r.bestMetric = math.Inf(-1)
	}
	r.bestTie = math.Inf(1)
	if maximize(cfg.EarlyStopping.TieBreak) {
		r.bestTie = math.Inf(-1)
	}
	r.bestEpoch = -1
	maxBS := cfg.MaxBatchSize(r.train.Len())
	r.buf = newBatchBuffers(r.train, maxBS)
	if cfg.Augment != nil {
		r.buf.addSoftRoom(m.Heads(), maxBS)
	}
	r.perm = make([]int, r.train.Len())
	if cfg.Semi != nil {
		if r.semi, err = newSemiRun(cfg.Semi, cfg, m, maxBS); err != nil {
			return err
		}
	}
	r.valBatch, r.valTargets = materialize(r.val)
	sample := r.train
	if n := r.train.Len(); n > cfg.TrainMetricRows {
		sample = r.train.Subset(rand.New(rand.NewPCG(cfg.Seed, streamSample)).Perm(n)[:cfg.TrainMetricRows])
	}
	r.trBatch, r.trTargets = materialize(sample)

	if cfg.Resume != nil {
		if err := r.resume(cfg.Resume); err != nil {
			return err
		}
	} else if cfg.AutoLR {
		if err := r.autoLR(ctx); err != nil {
			return err
		}
	}
	if cfg.EMADecay > 0 && r.ema == nil {
		r.ema = optim.NewEMA(m.Params(), cfg.EMADecay)
	}
	r.res.BaseLR = r.baseLR
	r.lastGood = snapshot(m)
	if r.bestWeights == nil {
		r.bestWeights = snapshot(m)
	}
	return nil
}

// autoLR runs the range test on the current weights with a throw-away optimizer, restores
// the weights and noise state, and sets the base LR to the suggestion.
func (r *run) autoLR(ctx context.Context) error {
	m := r.m
	saved := snapshot(m)
	noise, err := m.NoiseSource().MarshalBinary()
	if err != nil {
		return err
	}
	opt, err := optim.New(r.cfg.Optimizer)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(r.cfg.Seed, streamRange))
	bs := r.cfg.batchSize(0, r.train.Len())
	n := r.train.Len()
	perm := rng.Perm(n)
	pos := 0
	res, err := optim.RangeTest(ctx, r.cfg.RangeTest, func(lr float64) (float64, error) {
		if pos+bs > n {
			perm, pos = rng.Perm(n), 0
		}
		b, t := r.buf.gather(r.train, perm[pos:min(pos+bs, n)])
		pos += bs
		loss, err := m.TrainStep(b, t)
		if err != nil {
			return 0, err
		}
		opt.Step(m.Params(), lr)
		return loss.Total, nil
	})
	if rerr := restore(m, saved); rerr != nil {
		return rerr
	}
	if rerr := m.NoiseSource().UnmarshalBinary(noise); rerr != nil {
		return rerr
	}
	if err != nil && len(res.LRs) == 0 {
		return fmt.Errorf("train: learning-rate range test: %w", err)
	}
	if !finite(res.Suggested) || res.Suggested <= 0 {
		return fmt.Errorf("train: learning-rate range test gave no usable suggestion (%d steps); set the LR explicitly", len(res.LRs))
	}
	r.baseLR = res.Suggested
	r.res.RangeTest = &res
	r.cfg.Logger.Info().Float64("lr", res.Suggested).Float64("best_lr", res.BestLR).Int("steps", len(res.LRs)).Msg("auto LR: range test suggestion")
	return nil
}

// resume restores the training state of c. Everything is checked and decoded before the
// model's weights are touched, so that on error (wrapping ErrCheckpoint) the model is as the
// caller gave it.
func (r *run) resume(c *Checkpoint) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCheckpoint, fmt.Sprintf(format, args...))
	}
	if !SameSpec(c.Spec, r.m.Spec()) {
		return bad("it was taken from a model of another spec")
	}
	if err := sameLayout(r.m, c.Weights); err != nil {
		return bad("weights: %v", err)
	}
	if err := sameLayout(r.m, c.BestWeights); err != nil {
		return bad("best weights: %v", err)
	}
	if c.OptimizerName != r.opt.Name() {
		return bad("optimizer %q, the config selects %q", c.OptimizerName, r.opt.Name())
	}
	if (c.EMA != nil) != (r.cfg.EMADecay > 0) {
		return bad("EMA state present: %v, the config's EMA decay is %g", c.EMA != nil, r.cfg.EMADecay)
	}
	if err := r.opt.UnmarshalState(c.Optimizer); err != nil {
		return bad("optimizer state: %v", err)
	}
	if err := r.sched.UnmarshalState(c.Schedule); err != nil {
		return bad("schedule state: %v", err)
	}
	if c.EMA != nil {
		r.ema = optim.NewEMA(r.m.Params(), r.cfg.EMADecay)
		if err := r.ema.UnmarshalState(c.EMA); err != nil {
			return bad("EMA state: %v", err)
		}
	}
	if err := r.shuffle.UnmarshalBinary(c.ShuffleRNG); err != nil {
		return bad("shuffle state: %v", err)
	}
	if err := r.m.NoiseSource().UnmarshalBinary(c.NoiseRNG); err != nil {
		return bad("noise state: %v", err)
	}
	if c.AugmentRNG != nil {
		if err := r.augment.UnmarshalBinary(c.AugmentRNG); err != nil {
			return bad("augmentation state: %v", err)
		}
	}
	if r.cfg.AugmentState != nil && c.AugmentState != nil {
		if err := r.cfg.AugmentState.UnmarshalBinary(c.AugmentState); err != nil {
			return bad("augmenter state: %v", err)
		}
	}
	if err := r.semi.unmarshal(c.Semi); err != nil {
		return bad("%v", err)
	}
	params := r.m.Params()
	if c.Frozen != nil && (len(c.Frozen) != len(params) || len(c.LRScales) != len(params)) {
		return bad("%d frozen flags and %d learning-rate multipliers for %d params", len(c.Frozen), len(c.LRScales), len(params))
	}
	if err := restore(r.m, c.Weights); err != nil { // checked above: cannot fail
		return bad("%v", err)
	}
	if c.Frozen != nil {
		for i, p := range params {
			p.Frozen, p.LRScale = c.Frozen[i], c.LRScales[i]
		}
	}
	r.epoch, r.step, r.baseLR = c.Epoch, c.Step, c.BaseLR
	r.bestMetric, r.bestEpoch, r.badEpochs = c.BestMetric, c.BestEpoch, c.BadEpochs
	if c.BestTie != nil {
		r.bestTie = *c.BestTie
	}
	r.bestWeights = c.BestWeights
	r.stopped = c.Stopped
	r.res.RangeTest = c.RangeTest
	r.res.History = History{Epochs: append([]map[string]float64(nil), c.History.Epochs...)}
	return nil
}

func (r *run) checkpoint() (*Checkpoint, error) {
	c := &Checkpoint{Version: checkpointVersion, Spec: r.m.Spec(), Weights: snapshot(r.m), OptimizerName: r.opt.Name(),
		Epoch: r.epoch, Step: r.step, BaseLR: r.baseLR, BestMetric: r.bestMetric, BestTie: &r.bestTie, BestEpoch: r.bestEpoch,
		BadEpochs: r.badEpochs, History: r.res.History, Stopped: r.stopped, RangeTest: r.res.RangeTest}
	c.BestWeights = make([]Tensor, len(r.bestWeights))
	for i, t := range r.bestWeights {
		c.BestWeights[i] = Tensor{Name: t.Name, Value: append([]float32(nil), t.Value...)}
	}
	var err error
	if c.Optimizer, err = r.opt.MarshalState(); err != nil {
		return nil, err
	}
	if c.Schedule, err = r.sched.MarshalState(); err != nil {
		return nil, err
	}
	if r.ema != nil {
		if c.EMA, err = r.ema.MarshalState(); err != nil {
			return nil, err
		}
	}
	if c.ShuffleRNG, err = r.shuffle.MarshalBinary(); err != nil {
		return nil, err
	}
	if c.NoiseRNG, err = r.m.NoiseSource().MarshalBinary(); err != nil {
		return nil, err
	}
	if c.AugmentRNG, err = r.augment.MarshalBinary(); err != nil {
		return nil, err
	}
	if c.Semi, err = r.semi.marshal(); err != nil {
		return nil, err
	}
	for _, p := range r.m.Params() {
		c.Frozen = append(c.Frozen, p.Frozen)
		c.LRScales = append(c.LRScales, p.LRScale)
	}
	if r.cfg.AugmentState != nil {
		if c.AugmentState, err = r.cfg.AugmentState.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("train: checkpoint the augmenter's state: %w", err)
		}
	}
	return c, nil
}

func (r *run) loop(ctx context.Context) error {
	cfg := r.cfg
	n := r.train.Len()
	if r.stopped {
		r.res.StoppedEarly = true // resumed from the checkpoint of the epoch that stopped
		return nil
	}
	for ; r.epoch < cfg.Epochs; r.epoch++ {
		bs := cfg.batchSize(r.epoch, n)
		stepsPerEpoch := (n + bs - 1) / bs
		if r.svrg != nil && r.svrg.SnapshotDue(r.epoch) {
			if err := r.svrgSnapshot(ctx, bs); err != nil {
				return err
			}
		}
		for i := range r.perm {
			r.perm[i] = i
		}
		r.shuffleR.Shuffle(n, func(i, j int) { r.perm[i], r.perm[j] = r.perm[j], r.perm[i] })
		var lossSum float64
		var lossRows int
		headSums := make([]float64, len(r.m.Heads()))
		if r.hogwild != nil {
			if err := r.hogwildEpoch(ctx, bs, stepsPerEpoch, &lossSum, &lossRows, headSums); err != nil {
				return err
			}
		}
		for start := 0; r.hogwild == nil && start < n; start += bs {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("train: stopped at epoch %d, step %d: %w", r.epoch, r.step, err)
			}
			b, t := r.buf.gather(r.train, r.perm[start:min(start+bs, n)])
			if next := start + bs; next < n {
				// Start loading the next batch's rows while this step computes: the gather
				// is otherwise bound by memory latency on large tables.
				r.buf.prefetch(r.train, r.perm[next:min(next+bs, n)])
			}
			if cfg.Augment != nil {
				cfg.Augment(&b, &t, r.augmentR)
			}
			if cfg.TargetNoise > 0 {
				for _, ht := range t.Heads {
					for i, v := range ht.Values {
						ht.Values[i] = v + float32(r.shuffleR.NormFloat64()*cfg.TargetNoise)
					}
				}
			}
			prog := optim.Progress{Step: r.step, Epoch: r.epoch, StepsPerEpoch: stepsPerEpoch, Epochs: cfg.Epochs}
			lr := r.sched.LR(r.baseLR, prog)
			var noise []byte
			if r.svrg != nil {
				var err error
				if noise, err = r.m.NoiseSource().MarshalBinary(); err != nil {
					return err
				}
			}
			loss, err := r.trainStep(b, t, prog)
			if err != nil {
				return fmt.Errorf("train: epoch %d, step %d: %w", r.epoch, r.step, err)
			}
			if r.svrg != nil {
				if err := r.svrgCorrect(b, t, noise); err != nil {
					return err
				}
			}
			params := r.m.Params()
			if cfg.ClipValue > 0 {
				optim.ClipValue(params, cfg.ClipValue)
			}
			var norm float64
			if cfg.ClipNorm > 0 {
				norm = optim.ClipGlobalNorm(params, cfg.ClipNorm)
			} else {
				norm = optim.GradNorm(params)
			}
			if !finite(loss.Total) || !finite(norm) {
				return r.blowUp(loss)
			}
			r.setDecayPhase(prog)
			r.opt.Step(params, lr)
			r.semi.afterStep(lr)
			if r.ema != nil {
				r.ema.Update(params)
			}
			lossSum += loss.Total * float64(b.Rows)
			for i, v := range loss.Heads {
				headSums[i] += v * float64(b.Rows)
			}
			lossRows += b.Rows
			info := StepInfo{Epoch: r.epoch, Step: r.step, BatchSize: bs, Rows: b.Rows, LR: lr, Loss: loss, GradNorm: norm, Model: r.m}
			r.step++
			for _, h := range r.stepHooks {
				if err := h.step(&info); err != nil {
					return r.hookErr(h, err)
				}
			}
		}
		metrics := map[string]float64{"loss": lossSum / float64(lossRows), "lr": r.sched.LR(r.baseLR, optim.Progress{Step: max(r.step-1, 0), Epoch: r.epoch, StepsPerEpoch: stepsPerEpoch, Epochs: cfg.Epochs}), "batch_size": float64(bs)}
		if r.svrg != nil {
			metrics["grad_evals"] = float64(r.svrg.GradEvals())
		}
		heads := r.m.Heads()
		if len(heads) > 1 {
			for i, h := range heads {
				metrics[h.Name+"/loss"] = headSums[i] / float64(lossRows)
			}
		}
		if err := r.evaluate(metrics); err != nil {
			return err
		}
		r.res.History.Epochs = append(r.res.History.Epochs, metrics)
		stop := r.earlyStop(metrics)
		r.stopped = stop
		snapshotInto(r.lastGood, r.m)
		epochDone := r.epoch
		r.epoch++ // the checkpoint counts this epoch as completed
		info := EpochInfo{Epoch: epochDone, Metrics: metrics, Model: r.m, Checkpoint: r.checkpoint}
		for _, h := range r.epochHooks {
			if err := h.epoch(&info); err != nil {
				r.res.Epochs = r.epoch
				return r.hookErr(h, err)
			}
		}
		r.epoch--
		if ev := r.cfg.Logger.Debug(); ev.Enabled() {
			// zerolog's Fields takes map[string]any, and ignores a map[string]float64.
			fields := make(map[string]any, len(metrics))
			for k, v := range metrics {
				fields[k] = v
			}
			ev.Int("epoch", epochDone).Fields(fields).Msg("epoch")
		}
		if stop {
			r.res.StoppedEarly = true
			r.epoch++
			break
		}
	}
	return nil
}

func (r *run) hookErr(h Hook, err error) error {
	if errors.Is(err, ErrStop) {
		return nil
	}
	return fmt.Errorf("train: hook %q at epoch %d, step %d: %w", h.Name, r.epoch, r.step, err)
}

// blowUp builds the error for a non-finite loss or gradient and restores the last good
// weights if the current ones are not finite.
func (r *run) blowUp(loss nn.Loss) error {
	params := r.m.Params()
	culprit := ""
	// Backward runs from the heads down: the param closest to the output with a non-finite
	// gradient is where it blew up.
	for i := len(params) - 1; i >= 0; i-- {
		if !allFinite(params[i].Grad) && !params[i].Frozen {
			culprit = params[i].Name
			break
		}
	}
	weightsBad := false
	for _, p := range params {
		if !allFinite(p.Value) {
			weightsBad = true
			break
		}
	}
	kept := "the weights before this step are kept"
	if weightsBad {
		_ = restore(r.m, r.lastGood)
		kept = "the weights were already non-finite; those of the last completed epoch were restored"
	}
	what := fmt.Sprintf("non-finite loss %g", loss.Total)
	if culprit != "" {
		what = fmt.Sprintf("non-finite gradient in layer %s (param %s), loss %g", layerName(culprit), culprit, loss.Total)
	}
	return fmt.Errorf("train: epoch %d, step %d: %s; %s (lower the learning rate or set ClipNorm)", r.epoch, r.step, what, kept)
}

func layerName(param string) string {
	for i := len(param) - 1; i >= 0; i-- {
		if param[i] == '/' {
			return param[:i]
		}
	}
	return param
}

func allFinite(s []float32) bool {
	for _, v := range s {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}

// evaluate adds validation (and sampled train) metrics, with EMA weights when enabled.
func (r *run) evaluate(dst map[string]float64) error {
	if r.ema != nil {
		r.ema.Swap(r.m.Params())
		defer r.ema.Swap(r.m.Params())
	}
	heads := r.m.Heads()
	out, err := r.m.Predict(r.trBatch)
	if err != nil {
		return fmt.Errorf("train: evaluate training sample: %w", err)
	}
	headMetrics(dst, "", heads, out, r.trTargets)
	vout, vl, err := r.m.PredictLoss(r.valBatch, r.valTargets)
	if err != nil {
		return fmt.Errorf("train: evaluate validation: %w", err)
	}
	headMetrics(dst, "val_", heads, vout, r.valTargets)
	dst["val_loss"] = vl.Total
	if len(heads) > 1 {
		for i, h := range heads {
			dst[h.Name+"/val_loss"] = vl.Heads[i]
		}
	}
	return nil
}

// earlyStop updates the best epoch and reports whether to stop. With EMA the best weights
// are the averaged ones.
func (r *run) earlyStop(metrics map[string]float64) bool {
	es := r.cfg.EarlyStopping
	v, ok := metrics[es.Metric]
	if !ok {
		v = math.NaN()
	}
	lowerIsBetter := v
	if maximize(es.Metric) {
		lowerIsBetter = -v
	}
	r.sched.EpochEnd(r.epoch, lowerIsBetter)
	improved := false
	tie := math.NaN()
	if es.TieBreak != "" {
		if t, ok := metrics[es.TieBreak]; ok {
			tie = t
		}
	}
	if finite(v) {
		if maximize(es.Metric) {
			improved = v > r.bestMetric+es.MinDelta
		} else {
			improved = v < r.bestMetric-es.MinDelta
		}
		// Equal on the metric: the tie-break metric decides.
		if !improved && v == r.bestMetric && finite(tie) {
			if maximize(es.TieBreak) {
				improved = tie > r.bestTie
			} else {
				improved = tie < r.bestTie
			}
		}
	}
	if improved || r.bestEpoch < 0 {
		if finite(v) {
			r.bestMetric = v
			r.bestTie = tie
		}
		r.bestEpoch = r.epoch
		r.badEpochs = 0
		if r.ema != nil {
			r.ema.Swap(r.m.Params())
			snapshotInto(r.bestWeights, r.m)
			r.ema.Swap(r.m.Params())
		} else {
			snapshotInto(r.bestWeights, r.m)
		}
		return false
	}
	r.badEpochs++
	return !es.Disabled && r.badEpochs >= es.Patience
}

// finish fills the result and, after a successful run, installs the final weights (best epoch's
// with early stopping, else the EMA average when enabled). After an error the model keeps its
// current weights.
func (r *run) finish(ok bool) {
	r.res.Epochs = len(r.res.History.Epochs)
	r.res.Steps = r.step
	r.res.BestEpoch = r.bestEpoch
	r.res.BestMetric = r.bestMetric
	if r.bestEpoch < 0 || !ok {
		return
	}
	if !r.cfg.EarlyStopping.Disabled {
		_ = restore(r.m, r.bestWeights)
		return
	}
	if r.ema != nil {
		r.ema.Swap(r.m.Params()) // keep the averaged weights
	}
}

// setDecayPhase tells the optimizers that have a decay-phase setting (Adam's beta1_decay)
// whether the step at prog is in the linear schedule's decay phase: its epochs from
// DecayStart on (0-based), where the VAT authors switch β1 at the start of an epoch.
func (r *run) setDecayPhase(prog optim.Progress) {
	if r.cfg.Optimizer.Beta1Decay == 0 {
		return
	}
	decaying := prog.Epoch >= r.cfg.Schedule.DecayStart
	if ph, ok := r.opt.(optim.DecayPhaser); ok {
		ph.SetDecayPhase(decaying)
	}
	if r.semi != nil && r.semi.combOpt != nil {
		if ph, ok := r.semi.combOpt.(optim.DecayPhaser); ok {
			ph.SetDecayPhase(decaying)
		}
	}
}
