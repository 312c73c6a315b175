package stages

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/search"
)

// Base kinds of a search stage's model field: what each trial trains.
const (
	searchModelTrain    = "train"
	searchModelEnsemble = "ensemble"
)

// Defaults of the search stage.
const (
	defaultSearchTrials = 30
	defaultSearchRounds = 3
	objectiveAuto       = "auto"
	defaultConfirmTop   = 5
	defaultConfirmSeeds = 2
)

func searchKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "search", Shape: pipeline.ShapeTrain,
		Doc: "Searches hyperparameters: each trial is a `train` stage (or, with model = \"ensemble\", an `ensemble` stage) built from `base` with the trial's values of the `space` parameters, trained on `train` and scored on `val` (or, with cv = k, by k-fold cross-validation over train and val together). " +
			"Values are drawn at random (never on a grid), on a log scale for the log distributions; with rounds > 1 each round zooms in on the region of the best trials so far (the ranges narrow, the choices are re-weighted). With sampler = \"tpe\" each trial is drawn instead by the tree-structured Parzen estimator from the trials before it. " +
			"Bad trials are stopped early (ASHA by default, or median stopping) on the objective they report after every epoch; a pruned trial's partial history is kept. " +
			"Trials run concurrently within the run's CPU budget, one core each; each trial's seed comes from (run seed, stage, trial), and the trials, their results and the best trial are the same for any number of workers. " +
			"The training table is read once and shared by every trial. With the stage store, an interrupted search resumes without training its finished trials again. " +
			"The best trial is trained again from its seed for the `model` output (training is deterministic: its val objective is checked against the trial's), or, with refit = true, on train and val together for its best epoch count. " +
			"The log prints the best parameters as a `train` stage to paste into a pipeline; the manifest's info holds them (best_params, best_trial). " +
			"How the zoom narrows the ranges and how ASHA decides: see the `search` package's documentation (pkg.go.dev/github.com/pipe-ml/pipe/search).",
		Fields: []pipeline.Field{
			{Name: "train", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The training table, read once and shared by every trial."},
			{Name: "val", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The validation table: every trial's early stopping and objective. The search chooses on it alone."},
			{Name: "model", Type: pipeline.TypeString, Default: searchModelTrain, Enum: []string{searchModelTrain, searchModelEnsemble}, Doc: "What a trial trains: a train stage (base holds a train stage's keys) or an ensemble stage (base holds an ensemble stage's keys; trials are not pruned, since an ensemble's objective exists only once its members are combined by mean)."},
			{Name: "base", Type: pipeline.TypeTable, DocsSee: "those of the train stage (or of the ensemble stage, with model = \"ensemble\") but train, val and workers; train also without monitor_every, init_from, init_from_path, freeze and unfreeze",
				Doc: "The settings every trial starts from, as a train (or ensemble) stage takes them: { layers = [ { dense = 256 }, { dense = 128 } ], epochs = 60 }. Checked like that stage's own table."},
			{Name: "space", Type: pipeline.TypeTable, Required: true, Doc: "The parameters searched, by dotted path into base (\"optimizer.lr\", \"layers.0.dense\", \"layers.*.dropout\" for every layer that takes dropout (none when a choice over whole layer lists draws [], a model with no hidden layer), \"l2\", \"member.epochs\"), each a distribution: " +
				"{ uniform = [lo, hi] }, { log_uniform = [lo, hi] } (lo > 0), { int = [lo, hi] }, { log_int = [lo, hi] } (lo ≥ 1), { choice = [v1, v2, ...] } (any values: numbers, strings, tables, lists), with an optional condition when = { \"optimizer.name\" = \"sgd\" } (the parameter exists only when that choice, or base's value, is that value). " +
				"Every path and every value the distribution can draw is checked against the base kind's keys when the pipeline is loaded. Parameters are applied from the shortest path to the longest, and layers.0.dropout after layers.*.dropout."},
			{Name: "objective", Type: pipeline.TypeString, Default: objectiveAuto, Doc: "The val metric that ranks the trials, maximised (accuracy, r2) or minimised (loss, logloss, rmse, mae) as the metric says: val_loss, val_accuracy, val_logloss, val_rmse, val_mae, val_r2, or <target>/val_... with several targets (an ensemble: all but the loss). " +
				"auto: val_logloss for classes, val_r2 for regression, val_loss with several targets. Log-loss rather than accuracy because a small validation set's accuracy takes few values (on iris's 22 val rows, one row is 4.5 points): trials tie, and the ranking and the zoom would then follow the trial index."},
			{Name: "trials", Type: pipeline.TypeInt, Default: int64(defaultSearchTrials), Min: pipeline.Bound(1), Doc: "The number of trials in all rounds."},
			{Name: "sampler", Type: pipeline.TypeString, Default: search.SamplerZoom, Enum: []string{search.SamplerZoom, search.SamplerTPE}, Doc: "How trials are drawn. zoom: at random, from a region that narrows round by round around the best trials (rounds, zoom). " +
				"tpe: the tree-structured Parzen estimator (Bergstra et al. 2011; Optuna's default sampler, with its defaults): the trials so far (failed ones left out) are split into the best ⌈n/10⌉ (at most 25) and the rest, and for each parameter a Parzen density is fitted to each side (l and g: normal kernels on the sampling axis, one per trial, plus a prior over the whole range; each choice weighted by its trials), and of tpe.candidates values drawn from l the one with the highest l(x)/g(x) is taken. " +
				"Parameters are drawn independently, each from the trials of each side that have it (a conditional one, those where its condition held); until tpe.startup trials have finished, every parameter is drawn at random. Trial i is drawn from trials 0 … i − tpe.parallel and starts when they have finished, so that the draws are the same for any number of workers. No rounds."},
			{Name: "rounds", Type: pipeline.TypeInt, Default: int64(defaultSearchRounds), Min: pipeline.Bound(1), Doc: "Zoom rounds: the trials are split evenly between them, and each round after the first samples the region around the best trials of the rounds before (1: plain random search). At most trials; when not set, min(3, trials); 1 with sampler = \"tpe\"."},
			{Name: "tpe", Type: pipeline.TypeTable, Fields: []pipeline.Field{
				{Name: "candidates", Type: pipeline.TypeInt, Default: int64(search.DefaultTPECandidates), Min: pipeline.Bound(1), Doc: "Values drawn from l for each parameter of a trial; the one with the highest l(x)/g(x) is taken."},
				{Name: "startup", Type: pipeline.TypeInt, Default: int64(search.DefaultTPEStartup), Min: pipeline.Bound(1), Doc: "The fewest finished earlier trials (failed ones left out) from which TPE draws; until then each parameter is drawn at random from its whole range."},
				{Name: "parallel", Type: pipeline.TypeInt, Default: int64(search.DefaultTPEParallel), Min: pipeline.Bound(1), Doc: "Trials that may run at once: trial i is drawn from trials 0 … i − parallel (the parallel − 1 trials just before it are left out, as Optuna leaves out the trials running) and waits for them. More workers than this idle; 1 runs the trials one after another, each drawn from all the trials before it. The results do not depend on the number of workers."},
				{Name: "prior_weight", Type: pipeline.TypeFloat, Default: search.DefaultTPEPriorWeight, Min: pipeline.Bound(0), MinExclusive: true, Doc: "The weight of the prior (the whole range; every choice alike) in each density, against 1 for each of the 25 most recent trials (older ones weigh less)."},
			}, Doc: "The TPE sampler's settings (sampler = \"tpe\"): { candidates = 24, startup = 10, parallel = 4 }."},
			{Name: "prune", Type: pipeline.TypeTable, Fields: []pipeline.Field{
				{Name: "method", Type: pipeline.TypeString, Enum: []string{search.PruneASHA, search.PruneMedian, search.PruneNone}, Doc: "asha: asynchronous successive halving, rungs at epochs min_epochs·reduction^k where a trial goes on only in the top 1/reduction of the trials judged there; median: a trial stops at an epoch ≥ min_epochs where it is worse than the median of the others; none. Default asha (none with model = \"ensemble\", which cannot be pruned)."},
				{Name: "min_epochs", Type: pipeline.TypeInt, Default: int64(search.DefaultMinEpochs), Min: pipeline.Bound(1), Doc: "asha: the first rung's epoch; median: the first epoch a trial may be stopped at."},
				{Name: "reduction", Type: pipeline.TypeInt, Default: int64(search.DefaultReduction), Min: pipeline.Bound(2), Doc: "asha's η: rungs at min_epochs·η^k, and the top 1/η go on."},
				{Name: "min_trials", Type: pipeline.TypeInt, Default: int64(search.DefaultMedianMinTrials), Min: pipeline.Bound(1), Doc: "median: the fewest other trials at an epoch before a trial may be stopped there."},
			}, Doc: "Early stopping of bad trials, judged on the objective after each epoch: { method = \"asha\", min_epochs = 3, reduction = 3 }. A trial is judged only against trials with a lower index (waiting for them when it gets ahead), which keeps the results the same for any number of workers."},
			{Name: "zoom", Type: pipeline.TypeTable, Fields: []pipeline.Field{
				{Name: "top", Type: pipeline.TypeFloat, Default: search.DefaultZoomTop, Min: pipeline.Bound(0), MinExclusive: true, Max: pipeline.Bound(1), Doc: "The share q of the trials so far whose parameters define the next round's region: the best max(2, ⌈q·n⌉) of the n that completed (pruned trials take no part unless fewer than 2 completed: then n counts every trial that did not fail, pruned ones ranked after the completed by epochs reached)."},
				{Name: "margin", Type: pipeline.TypeFloat, Default: search.DefaultZoomMargin, Min: pipeline.Bound(0), MinExclusive: true, Doc: "The span of the top trials' values is widened on each side by this share of the previous range (on the log axis for log parameters)."},
				{Name: "min_width", Type: pipeline.TypeFloat, Default: search.DefaultZoomMinWidth, Min: pipeline.Bound(0), MinExclusive: true, Max: pipeline.Bound(1), Doc: "A range never becomes narrower than this share of the full range."},
			}, Doc: "How each round narrows: a numeric range becomes the span of the top trials' values, widened by margin; a choice's value i gets weight (cᵢ + 1)/Σ(cⱼ + 1), cᵢ the top trials that chose it."},
			{Name: "cv", Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), Doc: "k-fold cross-validation: each trial is scored by the mean of its objective over k folds of train and val together (each fold trained on the other folds, early stopping on its own rows), in place of val alone: for small datasets, whose few val rows make the choice between trials noisy. " +
				"The folds are drawn once from the run's seed, stratified by the class (by bands of the target for regression), and are the same for every trial and any number of workers. A trial trains k times; it is not pruned (prune.method must be none). " +
				"The trials table adds cv_std and each fold's objective (cv_fold_0, ...). The `model` output is the chosen config trained on train with val for early stopping, as without cv, or with refit = true on train and val together for the folds' mean best epoch. 0: off (score on val); at most the rows of the smallest class. Not with top_k > 1."},
			{Name: "refit", Type: pipeline.TypeBool, Default: false, Doc: "Train the best trial's config again on train and val together, for the best trial's best epoch count (early stopping off, the trial's seed), as the `model` output: more data for the final model, but no val metric of its own (the manifest's info.refit and the bundle say so). Not with model = \"ensemble\"."},
			{Name: "top_k", Type: pipeline.TypeInt, Default: int64(1), Min: pipeline.Bound(1), Doc: "The `model` output averages the top_k best completed trials (by the objective, on val), each trained again from its seed, as an ensemble bundle combined by mean (class probabilities or regression outputs averaged); with model = \"ensemble\", every member of those trials joins the average. 1: the best trial alone. " +
				"The members differ in their hyperparameters, so the average usually beats its best member on small datasets (ensemble selection, Caruana et al. 2004); it costs top_k trainings at the end. The manifest's info.top_k names the trials and the val objective of the average. Not with refit."},
			{Name: "confirm", Type: pipeline.TypeTable, Fields: []pipeline.Field{
				{Name: "top", Type: pipeline.TypeInt, Default: int64(defaultConfirmTop), Min: pipeline.Bound(2), Doc: "How many of the best completed trials (by their own objective) are confirmed; at most trials."},
				{Name: "seeds", Type: pipeline.TypeInt, Default: int64(defaultConfirmSeeds), Min: pipeline.Bound(1), Doc: "How many more times each is trained, each time from another seed (derived from the run's seed, the stage, the trial and the repeat's number)."},
			}, Doc: "Confirm the leaders before choosing: { top = 5, seeds = 2 }. After the last round the top best completed trials are each trained again seeds times with other seeds (never pruned; concurrently within the CPU budget, like trials), and the best trial, the top_k set and the refit's trial are chosen on the mean objective over each trial's own run and its repeats. " +
				"A single trial's objective is one draw of a noisy figure (a network's val loss depends on its seed), so the best of many trials is partly luck; the mean over a few seeds makes the choice among the leaders less so. " +
				"The `model` output is the chosen trial's own run (trained again from the trial's seed, as without confirm), not one of its repeats. " +
				"The trials table adds confirm_mean and confirm_runs (empty for the trials not confirmed); the manifest's info.confirm lists every leader's runs, the trial chosen and the one its own objective alone would have chosen. Costs top·seeds trainings. Not with cv (its folds already average)."},
			{Name: "workers", Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), KeyExempt: true, Doc: "Trials trained at the same time (one core each), taken from the run's CPU budget. 0: as many as the budget has free. Results do not depend on it."},
		},
		Outputs: func(*pipeline.StageConfig) []pipeline.Port {
			return []pipeline.Port{{Name: "model", Kind: pipeline.PortArtifact}, {Name: "trials", Kind: pipeline.PortTable}}
		},
		DefaultOutput: "model",
		OutputsDoc: "`model` (artifact): the best trial's bundle (an ensemble bundle with model = \"ensemble\"), in stages/<name>/bundle/, with its per-epoch history.csv. " +
			"`trials` (table): one row per trial: trial, round, status (completed, pruned, failed), each parameter (null where its condition did not hold), epochs_run, best_epoch, objective (with cv: cv_std and cv_fold_k; with confirm: confirm_mean and confirm_runs), seconds, start_seconds, error; also written as trials.csv.",
		Example: "[stages.tune]\nkind = \"search\"\ntrain = \"scale.train\"\nval = \"scale.val\"\n" +
			"base = { layers = [ { dense = 256 }, { dense = 128 } ], epochs = 60 }\n" +
			"space = { \"optimizer.lr\" = { log_uniform = [1e-4, 3e-2] },\n          \"layers.*.dropout\" = { uniform = [0.0, 0.5] },\n          \"l2\" = { log_uniform = [1e-6, 1e-2] } }\n" +
			"trials = 30\nrounds = 3\nprune = { method = \"asha\", min_epochs = 3, reduction = 3 }",
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			s, err := newSearchStage(c)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	}
}

