package ensemble

import (
	"context"
	"slices"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/metrics"
	"github.com/pipe-ml/pipe/nn/train"
)

// digitsEpochs is the member training length of the learning test (shorter under the race
// detector; the floors hold for both).
func digitsEpochs() int {
	if raceEnabled {
		return 8
	}
	return 15
}

// TestLearnsDigits trains an 8-member bootstrap bag of 64-32 ReLU MLPs on the shipped digits
// split (seed 1, chosen once) and checks on the test split that the mean combiner reaches the
// floor of 0.95 accuracy and is at least as accurate as the median member; that every member's
// training loss fell; and that the OOB accuracy is reported and sensible (>= 0.9).
func TestLearnsDigits(t *testing.T) {
	sp := loadDigits(t)
	member := Member{
		Spec: nn.Spec{NumInputs: sp.numInputs,
			Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 64, Activation: "relu"}, {Type: nn.LayerDense, Units: 32, Activation: "relu"}},
			Heads:  []nn.HeadSpec{{Name: "digit", Kind: nn.HeadSoftmax, Classes: 10}}},
		Train: train.Config{Epochs: digitsEpochs(), BatchSize: 32},
	}
	// Each member's goroutine writes only its own slot.
	losses := make([][]float64, 8)
	hooks := func(member int) []train.Hook {
		return []train.Hook{train.OnEpochEnd("record_loss", 0, func(e *train.EpochInfo) error {
			losses[member] = append(losses[member], e.Metrics["loss"])
			return nil
		})}
	}
	cfg := Config{Members: 8, Base: member, Bootstrap: true, Workers: 2}
	ens, rep, err := Train(context.Background(), cfg, sp.train, sp.val, 1, Options{Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	for m, l := range losses {
		if len(l) < 2 || !(l[len(l)-1] < l[0]) {
			t.Errorf("member %d: training loss did not fall: %v", m, l)
		}
	}
	test := batchOf(sp.test)
	labels := sp.test.Targets[0].Labels
	outs, err := ens.MemberOutputs(test)
	if err != nil {
		t.Fatal(err)
	}
	var memberAcc []float64
	for _, o := range outs {
		memberAcc = append(memberAcc, metrics.Accuracy(labels, o.Heads[0], 10))
	}
	sorted := slices.Clone(memberAcc)
	slices.Sort(sorted)
	median := (sorted[3] + sorted[4]) / 2
	scores := map[string]float64{}
	for _, c := range ens.CombinerNames("digit") {
		out, err := ens.Predict(test, c)
		if err != nil {
			t.Fatal(err)
		}
		scores[c] = metrics.Accuracy(labels, out.Heads[0], 10)
	}
	t.Logf("test accuracy: members %.4f (median %.4f); combiners %v; OOB accuracy %.4f over %d rows (%d never OOB); val diversity %.4f",
		memberAcc, median, scores, rep.OOB.Heads[0].Score, len(rep.OOB.Rows), rep.OOB.NeverOOB, rep.Diversity[0])
	for _, cs := range rep.Combiners {
		t.Logf("val: %s accuracy %.4f, gain %+.4f over member %d (%.4f)", cs.Combiner, cs.Score, cs.Gain, cs.BestMember, cs.BestMemberScore)
	}
	if scores[CombinerMean] < 0.95 {
		t.Errorf("mean-combiner test accuracy %.4f below the floor 0.95", scores[CombinerMean])
	}
	if scores[CombinerMean] < median {
		t.Errorf("mean-combiner test accuracy %.4f below the median member's %.4f", scores[CombinerMean], median)
	}
	if rep.OOB.Heads[0].Score < 0.9 {
		t.Errorf("OOB accuracy %.4f below 0.9", rep.OOB.Heads[0].Score)
	}
	for _, m := range rep.Members {
		if m.Epochs == 0 || m.Val["accuracy"] < 0.85 {
			t.Errorf("member %d: %d epochs, val accuracy %.4f", m.Index, m.Epochs, m.Val["accuracy"])
		}
	}
}
