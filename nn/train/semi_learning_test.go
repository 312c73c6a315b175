package train

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/metrics"
	"github.com/pipe-ml/pipe/nn/optim"
)

// fewLabels returns perClass labeled rows of each class of d, chosen with seed.
func fewLabels(d Dataset, classes, perClass int, seed uint64) Dataset {
	perm := rand.New(rand.NewPCG(seed, 17)).Perm(d.Len())
	count := make([]int, classes)
	var pos []int
	for _, p := range perm {
		if c := d.Targets[0].Labels[d.row(p)]; count[c] < perClass {
			count[c]++
			pos = append(pos, p)
		}
	}
	return d.Subset(pos)
}

// TestSemiLearnsDigits trains on 5 labels per digit (50 rows) of the digits training split,
// with all its rows as unlabeled data, for five seeds (label draw, initialisation and
// training streams), and checks that each method's mean test accuracy beats supervised
// training on the same 50 rows (same model, optimizer, epochs and batch) by at least 0.02,
// and that it wins on most seeds. Test accuracy is over the 270 test rows; with 50 labels one
// seed's accuracy moves by several points, so the bar is on the mean.
//
// Settings: the Semi defaults (fixed from the papers before any run), except the ramp-up
// (a fifth of the run) and Mean Teacher's decay of 0.9 instead of 0.99: this run has only
// 600 steps, and on the validation split (not test) decay 0.99 gave a mean accuracy of .74
// over seeds 1-3, below supervised's .75, and 0.9 gave .79. No early stopping: the 50 labels
// are all the labels there are.
//
// The ladder trains batch-normalised layers of the same widths with noise 0.3 after each
// batch norm, and is compared with supervised training of those layers (noise included,
// the paper's "noisy supervised" baseline, itself .03 above the plain layers). Its weight of
// 10 was chosen on the validation split (mean over seeds 1-3: weight 1 .824, 10 .858, 30
// .795; supervised .795). Measured: ladder +.090 (5 of 5 seeds), vat +.093 (5/5), pi +.068
// (4/5), mean_teacher +.033 (4/5).
func TestSemiLearnsDigits(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	sp := loadSplit(t, "digits", false)
	epochs := 150
	seeds := []uint64{1, 2, 3, 4, 5}
	if raceEnabled {
		// Under the race detector (about 7 times slower) one short seed checks the code for
		// races; the leads are asserted in the default build (Mean Teacher's needs the full
		// schedule: at 60 epochs its mean lead was +.004).
		epochs, seeds = 20, []uint64{1}
	}
	spec := nn.Spec{NumInputs: sp.numInputs, Layers: hidden128x64(), Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: sp.classes}}}
	// The ladder's layers: the same widths, batch-normalised, with noise before each ReLU
	// (the corrupted pass's); its supervised baseline trains the same layers (with noise).
	ladderSpec := spec
	ladderSpec.Layers = ladderLayers(0.3, 128, 64)
	acc := func(method string, seed uint64) float64 {
		spec := spec
		if method == SemiLadder || method == "supervised_"+SemiLadder {
			spec = ladderSpec
		}
		lab := fewLabels(sp.train, sp.classes, 5, seed)
		m, err := nn.Build(spec, rand.New(rand.NewPCG(seed, 2)))
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Epochs: epochs, BatchSize: 16, Seed: seed, Optimizer: optim.Config{LR: 1e-3}, EarlyStopping: EarlyStopping{Disabled: true}}
		if method != "supervised" && method != "supervised_"+SemiLadder {
			cfg.Semi = &Semi{Method: method, Unlabeled: sp.train, UnlabeledBatch: 64, RampupEpochs: float64(epochs) / 5}
			switch method {
			case SemiMeanTeacher:
				cfg.Semi.TeacherDecay = 0.9
			case SemiLadder:
				cfg.Semi.Weight = 10
			}
		}
		if _, err := Fit(context.Background(), m, lab, sp.val, cfg); err != nil {
			t.Fatal(err)
		}
		out := predictDataset(t, m, sp.test)
		return metrics.Accuracy(sp.test.Targets[0].Labels, out.Heads[0], out.Width[0])
	}
	baseline := func(name string) ([]float64, float64) {
		base := make([]float64, len(seeds))
		var mean float64
		for i, seed := range seeds {
			base[i] = acc(name, seed)
			mean += base[i] / float64(len(seeds))
		}
		return base, mean
	}
	plainBase, plainMean := baseline("supervised")
	ladderBase, ladderMean := baseline("supervised_" + SemiLadder)
	t.Logf("supervised: mean test accuracy %.4f; with the ladder's layers %.4f", plainMean, ladderMean)
	for _, method := range semiMethods {
		base, baseMean := plainBase, plainMean
		if method == SemiLadder {
			base, baseMean = ladderBase, ladderMean
		}
		var mean float64
		wins := 0
		for i, seed := range seeds {
			got := acc(method, seed)
			mean += got / float64(len(seeds))
			if got > base[i] {
				wins++
			}
			t.Logf("seed %d: %s test accuracy %.4f, supervised %.4f (%+.4f)", seed, method, got, base[i], got-base[i])
		}
		t.Logf("%s: mean test accuracy %.4f, supervised %.4f (%+.4f), better on %d of %d seeds", method, mean, baseMean, mean-baseMean, wins, len(seeds))
		if raceEnabled {
			continue
		}
		if mean < baseMean+0.02 {
			t.Errorf("%s: mean test accuracy %.4f does not beat supervised %.4f by 0.02", method, mean, baseMean)
		}
		if wins <= len(seeds)/2 {
			t.Errorf("%s: better than supervised on %d of %d seeds, want most", method, wins, len(seeds))
		}
	}
}

