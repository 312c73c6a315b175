package stages

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestPseudoLabelKeepBestRestartViews runs the pseudo_label stage with restart, views and
// keep_best on digits with 10 labels per class, and checks that the manifest's best_round is
// the round of best validation accuracy and that the output model is that round's: its
// accuracy on the val table, scored by an evaluate stage, equals the reported val_accuracy.
func TestPseudoLabelKeepBestRestartViews(t *testing.T) {
	const src = `
[pipeline]
name = "pseudo-options"
seed = 1
` + digitsTenLabels + `[stages.aug]
kind = "augment"
input = "scale.train"
image = { height = 8, width = 8, first = "pixel_0_0" }
shift = 1
[stages.sup]
kind = "train"
train = "aug"
val = "scale.val"
layers = [ { dense = 64 } ]
epochs = 60
early_stopping = false
[stages.pseudo]
kind = "pseudo_label"
model = "sup.model"
train = "aug"
val = "scale.val"
top_share = 0.5
rounds = 3
epochs = 5
restart = true
views = 2
keep_best = true
[stages.eval]
kind = "evaluate"
models = ["pseudo.model"]
tables = ["scale.val"]
`
	m, _, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatalf("%v (manifest error: %s)", err, m.Error)
	}
	st := m.Stages["pseudo"]
	best := st.Metrics["initial/val_accuracy"]
	bestRound := 0
	for r := 1; r <= 3; r++ {
		acc, ok := st.Metrics[fmt.Sprintf("round_%d/val_accuracy", r)]
		if !ok {
			t.Fatalf("no round_%d/val_accuracy in %v", r, st.Metrics)
		}
		if added := st.Metrics[fmt.Sprintf("round_%d/added_rows", r)]; added < 100 {
			t.Errorf("round %d added %v rows, want at least 100 (the test needs pseudo-labels)", r, added)
		}
		if acc >= best {
			best, bestRound = acc, r
		}
	}
	if got := fmt.Sprint(st.Info["best_round"]); got != fmt.Sprint(bestRound) {
		t.Errorf("best_round %s, want %d (metrics %v)", got, bestRound, st.Metrics)
	}
	if got := st.Metrics["val_accuracy"]; math.Abs(got-best) > 1e-9 {
		t.Errorf("val_accuracy %.4f, want the best round's %.4f", got, best)
	}
	if got := m.Stages["eval"].Metrics["val_accuracy"]; math.Abs(got-best) > 1e-9 {
		t.Errorf("the output model scores %.4f on val, want the best round's %.4f", got, best)
	}
	t.Logf("best round %d of 3, val accuracy %.3f; metrics %v", bestRound, best, st.Metrics)
}

// TestPseudoLabelViewsNeedAugmentation checks that views without an augment stage upstream of
// the train table is an error naming the fix, not a silent no-op.
func TestPseudoLabelViewsNeedAugmentation(t *testing.T) {
	const src = `
[pipeline]
name = "pseudo-views"
seed = 1
[stages.load]
kind = "dataset"
name = "digits"
[stages.split]
kind = "split"
input = "load"
[stages.few]
kind = "mask_labels"
input = "split.train"
per_class = 10
val_per_class = 5
[stages.sup]
kind = "train"
train = "few.train"
val = "few.val"
layers = [ { dense = 16 } ]
epochs = 2
[stages.pseudo]
kind = "pseudo_label"
model = "sup.model"
train = "few.train"
val = "few.val"
epochs = 1
views = 2
`
	_, _, err := runTOML(t, ".", src)
	if err == nil || !strings.Contains(err.Error(), "no augmentation") {
		t.Fatalf("error %v, want one saying the train table has no augmentation", err)
	}
}