// searchStage is a configured search stage.
type searchStage struct {
	model     string // searchModelTrain or searchModelEnsemble
	fields    []pipeline.Field
	misplaced map[string]string
	base      map[string]any        // as written
	baseCfg   *pipeline.StageConfig // base decoded: the data settings, errors about its keys
	data      *trainSpec            // target, features, task, tasks
	space     *search.Space
	objective string
	trials    int
	rounds    int
	prune     search.PruneConfig
	zoom      search.ZoomConfig
	sampler   string
	tpe       search.TPEConfig
	refit     bool
	cv        int // folds of the cross-validated objective; 0: val alone
	top       int // top_k
	confirm   search.ConfirmConfig
	workers   int
}

// searchBaseFields returns the keys a search stage's base takes for a model kind, and hints
// for the keys of that kind it does not take.
func searchBaseFields(model string) ([]pipeline.Field, map[string]string) {
	misplaced := map[string]string{
		"train":   "set it on the search stage itself: every trial trains on it",
		"val":     "set it on the search stage itself: every trial is scored on it",
		"workers": "set workers on the search stage: trials run side by side, one core each",
	}
	var all []pipeline.Field
	if model == searchModelEnsemble {
		all = ensembleKind().Fields
	} else {
		all = append(append(trainFields(), imageInputField()), transferFields()...)
		misplaced["monitor_every"] = "a search's trials record no monitor.csv"
		for _, f := range transferFields() {
			misplaced[f.Name] = "a search does not transfer weights: train the best config with init_from in a train stage"
		}
	}
	var out []pipeline.Field
	for _, f := range all {
		if _, excluded := misplaced[f.Name]; !excluded {
			out = append(out, f)
		}
	}
	return out, misplaced
}

