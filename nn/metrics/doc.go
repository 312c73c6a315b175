// Package metrics computes evaluation metrics for classification and regression, in float64
// whatever the input precision.
//
// Classification metrics take integer labels and row-major class probabilities: probs has
// n rows of k columns (k >= 2), row i being the model's distribution over the classes for
// labels[i]. A binary model passes k = 2 columns [1-p, p]. A label < 0 means "missing": the row
// is skipped. Regression metrics skip the rows whose target is NaN.
//
// Inputs the metric cannot be computed on give NaN rather than a plausible-looking number:
// mismatched lengths, k < 2, a label >= k, no usable row, a negative or NaN weight. NaN
// predictions propagate. Every function documents its other conventions (ties, clipping,
// degenerate cases) and names the scikit-learn function it agrees with.
package metrics
