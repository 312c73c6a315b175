package report

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn/metrics"
)

const tol = 1e-12

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b))
}

func nearAll(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if !near(got[i], want[i]) {
			t.Errorf("%s[%d] = %v, want %v (all: %v)", what, i, got[i], want[i], got)
		}
	}
}

// oneHot returns probabilities that put 0.9 on pred and share 0.1 among the other classes.
func oneHot(pred []int32, k int) []float32 {
	p := make([]float32, len(pred)*k)
	for i, c := range pred {
		for j := 0; j < k; j++ {
			p[i*k+j] = 0.1 / float32(k-1)
		}
		p[i*k+int(c)] = 0.9
	}
	return p
}

// TestConfusionAndPerClass: a 3×3 confusion matrix and its per-class scores, computed by
// hand; an unlabelled row counts nowhere; a class that is never the label nor predicted has
// support 0 and scores 0; a class predicted but never true has precision 0.
func TestConfusionAndPerClass(t *testing.T) {
	labels := []int32{0, 0, 0, 1, 1, 2, 2, 2, 2, -1}
	pred := []int32{0, 1, 0, 1, 2, 2, 2, 0, 2, 1}
	e := &TableEval{}
	ClassificationEval(e, labels, oneHot(pred, 3), []string{"a", "b", "c"})
	want := [][]int64{{2, 1, 0}, {0, 1, 1}, {1, 0, 3}}
	if !slices.EqualFunc(e.Confusion, want, slices.Equal) {
		t.Fatalf("confusion %v, want %v", e.Confusion, want)
	}
	wantStats := []ClassStat{
		{Label: "a", Precision: 2.0 / 3, Recall: 2.0 / 3, F1: 2.0 / 3, Support: 3},
		{Label: "b", Precision: 0.5, Recall: 0.5, F1: 0.5, Support: 2},
		{Label: "c", Precision: 0.75, Recall: 0.75, F1: 0.75, Support: 4},
	}
	for i, w := range wantStats {
		g := e.PerClass[i]
		if g.Label != w.Label || g.Support != w.Support || !near(g.Precision, w.Precision) || !near(g.Recall, w.Recall) || !near(g.F1, w.F1) {
			t.Errorf("class %d: %+v, want %+v", i, g, w)
		}
	}
	// The macro F1 of the per-class scores is the metric's.
	var f1 float64
	for _, s := range e.PerClass {
		f1 += s.F1
	}
	if m := metrics.F1Macro(labels, oneHot(pred, 3), 3); !near(f1/3, m) {
		t.Errorf("mean F1 %v, metrics.F1Macro %v", f1/3, m)
	}
	if e.ROC != nil || e.PR != nil {
		t.Error("ROC or PR for three classes")
	}

	// Class 2 never true nor predicted; class 1 predicted but never true.
	stats := PerClass(Confusion([]int32{0, 0, 0}, []int32{0, 1, 0}, 3), []string{"x", "y", "z"})
	if s := stats[2]; s != (ClassStat{Label: "z"}) {
		t.Errorf("absent class: %+v, want zeros with support 0", s)
	}
	if s := stats[1]; s.Precision != 0 || s.Recall != 0 || s.F1 != 0 || s.Support != 0 {
		t.Errorf("class predicted once, never true: %+v", s)
	}
	if s := stats[0]; !near(s.Precision, 1) || !near(s.Recall, 2.0/3) || !near(s.F1, 0.8) || s.Support != 3 {
		t.Errorf("class x: %+v", s)
	}
}

