package stages

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/ensemble"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/metrics"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/search"
)

// searchRun is one run of a search stage: the data shared by every trial and what the trials
// need to train.
type searchRun struct {
	s         *searchStage
	sc        *pipeline.StageContext
	data      *supervised
	objective string
	augment   func(*nn.Batch, *nn.Targets, *rand.Rand)
	cv        *cvSplit // with cv = k: train and val together, and the folds
	start     time.Time

	trained  atomic.Int64 // trials the objective ran in this run (restored ones are not)
	repeated atomic.Int64 // repeats of the confirmation it ran in this run

	mu     sync.Mutex
	starts map[int]float64 // when each trial started, seconds after the search's start
}

func (s *searchStage) Run(ctx context.Context, sc *pipeline.StageContext) error {
	r, maximize, err := s.begin(ctx, sc)
	if err != nil {
		return err
	}
	defer r.data.done()
	n, release, err := takeCPU(ctx, sc, s.workers)
	if err != nil {
		return err
	}
	defer release()
	r.start = time.Now()
	cp := newCheckpoints(sc)
	restore := r.restore(ctx, cp)
	if len(restore) > 0 {
		sc.Note("%d finished trials taken from an earlier, interrupted run (not trained again)", len(restore))
		sc.SetInfo("restored_trials", len(restore))
	}
	repeats := r.restoreRepeats(ctx, cp)
	if len(repeats) > 0 {
		sc.Note("%d finished repeats of the confirmation taken from an earlier, interrupted run (not trained again)", len(repeats))
		sc.SetInfo("restored_repeats", len(repeats))
	}
	done, repeatsDone := int64(len(restore)), int64(len(repeats))
	sc.Progress(done, int64(s.trials), "trials")
	cfg := search.Config{Space: s.space, Trials: s.trials, Rounds: s.rounds, Maximize: maximize, Sampler: s.sampler, Zoom: s.zoom, TPE: s.tpe, Prune: s.prune, Workers: n,
		TrialSeed: func(i int) uint64 { return sc.Seed(uint64(i)) }, Restore: restore,
		OnTrialDone: func(t search.TrialResult) {
			rec := r.record(t)
			cp.saveNow(ctx, trialCheckpointName(t.Index), rec.encode)
			done++
			sc.Progress(done, int64(s.trials), "trials")
		},
		Confirm: s.confirm, RepeatSeed: func(i, k int) uint64 { return sc.Seed(uint64(i), uint64(k)) }, RestoreRepeats: repeats,
		OnRepeatDone: func(rep search.Repeat) {
			cp.saveNow(ctx, repeatCheckpointName(rep.Index, rep.Repeat), repeatRecord(rep).encode)
			repeatsDone++
			sc.Progress(repeatsDone, int64(s.confirm.Top*s.confirm.Seeds), "repeats") // at most that many: fewer when fewer trials completed
		}}
	sc.Log.Info().Int("trials", s.trials).Str("sampler", s.sampler).Int("rounds", s.rounds).Str("objective", r.objective).Str("prune", s.prune.Method).Int("workers", n).
		Msg("search: " + strings.Join(s.space.Names(), ", "))
	out, err := search.Run(ctx, cfg, r.trial)
	if err != nil {
		return err // search.Run's errors say "search: ..." and wrap ctx's
	}
	best, _ := out.BestTrial()
	dir, err := sc.Dir()
	if err != nil {
		return err
	}
	if err := r.outputs(dir, out); err != nil {
		return err
	}
	if s.top > 1 {
		return r.finalTop(ctx, dir, out, n)
	}
	return r.final(ctx, dir, best, n)
}