// objectivePattern is the form of a val metric a trial reports.
var objectivePattern = regexp.MustCompile(`^([^/]+/)?val_(loss|accuracy|logloss|rmse|mae|r2)$`)

func newSearchStage(c *pipeline.StageConfig) (*searchStage, error) {
	s := &searchStage{model: c.String("model"), base: c.Table("base"), objective: c.String("objective"), trials: c.Int("trials"),
		rounds: c.Int("rounds"), refit: c.Bool("refit"), cv: c.Int("cv"), top: c.Int("top_k"), workers: c.Int("workers")}
	if s.base == nil {
		s.base = map[string]any{}
	}
	s.sampler = c.String("sampler")
	if !c.IsSet("rounds") {
		s.rounds = min(defaultSearchRounds, s.trials)
		if s.sampler == search.SamplerTPE {
			s.rounds = 1
		}
	}
	var errs []error
	if s.sampler == search.SamplerTPE {
		if c.IsSet("rounds") && s.rounds != 1 {
			errs = append(errs, c.Errorf("rounds", "the tpe sampler has no rounds: each trial is drawn from the trials before it; leave rounds out (or set sampler = \"zoom\")"))
		}
		if c.Table("zoom") != nil {
			errs = append(errs, c.Errorf("zoom", "zoom sets the zoom sampler's rounds, but sampler = \"tpe\": leave zoom out, or set sampler = \"zoom\""))
		}
	} else if c.Table("tpe") != nil {
		errs = append(errs, c.Errorf("tpe", "tpe sets the TPE sampler, but sampler = %q: add sampler = \"tpe\", or leave tpe out", s.sampler))
	}
	if t := c.Table("tpe"); t != nil {
		s.tpe = search.TPEConfig{Candidates: intOf(t["candidates"]), Startup: intOf(t["startup"]), Parallel: intOf(t["parallel"]), PriorWeight: floatOf(t["prior_weight"])}
	}
	if s.rounds > s.trials {
		errs = append(errs, c.Errorf("rounds", "%d rounds need at least %d trials, not %d: every round runs at least one trial", s.rounds, s.rounds, s.trials))
	}
	if o := s.objective; o != objectiveAuto && !objectivePattern.MatchString(o) {
		errs = append(errs, c.Errorf("objective", "%q is not a val metric: give val_loss, val_accuracy, val_logloss, val_rmse, val_mae or val_r2 (<target>/val_... for one of several targets), or auto", o))
	} else if s.model == searchModelEnsemble && strings.HasSuffix(o, "val_loss") {
		errs = append(errs, c.Errorf("objective", "an ensemble has no loss of its own: give val_accuracy, val_logloss, val_rmse, val_mae or val_r2"))
	}
	p := c.Table("prune")
	s.prune = search.PruneConfig{Method: search.PruneASHA, MinEpochs: search.DefaultMinEpochs, Reduction: search.DefaultReduction, MinTrials: search.DefaultMedianMinTrials}
	if p != nil {
		s.prune.MinEpochs, s.prune.Reduction, s.prune.MinTrials = intOf(p["min_epochs"]), intOf(p["reduction"]), intOf(p["min_trials"])
	}
	if s.model == searchModelEnsemble || s.cv > 0 {
		s.prune.Method = search.PruneNone
	}
	if m, ok := p["method"].(string); ok {
		switch {
		case s.model == searchModelEnsemble && m != search.PruneNone:
			errs = append(errs, c.Errorf("prune.method", "an ensemble's trials cannot be pruned (its objective exists only once the members are combined): set method = \"none\" or leave prune out"))
		case s.cv > 0 && m != search.PruneNone:
			errs = append(errs, c.Errorf("prune.method", "a cross-validated trial (cv = %d) is not pruned: its objective is the mean over folds trained one after another, which exists only once the last fold is done; set method = \"none\", leave prune out, or drop cv", s.cv))
		}
		s.prune.Method = m
	}
	if z := c.Table("zoom"); z != nil {
		s.zoom = search.ZoomConfig{Top: floatOf(z["top"]), Margin: floatOf(z["margin"]), MinWidth: floatOf(z["min_width"])}
	}
	if s.refit && s.model == searchModelEnsemble {
		errs = append(errs, c.Errorf("refit", "refit trains one network on train and val: it does not apply to an ensemble"))
	}
	if s.top > 1 && s.refit {
		errs = append(errs, c.Errorf("top_k", "top_k averages trials trained on train alone, scored on val; refit trains one network on both: choose one"))
	}
	if s.cv == 1 {
		errs = append(errs, c.Errorf("cv", "cv = 1 is one fold, no cross-validation: give k ≥ 2 folds (5 is usual), or 0 to score the trials on val"))
	}
	if s.cv > 0 && s.top > 1 {
		errs = append(errs, c.Errorf("top_k", "top_k averages trials chosen and trained on the val split; with cv = %d the trials are scored on folds: choose one", s.cv))
	}
	if s.top > s.trials {
		errs = append(errs, c.Errorf("top_k", "top_k = %d is more than the %d trials", s.top, s.trials))
	}
	if cf := c.Table("confirm"); cf != nil {
		s.confirm = search.ConfirmConfig{Top: intOf(cf["top"]), Seeds: intOf(cf["seeds"])}
		switch {
		case s.confirm.Top > s.trials:
			errs = append(errs, c.Errorf("confirm.top", "top = %d is more than the %d trials: give at most %d, or more trials", s.confirm.Top, s.trials, s.trials))
		case s.cv > 0:
			errs = append(errs, c.Errorf("confirm", "with cv = %d each trial is already the mean over %d folds: drop confirm, or set cv = 0 to score the trials on val", s.cv, s.cv))
		}
	}

	// base, decoded and built as a stage of its kind would be.
	s.fields, s.misplaced = searchBaseFields(s.model)
	sub, err := c.Nested("base", s.base, s.fields, s.misplaced)
	if err == nil {
		s.data, err = s.build(sub)
	}
	if err != nil {
		errs = append(errs, err)
	} else {
		s.baseCfg = sub
	}

	// space: parsed; then, when both it and base are sound, every path checked against base's
	// kind and every value it can draw too.
	space, err := search.ParseSpace(c.Table("space"), s.base)
	if err != nil {
		errs = append(errs, spaceErrors(c, err)...)
	} else {
		s.space = space
		if s.baseCfg != nil {
			errs = append(errs, s.checkSpace(c)...)
		}
	}
	if len(errs) > 0 {
		return nil, joinByPosition(errs)
	}
	return s, nil
}

