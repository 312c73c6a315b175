package ensemble

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/sourcegraph/conc/pool"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
	"github.com/pipe-ml/pipe/nn/train"
)

// memberJob is the state of one member across preparation, training and collection.
type memberJob struct {
	index  int
	recipe Member
	model  *nn.Model
	mask   *inputMask
	est    int64
	// threads is the member's GEMM threads (memberThreads).
	threads int
	err     error
	report  MemberReport
	// needsInputs: under Options.RecordsOnly, the member has no usable record.
	needsInputs bool

	valOut nn.Outputs // predictions on the validation rows
	oobPos []int      // positions of base the member did not train on
	oobOut nn.Outputs // its predictions on them

	// warnings of this member for the Report, added in member order after training.
	warnings []string
}

func (j *memberJob) warn(format string, args ...any) {
	j.warnings = append(j.warnings, fmt.Sprintf(format, args...))
}

// Train trains cfg.Members members on base (the training rows) and returns the ensemble, a
// report and an error.
//
// Member i's recipe (Base perturbed by Vary, or Specs[i%len(Specs)]), initial weights, row
// sample, feature subset and training seed come from PCG streams derived from (seed, i) only,
// so the result is bit-identical for any cfg.Workers. Each member's training Dataset is a
// view of base (a new Index, the same X): nothing is copied. val, when it has rows, is every
// member's validation set (early stopping), and the set on which member metrics, the weighted
// combiner's weights, the combiner gains and the diversity are computed; when empty, each
// member's trainer carves its own validation rows out of its sample (with a bootstrap sample
// these may repeat training rows: pass a validation set).
//
// Members train concurrently in a bounded pool of cfg.Workers goroutines; a member starts
// only when its estimated memory fits cfg.MemoryBudget next to the running members'. A panic
// inside a member becomes that member's error. Under OnErrorFail the first member error
// cancels the others and is returned; under OnErrorDrop failed members are left out and
// reported, and Train fails when fewer than cfg.MinMembers remain. Cancelling ctx stops every
// member within one training step and returns an error wrapping ctx's. The Report is filled as
// far as training got, also on error.
//
// Resume: with Options.Checkpoint and Options.Finished recording what an interrupted Train
// did, and Options.Restore giving it back, a Train with the same arguments takes the finished
// members from their records (their validation and out-of-bag predictions are recomputed: the
// same forward passes) and continues the interrupted ones from their last epoch's checkpoint,
// with the same ensemble and Report as an uninterrupted Train, whatever the workers of either.
func Train(ctx context.Context, cfg Config, base, val train.Dataset, seed uint64, opts Options) (*Ensemble, Report, error) {
	start := time.Now()
	ens, rep, err := trainEnsemble(ctx, cfg, base, val, seed, opts, start)
	rep.Seconds = time.Since(start).Seconds()
	return ens, rep, err
}