// begin loads the data every trial shares and checks what depends on it: it returns the
// search's run and whether its objective is maximised.
func (s *searchStage) begin(ctx context.Context, sc *pipeline.StageContext) (*searchRun, bool, error) {
	d, err := loadSupervised(ctx, sc, s.data, s.baseCfg)
	if err != nil {
		return nil, false, err
	}
	ok := false
	defer func() {
		if !ok {
			d.done() // the caller frees the data only of a search that begins
		}
	}()
	if d.valData == nil || d.valData.Data.Len() == 0 {
		return nil, false, &pipeline.DataError{Stage: sc.Name, Msg: "the val table has no labelled row: the trials have nothing to be scored on", Hint: "check the val input and its target column"}
	}
	targets := targetNames(d.plan)
	for _, name := range s.space.Names() {
		if segs := strings.Split(name, "."); segs[0] == "tasks" && len(segs) > 1 && !slices.Contains(targets, segs[1]) {
			return nil, false, sc.Config.Errorf(joinPath("space", name), "tasks.%s names no target (targets: %s)", segs[1], strings.Join(targets, ", "))
		}
	}
	objective, maximize, err := s.resolveObjective(sc.Config, d.plan)
	if err != nil {
		return nil, false, err
	}
	// A train base's augmentation, built for its image; an ensemble base's members build
	// their own (ensembleStage.members).
	var augment func(*nn.Batch, *nn.Targets, *rand.Rand)
	if s.model == searchModelTrain {
		shape, err := imageShape(s.baseCfg, d.plan)
		if err != nil {
			return nil, false, err
		}
		if augment, err = augmenterFor(d.trainT.Lineage(), d.plan, shape); err != nil {
			return nil, false, err
		}
	}
	if aug := augmentStages(d.trainT.Lineage()); aug != "" {
		sc.Note("training batches of every trial are augmented (%s)", aug)
	}
	var cv *cvSplit
	if s.cv > 0 {
		if cv, err = s.newCVSplit(sc, d); err != nil {
			return nil, false, err
		}
	}
	ok = true
	return &searchRun{s: s, sc: sc, data: d, objective: objective, augment: augment, cv: cv, start: time.Now(), starts: map[int]float64{}}, maximize, nil
}

// resolveObjective returns the objective's metric key for a plan, and whether it is
// maximised.
func (s *searchStage) resolveObjective(c *pipeline.StageConfig, plan *bundle.InputPlan) (string, bool, error) {
	heads := plan.Heads()
	var keys []string
	if s.model == searchModelTrain {
		keys = append(keys, "val_loss")
	}
	for _, h := range heads {
		prefix := ""
		if len(heads) > 1 {
			prefix = h.Name + "/"
			if s.model == searchModelTrain {
				keys = append(keys, prefix+"val_loss")
			}
		}
		if h.Kind == nn.HeadRegression {
			keys = append(keys, prefix+"val_rmse", prefix+"val_mae", prefix+"val_r2")
		} else {
			keys = append(keys, prefix+"val_accuracy", prefix+"val_logloss")
		}
	}
	key := s.objective
	if key == objectiveAuto {
		switch {
		case len(heads) > 1 && s.model == searchModelEnsemble:
			return "", false, c.Errorf("objective", "with several targets an ensemble's objective is one target's metric: give one of %s", strings.Join(keys, ", "))
		case len(heads) > 1:
			key = "val_loss"
		case heads[0].Kind == nn.HeadRegression:
			key = "val_r2"
		default:
			key = "val_logloss"
		}
	}
	for _, k := range keys {
		if k == key {
			return key, strings.HasSuffix(key, "accuracy") || strings.HasSuffix(key, "r2"), nil
		}
	}
	return "", false, c.Errorf("objective", "%q is not a metric of this model: give one of %s", key, strings.Join(keys, ", "))
}

// trialLog is the logger of a trial's trainer: its warnings only (60 trials' epochs would
// drown the log), with the trial's index.
func (r *searchRun) trialLog(index int) zerolog.Logger {
	return r.sc.Log.With().Int("trial", index).Logger().Level(zerolog.WarnLevel)
}

// trial is the search's objective: it trains one trial and returns its objective, reporting
// it after every epoch. A repeat of the confirmation (t.Repeat > 0) is the same training with
// the repeat's seed.
func (r *searchRun) trial(ctx context.Context, t search.Trial, report search.Report) (search.Result, error) {
	if t.Repeat > 0 {
		r.repeated.Add(1)
	} else {
		r.trained.Add(1)
		r.mu.Lock()
		r.starts[t.Index] = time.Since(r.start).Seconds()
		r.mu.Unlock()
	}
	c, err := r.s.trialConfig(r.sc.Config, t.Params)
	if err != nil {
		return search.Result{}, err
	}
	if r.cv != nil {
		return r.cvTrial(ctx, c, t, report)
	}
	if r.s.model == searchModelEnsemble {
		return r.ensembleTrial(ctx, c, t, report)
	}
	_, res, value, err := r.fit(ctx, c, t, 1, 0, report)
	if err != nil {
		return search.Result{}, err
	}
	i, _ := keptEpoch(res.cfg, res.Result)
	return search.Result{Value: value, Metrics: map[string]float64{"best_epoch": float64(i + 1)}}, nil
}

