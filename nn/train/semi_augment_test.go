package train

import (
	"context"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// TestSemiAugmentUnlabeled checks Semi.Augment for every method: it is called on the step's
// unlabelled rows only (UnlabeledBatch rows of the model's inputs, never the pool itself),
// once a step for vat and the ladder and twice (two views) for pi and mean_teacher; an
// augmentation that changes nothing and draws nothing gives the weights of training without
// it, bit for bit; one that adds noise changes the weights, identically for 1 and 3 workers.
func TestSemiAugmentUnlabeled(t *testing.T) {
	lab, unl := semiBlobs()
	val := blobs(2, 60)
	pool := slices.Clone(unl.X)
	for _, method := range semiMethods {
		t.Run(method, func(t *testing.T) {
			fit := func(workers int, aug func([]float32, int, *rand.Rand)) ([][]float32, History, int) {
				t.Helper()
				cfg := semiConfig(method, unl, workers)
				s := *cfg.Semi
				s.Augment = aug
				cfg.Semi = &s
				steps := 0
				m := buildModel(t, richSpec())
				res, err := Fit(context.Background(), m, lab, val, cfg, OnStep("count", 0, func(*StepInfo) error { steps++; return nil }))
				if err != nil {
					t.Fatal(err)
				}
				return weightsOf(m), res.History, steps
			}
			plain, _, _ := fit(1, nil)

			calls, badRows := 0, 0
			identity, _, steps := fit(1, func(x []float32, rows int, _ *rand.Rand) {
				calls++
				if rows != 16 || len(x) != rows*unl.NumInputs {
					badRows++
				}
			})
			sameWeights(t, plain, identity)
			want := steps
			if method == SemiPi || method == SemiMeanTeacher {
				want = 2 * steps
			}
			if calls != want || badRows != 0 {
				t.Errorf("%d steps: Augment called %d times (want %d), %d times not on the 16 unlabelled rows", steps, calls, want, badRows)
			}

			noise := func(x []float32, rows int, rng *rand.Rand) {
				for i := range x {
					x[i] += float32(rng.NormFloat64() * 0.3)
				}
			}
			w1, h1, _ := fit(1, noise)
			w3, h3, _ := fit(3, noise)
			sameWeights(t, w1, w3)
			if !reflect.DeepEqual(h1, h3) {
				t.Error("history with 3 workers differs from 1 worker's")
			}
			if reflect.DeepEqual(w1, plain) {
				t.Error("augmenting the unlabelled rows changed no weight")
			}
			if !slices.Equal(unl.X, pool) {
				t.Fatal("the unlabelled pool itself was augmented")
			}
		})
	}
}