// joinByPosition joins config errors (some of them joined already) in the order of their
// positions in the file.
func joinByPosition(errs []error) error {
	ces := pipeline.ConfigErrors(errors.Join(errs...))
	sort.SliceStable(ces, func(i, j int) bool {
		if ces[i].Line != ces[j].Line {
			return ces[i].Line < ces[j].Line
		}
		return ces[i].Col < ces[j].Col
	})
	out := make([]error, len(ces))
	for i, ce := range ces {
		out[i] = ce
	}
	return errors.Join(out...)
}

// build builds a stage of the base's kind from its decoded config (base, or a trial's) and
// returns its data settings.
func (s *searchStage) build(c *pipeline.StageConfig) (*trainSpec, error) {
	if s.model == searchModelEnsemble {
		e, err := newEnsembleStage(c)
		if err != nil {
			return nil, err
		}
		return e.shared, nil
	}
	t, err := newTrainStage(c)
	if err != nil {
		return nil, err
	}
	return t.spec, nil
}

// spaceErrors turns search.ParseSpace's errors into config errors at the space's keys.
func spaceErrors(c *pipeline.StageConfig, err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		var se *search.SpaceError
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if errors.As(e, &se) {
			key := joinPath(joinPath("space", se.Param), se.Key)
			ce := c.Errorf(key, "%s", se.Msg)
			ce.Hint = se.Hint
			out = append(out, ce)
			return
		}
		out = append(out, c.Errorf("space", "%v", e))
	}
	walk(err)
	return out
}

