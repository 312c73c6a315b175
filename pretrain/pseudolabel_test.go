package pretrain

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

func TestSelectConfident(t *testing.T) {
	// Six rows, three classes; top classes 0, 0, 1, 2, 1, 0 with confidences .97 .60 .99 .50
	// .951 .80.
	probs := []float32{
		0.97, 0.02, 0.01,
		0.60, 0.30, 0.10,
		0.005, 0.99, 0.005,
		0.25, 0.25, 0.50,
		0.02, 0.951, 0.029,
		0.80, 0.15, 0.05,
	}
	for _, tc := range []struct {
		name        string
		opts        PseudoLabelOptions
		wantPicked  []int
		wantLabels  []int32
		wantWeights []float32
	}{
		{"default_threshold_0.95", PseudoLabelOptions{}, []int{0, 2, 4}, []int32{0, 1, 1}, []float32{1, 1, 1}},
		{"threshold_0.7_weight_0.5", PseudoLabelOptions{Threshold: 0.7, Weight: 0.5}, []int{0, 2, 4, 5}, []int32{0, 1, 1, 0}, []float32{0.5, 0.5, 0.5, 0.5}},
		{"confidence_weight", PseudoLabelOptions{Threshold: 0.95, ConfidenceWeight: true}, []int{0, 2, 4}, []int32{0, 1, 1}, []float32{0.97, 0.99, 0.951}},
		// Class 0 rows {0: .97, 1: .60, 5: .80}: top half (round(1.5) = 2) = rows 0, 5; class 1
		// rows {2: .99, 4: .951}: round(1) = 1 → row 2; class 2 row {3}: round(0.5) = 1 (half
		// away from zero) → row 3.
		{"top_share_half", PseudoLabelOptions{TopShare: 0.5}, []int{0, 2, 3, 5}, []int32{0, 1, 2, 0}, []float32{1, 1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			labels, weights, picked, err := selectConfident(probs, 3, tc.opts)
			mustNoErr(t, err)
			if !reflect.DeepEqual(picked, tc.wantPicked) || !reflect.DeepEqual(labels, tc.wantLabels) {
				t.Errorf("picked %v labels %v, want %v %v", picked, labels, tc.wantPicked, tc.wantLabels)
			}
			for i := range tc.wantWeights {
				if i >= len(weights) || math.Abs(float64(weights[i]-tc.wantWeights[i])) > 1e-6 {
					t.Fatalf("weights %v, want %v", weights, tc.wantWeights)
				}
			}
		})
	}
	if _, _, _, err := selectConfident(probs, 3, PseudoLabelOptions{Threshold: 2}); err == nil {
		t.Error("threshold 2 accepted")
	}
}

// blobs is an easy 3-class problem: Gaussian blobs in 2-D.
func blobs(rows int, seed uint64) ([]float32, []int32) {
	rng := rand.New(rand.NewPCG(seed, 3))
	centres := [][2]float64{{-2, 0}, {2, 0}, {0, 2.5}}
	x := make([]float32, rows*2)
	y := make([]int32, rows)
	for r := range rows {
		c := rng.IntN(3)
		y[r] = int32(c)
		x[2*r] = float32(centres[c][0] + 0.8*rng.NormFloat64())
		x[2*r+1] = float32(centres[c][1] + 0.8*rng.NormFloat64())
	}
	return x, y
}

func TestSelfTrainAddsRowsAndDoesNotHurt(t *testing.T) {
	const rows = 1500
	x, y := blobs(rows, 1)
	visible := make([]int32, rows)
	for i := range visible {
		visible[i] = -1
		if i < 30 || i >= 1300 { // 30 labelled rows; 1300.. validation and test
			visible[i] = y[i]
		}
	}
	base := train.Dataset{X: x, NumInputs: 2, Targets: []train.Target{{Labels: visible}}}
	labelled, unlabeled := rowsView(base, 0, 30), rowsView(base, 30, 1300)
	val := rowsView(base, 1300, 1400)
	test := rowsView(train.Dataset{X: x, NumInputs: 2, Targets: []train.Target{{Labels: y}}}, 1400, rows)
	hidden := y[30:1300]
	m, err := nn.Build(nn.Spec{NumInputs: 2, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 16, Activation: "relu"}},
		Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}, rand.New(rand.NewPCG(1, 1)))
	mustNoErr(t, err)
	tc := train.Config{Epochs: 40, BatchSize: 16, Seed: 1, Optimizer: optimLR(0.01), EarlyStopping: train.EarlyStopping{Disabled: true}}
	_, err = train.Fit(context.Background(), m, labelled, val, tc)
	mustNoErr(t, err)
	before, err := accuracy(m, test, 0)
	mustNoErr(t, err)
	tc.Epochs = 5
	rep, err := SelfTrain(context.Background(), m, labelled, unlabeled, val, tc, PseudoLabelOptions{Threshold: 0.9}, 2, hidden)
	mustNoErr(t, err)
	after, err := accuracy(m, test, 0)
	mustNoErr(t, err)
	t.Logf("test accuracy %.3f -> %.3f; rounds %+v", before, after, rep.Rounds)
	if len(rep.Rounds) != 2 {
		t.Fatalf("%d rounds reported, want 2", len(rep.Rounds))
	}
	for _, r := range rep.Rounds {
		if r.Added < 300 {
			t.Errorf("round %d added %d rows, want at least 300 of the 1270 unlabelled", r.Round, r.Added)
		}
		if !(r.PseudoAccuracy > 0.9) {
			t.Errorf("round %d pseudo-label accuracy %.3f, want > 0.9 at threshold 0.9", r.Round, r.PseudoAccuracy)
		}
	}
	if after < before-0.02 || after < 0.85 {
		t.Errorf("test accuracy %.3f after self-training vs %.3f before: want no loss beyond 0.02 and >= 0.85", after, before)
	}
}

// TestWithPseudoLabelsSeparateBases checks the combined training set when the labelled and
// unlabelled views do not share a base matrix: rows are gathered, pseudo-labels and weights
// land on the right rows, and the inputs are not modified.
func TestWithPseudoLabelsSeparateBases(t *testing.T) {
	lab := train.Dataset{X: []float32{1, 2, 3, 4, 5, 6}, NumInputs: 2, Targets: []train.Target{{Labels: []int32{0, 1, 1}}}, Index: []int{2, 0}}
	unl := train.Dataset{X: []float32{7, 8, 9, 10}, NumInputs: 2}
	got, err := withPseudoLabels(lab, unl, 0, []int{1}, []int32{2}, []float32{0.5})
	mustNoErr(t, err)
	if got.Len() != 3 {
		t.Fatalf("%d rows, want 3", got.Len())
	}
	var xs []float32
	var ys []int32
	var ws []float32
	for i := range got.Len() {
		r := got.Index[i]
		xs = append(xs, got.X[2*r], got.X[2*r+1])
		ys = append(ys, got.Targets[0].Labels[r])
		ws = append(ws, got.Weights[r])
	}
	if !reflect.DeepEqual(xs, []float32{5, 6, 1, 2, 9, 10}) || !reflect.DeepEqual(ys, []int32{1, 0, 2}) || !reflect.DeepEqual(ws, []float32{1, 1, 0.5}) {
		t.Errorf("rows %v labels %v weights %v", xs, ys, ws)
	}
	if !reflect.DeepEqual(lab.Targets[0].Labels, []int32{0, 1, 1}) {
		t.Error("labelled targets modified")
	}
}
