package metrics_test

import (
	"fmt"

	"github.com/pipe-ml/pipe/nn/metrics"
)

func Example() {
	// Four rows of a binary model: columns [1-p, p]. The second label is missing.
	labels := []int32{0, -1, 1, 1}
	probs := []float32{
		0.9, 0.1,
		0.5, 0.5,
		0.3, 0.7,
		0.6, 0.4,
	}
	fmt.Printf("accuracy %.3f\n", metrics.Accuracy(labels, probs, 2))
	fmt.Printf("log loss %.3f\n", metrics.LogLoss(labels, probs, 2))
	fmt.Printf("ROC AUC  %.3f\n", metrics.ROCAUC(labels, probs, 2))
	fmt.Printf("RMSE     %.3f\n", metrics.RMSE([]float32{1, 2, 3}, []float32{1, 2, 5}))
	// Output:
	// accuracy 0.667
	// log loss 0.459
	// ROC AUC  1.000
	// RMSE     1.155
}