// checkSpace checks every parameter against the base's kind: its path names a key the kind
// takes, its distribution fits the key's type, and every value it can draw (each choice, both
// bounds of a range) makes a valid stage when set in base (with the values its conditions
// need).
func (s *searchStage) checkSpace(c *pipeline.StageConfig) []error {
	var errs []error
	for _, p := range s.space.Params() {
		at := joinPath("space", p.Name)
		f, msg, hint := paramField(s.fields, s.base, p.Name)
		if msg != "" {
			ce := c.Errorf(at, "%s", msg)
			ce.Hint = hint
			errs = append(errs, ce)
			continue
		}
		if msg, hint := distFits(p, f); msg != "" {
			ce := c.Errorf(joinPath(at, string(p.Dist)), "%s", msg)
			ce.Hint = hint
			errs = append(errs, ce)
			continue
		}
		cond := search.Params{}
		for _, w := range p.When {
			if !w.Fixed {
				cond[w.Name] = w.Value
			}
		}
		check := func(key, what string, v any) bool {
			params := search.Params{p.Name: v}
			for k, x := range cond {
				params[k] = x
			}
			if msg := s.trialProblem(c, params); msg != "" {
				errs = append(errs, c.Errorf(joinPath(at, key), "%s %s: %s", what, search.FormatValue(v), msg))
				return false
			}
			return true
		}
		switch p.Dist {
		case search.Choice:
			for i, v := range p.Choices {
				check(fmt.Sprintf("choice[%d]", i), "the value", v)
			}
		case search.Int, search.LogInt:
			if check(string(p.Dist)+"[0]", "the lower bound", int64(p.Lo)) {
				check(string(p.Dist)+"[1]", "the upper bound", int64(p.Hi))
			}
		default:
			if check(string(p.Dist)+"[0]", "the lower bound", p.Lo) {
				check(string(p.Dist)+"[1]", "the upper bound", p.Hi)
			}
		}
	}
	return errs
}

