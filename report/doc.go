// Package report builds report.html, the page a person looks at after a run: the run's
// status, durations and DAG, and per stage the learning curves, the training monitor, the
// model summary, the evaluation (confusion matrix, per-class scores, calibration, ROC and PR
// curves, predicted against actual, residuals, the bias/variance table, the worst rows, as
// images when the input is image-shaped), ensemble members beside their combiners, and
// pseudo-label rounds.
//
// Build reads a run directory into a Report (the data model, aggregated in Go: the page holds
// no raw rows beyond the worst-k); Write renders it as one self-contained HTML file that works
// offline (the chart library, uPlot, and the page's script and styles are inlined).
package report