// ladderLayers returns a batch-normalised ReLU MLP of the given widths with Gaussian noise of
// stddev noise after each batch norm (the ladder's corrupted pass).
func ladderLayers(noise float64, widths ...int) []nn.LayerSpec {
	var ls []nn.LayerSpec
	for _, w := range widths {
		ls = append(ls, nn.LayerSpec{Type: nn.LayerDense, Units: w, Activation: "linear"}, nn.LayerSpec{Type: nn.LayerBatchNorm},
			nn.LayerSpec{Type: nn.LayerGaussianNoise, Stddev: noise}, nn.LayerSpec{Type: nn.LayerActivation, Activation: "relu"})
	}
	return ls
}

// TestFullLadderLearnsDigits trains the full ladder (decoder = "full") as TestSemiLearnsDigits
// trains the Γ-model: 5 labels per digit, the ladder's batch-normalised layers 128-64 with
// noise 0.3, five seeds, 150 epochs (600 steps), and compares its test accuracy with noisy
// supervised training of the same layers and with the Γ-model (weight 10). It asserts the
// full ladder's mean lead over supervised (0.02) and that it wins on most seeds, and that it
// is not more than 0.03 below the Γ-model (it is not asserted to beat it: see below).
//
// Settings, chosen on the validation split (mean val accuracy over seeds 1-3, before any
// MNIST run): the paper's weights [1000, 10, 0.1, 0.1] with the paper's ẑ normalisation
// (estimate_norm "clean") gave .793 (5 seeds; supervised .785, Γ .867); with estimate_norm
// "none" .807; then, with "none": [100, 1, 0.1, 10] .851, [10, 10, 1, 10] .853, [1, 0.1,
// 0.1, 10] .856, [10, 1, 0.1, 10] .858, [10, 1, 0.1, 1] .832, [0, 0, 0, 10] (the top cost
// only) .858. At this scale the lower layers' costs add nothing measurable and a large
// input weight hurts. Measured with [10, 1, 0.1, 10] and "none" (test, seeds 1-5): full
// .8778, Γ .8733, supervised .7837: +.094 over supervised (5 of 5 seeds), +.004 over the
// Γ-model (within the seeds' spread; the mean val accuracies are equal, .8674).
//
// The "ref" arm is the full ladder with the ladder authors' structure (session 14): no γ in
// the hidden batch norms (no_scale), a batch-normalised head with noise 0.3 of its own, and
// separate labelled and unlabelled batches, with the same weights; its lead over supervised
// is asserted the same way. Measured (test, seeds 1-5): .8704 (mean val .8630), level with
// the full ladder's .8778 and the Γ-model's .8733 at this scale.
func TestFullLadderLearnsDigits(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	sp := loadSplit(t, "digits", false)
	epochs := 150
	seeds := []uint64{1, 2, 3, 4, 5}
	if raceEnabled {
		epochs, seeds = 10, []uint64{1}
	}
	spec := nn.Spec{NumInputs: sp.numInputs, Layers: ladderLayers(0.3, 128, 64), Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: sp.classes}}}
	// The ladder authors' structure (session 14): no γ in the hidden batch norms, a
	// batch-normalised top layer with noise of its own, separate labelled and unlabelled
	// batches.
	ref := nn.Spec{NumInputs: sp.numInputs, Layers: ladderLayers(0.3, 128, 64), Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: sp.classes, BatchNorm: true, Noise: 0.3}}}
	for i := range ref.Layers {
		ref.Layers[i].NoScale = ref.Layers[i].Type == nn.LayerBatchNorm
	}
	acc := func(arm string, seed uint64) (val, test float64) {
		lab := fewLabels(sp.train, sp.classes, 5, seed)
		sp1 := spec
		if arm == "ref" {
			sp1 = ref
		}
		m, err := nn.Build(sp1, rand.New(rand.NewPCG(seed, 2)))
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Epochs: epochs, BatchSize: 16, Seed: seed, Optimizer: optim.Config{LR: 1e-3}, EarlyStopping: EarlyStopping{Disabled: true}}
		switch arm {
		case "gamma":
			cfg.Semi = &Semi{Method: SemiLadder, Unlabeled: sp.train, UnlabeledBatch: 64, RampupEpochs: float64(epochs) / 5, Weight: 10}
		case "full", "ref":
			cfg.Semi = &Semi{Method: SemiLadder, Decoder: LadderFull, Weights: []float64{10, 1, 0.1, 10}, EstimateNorm: LadderEstimateNone, Unlabeled: sp.train, UnlabeledBatch: 64, RampupEpochs: float64(epochs) / 5,
				SeparateBatches: arm == "ref"}
		}
		if _, err := Fit(context.Background(), m, lab, sp.val, cfg); err != nil {
			t.Fatal(err)
		}
		out := predictDataset(t, m, sp.val)
		val = metrics.Accuracy(sp.val.Targets[0].Labels, out.Heads[0], out.Width[0])
		out = predictDataset(t, m, sp.test)
		return val, metrics.Accuracy(sp.test.Targets[0].Labels, out.Heads[0], out.Width[0])
	}
	arms := []string{"supervised", "gamma", "full", "ref"}
	test := map[string][]float64{}
	mean := map[string]float64{}
	for _, arm := range arms {
		var meanVal float64
		for _, seed := range seeds {
			v, te := acc(arm, seed)
			test[arm] = append(test[arm], te)
			mean[arm] += te / float64(len(seeds))
			meanVal += v / float64(len(seeds))
		}
		t.Logf("%s: test accuracy %.4f per seed, mean %.4f (mean val %.4f)", arm, test[arm], mean[arm], meanVal)
	}
	for _, arm := range []string{"full", "ref"} {
		wins := 0
		for i := range seeds {
			if test[arm][i] > test["supervised"][i] {
				wins++
			}
		}
		t.Logf("%s: %+.4f over supervised (better on %d of %d seeds), %+.4f over the Γ-model", arm, mean[arm]-mean["supervised"], wins, len(seeds), mean[arm]-mean["gamma"])
		if raceEnabled {
			continue
		}
		if mean[arm] < mean["supervised"]+0.02 {
			t.Errorf("%s: mean test accuracy %.4f does not beat supervised %.4f by 0.02", arm, mean[arm], mean["supervised"])
		}
		if wins <= len(seeds)/2 {
			t.Errorf("%s: better than supervised on %d of %d seeds, want most", arm, wins, len(seeds))
		}
	}
	if raceEnabled {
		return
	}
	if mean["full"] < mean["gamma"]-0.03 {
		t.Errorf("full ladder: mean test accuracy %.4f is more than 0.03 below the Γ-model's %.4f", mean["full"], mean["gamma"])
	}
}