// fitResult is a Fit's result with the config it ran with.
type fitResult struct {
	train.Result
	cfg train.Config
}

// fit trains the network of a trial's config c from the trial's seed, as a train stage would
// with that config, on workers GEMM threads (results do not depend on them). report, when
// set, gets the objective after every epoch and may stop the training. refitEpochs > 0 makes
// it a refit: train and val together for that many epochs, early stopping off (val's metrics
// are then in-sample). It returns the model and the objective at the epoch whose weights the
// model keeps.
func (r *searchRun) fit(ctx context.Context, c *pipeline.StageConfig, t search.Trial, workers, refitEpochs int, report search.Report, hooks ...train.Hook) (*nn.Model, fitResult, float64, error) {
	return r.fitFrom(ctx, c, t, workers, refitEpochs, nil, report, hooks...)
}

// fitFrom is fit, continuing from resume when it is not nil (a checkpoint of the same trial's
// training).
func (r *searchRun) fitFrom(ctx context.Context, c *pipeline.StageConfig, t search.Trial, workers, refitEpochs int, resume *train.Checkpoint, report search.Report, hooks ...train.Hook) (*nn.Model, fitResult, float64, error) {
	return r.fitOn(ctx, c, t, workers, r.data.trainData.Data, r.data.valData.Data, refitEpochs, resume, report, hooks...)
}

// fitOn is fitFrom on the given training and validation sets (a cross-validation fold's).
func (r *searchRun) fitOn(ctx context.Context, c *pipeline.StageConfig, t search.Trial, workers int, trainSet, valSet train.Dataset, refitEpochs int, resume *train.Checkpoint, report search.Report, hooks ...train.Hook) (*nn.Model, fitResult, float64, error) {
	st, err := newTrainStage(c)
	if err != nil {
		return nil, fitResult{}, 0, err
	}
	if st.spec.inputShape, err = imageShape(c, r.data.plan); err != nil {
		return nil, fitResult{}, 0, err
	}
	m, err := st.spec.build(c, r.data.plan, pipeline.NewRand(pipeline.DeriveSeed(t.Seed, "weights")))
	if err != nil {
		return nil, fitResult{}, 0, err
	}
	cfg := st.spec.cfg
	cfg.Seed = pipeline.DeriveSeed(t.Seed, "training")
	cfg.Augment = r.augment
	cfg.Workers = workers
	cfg.Logger = r.trialLog(t.Index)
	cfg.Resume = resume
	if report != nil {
		hooks = append(hooks, train.OnEpochEnd("search_report", 0, func(e *train.EpochInfo) error {
			v, ok := e.Metrics[r.objective]
			if !ok {
				return fmt.Errorf("the trainer reports no %s", r.objective)
			}
			more, err := report(e.Epoch+1, v)
			switch {
			case err != nil:
				return err
			case !more:
				return train.ErrStop
			}
			return nil
		}))
	}
	if refitEpochs > 0 {
		trainSet = concatDatasets(trainSet, valSet)
		cfg.Epochs = refitEpochs
		cfg.EarlyStopping.Disabled = true
	}
	res, err := train.Fit(ctx, m, trainSet, valSet, cfg, hooks...)
	fr := fitResult{Result: res, cfg: cfg}
	if err != nil {
		return m, fr, 0, err
	}
	i, _ := keptEpoch(cfg, res)
	if i < 0 {
		return m, fr, 0, errors.New("no epoch ran")
	}
	return m, fr, res.History.Epochs[i][r.objective], nil
}

