package report

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/pipe-ml/pipe/nn/metrics"
)

// The evaluation aggregates. The evaluate stage computes them from every row it scores and
// writes them, one entry per model, table and head, to EvaluationFile in its stage directory;
// Build reads them back. The page never sees the rows themselves.

// EvaluationFile is the evaluate stage's aggregate file in its stage directory.
const EvaluationFile = "evaluation.json"

// EvaluationVersion is the format version of EvaluationFile.
const EvaluationVersion = 1

// Limits of the aggregates.
const (
	// ReliabilityBins is the number of equal-width confidence bins of a reliability diagram.
	ReliabilityBins = 10
	// MaxCurvePoints is the most points a ROC or PR curve keeps (see Downsample).
	MaxCurvePoints = 200
	// MaxScatter is the most (actual, predicted) pairs of a regression's scatter.
	MaxScatter = 2000
	// MaxResidualBins is the most bins of a residual histogram.
	MaxResidualBins = 50
	// MaxConfusionClasses is the most classes a confusion matrix is kept for (100 × 100
	// cells); with more, only the per-class scores are kept.
	MaxConfusionClasses = 100
)

// Evaluation is the content of EvaluationFile.
type Evaluation struct {
	FormatVersion int         `json:"format_version"`
	Tables        []EvalEntry `json:"tables"`
	BiasVar       []BiasVar   `json:"bias_variance,omitempty"`
}

// EvalEntry is one model scored on one table for one head: the aggregates (Worst and
// Images are left empty: Build fills them from WorstFile).
type EvalEntry struct {
	TableEval
	// Split is the table's split role.
	Split string `json:"split"`
	// WorstFile is the worst-k Parquet file of the entry, relative to the stage directory
	// (empty without one).
	WorstFile string `json:"worst_file,omitempty"`
}

// ClassificationEval fills e's Labels, Confusion (up to MaxConfusionClasses classes),
// PerClass and Reliability and, for two classes, ROC and PR (class 1 is the positive one),
// from every row: labels holds each row's class id (negative: no label, the row is left
// out), probs each row's k = len(names) class probabilities (or 0/1 votes), row-major. The
// predicted class is the arg-max (ties to the lowest class, as the metrics). It adds "ece"
// (the expected calibration error of the reliability diagram) and, with ROC and PR,
// "average_precision" to e.Metrics.
func ClassificationEval(e *TableEval, labels []int32, probs []float32, names []string) {
	k := len(names)
	if k == 0 || len(probs) != len(labels)*k {
		return
	}
	pred := metrics.ArgMax(probs, k, nil)
	conf := Confusion(labels, pred, k)
	e.Labels = slices.Clone(names)
	e.PerClass = PerClass(conf, names)
	if k <= MaxConfusionClasses {
		e.Confusion = conf
	}
	top := make([]float64, len(labels))
	for i := range labels {
		top[i] = math.NaN()
		if pred[i] >= 0 {
			top[i] = float64(probs[i*k+int(pred[i])])
		}
	}
	rel, ece := Reliability(labels, pred, top, ReliabilityBins)
	e.Reliability = rel
	if e.Metrics == nil {
		e.Metrics = map[string]float64{}
	}
	if finite(ece) {
		e.Metrics["ece"] = ece
	}
	if k == 2 {
		score := make([]float64, len(labels))
		for i := range labels {
			score[i] = float64(probs[i*2+1])
		}
		e.ROC = ROC(labels, score)
		var ap float64
		e.PR, ap = PR(labels, score)
		if e.PR != nil && finite(ap) {
			e.Metrics["average_precision"] = ap
		}
	}
}

// RegressionEval fills e's Scatter (a sample of at most MaxScatter rows, drawn with rng, in
// row order) and Residuals (the histogram of actual − predicted over every row), from each
// row's actual value (NaN: no label, left out) and prediction, both in the target's unit.
func RegressionEval(e *TableEval, actual []float32, predicted []float64, rng *rand.Rand) {
	var rows []int
	for i, y := range actual {
		if i < len(predicted) && !math.IsNaN(float64(y)) && finite(predicted[i]) {
			rows = append(rows, i)
		}
	}
	if len(rows) == 0 {
		return
	}
	sample := SampleRows(len(rows), MaxScatter, rng)
	sc := &Scatter{XLabel: "actual", YLabel: "predicted", X: make([]float64, len(sample)), Y: make([]float64, len(sample))}
	for j, s := range sample {
		sc.X[j] = float64(actual[rows[s]])
		sc.Y[j] = predicted[rows[s]]
	}
	e.Scatter = sc
	res := make([]float64, len(rows))
	for j, i := range rows {
		res[j] = float64(actual[i]) - predicted[i]
	}
	e.Residuals = ResidualHistogram(res, MaxResidualBins)
}