func trainEnsemble(ctx context.Context, cfg Config, base, val train.Dataset, seed uint64, opts Options, start time.Time) (*Ensemble, Report, error) {
	var rep Report
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, rep, err
	}
	n := base.Len()
	if n < 2 {
		return nil, rep, fmt.Errorf("ensemble: %d training rows: need at least 2", n)
	}
	jobs, err := prepare(cfg, base, val, seed, &rep)
	if err != nil {
		return nil, rep, err
	}
	b := newBudget(cfg.MemoryBudget)
	for _, j := range jobs {
		if j.err != nil && opts.OnMemberDone != nil {
			opts.OnMemberDone(j.report)
		}
		if j.err == nil && cfg.MemoryBudget > 0 && j.est > cfg.MemoryBudget {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("member %d (%s): estimated %d bytes exceed the memory budget of %d bytes; it trains alone", j.index, j.recipe.Name, j.est, cfg.MemoryBudget))
		}
	}
	if val.Len() == 0 && (cfg.Bootstrap || cfg.Subsample > 0) {
		rep.Warnings = append(rep.Warnings, "no validation set: each member's trainer carves validation rows from its own sample (with a bootstrap they may repeat training rows, so early stopping is optimistic) and no combiner is fitted or scored; pass a validation set")
	}

	var only map[int]bool
	if len(opts.Members) > 0 {
		only = map[int]bool{}
		for _, i := range opts.Members {
			if i < 0 || i >= cfg.Members {
				return nil, rep, fmt.Errorf("ensemble: member %d to train is outside the ensemble's %d members", i, cfg.Members)
			}
			only[i] = true
		}
	}
	var runnable []*memberJob
	for _, j := range jobs {
		if j.err == nil && (only == nil || only[j.index]) {
			runnable = append(runnable, j)
		}
	}
	for k, n := range memberThreads(cfg.Workers, cfg.MemberWorkers, len(runnable)) {
		runnable[k].threads = n
	}
	cores := &coreShare{workers: cfg.Workers}
	cores.pending.Store(int32(len(runnable)))
	ra := newRunAccount(opts.Memory)
	p := pool.New().WithMaxGoroutines(cfg.Workers).WithContext(ctx)
	if cfg.OnMemberError == OnErrorFail {
		p = p.WithCancelOnError().WithFirstError()
	}
	for _, j := range jobs {
		if j.err != nil || (only != nil && !only[j.index]) {
			continue
		}
		p.Go(func(ctx context.Context) error {
			return runMember(ctx, j, cfg, base, val, seed, b, ra, cores, start, opts)
		})
	}
	poolErr := p.Wait()
	rep.PeakConcurrent, rep.PeakEstimatedBytes = b.peaks()
	for _, j := range jobs {
		if j.needsInputs {
			return nil, rep, j.err
		}
	}
	for _, j := range jobs {
		rep.Warnings = append(rep.Warnings, j.warnings...)
	}
	if only != nil {
		// A part of the ensemble: its members are recorded; the ensemble is built later.
		var errs []error
		for _, j := range jobs {
			if only[j.index] {
				rep.Members[j.index] = j.report
				if j.err != nil {
					errs = append(errs, j.err)
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, rep, fmt.Errorf("ensemble: stopped: %w", err)
		}
		return nil, rep, errors.Join(errs...)
	}

	var kept []*memberJob
	var firstErr error
	for _, j := range jobs {
		rep.Members[j.index] = j.report
		if j.err != nil {
			if firstErr == nil {
				firstErr = j.err
			}
			rep.Members[j.index].Dropped = true
			rep.Dropped++
			continue
		}
		kept = append(kept, j)
	}
	rep.Kept = len(kept)
	if err := ctx.Err(); err != nil {
		return nil, rep, fmt.Errorf("ensemble: stopped with %d of %d members trained: %w", len(kept), cfg.Members, err)
	}
	if cfg.OnMemberError == OnErrorFail && firstErr != nil {
		if poolErr == nil {
			poolErr = firstErr
		}
		return nil, rep, fmt.Errorf("%w (on_member_error = fail; use drop to keep the other members)", poolErr)
	}
	if len(kept) < cfg.MinMembers {
		cause := poolErr // every member error (conc's pool joins them)
		if cause == nil {
			cause = firstErr // members whose model did not build never ran in the pool
		}
		return nil, rep, fmt.Errorf("ensemble: only %d of %d members trained, fewer than min_members = %d: %w", len(kept), cfg.Members, cfg.MinMembers, cause)
	}

	models := make([]*nn.Model, len(kept))
	names := make([]string, len(kept))
	for i, j := range kept {
		models[i], names[i] = j.model, j.recipe.Name
	}
	ens, err := New(models, names)
	if err != nil {
		return nil, rep, err
	}
	ens.SetWorkers(cfg.Workers)
	if val.Len() > 0 {
		if err := scoreOnValidation(ens, kept, val, &rep); err != nil {
			return nil, rep, err
		}
	} else {
		rep.Diversity = make([]float64, len(ens.heads))
		for h := range rep.Diversity {
			rep.Diversity[h] = nan()
		}
		rep.WeightFits = make([]WeightFit, len(ens.heads))
	}
	rep.OOB = outOfBag(ens.heads, kept, base)
	return ens, rep, nil
}

// prepare builds every member's recipe and model (sequentially, in member order) and its
// memory estimate. A member whose model does not build gets a member error; members whose
// heads or inputs differ are a configuration error.
func prepare(cfg Config, base, val train.Dataset, seed uint64, rep *Report) ([]*memberJob, error) {
	n := base.Len()
	rep.Members = make([]MemberReport, cfg.Members)
	jobs := make([]*memberJob, cfg.Members)
	var ref *nn.Model // the first member that built, which the others must match
	refName := ""
	for i := range jobs {
		j := &memberJob{index: i, recipe: cfg.recipe(i, seed)}
		jobs[i] = j
		r := &j.report
		r.Index, r.Name = i, j.recipe.Name
		r.LR = j.recipe.Train.Optimizer.EffectiveLR()
		r.BatchSize = j.recipe.Train.BatchSize
		if r.BatchSize == 0 {
			r.BatchSize = 64
		}
		r.Optimizer = j.recipe.Train.Optimizer.Name
		if r.Optimizer == "" {
			r.Optimizer = optim.NameAdam
		}
		r.Features = cfg.featureSubset(base.NumInputs, seed, i)
		model, err := nn.Build(j.recipe.Spec, memberRand(seed, i, streamBuild))
		if err != nil {
			j.fail(fmt.Errorf("ensemble: member %d (%s): %w", i, j.recipe.Name, err))
			if cfg.OnMemberError == OnErrorFail {
				rep.Members[i] = j.report
				return nil, fmt.Errorf("%w (on_member_error = fail)", j.err)
			}
			continue
		}
		r.Spec = model.Spec()
		if ref == nil {
			ref, refName = model, j.recipe.Name
		} else if err := sameInterface(ref.Spec(), model.Spec()); err != nil {
			return nil, fmt.Errorf("ensemble: member %d (%s) does not match member %s: %w; every member needs the same inputs and heads", i, j.recipe.Name, refName, err)
		}
		if r.Features != nil {
			if j.mask, err = newInputMask(model, r.Features); err != nil {
				j.fail(fmt.Errorf("ensemble: member %d (%s): %w", i, j.recipe.Name, err))
				if cfg.OnMemberError == OnErrorFail {
					rep.Members[i] = j.report
					return nil, j.err
				}
				continue
			}
		}
		j.model = model
		rows := MemoryRows{Train: n, Val: val.Len()}
		switch {
		case cfg.Bootstrap:
			rows.OOB = int(math.Ceil(float64(n) * math.Pow(1-1/float64(n), float64(n))))
		case cfg.Subsample > 0:
			rows.Train = min(max(int(math.Round(cfg.Subsample*float64(n))), 1), n)
			rows.OOB = n - rows.Train
		}
		j.est = estimateBytes(model, j.recipe.Train, rows)
		r.EstimatedBytes = j.est
	}
	return jobs, nil
}

func (j *memberJob) fail(err error) {
	j.err = err
	j.report.Err = err
}

// runMember trains one member inside the pool: it waits for its memory share, samples its rows,
// fits, and predicts the validation and out-of-bag rows. A panic becomes the member's error.
func runMember(ctx context.Context, j *memberJob, cfg Config, base, val train.Dataset, seed uint64, b *budget, ra *runAccount, cores *coreShare, start time.Time, opts Options) (err error) {
	name := j.recipe.Name
	cores.pending.Add(-1)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("ensemble: member %d (%s) panicked: %v\n%s", j.index, name, r, debug.Stack())
		}
		if err != nil {
			j.fail(err)
		}
		if opts.OnMemberDone != nil {
			opts.OnMemberDone(j.report)
		}
	}()
	if err := b.acquire(ctx, j.est); err != nil {
		return fmt.Errorf("ensemble: member %d (%s): waiting for memory budget: %w", j.index, name, err)
	}
	reserved, err := ra.reserve(ctx, j.est)
	if err != nil {
		b.release(j.est)
		return fmt.Errorf("ensemble: member %d (%s): waiting for the run's memory budget: %w", j.index, name, err)
	}
	if ra != nil && ra.acct != nil && !reserved {
		j.warnings = append(j.warnings, fmt.Sprintf("member %d (%s): its estimated %d bytes do not fit the run's memory budget next to its tables; it trains alone", j.index, name, j.est))
	}
	began := time.Now()
	j.report.Started = began.Sub(start)
	defer func() {
		j.report.Finished = time.Since(start)
		j.report.Seconds = time.Since(began).Seconds()
		ra.free(j.est, reserved)
		b.release(j.est)
	}()

	n := base.Len()
	sample := cfg.sampleRows(n, seed, j.index)
	trainSet := memberDataset(base, sample)
	r := &j.report
	r.TrainRows, r.OOBRows = len(sample.pos), len(sample.oob)
	r.UniqueRows = n - len(sample.oob)

	var finished *FinishedMember
	var ck *train.Checkpoint
	if opts.Restore != nil {
		if finished, ck, err = opts.Restore(j.index); err != nil {
			return fmt.Errorf("ensemble: member %d (%s): restore: %w", j.index, name, err)
		}
	}
	if finished != nil {
		if rerr := restoreFinished(j.model, finished); rerr != nil {
			j.warn("member %d (%s): its record of an earlier training is set aside and it trains again: %v", j.index, name, rerr)
			finished = nil
		}
	}
	if opts.RecordsOnly && (finished == nil || !finished.outputsFit(val.Len(), len(sample.oob))) {
		j.needsInputs = true
		return fmt.Errorf("ensemble: member %d (%s): %w", j.index, name, ErrInputsNeeded)
	}
	var res train.Result
	if finished != nil {
		res = finished.result()
		r.Restored = true
		if j.mask != nil {
			j.mask.apply() // the record's weights are masked already
		}
	} else {
		var hooks []train.Hook
		if j.mask != nil {
			j.mask.apply()
			hooks = append(hooks, j.mask.hook())
		}
		if opts.Hooks != nil {
			hooks = append(hooks, opts.Hooks(j.index)...)
		}
		if opts.Checkpoint != nil {
			hooks = append(hooks, train.OnCheckpoint("ensemble_checkpoint", func(c *train.Checkpoint, err error) error {
				if err != nil {
					return err
				}
				return opts.Checkpoint(j.index, c)
			}))
		}
		tc := j.recipe.Train
		tc.Workers = max(tc.Workers, j.threads)
		tc.Logger = opts.Logger.With().Int("member", j.index).Str("member_name", name).Int("gemm_threads", tc.Workers).Logger()
		hooks = append(hooks, cores.hook(tc.Workers, tc.Logger))
		cores.running.Add(1)
		res, err = fitMember(ctx, j, trainSet, val, tc, ck, hooks)
		cores.running.Add(-1)
	}
	r.Epochs, r.Steps, r.BestEpoch = res.Epochs, res.Steps, res.BestEpoch
	r.Metric, r.BestMetric, r.StoppedEarly, r.CarvedValidation = res.Metric, res.BestMetric, res.StoppedEarly, res.CarvedValidation
	r.History = res.History
	if res.BaseLR > 0 {
		r.LR = res.BaseLR
	}
	if err != nil {
		return fmt.Errorf("ensemble: member %d (%s): %w", j.index, name, err)
	}
	if j.mask != nil {
		j.mask.apply()
	}
	heads := j.model.Heads()
	if len(sample.oob) > 0 {
		j.oobPos = sample.oob
	}
	if finished != nil && finished.outputsFit(val.Len(), len(sample.oob)) {
		// The record has the member's predictions: the same forward passes, done once.
		j.valOut, j.oobOut = finished.ValOut, finished.OOBOut
	} else {
		if val.Len() > 0 {
			if j.valOut, err = predictRows(ctx, j.model, val, nil); err != nil {
				return fmt.Errorf("ensemble: member %d (%s): validation predictions: %w", j.index, name, err)
			}
		}
		if len(sample.oob) > 0 {
			if j.oobOut, err = predictRows(ctx, j.model, base, sample.oob); err != nil {
				return fmt.Errorf("ensemble: member %d (%s): out-of-bag predictions: %w", j.index, name, err)
			}
		}
	}
	if val.Len() > 0 {
		labels, values := make([][]int32, len(heads)), make([][]float32, len(heads))
		for h, hs := range heads {
			labels[h], values[h] = headTargets(val, h, hs, nil)
		}
		r.Val = headMetrics(heads, j.valOut, labels, values)
	}
	if finished == nil && opts.Finished != nil {
		if err := opts.Finished(j.index, finishedRecord(j.model, res, j, val.Len())); err != nil {
			return fmt.Errorf("ensemble: member %d (%s): record the finished member: %w", j.index, name, err)
		}
	}
	opts.Logger.Debug().Int("member", j.index).Int("epochs", res.Epochs).Float64(res.Metric, res.BestMetric).Msg("ensemble member trained")
	return nil
}

