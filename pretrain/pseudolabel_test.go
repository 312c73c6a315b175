package pretrain

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
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

// TestPredictViewsAveragesAugmentedCopies checks the test-time augmentation of the teacher
// against a reference computed by hand: with a deterministic augmentation (negate feature 0)
// the averaged probabilities are (p(x) + views·p(aug(x))) / (views + 1), and the inputs are
// not modified.
func TestPredictViewsAveragesAugmentedCopies(t *testing.T) {
	x, _ := blobs(50, 2)
	d := train.Dataset{X: x, NumInputs: 2, Index: []int{4, 1, 7, 30, 12}}
	orig := append([]float32(nil), x...)
	m, err := nn.Build(nn.Spec{NumInputs: 2, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 8, Activation: "relu"}},
		Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}, rand.New(rand.NewPCG(1, 1)))
	mustNoErr(t, err)
	negate := func(b *nn.Batch, _ *nn.Targets, _ *rand.Rand) {
		for r := range b.Rows {
			b.X[r*2] = -b.X[r*2]
		}
	}
	flipped := append([]float32(nil), x...)
	for r := 0; r < len(flipped)/2; r++ {
		flipped[2*r] = -flipped[2*r]
	}
	clean, k, err := predictView(m, d, 0)
	mustNoErr(t, err)
	aug, _, err := predictView(m, train.Dataset{X: flipped, NumInputs: 2, Index: d.Index}, 0)
	mustNoErr(t, err)
	for _, tc := range []struct {
		name    string
		views   int
		augment func(*nn.Batch, *nn.Targets, *rand.Rand)
	}{
		{"no_views", 0, negate},
		{"no_augmenter", 3, nil},
		{"one_view", 1, negate},
		{"three_views", 3, negate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, gotK, err := predictViews(m, d, 0, tc.views, tc.augment, rand.New(rand.NewPCG(1, 2)))
			mustNoErr(t, err)
			views := tc.views
			if tc.augment == nil {
				views = 0
			}
			if gotK != k || len(got) != len(clean) {
				t.Fatalf("width %d, %d values; want %d, %d", gotK, len(got), k, len(clean))
			}
			for i := range got {
				want := (float64(clean[i]) + float64(views)*float64(aug[i])) / float64(views+1)
				if math.Abs(float64(got[i])-want) > 1e-6 {
					t.Fatalf("value %d: %g, want %g", i, got[i], want)
				}
			}
			if !reflect.DeepEqual(x, orig) {
				t.Fatal("inputs modified")
			}
		})
	}
}

// selfTrainSetup is a small self-training problem with a model fitted on its 30 labelled rows.
func selfTrainSetup(t *testing.T) (m *nn.Model, labelled, unlabeled, val train.Dataset, tc train.Config) {
	t.Helper()
	const rows = 800
	x, y := blobs(rows, 5)
	visible := make([]int32, rows)
	for i := range visible {
		visible[i] = -1
		if i < 30 || i >= 700 {
			visible[i] = y[i]
		}
	}
	base := train.Dataset{X: x, NumInputs: 2, Targets: []train.Target{{Labels: visible}}}
	labelled, unlabeled, val = rowsView(base, 0, 30), rowsView(base, 30, 700), rowsView(base, 700, rows)
	m, err := nn.Build(nn.Spec{NumInputs: 2, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 12, Activation: "relu"}},
		Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}, rand.New(rand.NewPCG(3, 1)))
	mustNoErr(t, err)
	tc = train.Config{Epochs: 20, BatchSize: 16, Seed: 4, Optimizer: optimLR(0.01), EarlyStopping: train.EarlyStopping{Disabled: true}}
	_, err = train.Fit(context.Background(), m, labelled, val, tc)
	mustNoErr(t, err)
	tc.Epochs = 3
	return m, labelled, unlabeled, val, tc
}

// TestSelfTrainRestart checks Restart against a hand-written loop: round r picks with round
// r−1's model and trains a fresh copy of the starting weights with seed Seed+r.
func TestSelfTrainRestart(t *testing.T) {
	ctx := context.Background()
	m, labelled, unlabeled, val, tc := selfTrainSetup(t)
	start := snapshot(m)
	opts := PseudoLabelOptions{Threshold: 0.8}
	teacher, err := nn.Build(m.Spec(), rand.New(rand.NewPCG(9, 9)))
	mustNoErr(t, err)
	start.restoreTo(teacher)
	for round := 1; round <= 2; round++ {
		labels, weights, picked, err := PseudoLabel(teacher, unlabeled, opts)
		mustNoErr(t, err)
		combined, err := withPseudoLabels(labelled, unlabeled, 0, picked, labels, weights)
		mustNoErr(t, err)
		start.restoreTo(teacher)
		rtc := tc
		rtc.Seed = tc.Seed + uint64(round)
		_, err = train.Fit(ctx, teacher, combined, val, rtc)
		mustNoErr(t, err)
	}
	opts.Restart = true
	rep, err := SelfTrain(ctx, m, labelled, unlabeled, val, tc, opts, 2, nil)
	mustNoErr(t, err)
	if rep.BestRound != 2 {
		t.Errorf("best round %d without KeepBest, want the last (2)", rep.BestRound)
	}
	want := paramCopy(teacher)
	for name, got := range paramCopy(m) {
		for i := range got {
			if math.Abs(float64(got[i]-want[name][i])) > 1e-5 {
				t.Fatalf("%s[%d] = %g, hand-written restart loop %g", name, i, got[i], want[name][i])
			}
		}
	}
	// Continuing instead of restarting must give other weights (the test above is not vacuous).
	m2, labelled, unlabeled, val, tc := selfTrainSetup(t)
	_, err = SelfTrain(ctx, m2, labelled, unlabeled, val, tc, PseudoLabelOptions{Threshold: 0.8}, 2, nil)
	mustNoErr(t, err)
	if reflect.DeepEqual(paramCopy(m2), want) {
		t.Error("continuing and restarting gave the same weights")
	}
}