// ensembleTrial trains an ensemble trial (its members one after another) and scores the
// ensemble, combined by mean, on val.
func (r *searchRun) ensembleTrial(ctx context.Context, c *pipeline.StageConfig, t search.Trial, report search.Report) (search.Result, error) {
	eb, rep, err := r.trainEnsemble(ctx, c, t, 1)
	if err != nil {
		return search.Result{}, err
	}
	vals, err := predictorMetrics(eb, r.data.valData)
	if err != nil {
		return search.Result{}, err
	}
	v, ok := vals[r.objective]
	if !ok {
		return search.Result{}, fmt.Errorf("the ensemble has no %s", r.objective)
	}
	epochs := 1
	for _, m := range rep.Members {
		epochs = max(epochs, m.Epochs)
	}
	if _, err := report(epochs, v); err != nil {
		return search.Result{}, err
	}
	return search.Result{Value: v}, nil
}

// trainEnsemble trains the ensemble of a trial's config c from the trial's seed, workers
// members at a time (results do not depend on it).
func (r *searchRun) trainEnsemble(ctx context.Context, c *pipeline.StageConfig, t search.Trial, workers int) (*bundle.EnsembleBundle, ensemble.Report, error) {
	return r.trainEnsembleOn(ctx, c, t, workers, r.data.trainData.Data, r.data.valData.Data)
}

// trainEnsembleOn is trainEnsemble on the given training and validation sets (a
// cross-validation fold's).
func (r *searchRun) trainEnsembleOn(ctx context.Context, c *pipeline.StageConfig, t search.Trial, workers int, trainSet, valSet train.Dataset) (*bundle.EnsembleBundle, ensemble.Report, error) {
	es, err := newEnsembleStage(c)
	if err != nil {
		return nil, ensemble.Report{}, err
	}
	cfg := es.cfg
	if err := es.members(&cfg, r.data.plan, r.data.trainT.Lineage(), r.trialLog(t.Index)); err != nil {
		return nil, ensemble.Report{}, err
	}
	cfg.Workers = workers
	ens, rep, err := ensemble.Train(ctx, cfg, trainSet, valSet, pipeline.DeriveSeed(t.Seed, "ensemble"), ensemble.Options{Logger: r.trialLog(t.Index)})
	if err != nil {
		return nil, rep, err
	}
	eb, err := bundle.NewEnsemble(r.sc.Name, ens, r.data.plan, bundleSteps(r.data.trainT.Lineage()), r.data.trainT.Schema())
	if err != nil {
		return nil, rep, &pipeline.DataError{Stage: r.sc.Name, File: r.data.trainT.Name(), Msg: err.Error()}
	}
	return eb.WithCombiner(ensemble.CombinerMean), rep, nil
}

// predictorMetrics scores a predictor on a materialised table as the trainer's History does
// (train.History's keys; regression on the standardised values): per head accuracy and
// logloss, or rmse, mae and r2; "<head>/" before them with several heads.
func predictorMetrics(p bundle.Predictor, data *bundle.Tensors) (map[string]float64, error) {
	out, err := bundle.ForwardAll(p, data)
	if err != nil {
		return nil, err
	}
	heads := p.InputPlan().Heads()
	m := map[string]float64{}
	for h, hs := range heads {
		key := func(k string) string {
			if len(heads) > 1 {
				return hs.Name + "/val_" + k
			}
			return "val_" + k
		}
		pred, w, t := out.Heads[h], out.Width[h], data.Data.Targets[h]
		if hs.Kind == nn.HeadRegression {
			m[key("rmse")] = metrics.RMSE(t.Values, pred)
			m[key("mae")] = metrics.MAE(t.Values, pred)
			m[key("r2")] = metrics.R2(t.Values, pred)
			continue
		}
		m[key("accuracy")] = metrics.Accuracy(t.Labels, pred, w)
		m[key("logloss")] = metrics.LogLoss(t.Labels, pred, w)
	}
	return m, nil
}

