// Package search is the engine-independent core of hyperparameter search: search spaces,
// random sampling, zooming in round by round (or the TPE sampler), pruning of bad trials, and
// a scheduler that runs trials concurrently with results that do not depend on the number of
// workers.
//
// It knows nothing of training or of the pipeline engine: an Objective trains and scores one
// Trial, reporting its value after each epoch. The search stage builds the Space from its
// `space` table (ParseSpace), applies a trial's Params to its base config (parameter names are
// dotted paths into it, which this package does not interpret except in conditions), and
// trains.
//
// # Spaces
//
// A parameter is uniform [lo, hi], log_uniform [lo, hi] (lo > 0), int [lo, hi] (inclusive),
// log_int [lo, hi] (lo ≥ 1) or choice [v1, v2, …] (values of any TOML type), with an optional
// condition `when = { "optimizer.name" = "sgd" }`: the parameter exists only when each named
// parameter (a choice) exists and equals the value, or the named value of the base config
// (fixed) equals it. ParseSpace checks everything and reports every problem as a *SpaceError
// naming the parameter and the key.
//
// # Sampling
//
// Search is random, never a grid. Space.Sample draws one value per parameter, in name order,
// from a seeded *rand.Rand, uniformly on the parameter's sampling axis: x for uniform and int,
// ln x for the log distributions. Integers are drawn as x in [lo−½, hi+½) on that axis and
// rounded to the nearest integer, so each integer gets its fair share: the same for int, the
// width of [k−½, k+½] on the log axis for log_int. Choices are drawn by their weights (equal
// in the full space). Trial i draws its parameters from a generator seeded by its Seed
// (Config.TrialSeed(i)), so its Params depend on the region of its round and its index only.
//
// # Zoom
//
// Config.Rounds splits the Config.Trials trials into rounds (round r runs ⌊trials/rounds⌋
// trials, one more when r < trials mod rounds: RoundSizes). Round 0 samples the full space.
// After round r, the trials of rounds 0…r that completed with a value (not NaN) are ranked by
// Value, and the best k = max(2, ⌈q·n⌉) of those n (q = ZoomConfig.Top, default 0.25) define
// round r+1's region (Space.Zoom). Pruned trials take no part: the pruner stopped each of
// them because it ranked below most trials at some epoch, its Value is a partial one, and on
// a noisy objective their order (by epochs reached) is close to random, so counting them
// would spread the top set over the whole space. Only while fewer than 2 trials completed
// are the k = max(2, ⌈q·n⌉) taken from the n trials that did not fail, in the ranking below
// (completed first, then pruned ones by epochs reached). In the region:
//
//   - a numeric parameter's range becomes the span of those trials' values on the sampling
//     axis (log scale for log parameters; an integer k spans [k−½, k+½]), widened on each side
//     by ZoomConfig.Margin (default 0.1) × the previous range's width, clipped to the previous
//     range, and never narrower than ZoomConfig.MinWidth (default 0.05) × the full range's
//     width (then centred on the span, shifted to stay inside the previous range). A
//     parameter that none of the top trials has keeps its range.
//   - a choice's value i gets probability (cᵢ + 1) / Σⱼ(cⱼ + 1), with cᵢ the number of top
//     trials that chose it: Laplace smoothing, so no value ever drops to probability 0.
//
// The ranking of the search: completed trials first, by Value (the objective each trial returned), then
// pruned trials, those that reached more epochs first, then by Value; a trial whose Value is
// NaN after every other; ties by index. The best trial of the search (Outcome.Best) is the
// first of the same ranking over all trials.
//
// # TPE
//
// With Config.Sampler = SamplerTPE the search has no rounds: each trial is drawn by the
// tree-structured Parzen estimator (Bergstra et al., "Algorithms for hyper-parameter
// optimization", 2011) from the trials before it, with the defaults of Optuna's TPESampler
// (version 3.1, univariate). Per parameter, in name order, from the trial's own stream:
//
//   - The trials drawn from (see below) that did not fail are ranked as the search ranks
//     trials (completed by Value, then pruned ones by epochs reached). Fewer than
//     TPEConfig.Startup of them: the parameter is drawn at random from its full range, as
//     Space.Sample draws.
//   - Otherwise, with n of them, the best min(⌈n/10⌉, 25) make up the good set, the rest the
//     bad set, and a Parzen density is fitted to the trials of each that have the parameter
//     (a conditional one: where its condition held; none: the prior alone): l to the good,
//     g to the bad. A numeric
//     parameter's density is a mixture of normal kernels on its sampling axis (ln x for the
//     log distributions), truncated to the full range ([lo−½, hi+½] for integers), one
//     centred on each trial's value, plus a prior centred on the range with σ = its width.
//     A kernel's σ is the larger distance to its neighbours among the sorted centres (the
//     outermost take their one inner gap), clipped to [width/min(100, 1 + kernels), width].
//     A choice's density gives each trial's value weight 1 + prior/(n+1) and every other
//     value prior/(n+1), and the prior all values alike. The 25 most recent trials weigh 1,
//     older ones less (rising linearly from 1/n), the prior TPEConfig.PriorWeight.
//   - TPEConfig.Candidates values are drawn from l, and the first with the highest
//     log l(x) − log g(x) is taken (for an integer, with the mass of its cell [k−½, k+½], on
//     the log axis for log_int).
//
// This is Optuna 3.1's algorithm with two of Optuna's later fixes: 3.1's truncated normal
// log density leaves out −log σ, so that each kernel's density is off by its width
// (optuna/optuna#5109, fixed by #5110 of November 2023), and 3.1 scores a log integer by
// its density at ln k though it samples the cell (optuna/optuna#6258). TestTPEAgainstOptuna
// fits pipe's and Optuna's to the same trials (every distribution, a conditional parameter,
// failed and pruned trials, ties) and compares the split, every kernel and the densities l
// and g, with Debian's python3-optuna.
//
// Every parameter is drawn, whether or not its condition holds, and those whose conditions
// do not hold are dropped, as in Space.Sample.
//
// Trial i is drawn from trials 0 … i−P (P = TPEConfig.Parallel), and it is dispatched only
// when they have finished: it leaves out the P−1 trials just before it, as Optuna with
// n_jobs = P leaves out the trials still running, but which ones it leaves out does not depend
// on timing, so the search is the same for any number of workers. At most P trials run at
// once; more workers idle. Steps draws trial i once trials 0 … i−P have records.
//
// # Pruning
//
// An objective reports its value at the end of each epoch; the search may tell it to stop
// (Status Pruned; its partial history is kept). A trial's value at epoch e is its best
// reported value so far at its first report at or after e.
//
//   - ASHA (the default): rungs at epochs MinEpochs·η^k (η = Reduction, default 3). At a rung,
//     a trial is compared with the other trials that reached the rung (which ones: see below);
//     with n trials in all, itself included, it continues when fewer than max(1, ⌊n/η⌋) of
//     the others are strictly better, that is when it is in the top 1/η, or the best while
//     n < η (as Optuna's successive halving).
//   - Median stopping: at every epoch e ≥ MinEpochs, a trial stops when its value is strictly
//     worse than the median of the values at e of the other trials that reached e (the same
//     ones as for ASHA), once there are at least MinTrials of them.
//
// # Determinism with concurrency
//
// Plain ASHA judges a trial against the trials that happen to have reported at the rung
// before it, which depends on timing. Here a trial is judged only against the trials with a
// lower index (of this round and of earlier ones), and at a rung (median stopping: at an
// epoch) it waits, watching the context, until each of them has either reported at or after
// that epoch or finished (completed, pruned, failed) without reaching it. Those values are
// decided by the same rule, by induction on the index, so every decision, and with them every
// trial's history, status and Value, is the same for any number of workers, provided the
// objective itself depends only on its Trial.
//
// The waits cannot deadlock: trials start in index order, each on one of Config.Workers
// slots that it holds until it ends, so every trial below a waiting trial has started (it
// holds a slot or has finished), and the lowest unfinished trial never waits. With one worker
// the trials run one after another and never wait. The cost is that a trial that overtakes a
// lower one idles on its slot until the lower one reaches the rung (TrialResult.WaitSeconds;
// a few percent of the trials' time with 2 to 8 workers and per-epoch times that differ
// fourfold between trials, more for median stopping, which waits at every epoch). Rounds
// are barriers: a
// round's region needs every trial of the rounds before it.
//
// Run returns every trial (params, status, epochs, value, history, seconds) and the best.
// A failed trial (an error or a panic of the objective) is recorded and the search goes on;
// Run fails only when every trial failed, or when its context ends. Config.OnTrialDone hands
// out each finished trial's record and Config.Restore takes them back, so that an
// interrupted search resumes without running its finished trials again.
//
// # Confirmation
//
// With Config.Confirm = {Top, Seeds}, after the last round the Top best completed trials (by
// their own Value) each run Seeds more times with other seeds (Trial.Repeat 1..Seeds, seed
// Config.RepeatSeed(index, repeat)), never pruned, on the same worker slots; the leaders then
// head the ranking by the mean of their runs (TrialResult.Confirmed; NaN, after the others,
// when a repeat failed), so that Best is chosen on that mean; Outcome.PlainBest is the choice
// without it. The leaders and every repeat depend only on the trials, so the Outcome is the
// same for any Workers; OnRepeatDone and RestoreRepeats make an interrupted confirmation
// resume as OnTrialDone and Restore do for trials.
//
// # Trials run apart
//
// Steps makes Run's decisions for an engine that runs the trials in other processes: Trial
// draws a trial from the finished records of the rounds before it, and Report and Judge decide
// a report from what the caller's board shows of the lower trials, or say that the decision
// must wait (the caller then saves the trial's state and continues it later). Run restoring
// the records so made (Config.Restore) returns the Outcome of a Run that trained them itself.
package search