// scoreOnValidation fits the weighted combiner of every head on the kept members' validation
// predictions, and scores every combiner and member there.
func scoreOnValidation(ens *Ensemble, kept []*memberJob, val train.Dataset, rep *Report) error {
	outs := make([]nn.Outputs, len(kept))
	for i, j := range kept {
		outs[i] = j.valOut
	}
	rows := val.Len()
	rep.Diversity = diversity(ens.heads, outs, rows)
	rep.WeightFits = make([]WeightFit, len(ens.heads))
	for h, hs := range ens.heads {
		k := headWidth(hs)
		per := make([][]float32, len(outs))
		for m, o := range outs {
			per[m] = o.Heads[h]
		}
		labels, values := headTargets(val, h, hs, nil)
		var (
			w   Weighted
			fit WeightFit
			err error
		)
		if isClassification(hs) {
			w, fit, err = FitWeightsLogLoss(per, rows, k, labels, WeightFitOptions{})
		} else {
			w, fit, err = FitWeightsMSE(per, rows, k, values, WeightFitOptions{})
		}
		switch {
		case err != nil:
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("head %q: weighted combiner not fitted: %v", hs.Name, err))
		default:
			rep.WeightFits[h] = fit
			if !fit.Converged {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("head %q: weighted combiner fit stopped after %d iterations with gap %.3g (not converged)", hs.Name, fit.Iterations, fit.Gap))
			}
			if err := ens.SetCombiner(hs.Name, w); err != nil {
				return err
			}
		}
		bestMember, bestScore := -1, nan()
		var metric string
		for m := range per {
			var s float64
			metric, s = headScore(hs, per[m], labels, values)
			if bestMember < 0 || better(metric, s, bestScore) {
				bestMember, bestScore = m, s
			}
		}
		for _, name := range ens.CombinerNames(hs.Name) {
			c := ens.combiners[h][name]
			metric, s := headScore(hs, c.Combine(per, rows, k), labels, values)
			gain := s - bestScore
			if metric != "accuracy" {
				gain = bestScore - s
			}
			rep.Combiners = append(rep.Combiners, CombinerScore{Head: hs.Name, Combiner: name, Metric: metric, Score: s,
				BestMember: kept[bestMember].index, BestMemberScore: bestScore, Gain: gain})
		}
	}
	return nil
}