// concatDatasets returns the rows of a, then those of b, as one dataset with a base of its
// own (the refit's training set: train and val together). a and b have the same columns.
func concatDatasets(a, b train.Dataset) train.Dataset {
	rows := func(d train.Dataset) []int {
		if d.Index != nil {
			return d.Index
		}
		out := make([]int, d.Len())
		for i := range out {
			out[i] = i
		}
		return out
	}
	ra, rb := rows(a), rows(b)
	n := len(ra) + len(rb)
	out := train.Dataset{NumInputs: a.NumInputs, X: make([]float32, 0, n*a.NumInputs)}
	for _, part := range []struct {
		d    train.Dataset
		rows []int
	}{{a, ra}, {b, rb}} {
		w := part.d.NumInputs
		for _, i := range part.rows {
			out.X = append(out.X, part.d.X[i*w:(i+1)*w]...)
		}
	}
	out.Cat = make([][]int32, len(a.Cat))
	for c := range a.Cat {
		col := make([]int32, 0, n)
		for _, i := range ra {
			col = append(col, a.Cat[c][i])
		}
		for _, i := range rb {
			col = append(col, b.Cat[c][i])
		}
		out.Cat[c] = col
	}
	if a.Weights != nil || b.Weights != nil {
		out.Weights = make([]float32, 0, n)
		for _, part := range []struct {
			d    train.Dataset
			rows []int
		}{{a, ra}, {b, rb}} {
			for _, i := range part.rows {
				w := float32(1)
				if part.d.Weights != nil {
					w = part.d.Weights[i]
				}
				out.Weights = append(out.Weights, w)
			}
		}
	}
	out.Targets = make([]train.Target, len(a.Targets))
	for h, ta := range a.Targets {
		tb := b.Targets[h]
		t := train.Target{Outputs: ta.Outputs}
		if ta.Labels != nil {
			t.Labels = make([]int32, 0, n)
			for _, i := range ra {
				t.Labels = append(t.Labels, ta.Labels[i])
			}
			for _, i := range rb {
				t.Labels = append(t.Labels, tb.Labels[i])
			}
		} else {
			k := max(ta.Outputs, 1)
			t.Values = make([]float32, 0, n*k)
			for _, i := range ra {
				t.Values = append(t.Values, ta.Values[i*k:(i+1)*k]...)
			}
			for _, i := range rb {
				t.Values = append(t.Values, tb.Values[i*k:(i+1)*k]...)
			}
		}
		out.Targets[h] = t
	}
	return out
}

// final trains the stage's model: the best trial again from its seed (training is
// deterministic, so it is that trial's model; its objective is checked against the
// trial's), or with refit its config on train and val together for its best epoch count.
// It saves the bundle and its history, and publishes it.
func (r *searchRun) final(ctx context.Context, dir string, best search.TrialResult, workers int) error {
	sc := r.sc
	c, err := r.s.trialConfig(sc.Config, best.Params)
	if err != nil {
		return fmt.Errorf("trial %d: %w", best.Index, err)
	}
	if r.s.model == searchModelEnsemble {
		eb, rep, err := r.trainEnsemble(ctx, c, best.Trial, workers)
		if err != nil {
			return fmt.Errorf("the best trial (%d) trained again: %w", best.Index, err)
		}
		vals, err := predictorMetrics(eb, r.data.valData)
		if err != nil {
			return err
		}
		r.checkSame(best, vals[r.objective])
		if err := writeMemberHistories(dir, rep); err != nil {
			return err
		}
		eb.Meta.Metrics = vals
		for k, v := range vals {
			sc.Metrics.Set(k, v)
		}
		if err := eb.Save(filepath.Join(dir, bundleDir)); err != nil {
			return err
		}
		return sc.SetArtifact("model", eb)
	}

	var m *nn.Model
	var res fitResult
	if r.s.refit {
		bestEpoch := int(best.Metrics["best_epoch"])
		if bestEpoch < 1 {
			bestEpoch = max(best.Epochs, 1)
		}
		if err := r.sameChain(ctx); err != nil {
			return err
		}
		m, res, _, err = r.fit(ctx, c, best.Trial, workers, bestEpoch, nil)
		if err != nil {
			return fmt.Errorf("refit of the best trial (%d): %w", best.Index, err)
		}
		rows := r.data.trainData.Data.Len() + r.data.valData.Data.Len()
		sc.SetInfo("refit", map[string]any{"rows": rows, "train_rows": r.data.trainData.Data.Len(), "val_rows": r.data.valData.Data.Len(), "epochs": bestEpoch, "trial": best.Index})
		sc.Note("refit: the best trial's config trained on train and val together (%d rows) for %d epochs: the model has no val metric of its own; %s %.4g is the trial's", rows, bestEpoch, r.objective, best.Value)
	} else {
		// A pruned best trial (none completed) stopped at its last epoch: stop there too.
		stop := train.OnEpochEnd("search_stop", 0, func(e *train.EpochInfo) error {
			if e.Epoch+1 >= best.Epochs {
				return train.ErrStop
			}
			return nil
		})
		var value float64
		m, res, value, err = r.fit(ctx, c, best.Trial, workers, 0, nil, stop)
		if err != nil {
			return fmt.Errorf("the best trial (%d) trained again: %w", best.Index, err)
		}
		r.checkSame(best, value)
	}
	hist := res.History
	if r.s.refit {
		hist = trainMetricsOnly(hist)
	}
	if err := writeHistory(filepath.Join(dir, "history.csv"), hist); err != nil {
		return err
	}
	b, err := newBundle(sc, m, r.data.plan, r.data.trainT)
	if err != nil {
		return err
	}
	if r.s.refit {
		b.Meta.Refit = true
	} else if i, _ := keptEpoch(res.cfg, res.Result); i >= 0 {
		// The model's metrics, as a train stage records them (the objective among them).
		b.Meta.Metrics = map[string]float64{}
		for k, v := range res.History.Epochs[i] {
			b.Meta.Metrics[metricKey(k)] = v
			sc.Metrics.Set(metricKey(k), v)
		}
	}
	if err := b.Save(filepath.Join(dir, bundleDir)); err != nil {
		return err
	}
	return sc.SetArtifact("model", b)
}