// TestSelfTrainAnneal checks Anneal against a hand-written loop whose round r trains at a
// cosine from base·(1+cos(π(r−1)/R))/2 down to base·(1+cos(πr/R))/2, and checks the round
// boundaries of the schedule: continuous, from base to 0.
func TestSelfTrainAnneal(t *testing.T) {
	ctx := context.Background()
	const rounds = 3
	m, labelled, unlabeled, val, tc := selfTrainSetup(t)
	tc.Schedule = optim.ScheduleConfig{Name: "step", StepEpochs: 1, Gamma: 0.5} // replaced by Anneal
	base := tc.Optimizer.LR
	teacher, err := nn.Build(m.Spec(), rand.New(rand.NewPCG(9, 9)))
	mustNoErr(t, err)
	snapshot(m).restoreTo(teacher)
	opts := PseudoLabelOptions{Threshold: 0.8}
	for round := 1; round <= rounds; round++ {
		labels, weights, picked, err := PseudoLabel(teacher, unlabeled, opts)
		mustNoErr(t, err)
		combined, err := withPseudoLabels(labelled, unlabeled, 0, picked, labels, weights)
		mustNoErr(t, err)
		rtc := tc
		rtc.Seed = tc.Seed + uint64(round)
		rtc.Optimizer.LR = base * (1 + math.Cos(math.Pi*float64(round-1)/rounds)) / 2
		rtc.Schedule = optim.ScheduleConfig{Name: "cosine", MinLR: base * (1 + math.Cos(math.Pi*float64(round)/rounds)) / 2}
		_, err = train.Fit(ctx, teacher, combined, val, rtc)
		mustNoErr(t, err)
	}
	opts.Anneal = true
	_, err = SelfTrain(ctx, m, labelled, unlabeled, val, tc, opts, rounds, nil)
	mustNoErr(t, err)
	want := paramCopy(teacher)
	for name, got := range paramCopy(m) {
		for i := range got {
			if math.Abs(float64(got[i]-want[name][i])) > 1e-5 {
				t.Fatalf("%s[%d] = %g, hand-written annealed loop %g", name, i, got[i], want[name][i])
			}
		}
	}
	prevEnd := base
	for r := 1; r <= rounds; r++ {
		rc := annealedRound(tc, r, rounds)
		if math.Abs(rc.Optimizer.LR-prevEnd) > 1e-15 || rc.Schedule.MinLR > rc.Optimizer.LR {
			t.Errorf("round %d: lr %g -> %g, want to start where round %d ended (%g) and fall", r, rc.Optimizer.LR, rc.Schedule.MinLR, r-1, prevEnd)
		}
		prevEnd = rc.Schedule.MinLR
	}
	if prevEnd != 0 {
		t.Errorf("the last round ends at lr %g, want 0", prevEnd)
	}
}

// TestSelfTrainKeepBest checks that with KeepBest the model ends with the best validation
// accuracy seen (starting model included) and that BestRound names it.
func TestSelfTrainKeepBest(t *testing.T) {
	m, labelled, unlabeled, val, tc := selfTrainSetup(t)
	tc.Optimizer = optimLR(0.2) // a large LR makes the rounds' accuracies differ
	rep, err := SelfTrain(context.Background(), m, labelled, unlabeled, val, tc, PseudoLabelOptions{Threshold: 0.8, KeepBest: true}, 3, nil)
	mustNoErr(t, err)
	best, bestRound := rep.InitialValAccuracy, 0
	for _, r := range rep.Rounds {
		if r.ValAccuracy >= best {
			best, bestRound = r.ValAccuracy, r.Round
		}
	}
	if rep.BestRound != bestRound {
		t.Errorf("best round %d, want %d (rounds %+v)", rep.BestRound, bestRound, rep.Rounds)
	}
	t.Logf("initial %.3f, rounds %+v, best %d", rep.InitialValAccuracy, rep.Rounds, rep.BestRound)
	got, err := accuracy(m, val, 0)
	mustNoErr(t, err)
	if math.Abs(got-best) > 1e-12 {
		t.Errorf("final val accuracy %.4f, want the best %.4f", got, best)
	}
}

