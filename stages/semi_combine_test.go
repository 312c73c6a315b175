package stages

import (
	"fmt"
	"strings"
	"testing"
)

// digitsTenLabels are the stages of a digits pipeline with 10 labels per class (and 5 per
// class for validation), the rest of the train split unlabeled, and the pixels scaled to
// [0, 1] by the training rows: scale.train, scale.val and scale.test.
const digitsTenLabels = `[stages.load]
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
[stages.scale]
kind = "normalize"
fit = "few.train"
apply = ["few.train", "few.val", "split.test"]
method = "minmax"
`

// semiCombinePipeline trains a semi-supervised model on digits with 10 labels per class
// from an augmented train table (Gaussian noise on the labelled rows' pixels, drawn afresh
// every step), continues it with pseudo-labels, and scores both on the test split.
const semiCombinePipeline = `
[pipeline]
name = "semi-combine"
seed = 4
` + digitsTenLabels + `[stages.aug]
kind = "augment"
input = "scale.train"
noise = 0.05
[stages.semi]
kind = "train"
train = "aug"
val = "scale.val"
layers = [ { dense = 64, activation = "linear" }, { batch_norm = true, no_scale = true }, { gaussian_noise = 0.3 }, { activation = "relu" } ]
head_batch_norm = true
epochs = 100
batch_size = 20
early_stopping = false
workers = WORKERS
semi = SEMI
[stages.pseudo]
kind = "pseudo_label"
model = "semi.model"
train = "aug"
val = "scale.val"
top_share = 0.5
rounds = 2
epochs = 10
early_stopping = false
workers = WORKERS
[stages.eval]
kind = "evaluate"
models = ["semi.model", "pseudo.model"]
tables = ["split.test"]
`

// TestSemiCombinesWithAugmentAndPseudoLabels runs the ladder (full, separate batches) and
// VAT (separate batches) on an augmented train table, followed by pseudo-labelling from
// the semi-supervised model, with 1 and 2 workers. It asserts that both stages learn (test
// accuracy above a floor far over the 10% of chance: 100 labels of 10 digits), that the
// pseudo-labels are mostly right, that pseudo-labelling adds to the ladder and takes nothing
// from VAT, and that every metric of the run is identical for 1 and 2 workers.
//
// Measured (workers 1, pipeline seeds 1, 2, 3 and 4, the seed this test runs), test accuracy
// of the semi stage → after pseudo-labels:
//   - ladder .822 → .885, .825 → .896, .829 → .907, .807 → .904 (+.063 to +.096);
//   - VAT .915 → .919, .981 → .978, .941 → .955, .948 → .956 (−.004 to +.015);
//   - round 2's pseudo-labels .93-1.0 right.
//
// Most of the ladder's gain is the extra supervised epochs, not the pseudo-labels: with
// top_share = 0.01 (9-10 rows added a round) the ladder's seeds 1-3 reach .863, .896, .877.
//
// (Supervised with the same augmentation: .922, .955, .944. With 1-pixel shifts instead of
// noise every arm was worse: supervised .82-.85, the ladder .53-.70 (.58-.74 after
// pseudo-labels), VAT .76-.89: shifting an 8×8 digit moves too much of it.)
func TestSemiCombinesWithAugmentAndPseudoLabels(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	for name, semi := range map[string]string{
		"ladder_full": `{ method = "ladder", decoder = "full", weights = [10.0, 1.0, 10.0], estimate_norm = "none", unlabeled_batch = 40, noise = 0.3, separate_batches = true }`,
		"vat":         `{ method = "vat", eps = 1.0, unlabeled_batch = 40, separate_batches = true, entropy = true }`,
	} {
		t.Run(name, func(t *testing.T) {
			var first map[string]float64
			for _, workers := range []int{1, 2} {
				src := strings.ReplaceAll(semiCombinePipeline, "WORKERS", fmt.Sprint(workers))
				src = strings.Replace(src, "SEMI", semi, 1)
				m, _, err := runTOML(t, ".", src)
				if err != nil {
					t.Fatalf("workers %d: %v (manifest error: %s)", workers, err, m.Error)
				}
				got := map[string]float64{}
				for _, st := range []string{"semi", "pseudo", "eval"} {
					for k, v := range m.Stages[st].Metrics {
						got[st+":"+k] = v
					}
				}
				if workers == 1 {
					first = got
					t.Logf("semi test accuracy %.4f, pseudo %.4f, round 2 pseudo-label accuracy %.4f", got["eval:semi/test_accuracy"], got["eval:pseudo/test_accuracy"], got["pseudo:round_2/pseudo_label_accuracy"])
					for key, floor := range map[string]float64{"eval:semi/test_accuracy": 0.7, "eval:pseudo/test_accuracy": 0.7, "pseudo:round_2/pseudo_label_accuracy": 0.85} {
						if v, ok := got[key]; !ok || v < floor {
							t.Errorf("%s = %v (present %v), want at least %v", key, v, ok, floor)
						}
					}
					gain := got["eval:pseudo/test_accuracy"] - got["eval:semi/test_accuracy"]
					if least := map[string]float64{"ladder_full": 0.03, "vat": -0.02}[name]; gain < least {
						t.Errorf("pseudo-labelling changed test accuracy by %+.4f, want at least %+.2f", gain, least)
					}
					if added := got["pseudo:round_1/added_rows"]; added < 100 {
						t.Errorf("round 1 added %v pseudo-labelled rows, want at least 100", added)
					}
					continue
				}
				if len(got) != len(first) {
					t.Errorf("workers 2: %d metrics, workers 1: %d", len(got), len(first))
				}
				for k, v := range first {
					if got[k] != v {
						t.Errorf("%s = %v with 2 workers, %v with 1", k, got[k], v)
					}
				}
			}
		})
	}
}