// trainMetricsOnly drops the validation metrics of a refit's history: the refit trained on
// the val rows, so its metrics there are not validation metrics.
func trainMetricsOnly(h train.History) train.History {
	out := train.History{Epochs: make([]map[string]float64, len(h.Epochs))}
	for i, e := range h.Epochs {
		out.Epochs[i] = map[string]float64{}
		for k, v := range e {
			if !strings.HasPrefix(k, "val_") && !strings.Contains(k, "/val_") {
				out.Epochs[i][k] = v
			}
		}
	}
	return out
}

// sameChain refuses a refit whose val table went through other fitted steps than train: the
// model is bundled with train's chain.
func (r *searchRun) sameChain(ctx context.Context) error {
	valT, err := r.sc.Input(ctx, "val")
	if err != nil {
		return err
	}
	steps := func(t *pipeline.Table) []string {
		var out []string
		for _, st := range t.Lineage() {
			if !st.TrainOnly {
				out = append(out, st.Stage+"/"+st.Kind)
			}
		}
		return out
	}
	a, b := steps(r.data.trainT), steps(valT)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		return r.sc.Config.Errorf("refit", "train (%s) and val (%s) went through other preprocessing: a refit trains on both with train's chain", strings.Join(a, ", "), strings.Join(b, ", "))
	}
	return nil
}

// checkSame warns when the best trial trained again does not score what the trial did: the
// model would not be the one the search chose.
func (r *searchRun) checkSame(best search.TrialResult, value float64) {
	if r.cv != nil {
		// Chosen on the folds: the model trained on train alone scores otherwise on val.
		r.sc.SetInfo("cv", map[string]any{"folds": len(r.cv.folds), "rows": r.cv.all.Len(), "best_mean": best.Value, "best_std": best.Metrics[trialsColCVStd], "model_val": value})
		r.sc.Note("cv = %d: trial %d was chosen on its mean %s over the folds, %.4g (std %.3g); the model is its config trained on train with val for early stopping (%s %.4g on val)",
			len(r.cv.folds), best.Index, r.objective, best.Value, best.Metrics[trialsColCVStd], r.objective, value)
		return
	}
	if value == best.Value || (math.IsNaN(value) && math.IsNaN(best.Value)) {
		return
	}
	r.sc.Degrade("the best trial (%d) trained again scores %s %.6g, the trial %.6g: training is not deterministic here, and the model is not exactly the trial's", best.Index, r.objective, value, best.Value)
}