// TestROCWithTies: six rows with tied scores across classes; the tie is one threshold (a
// diagonal step), and the curve's area is the Mann–Whitney AUC of nn/metrics.
func TestROCWithTies(t *testing.T) {
	labels := []int32{1, 0, 1, 0, 1, 0}
	score := []float64{0.9, 0.8, 0.8, 0.3, 0.5, 0.3}
	roc := ROC(labels, score)
	nearAll(t, "fpr", roc.X, []float64{0, 0, 1.0 / 3, 1.0 / 3, 1})
	nearAll(t, "tpr", roc.Series[0].Values, []float64{0, 1.0 / 3, 2.0 / 3, 1, 1})
	var area float64
	for i := 1; i < len(roc.X); i++ {
		area += (roc.X[i] - roc.X[i-1]) * (roc.Series[0].Values[i] + roc.Series[0].Values[i-1]) / 2
	}
	probs := make([]float32, 2*len(score))
	for i, s := range score {
		probs[2*i], probs[2*i+1] = float32(1-s), float32(s)
	}
	if auc := metrics.ROCAUC(labels, probs, 2); !near(area, 5.0/6) || math.Abs(area-auc) > 1e-6 {
		t.Errorf("area under the curve %v, want 5/6 and metrics.ROCAUC %v", area, auc)
	}

	pr, ap := PR(labels, score)
	nearAll(t, "recall", pr.X, []float64{0, 1.0 / 3, 2.0 / 3, 1, 1})
	nearAll(t, "precision", pr.Series[0].Values, []float64{1, 1, 2.0 / 3, 0.75, 0.5})
	if !near(ap, 29.0/36) {
		t.Errorf("average precision %v, want 29/36", ap)
	}

	// Through ClassificationEval: two classes give both curves and the average precision.
	e := &TableEval{}
	ClassificationEval(e, labels, probs, []string{"no", "yes"})
	if e.ROC == nil || e.PR == nil || math.Abs(e.Metrics["average_precision"]-29.0/36) > 1e-6 {
		t.Errorf("binary: ROC %v, PR %v, metrics %v", e.ROC != nil, e.PR != nil, e.Metrics)
	}

	// A missing class: the ROC is undefined; without positives the PR too.
	if ROC([]int32{1, 1}, []float64{0.2, 0.3}) != nil {
		t.Error("ROC without negatives")
	}
	if c, ap := PR([]int32{0, 0}, []float64{0.2, 0.3}); c != nil || !math.IsNaN(ap) {
		t.Error("PR without positives")
	}
}

// TestCurvesDownsampled: a ROC over 5,000 distinct scores keeps MaxCurvePoints points, its
// ends exact, in order.
func TestCurvesDownsampled(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 5000
	labels := make([]int32, n)
	score := make([]float64, n)
	for i := range labels {
		labels[i] = int32(rng.IntN(2))
		score[i] = rng.Float64() + 0.3*float64(labels[i])
	}
	roc := ROC(labels, score)
	if len(roc.X) != MaxCurvePoints {
		t.Fatalf("%d points, want %d", len(roc.X), MaxCurvePoints)
	}
	last := len(roc.X) - 1
	if roc.X[0] != 0 || roc.Series[0].Values[0] != 0 || roc.X[last] != 1 || roc.Series[0].Values[last] != 1 {
		t.Errorf("ends (%v, %v) and (%v, %v), want (0, 0) and (1, 1)", roc.X[0], roc.Series[0].Values[0], roc.X[last], roc.Series[0].Values[last])
	}
	for i := 1; i < len(roc.X); i++ {
		if roc.X[i] < roc.X[i-1] || roc.Series[0].Values[i] < roc.Series[0].Values[i-1] {
			t.Fatalf("point %d goes back", i)
		}
	}
	x, ys := Downsample([]float64{1, 2, 3}, [][]float64{{4, 5, 6}}, 200)
	nearAll(t, "short x", x, []float64{1, 2, 3})
	nearAll(t, "short y", ys[0], []float64{4, 5, 6})
	if idx := sampleIndex(11, 3); !slices.Equal(idx, []int{0, 5, 10}) {
		t.Errorf("sampleIndex(11, 3) = %v", idx)
	}
}

// TestReliability: bins by confidence, with each bin's mean confidence, accuracy and count,
// and the expected calibration error, by hand; empty bins are NaN.
func TestReliability(t *testing.T) {
	labels := []int32{0, 1, 2, 0, 1}
	pred := []int32{0, 0, 2, 0, 1}
	conf := []float64{0.95, 0.92, 0.55, 1.0, 0.7}
	labels[4] = -1 // unlabelled: left out
	c, ece := Reliability(labels, pred, conf, 10)
	acc, mc, n := c.Series[0].Values, c.Series[1].Values, c.Series[2].Values
	if !near(acc[9], 2.0/3) || !near(mc[9], (0.95+0.92+1.0)/3) || n[9] != 3 {
		t.Errorf("bin 9: accuracy %v, confidence %v, rows %v", acc[9], mc[9], n[9])
	}
	if !near(acc[5], 1) || !near(mc[5], 0.55) || n[5] != 1 {
		t.Errorf("bin 5: accuracy %v, confidence %v, rows %v", acc[5], mc[5], n[5])
	}
	if !math.IsNaN(acc[0]) || !math.IsNaN(mc[7]) || n[7] != 0 {
		t.Errorf("empty bins: accuracy %v, confidence %v, rows %v", acc[0], mc[7], n[7])
	}
	if !near(c.X[0], 0.05) || !near(c.X[9], 0.95) {
		t.Errorf("bin centres %v", c.X)
	}
	want := 0.75*math.Abs(2.0/3-(0.95+0.92+1.0)/3) + 0.25*0.45
	if !near(ece, want) {
		t.Errorf("ECE %v, want %v", ece, want)
	}
}

