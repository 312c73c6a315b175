package stages

import (
	"math"
	"math/rand/v2"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/report"
)

// aggregates computes the report's aggregates of one head on one scored table (see
// report.ClassificationEval and report.RegressionEval), from every row. For a hard vote (0/1
// outputs) the reliability diagram and the ROC and PR curves are left out, as logloss and auc
// are: they need probabilities.
func aggregates(tp bundle.TargetPlan, data *bundle.Tensors, out nn.Outputs, h int, hardVotes bool, rng *rand.Rand) report.EvalEntry {
	e := report.EvalEntry{TableEval: report.TableEval{Head: tp.Head, Task: tp.Task}}
	w := out.Width[h]
	rows := len(data.RowIDs)
	if tp.Task == bundle.TaskRegression {
		pred := make([]float64, rows)
		for i := range pred {
			pred[i] = float64(out.Heads[h][i*w])*tp.Std + tp.Mean
		}
		report.RegressionEval(&e.TableEval, data.Raw[h], pred, rng)
		return e
	}
	k := len(tp.Labels)
	probs := out.Heads[h]
	if w != k { // never for a trained bundle: the head has one output per class
		return e
	}
	report.ClassificationEval(&e.TableEval, data.Data.Targets[h].Labels, probs, tp.Labels)
	if hardVotes {
		e.Reliability, e.ROC, e.PR = nil, nil, nil
		delete(e.Metrics, "ece")
		delete(e.Metrics, "average_precision")
	}
	return e
}

// finiteMetrics returns the finite values of m and extra together (JSON has no NaN: an AUC
// of a one-class table is left out).
func finiteMetrics(m, extra map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, src := range []map[string]float64{m, extra} {
		for k, v := range src {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				out[k] = v
			}
		}
	}
	return out
}

// describer is a fitted transform that says what it fitted (features.Transform).
type describer interface {
	Describe() map[string]any
}

// sourceUnits returns, for every numeric input of p (by name), the function that takes a
// value as the model sees it back to the unit it had before p's normalize steps, so that the
// worst rows read in the data's own units (pixels from 0 to 255, years, ...). It reads what
// each normalize step fitted (its Describe: standard, minmax, robust or log1p, per column);
// a constant column comes back as its constant. Columns no normalize step touched are left
// as they are; so is every column of a step this build cannot read.
func sourceUnits(p bundle.Predictor) map[string]func(float64) float64 {
	out := map[string]func(float64) float64{}
	pre := p.Base().Pre
	for i := len(pre) - 1; i >= 0; i-- { // undo the last step first
		if pre[i] == nil || pre[i].Kind() != features.KindNormalize {
			continue
		}
		var t any = pre[i]
		if f, ok := t.(fittedTransform); ok { // the lineage's adapter, in a bundle trained in this run
			t = f.t
		}
		d, ok := t.(describer)
		if !ok {
			continue
		}
		desc := d.Describe()
		method, _ := desc["method"].(string)
		cols, _ := desc["columns"].(map[string]any)
		for name, c := range cols {
			stats, _ := c.(map[string]any)
			inv := inverseNormalize(method, stats)
			if inv == nil {
				continue
			}
			if prev, ok := out[name]; ok {
				out[name] = func(x float64) float64 { return inv(prev(x)) }
			} else {
				out[name] = inv
			}
		}
	}
	return out
}

// inverseNormalize is the inverse of one normalized column's affine map (or of log1p); nil
// when the method or the statistics are not known.
func inverseNormalize(method string, stats map[string]any) func(float64) float64 {
	get := func(k string) (float64, bool) {
		v, ok := stats[k].(float64)
		return v, ok
	}
	affine := func(shiftKey string, spread func() (float64, bool)) func(float64) float64 {
		shift, ok1 := get(shiftKey)
		s, ok2 := spread()
		if !ok1 || !ok2 {
			return nil
		}
		if s == 0 { // a constant column: normalize wrote 0
			return func(float64) float64 { return shift }
		}
		return func(x float64) float64 { return x*s + shift }
	}
	switch method {
	case features.NormalizeStandard:
		return affine("mean", func() (float64, bool) { return get("std") })
	case features.NormalizeMinMax:
		return affine("min", func() (float64, bool) {
			lo, ok1 := get("min")
			hi, ok2 := get("max")
			return hi - lo, ok1 && ok2
		})
	case features.NormalizeRobust:
		return affine("median", func() (float64, bool) { return get("iqr") })
	case features.NormalizeLog1p:
		return math.Expm1
	}
	return nil
}

// worstFeatures copies the numeric inputs of the worst rows, in source units (see
// sourceUnits), column by column: cols[j][r] is input j of the r-th worst row.
func worstFeatures(data *bundle.Tensors, idx []int, names []string, undo map[string]func(float64) float64) [][]float64 {
	n := data.Data.NumInputs
	if n != len(names) {
		return nil
	}
	cols := make([][]float64, n)
	for j := range cols {
		cols[j] = make([]float64, len(idx))
		f := undo[names[j]]
		for r, i := range idx {
			v := float64(data.Data.X[i*n+j])
			if f != nil {
				v = f(v)
			}
			cols[j][r] = v
		}
	}
	return cols
}