// Confusion counts the rows by true class (rows) and predicted class (columns). Rows without a
// label (negative) are left out, and so are rows without a predicted class (negative: a NaN
// output), which therefore count in a class's support (PerClass) but in no cell.
func Confusion(labels, pred []int32, k int) [][]int64 {
	m := make([][]int64, k)
	for c := range m {
		m[c] = make([]int64, k)
	}
	for i, l := range labels {
		if l < 0 || int(l) >= k || i >= len(pred) || pred[i] < 0 || int(pred[i]) >= k {
			continue
		}
		m[l][pred[i]]++
	}
	return m
}

// PerClass computes each class's precision TP/(TP+FP), recall TP/(TP+FN), F1 (their harmonic
// mean) and support (the rows of that true class) from a confusion matrix. Where a ratio is
// undefined it is 0, as scikit-learn's zero_division=0: precision of a class never predicted,
// recall of a class with support 0, F1 when both are 0. A class with support 0 is kept (its
// support says it is absent).
func PerClass(conf [][]int64, names []string) []ClassStat {
	k := len(conf)
	out := make([]ClassStat, k)
	for c := 0; c < k; c++ {
		var support, predicted int64
		for j := 0; j < k; j++ {
			support += conf[c][j]
			predicted += conf[j][c]
		}
		tp := conf[c][c]
		s := ClassStat{Support: support}
		if c < len(names) {
			s.Label = names[c]
		}
		if predicted > 0 {
			s.Precision = float64(tp) / float64(predicted)
		}
		if support > 0 {
			s.Recall = float64(tp) / float64(support)
		}
		if s.Precision+s.Recall > 0 {
			s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
		}
		out[c] = s
	}
	return out
}

// Reliability is the reliability diagram of the predictions: the rows with a label and a
// predicted class are put in bins equal-width bins of their confidence (the predicted class's
// probability, in [0, 1]; bin b holds [b/bins, (b+1)/bins), the last one including 1), and
// each bin gets its mean confidence, its accuracy (the share of rows whose predicted class is
// the label) and its row count. X holds the bins' centres; an empty bin's confidence and
// accuracy are NaN (null in JSON). The second result is the expected calibration error,
// Σ_b (n_b/n)·|accuracy_b − confidence_b| (NaN without rows).
func Reliability(labels, pred []int32, confidence []float64, bins int) (*Curve, float64) {
	sumConf := make([]float64, bins)
	correct := make([]float64, bins)
	count := make([]float64, bins)
	n := 0.0
	for i, l := range labels {
		if l < 0 || i >= len(pred) || pred[i] < 0 || !finite(confidence[i]) {
			continue
		}
		c := math.Min(math.Max(confidence[i], 0), 1)
		b := min(int(c*float64(bins)), bins-1)
		sumConf[b] += c
		count[b]++
		if pred[i] == l {
			correct[b]++
		}
		n++
	}
	cv := &Curve{Title: "reliability", XLabel: "confidence", YLabel: "accuracy", X: make([]float64, bins),
		Series: []Series{{Name: "accuracy", Values: make([]float64, bins)}, {Name: "confidence", Values: make([]float64, bins)}, {Name: "rows", Values: make([]float64, bins)}}}
	ece := 0.0
	for b := 0; b < bins; b++ {
		cv.X[b] = (float64(b) + 0.5) / float64(bins)
		cv.Series[2].Values[b] = count[b]
		if count[b] == 0 {
			cv.Series[0].Values[b], cv.Series[1].Values[b] = math.NaN(), math.NaN()
			continue
		}
		acc, mc := correct[b]/count[b], sumConf[b]/count[b]
		cv.Series[0].Values[b], cv.Series[1].Values[b] = acc, mc
		ece += count[b] / n * math.Abs(acc-mc)
	}
	if n == 0 {
		ece = math.NaN()
	}
	return cv, ece
}

// thresholdCounts sorts the rows with label 0 or 1 and a finite score by descending score and
// returns the cumulative true and false positives after each group of equal scores (a
// threshold between distinct scores), and the positive and negative totals. Tied scores are
// one threshold: they are counted together, never split by row order.
func thresholdCounts(labels []int32, score []float64) (tp, fp []float64, pos, neg float64) {
	var rows []int
	for i, l := range labels {
		if (l == 0 || l == 1) && i < len(score) && finite(score[i]) {
			rows = append(rows, i)
			if l == 1 {
				pos++
			} else {
				neg++
			}
		}
	}
	sort.SliceStable(rows, func(a, b int) bool { return score[rows[a]] > score[rows[b]] })
	var t, f float64
	for lo := 0; lo < len(rows); {
		hi := lo
		for ; hi < len(rows) && score[rows[hi]] == score[rows[lo]]; hi++ {
			if labels[rows[hi]] == 1 {
				t++
			} else {
				f++
			}
		}
		tp, fp = append(tp, t), append(fp, f)
		lo = hi
	}
	return tp, fp, pos, neg
}

