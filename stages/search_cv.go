package stages

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/search"
)

// A search with cv = k scores each trial by k-fold cross-validation over the rows of train and
// val together, in place of the single val split: on the tiny datasets (20-90 val rows) the
// val objective is too noisy to choose between trials, and the mean over k folds that cover
// every row is much less so.
//
//   - The folds are drawn once per run from the run's seed (the stage's seed, label "cv
//     folds"), stratified by the first class target (search.Folds), or by bands of k rows of
//     the first regression target sorted (search.Bands); every trial uses the same folds, so
//     trials are compared on the same rows and the folds do not depend on the workers.
//   - Fold f trains the trial's config on the other folds' rows, with fold f as its val table
//     (early stopping and the objective, as a trial without cv does with val), from a seed
//     derived from the trial's seed and f. The trial's objective is the mean of the k folds'
//     objectives; the trials table adds their standard deviation (cv_std) and each fold's
//     (cv_fold_0 … cv_fold_{k-1}), and best_epoch is the folds' mean best epoch, rounded.
//   - No pruning: the folds train one after another, so the mean of the folds' reports at an
//     epoch exists only once the last fold has reached it; pruning on the first folds' reports
//     alone would judge a trial on other rows than the one it is ranked on. A search with cv
//     refuses prune = asha or median.
//   - The model output: the chosen config trained on train with val for early stopping, as
//     without cv (the val split stays the final model's early-stopping set and its reported
//     val metrics), or with refit = true on train and val together for the folds' mean best
//     epoch count. Not with top_k > 1.

// cvFoldsLabel is the label of the folds' seed under the stage's seed.
const cvFoldsLabel = "cv folds"

// Column names of the trials table with cv (report skips the cv_ columns as parameters).
const (
	trialsColCVStd      = "cv_std"
	trialsColCVFoldStem = "cv_fold_"
)

// cvMetricFold is the Metrics key of fold f's objective in a trial's result.
func cvMetricFold(f int) string { return trialsColCVFoldStem + strconv.Itoa(f) }

// cvFoldKeys are the Metrics keys of k folds' objectives.
func cvFoldKeys(k int) []string {
	out := make([]string, k)
	for f := range out {
		out[f] = cvMetricFold(f)
	}
	return out
}

// cvSplit is the data of a cross-validated search: the rows of train and val as one dataset,
// and its folds.
type cvSplit struct {
	all   train.Dataset
	folds [][]int
}

// fold returns fold f's training rows (every other fold) and its held-out rows, each as a
// dataset of its own.
func (c *cvSplit) fold(f int) (trainSet, valSet train.Dataset) {
	var in []int
	for g, rows := range c.folds {
		if g != f {
			in = append(in, rows...)
		}
	}
	return gatherRows(c.all, in), gatherRows(c.all, c.folds[f])
}

// gatherRows returns rows of d (indexes into d's rows) as a dataset with a base of its own.
func gatherRows(d train.Dataset, rows []int) train.Dataset {
	base := rows
	if d.Index != nil {
		base = make([]int, len(rows))
		for i, r := range rows {
			base[i] = d.Index[r]
		}
	}
	a, b := d, d
	a.Index, b.Index = base, []int{}
	a.Mapped, b.Mapped = nil, nil
	return concatDatasets(a, b)
}