// TestVATSeparateBatchesLearnsDigits trains the VAT authors' kind of model, batch norm after
// every hidden layer and on the logits (HeadSpec.BatchNorm), on 5 labels per digit with VAT
// alone (eps 0.3, the authors' 100-label setting; no ramp-up, no entropy term), one step per
// epoch over all 50 labelled rows plus 64 unlabelled, for five seeds, in three ways:
// supervised, VAT over joint batches, and VAT with SeparateBatches. It asserts that separate
// batches beat supervised training by at least 0.05 in mean test accuracy and on at least 4
// seeds, and joint batches by at least 0.1 (over a joint batch the labelled rows can carry the
// logits' batch variance alone, and VAT flattens every other prediction: on MNIST at 100
// labels that collapsed to one predicted class). Measured (test, seeds 1-5, 1,200 steps):
// separate .863 (5 of 5 seeds above supervised), joint .555, supervised .744; with eps 1,
// .832, .609 and .744.
func TestVATSeparateBatchesLearnsDigits(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	sp := loadSplit(t, "digits", false)
	epochs, seeds := 1200, []uint64{1, 2, 3, 4, 5}
	if raceEnabled {
		epochs, seeds = 100, []uint64{1} // checks for races only; the leads are asserted in the default build
	}
	var layers []nn.LayerSpec
	for _, w := range []int{128, 64} {
		layers = append(layers, nn.LayerSpec{Type: nn.LayerDense, Units: w, Activation: "linear"}, nn.LayerSpec{Type: nn.LayerBatchNorm},
			nn.LayerSpec{Type: nn.LayerActivation, Activation: "relu"})
	}
	spec := nn.Spec{NumInputs: sp.numInputs, Layers: layers, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: sp.classes, BatchNorm: true}}}
	modes := []string{"supervised", "joint", "separate"}
	accs := map[string][]float64{}
	means := map[string]float64{}
	for _, mode := range modes {
		for _, seed := range seeds {
			lab := fewLabels(sp.train, sp.classes, 5, seed)
			m, err := nn.Build(spec, rand.New(rand.NewPCG(seed, 2)))
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{Epochs: epochs, BatchSize: 50, Seed: seed, Optimizer: optim.Config{LR: 2e-3}, EarlyStopping: EarlyStopping{Disabled: true}}
			if mode != "supervised" {
				cfg.Semi = &Semi{Method: SemiVAT, Unlabeled: sp.train, UnlabeledBatch: 64, RampupEpochs: -1, Eps: 0.3, SeparateBatches: mode == "separate"}
			}
			if _, err := Fit(context.Background(), m, lab, sp.val, cfg); err != nil {
				t.Fatal(err)
			}
			out := predictDataset(t, m, sp.test)
			a := metrics.Accuracy(sp.test.Targets[0].Labels, out.Heads[0], out.Width[0])
			accs[mode] = append(accs[mode], a)
			means[mode] += a / float64(len(seeds))
		}
		t.Logf("%s: test accuracy %.4f per seed %.4f", mode, means[mode], accs[mode])
	}
	if raceEnabled {
		return
	}
	wins := 0
	for i := range seeds {
		if accs["separate"][i] > accs["supervised"][i] {
			wins++
		}
	}
	if means["separate"] < means["supervised"]+0.05 || wins < 4 {
		t.Errorf("separate batches: mean %.4f against supervised %.4f (want +0.05), better on %d of %d seeds (want 4)", means["separate"], means["supervised"], wins, len(seeds))
	}
	if means["separate"] < means["joint"]+0.1 {
		t.Errorf("separate batches: mean %.4f against joint batches %.4f, want +0.1", means["separate"], means["joint"])
	}
}
