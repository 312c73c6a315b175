package metrics

import "math"

// probClip bounds the probabilities in LogLoss, as scikit-learn's log_loss.
const probClip = 1e-15

// validShape reports whether probs holds len(labels) rows of k >= 2 columns and every label
// is < k.
func validShape(labels []int32, probs []float32, k int) bool {
	if k < 2 || len(probs) != len(labels)*k {
		return false
	}
	for _, l := range labels {
		if int(l) >= k {
			return false
		}
	}
	return true
}

// validWeights reports whether weights has one finite, non-negative entry per row.
func validWeights(weights []float32, n int) bool {
	if len(weights) != n {
		return false
	}
	for _, w := range weights {
		if !(w >= 0) || math.IsInf(float64(w), 0) {
			return false
		}
	}
	return true
}

// rowArgMax is the index of the largest entry of row, the first on ties, or -1 when the row
// holds a NaN.
func rowArgMax(row []float32) int32 {
	best := int32(0)
	for j, v := range row {
		if v != v {
			return -1
		}
		if v > row[best] {
			best = int32(j)
		}
	}
	return best
}

// ArgMax writes the predicted class of each of the len(probs)/k rows into dst (reused when its
// capacity suffices, allocated otherwise) and returns it. Ties go to the lowest class index
// (as numpy.argmax); a row containing a NaN gets -1, so it never counts as a correct
// prediction. It returns nil when k < 1 or len(probs) is not a multiple of k.
func ArgMax(probs []float32, k int, dst []int32) []int32 {
	if k < 1 || len(probs)%k != 0 {
		return nil
	}
	n := len(probs) / k
	if cap(dst) < n {
		dst = make([]int32, n)
	}
	dst = dst[:n]
	for i := range dst {
		dst[i] = rowArgMax(probs[i*k : (i+1)*k])
	}
	return dst
}

// Accuracy is the fraction of rows whose arg-max class (see ArgMax) equals the label, over the
// rows whose label is not missing (scikit-learn accuracy_score).
func Accuracy(labels []int32, probs []float32, k int) float64 {
	if !validShape(labels, probs, k) {
		return math.NaN()
	}
	return accuracy(labels, probs, k, nil)
}

// AccuracyWeighted is Accuracy with a weight per row: sum(w*correct)/sum(w) over the rows whose
// label is not missing (scikit-learn accuracy_score with sample_weight).
func AccuracyWeighted(labels []int32, probs []float32, k int, weights []float32) float64 {
	if !validShape(labels, probs, k) || !validWeights(weights, len(labels)) {
		return math.NaN()
	}
	return accuracy(labels, probs, k, weights)
}

func accuracy(labels []int32, probs []float32, k int, weights []float32) float64 {
	var correct, total float64
	for i, l := range labels {
		if l < 0 {
			continue
		}
		w := 1.0
		if weights != nil {
			w = float64(weights[i])
		}
		total += w
		if rowArgMax(probs[i*k:(i+1)*k]) == l {
			correct += w
		}
	}
	if total == 0 {
		return math.NaN()
	}
	return correct / total
}

// LogLoss is the mean negative log-likelihood of the labels, -mean(log p[label]), with each
// probability clipped to [1e-15, 1-1e-15] (scikit-learn log_loss). Rows are not renormalised:
// pass probabilities that sum to 1. A NaN probability gives NaN.
func LogLoss(labels []int32, probs []float32, k int) float64 {
	if !validShape(labels, probs, k) {
		return math.NaN()
	}
	return logLoss(labels, probs, k, nil)
}

// LogLossWeighted is LogLoss with a weight per row: sum(w*nll)/sum(w).
func LogLossWeighted(labels []int32, probs []float32, k int, weights []float32) float64 {
	if !validShape(labels, probs, k) || !validWeights(weights, len(labels)) {
		return math.NaN()
	}
	return logLoss(labels, probs, k, weights)
}

func logLoss(labels []int32, probs []float32, k int, weights []float32) float64 {
	var sum, total float64
	for i, l := range labels {
		if l < 0 {
			continue
		}
		w := 1.0
		if weights != nil {
			w = float64(weights[i])
		}
		p := float64(probs[i*k+int(l)])
		if p != p {
			return math.NaN()
		}
		p = min(max(p, probClip), 1-probClip)
		sum -= w * math.Log(p)
		total += w
	}
	if total == 0 {
		return math.NaN()
	}
	return sum / total
}

// F1Macro is the unweighted mean over classes of the per-class F1 score 2TP/(2TP+FP+FN), the
// prediction being the arg-max class (see ArgMax). As scikit-learn's f1_score(average="macro"),
// it averages over the classes that occur among the labels or the predictions; a class that
// occurs only among the predictions contributes 0.
func F1Macro(labels []int32, probs []float32, k int) float64 {
	if !validShape(labels, probs, k) {
		return math.NaN()
	}
	tp := make([]float64, k)
	fp := make([]float64, k)
	fn := make([]float64, k)
	rows := 0
	for i, l := range labels {
		if l < 0 {
			continue
		}
		rows++
		pred := rowArgMax(probs[i*k : (i+1)*k])
		switch {
		case pred == l:
			tp[l]++
		case pred < 0: // NaN row: a miss for the true class, no predicted class
			fn[l]++
		default:
			fn[l]++
			fp[pred]++
		}
	}
	if rows == 0 {
		return math.NaN()
	}
	var sum float64
	classes := 0
	for c := range k {
		d := 2*tp[c] + fp[c] + fn[c]
		if d == 0 {
			continue
		}
		sum += 2 * tp[c] / d
		classes++
	}
	return sum / float64(classes)
}