// trialProblem says what is wrong with the stage that base with params makes, or "".
func (s *searchStage) trialProblem(c *pipeline.StageConfig, params search.Params) string {
	_, err := s.trialConfig(c, params)
	if err == nil {
		return ""
	}
	if ces := pipeline.ConfigErrors(err); len(ces) > 0 {
		ce := ces[0]
		if ce.Key != "" {
			return ce.Key + ": " + ce.Msg
		}
		return ce.Msg
	}
	return err.Error()
}

// trialConfig returns the decoded config of the stage a trial trains: base with the trial's
// parameters, decoded and checked as a stage of the base's kind.
func (s *searchStage) trialConfig(c *pipeline.StageConfig, params search.Params) (*pipeline.StageConfig, error) {
	raw, err := applyParams(s.base, params)
	if err != nil {
		return nil, err
	}
	sub, err := c.Nested("base", raw, s.fields, s.misplaced)
	if err != nil {
		return nil, err
	}
	if _, err := s.build(sub); err != nil {
		return nil, err
	}
	return sub, nil
}

// distFits says why a parameter's distribution cannot draw values of the key f.
func distFits(p search.Param, f *pipeline.Field) (msg, hint string) {
	if p.Dist == search.Choice {
		return "", ""
	}
	switch f.Type {
	case pipeline.TypeFloat, pipeline.TypeFloatOrAuto:
		return "", ""
	case pipeline.TypeInt, pipeline.TypeSize:
		if p.Dist == search.Int || p.Dist == search.LogInt {
			return "", ""
		}
		return fmt.Sprintf("%s takes an integer, and %s draws fractions", p.Name, p.Dist), "use int or log_int"
	}
	return fmt.Sprintf("%s takes a %s, not a number", p.Name, f.Type), "use choice = [...] with values of that type"
}

func intOf(v any) int {
	n, _ := v.(int64)
	return int(n)
}

func floatOf(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	}
	return 0
}