// TestSelfTrainEnsembleDecay checks EnsembleDecay against a hand-written loop: round r picks
// from Z_r / (1 − dʳ), where Z_r = d·Z_{r−1} + (1 − d)·p_r and p_r is the current model's
// prediction.
func TestSelfTrainEnsembleDecay(t *testing.T) {
	ctx := context.Background()
	const decay, rounds = 0.6, 3
	m, labelled, unlabeled, val, tc := selfTrainSetup(t)
	opts := PseudoLabelOptions{Threshold: 0.8}
	ref, err := nn.Build(m.Spec(), rand.New(rand.NewPCG(9, 9)))
	mustNoErr(t, err)
	snapshot(m).restoreTo(ref)
	var z []float64
	var refAdded []int
	for round := 1; round <= rounds; round++ {
		p, k, err := predictView(ref, unlabeled, 0)
		mustNoErr(t, err)
		if z == nil {
			z = make([]float64, len(p))
		}
		q := make([]float32, len(p))
		for i := range p {
			z[i] = decay*z[i] + (1-decay)*float64(p[i])
			q[i] = float32(z[i] / (1 - math.Pow(decay, float64(round))))
		}
		labels, weights, picked, err := selectConfident(q, k, opts)
		mustNoErr(t, err)
		refAdded = append(refAdded, len(picked))
		combined, err := withPseudoLabels(labelled, unlabeled, 0, picked, labels, weights)
		mustNoErr(t, err)
		rtc := tc
		rtc.Seed = tc.Seed + uint64(round)
		_, err = train.Fit(ctx, ref, combined, val, rtc)
		mustNoErr(t, err)
	}
	opts.EnsembleDecay = decay
	rep, err := SelfTrain(ctx, m, labelled, unlabeled, val, tc, opts, rounds, nil)
	mustNoErr(t, err)
	for i, r := range rep.Rounds {
		if r.Added != refAdded[i] {
			t.Errorf("round %d added %d rows, hand-written loop %d", r.Round, r.Added, refAdded[i])
		}
	}
	want := paramCopy(ref)
	for name, got := range paramCopy(m) {
		for i := range got {
			if math.Abs(float64(got[i]-want[name][i])) > 1e-5 {
				t.Fatalf("%s[%d] = %g, hand-written loop %g", name, i, got[i], want[name][i])
			}
		}
	}
	// Without the ensemble the weights differ (the comparison above is not vacuous).
	m2, labelled, unlabeled, val, tc := selfTrainSetup(t)
	_, err = SelfTrain(ctx, m2, labelled, unlabeled, val, tc, PseudoLabelOptions{Threshold: 0.8}, rounds, nil)
	mustNoErr(t, err)
	if reflect.DeepEqual(paramCopy(m2), want) {
		t.Error("self-training with and without the ensemble gave the same weights")
	}
	if _, err := SelfTrain(ctx, m, labelled, unlabeled, val, tc, PseudoLabelOptions{EnsembleDecay: 1}, 1, nil); err == nil {
		t.Error("ensemble decay 1 accepted")
	}
}

// TestSelfTrainAccuracyOverKnownLabels checks that the reported pseudo-label accuracy counts
// only the picked rows whose true label is known (hidden >= 0): rows of a separate unlabeled
// source have none, and must not count as wrong.
func TestSelfTrainAccuracyOverKnownLabels(t *testing.T) {
	m, labelled, unlabeled, val, tc := selfTrainSetup(t)
	_, truth := blobs(800, 5)
	hidden := make([]int32, unlabeled.Len())
	for i := range hidden {
		hidden[i] = -1
		if i%3 == 0 {
			hidden[i] = truth[unlabeled.Index[i]]
		}
	}
	opts := PseudoLabelOptions{Threshold: 0.8}
	labels, _, picked, err := PseudoLabel(m, unlabeled, opts) // round 1 picks with the starting model
	mustNoErr(t, err)
	ok, known := 0, 0
	for i, p := range picked {
		if hidden[p] >= 0 {
			known++
			if hidden[p] == labels[i] {
				ok++
			}
		}
	}
	if known == 0 || known == len(picked) {
		t.Fatalf("%d of %d picked rows have a known label: the test needs some of each", known, len(picked))
	}
	rep, err := SelfTrain(context.Background(), m, labelled, unlabeled, val, tc, opts, 1, hidden)
	mustNoErr(t, err)
	if got, want := rep.Rounds[0].PseudoAccuracy, float64(ok)/float64(known); math.Abs(got-want) > 1e-12 {
		t.Errorf("pseudo-label accuracy %.4f, want %.4f (%d right of the %d picked rows with a known label)", got, want, ok, known)
	}
}