// outOfBag averages, per dataset row, the outputs of the kept members that did not train on it,
// summing in member order (so the result does not depend on scheduling).
func outOfBag(heads []nn.HeadSpec, kept []*memberJob, base train.Dataset) *OOB {
	hasOOB := false
	for _, j := range kept {
		hasOOB = hasOOB || j.oobPos != nil
	}
	if !hasOOB {
		return nil
	}
	n := base.Len()
	count := make([]int, n)
	sums := make([][]float64, len(heads))
	for h, hs := range heads {
		sums[h] = make([]float64, n*headWidth(hs))
	}
	for _, j := range kept {
		for i, p := range j.oobPos {
			count[p]++
			for h, hs := range heads {
				w := headWidth(hs)
				for c := 0; c < w; c++ {
					sums[h][p*w+c] += float64(j.oobOut.Heads[h][i*w+c])
				}
			}
		}
	}
	oob := &OOB{}
	var pos []int
	for p, c := range count {
		if c == 0 {
			oob.NeverOOB++
			continue
		}
		pos = append(pos, p)
		oob.Rows = append(oob.Rows, baseRow(base, p))
		oob.Members = append(oob.Members, c)
	}
	for h, hs := range heads {
		w := headWidth(hs)
		oh := OOBHead{Name: hs.Name, Width: w, Pred: make([]float32, len(pos)*w)}
		for i, p := range pos {
			inv := 1 / float64(count[p])
			for c := 0; c < w; c++ {
				oh.Pred[i*w+c] = float32(sums[h][p*w+c] * inv)
			}
		}
		labels, values := headTargets(base, h, hs, pos)
		oh.Metric, oh.Score = headScore(hs, oh.Pred, labels, values)
		oob.Heads = append(oob.Heads, oh)
	}
	return oob
}