// ROC is the ROC curve of a binary problem (label 1 positive, 0 negative; other labels and
// non-finite scores left out): the false positive rate (X) against the true positive rate
// (series "tpr"), from (0, 0) through one point per distinct score (tied scores move both
// rates at once: a diagonal step) to (1, 1), downsampled to MaxCurvePoints. Nil when a class
// is missing (the curve is undefined).
func ROC(labels []int32, score []float64) *Curve {
	tp, fp, pos, neg := thresholdCounts(labels, score)
	if pos == 0 || neg == 0 {
		return nil
	}
	x, y := []float64{0}, []float64{0}
	for i := range tp {
		x, y = append(x, fp[i]/neg), append(y, tp[i]/pos)
	}
	x, ys := Downsample(x, [][]float64{y}, MaxCurvePoints)
	return &Curve{Title: "ROC", XLabel: "false positive rate", YLabel: "true positive rate", X: x, Series: []Series{{Name: "tpr", Values: ys[0]}}}
}

// PR is the precision-recall curve of a binary problem (as ROC): recall (X) against precision
// (series "precision") at each distinct score, starting at recall 0 with precision 1 (as
// scikit-learn) and ending at recall 1 with the positives' share; downsampled to
// MaxCurvePoints. The second result is the average precision Σ (R_i − R_{i−1})·P_i over all
// thresholds (scikit-learn's average_precision_score). Nil and NaN without positives.
func PR(labels []int32, score []float64) (*Curve, float64) {
	tp, fp, pos, _ := thresholdCounts(labels, score)
	if pos == 0 {
		return nil, math.NaN()
	}
	x, y := []float64{0}, []float64{1}
	ap, prev := 0.0, 0.0
	for i := range tp {
		r, p := tp[i]/pos, tp[i]/(tp[i]+fp[i])
		ap += (r - prev) * p
		prev = r
		x, y = append(x, r), append(y, p)
	}
	x, ys := Downsample(x, [][]float64{y}, MaxCurvePoints)
	return &Curve{Title: "precision-recall", XLabel: "recall", YLabel: "precision", X: x, Series: []Series{{Name: "precision", Values: ys[0]}}}, ap
}

// Downsample keeps at most limit (≥ 2) of the points (x[i], ys[.][i]): the first and the
// last exactly, and between them points evenly spaced by index. It returns new slices; x and
// ys are not modified.
func Downsample(x []float64, ys [][]float64, limit int) ([]float64, [][]float64) {
	idx := sampleIndex(len(x), limit)
	ox := make([]float64, len(idx))
	oys := make([][]float64, len(ys))
	for s := range ys {
		oys[s] = make([]float64, len(idx))
	}
	for j, i := range idx {
		ox[j] = x[i]
		for s := range ys {
			oys[s][j] = ys[s][i]
		}
	}
	return ox, oys
}

// sampleIndex returns the indices 0..n−1 when n ≤ limit, otherwise limit indices from 0 to
// n−1 evenly spaced (rounded), both ends included (limit below 2 counts as 2).
func sampleIndex(n, limit int) []int {
	if n <= limit || n <= 2 {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	limit = max(limit, 2)
	idx := make([]int, limit)
	for j := range idx {
		idx[j] = int(math.Round(float64(j) * float64(n-1) / float64(limit-1)))
	}
	return idx
}

// SampleRows draws k of n row positions without replacement with rng (all of them when
// n ≤ k) and returns them in ascending order.
func SampleRows(n, k int, rng *rand.Rand) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if n <= k {
		return idx
	}
	for i := 0; i < k; i++ { // partial Fisher–Yates
		j := i + rng.IntN(n-i)
		idx[i], idx[j] = idx[j], idx[i]
	}
	idx = idx[:k]
	slices.Sort(idx)
	return idx
}

// ResidualHistogram counts the values in equal-width bins over [min, max]: ⌈√n⌉ bins, at
// most maxBins and at least 1 (one bin when every value is the same). X holds the bins'
// centres and the series "rows" the counts; the last bin includes max.
func ResidualHistogram(values []float64, maxBins int) *Curve {
	lo, hi := math.Inf(1), math.Inf(-1)
	n := 0
	for _, v := range values {
		if finite(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	bins := min(maxBins, int(math.Ceil(math.Sqrt(float64(n)))))
	if hi == lo || bins < 1 {
		bins = 1
	}
	width := (hi - lo) / float64(bins)
	counts := make([]float64, bins)
	for _, v := range values {
		if !finite(v) {
			continue
		}
		b := bins - 1
		if width > 0 {
			b = min(int((v-lo)/width), bins-1)
		}
		counts[b]++
	}
	x := make([]float64, bins)
	for b := range x {
		x[b] = lo + (float64(b)+0.5)*width
	}
	return &Curve{Title: "residuals", XLabel: "actual − predicted", YLabel: "rows", X: x, Series: []Series{{Name: "rows", Values: counts}}}
}