// TestRegressionAggregates: the residual histogram's bins by hand; the scatter is a seeded
// sample of MaxScatter rows in row order, the same for the same seed, each pair a row's.
func TestRegressionAggregates(t *testing.T) {
	h := ResidualHistogram([]float64{-2, -1, 0, 1, 2, 2, math.NaN()}, 50)
	nearAll(t, "centres", h.X, []float64{-2 + 2.0/3, 0, 2 - 2.0/3})
	nearAll(t, "counts", h.Series[0].Values, []float64{2, 1, 3})
	if h := ResidualHistogram([]float64{3, 3}, 50); len(h.X) != 1 || h.Series[0].Values[0] != 2 {
		t.Errorf("constant residuals: %+v", h)
	}
	if h := ResidualHistogram(make([]float64, 10000), 50); len(h.X) != 1 {
		t.Errorf("10,000 zeros: %d bins", len(h.X))
	}
	n := 3000
	actual := make([]float32, n)
	pred := make([]float64, n)
	for i := range actual {
		actual[i] = float32(i)
		pred[i] = float64(i) + float64(i%5)/10
	}
	actual[7] = float32(math.NaN())
	a, b := &TableEval{}, &TableEval{}
	RegressionEval(a, actual, pred, rand.New(rand.NewPCG(3, 4)))
	RegressionEval(b, actual, pred, rand.New(rand.NewPCG(3, 4)))
	if len(a.Scatter.X) != MaxScatter || !slices.Equal(a.Scatter.X, b.Scatter.X) {
		t.Fatalf("scatter of %d points, or not the same for the same seed", len(a.Scatter.X))
	}
	for j := range a.Scatter.X {
		if a.Scatter.Y[j] != a.Scatter.X[j]+float64(int(a.Scatter.X[j])%5)/10 || (j > 0 && a.Scatter.X[j] <= a.Scatter.X[j-1]) || a.Scatter.X[j] == 7 {
			t.Fatalf("point %d: (%v, %v)", j, a.Scatter.X[j], a.Scatter.Y[j])
		}
	}
	// Residuals −0.4, ..., 0: one value per fifth of the range, 55 bins capped at 50.
	var total float64
	for _, c := range a.Residuals.Series[0].Values {
		total += c
	}
	if len(a.Residuals.X) != MaxResidualBins || total != float64(n-1) || !near(a.Residuals.X[0], -0.4+0.4/100) {
		t.Errorf("residuals %d bins, %v", len(a.Residuals.X), a.Residuals.Series[0].Values)
	}
}

// TestSeriesJSON: NaN and infinities are null in JSON, and null reads back as NaN; so is a
// member's unknown val metric.
func TestSeriesJSON(t *testing.T) {
	s := Series{Name: "val_loss", Values: []float64{1.5, math.NaN(), math.Inf(1), 1e-9, 0}}
	b, err := json.Marshal(Curve{Series: []Series{s}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `{"name":"val_loss","values":[1.5,null,null,1e-9,0]}`) {
		t.Fatalf("JSON %s", b)
	}
	var c Curve
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	got := c.Series[0].Values
	if got[0] != 1.5 || !math.IsNaN(got[1]) || !math.IsNaN(got[2]) || got[3] != 1e-9 {
		t.Errorf("read back %v", got)
	}

	// A member whose val metric is unknown: null, and NaN again when read back.
	mb, err := json.Marshal(Member{Index: 2, Name: "m", ValMetric: math.NaN(), EpochsRun: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mb), `"val_metric":null`) || !strings.Contains(string(mb), `"epochs_run":3`) {
		t.Errorf("member JSON %s", mb)
	}
	var m Member
	if err := json.Unmarshal(mb, &m); err != nil || !math.IsNaN(m.ValMetric) || m.Index != 2 || m.EpochsRun != 3 {
		t.Errorf("member read back %+v, %v", m, err)
	}
	if mb, _ := json.Marshal(Member{ValMetric: 0.5}); !strings.Contains(string(mb), `"val_metric":0.5`) {
		t.Errorf("member JSON %s", mb)
	}
}