// coreShare lends the CPU tokens of members that have finished to the members still
// training. While members wait to start, each keeps the GEMM threads it started with; once
// none waits, each of the r members training uses max(its own, workers/r) threads, raised
// (or lowered again) between two steps. Only the speed changes: gemm.Parallel's results do
// not depend on its thread count. Without it the last member of 5 on 2 cores would train
// on one core while the other idles.
type coreShare struct {
	workers int
	pending atomic.Int32 // members of this Train that have not begun (the pool has not started them)
	running atomic.Int32 // members in Fit
}

// threads is what a member that started with own threads should use now.
func (c *coreShare) threads(own int) int {
	r := int(c.running.Load())
	if c.pending.Load() > 0 || r <= 0 {
		return own
	}
	return max(own, c.workers/r)
}

// hook adjusts a member's GEMM threads after each of its steps.
func (c *coreShare) hook(own int, log zerolog.Logger) train.Hook {
	cur := own
	return train.OnStep("ensemble_cores", math.MinInt, func(s *train.StepInfo) error {
		if n := c.threads(own); n != cur {
			log.Debug().Int("gemm_threads", n).Int("from", cur).Int("step", s.Step).Msg("GEMM threads changed: members finished or started")
			s.Model.SetWorkers(n)
			cur = n
		}
		return nil
	})
}
