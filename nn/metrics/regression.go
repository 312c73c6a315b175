package metrics

import "math"

// RMSE is the root mean squared error sqrt(mean((y-pred)²)) over the rows whose target y is
// not NaN (scikit-learn root_mean_squared_error). A NaN prediction gives NaN.
func RMSE(y, pred []float32) float64 {
	if len(y) != len(pred) {
		return math.NaN()
	}
	return math.Sqrt(meanError(y, pred, nil, func(d float64) float64 { return d * d }))
}

// RMSEWeighted is RMSE with a weight per row: sqrt(sum(w*(y-pred)²)/sum(w)).
func RMSEWeighted(y, pred, weights []float32) float64 {
	if len(y) != len(pred) || !validWeights(weights, len(y)) {
		return math.NaN()
	}
	return math.Sqrt(meanError(y, pred, weights, func(d float64) float64 { return d * d }))
}

// MAE is the mean absolute error mean(|y-pred|) over the rows whose target y is not NaN
// (scikit-learn mean_absolute_error).
func MAE(y, pred []float32) float64 {
	if len(y) != len(pred) {
		return math.NaN()
	}
	return meanError(y, pred, nil, math.Abs)
}

// MAEWeighted is MAE with a weight per row: sum(w*|y-pred|)/sum(w).
func MAEWeighted(y, pred, weights []float32) float64 {
	if len(y) != len(pred) || !validWeights(weights, len(y)) {
		return math.NaN()
	}
	return meanError(y, pred, weights, math.Abs)
}

func meanError(y, pred, weights []float32, loss func(float64) float64) float64 {
	var sum, total float64
	for i, t := range y {
		if t != t {
			continue
		}
		w := 1.0
		if weights != nil {
			w = float64(weights[i])
		}
		sum += w * loss(float64(t)-float64(pred[i]))
		total += w
	}
	if total == 0 {
		return math.NaN()
	}
	return sum / total
}

// R2 is the coefficient of determination 1 - SS_res/SS_tot over the rows whose target is not
// NaN (scikit-learn r2_score): 1 for a perfect fit, 0 for predicting the mean, negative for
// worse. It is NaN when the target is constant (SS_tot = 0), where R² is undefined;
// scikit-learn's force_finite convention would report 1 or 0 there instead.
func R2(y, pred []float32) float64 {
	if len(y) != len(pred) {
		return math.NaN()
	}
	var mean float64
	n := 0
	for _, t := range y {
		if t == t {
			mean += float64(t)
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	mean /= float64(n)
	var ssRes, ssTot float64
	for i, t := range y {
		if t != t {
			continue
		}
		d := float64(t) - float64(pred[i])
		ssRes += d * d
		m := float64(t) - mean
		ssTot += m * m
	}
	if ssTot == 0 {
		return math.NaN()
	}
	return 1 - ssRes/ssTot
}