// newCVSplit joins train and val and draws the folds; a k the data cannot take is an error at
// the cv key.
func (s *searchStage) newCVSplit(sc *pipeline.StageContext, d *supervised) (*cvSplit, error) {
	all := concatDatasets(d.trainData.Data, d.valData.Data)
	n := all.Len()
	strata := make([]int, n)
	h := 0
	for i, t := range d.plan.Targets {
		if t.Classes() > 0 {
			h = i
			break
		}
	}
	tgt := all.Targets[h]
	if t := d.plan.Targets[h]; t.Classes() > 0 {
		counts := make([]int, t.Classes())
		for i, l := range tgt.Labels {
			strata[i] = int(l)
			if l >= 0 {
				counts[l]++
			}
		}
		for c, m := range counts {
			if m < s.cv {
				ce := sc.Config.Errorf("cv", "cv = %d folds, but class %q of target %q has %d rows in train and val together: every fold needs a row of every class",
					s.cv, t.Labels[c], t.Column, m)
				ce.Hint = fmt.Sprintf("give cv at most %d, or leave cv out to score on val alone", minPositive(counts))
				return nil, ce
			}
		}
	} else {
		k := max(tgt.Outputs, 1)
		vals := make([]float64, n)
		for i := range vals {
			vals[i] = float64(tgt.Values[i*k])
		}
		strata = search.Bands(vals, s.cv)
	}
	if n < s.cv {
		return nil, sc.Config.Errorf("cv", "cv = %d folds, but train and val have %d rows together", s.cv, n)
	}
	folds, err := search.Folds(strata, s.cv, pipeline.NewRand(pipeline.DeriveSeed(sc.Seed(), cvFoldsLabel)))
	if err != nil {
		return nil, sc.Config.Errorf("cv", "%v", err)
	}
	return &cvSplit{all: all, folds: folds}, nil
}

func minPositive(xs []int) int {
	m := 0
	for _, x := range xs {
		if x > 0 && (m == 0 || x < m) {
			m = x
		}
	}
	return m
}

// foldTrial is trial t as fold f trains it: the same index and parameters, the seed derived
// from the trial's and f.
func foldTrial(t search.Trial, f int) search.Trial {
	t.Seed = pipeline.DeriveSeed(t.Seed, cvFoldsLabel, uint64(f))
	return t
}

// cvTrial trains a trial's config c on each fold and returns the mean of the folds'
// objectives, reporting it once at the end (its epoch: the epochs of all folds together, each
// fold's counted as a trial's without cv: the epochs run, or an ensemble's longest member's).
func (r *searchRun) cvTrial(ctx context.Context, c *pipeline.StageConfig, t search.Trial, report search.Report) (search.Result, error) {
	k := len(r.cv.folds)
	values := make([]float64, k)
	bestEpochs, epochs := 0.0, 0
	for f := range k {
		trainSet, valSet := r.cv.fold(f)
		ft := foldTrial(t, f)
		if r.s.model == searchModelEnsemble {
			eb, rep, err := r.trainEnsembleOn(ctx, c, ft, 1, trainSet, valSet)
			if err != nil {
				return search.Result{}, fmt.Errorf("fold %d: %w", f, err)
			}
			// ForwardAll counts the rows by their ids: the fold's rows have none of their own.
			vals, err := predictorMetrics(eb, &bundle.Tensors{Data: valSet, RowIDs: make([]int64, valSet.Len())})
			if err != nil {
				return search.Result{}, fmt.Errorf("fold %d: %w", f, err)
			}
			v, ok := vals[r.objective]
			if !ok {
				return search.Result{}, fmt.Errorf("the ensemble has no %s", r.objective)
			}
			values[f] = v
			longest := 0 // as an ensemble trial without cv counts: its longest member's
			for _, m := range rep.Members {
				longest = max(longest, m.Epochs)
			}
			epochs += longest
			continue
		}
		_, res, v, err := r.fitOn(ctx, c, ft, 1, trainSet, valSet, 0, nil, nil)
		if err != nil {
			return search.Result{}, fmt.Errorf("fold %d: %w", f, err)
		}
		values[f] = v
		i, _ := keptEpoch(res.cfg, res.Result)
		bestEpochs += float64(i + 1)
		epochs += len(res.History.Epochs)
	}
	mean, std := meanStd(values)
	metrics := map[string]float64{trialsColCVStd: std}
	for f, v := range values {
		metrics[cvMetricFold(f)] = v
	}
	if r.s.model == searchModelTrain {
		metrics["best_epoch"] = math.Round(bestEpochs / float64(k))
	}
	if _, err := report(max(epochs, 1), mean); err != nil {
		return search.Result{}, err
	}
	return search.Result{Value: mean, Metrics: metrics}, nil
}

// meanStd returns the mean of xs and their standard deviation (n - 1 in the denominator).
func meanStd(xs []float64) (float64, float64) {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)-1))
}
