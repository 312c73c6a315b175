package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestPredictLoss: one pass gives exactly what Predict and EvalLoss give separately, for a
// multi-task model with dropout and batch norm (eval mode) and more rows than Predict's chunk.
func TestPredictLoss(t *testing.T) {
	spec := Spec{NumInputs: 6,
		Layers: []LayerSpec{{Type: LayerDense, Units: 16, Activation: "relu", Dropout: 0.3}, {Type: LayerBatchNorm}, {Type: LayerDense, Units: 8, Activation: "tanh"}},
		Heads: []HeadSpec{{Name: "cls", Kind: HeadSoftmax, Classes: 4}, {Name: "bin", Kind: HeadBinary},
			{Name: "reg", Kind: HeadRegression, Outputs: 2, LossWeight: 0.5}}}
	rng := rand.New(rand.NewPCG(3, 4))
	m, err := Build(spec, rng)
	if err != nil {
		t.Fatal(err)
	}
	const rows = 700
	b, tg := randomBatch(rng, spec, rows), randomTargets(rng, spec, rows, 5)
	want, err := m.Predict(b)
	if err != nil {
		t.Fatal(err)
	}
	wantLoss, err := m.EvalLoss(b, tg)
	if err != nil {
		t.Fatal(err)
	}
	got, gotLoss, err := m.PredictLoss(b, tg)
	if err != nil {
		t.Fatal(err)
	}
	if gotLoss.Total != wantLoss.Total || math.IsNaN(gotLoss.Total) {
		t.Errorf("loss %v, EvalLoss %v", gotLoss.Total, wantLoss.Total)
	}
	for h := range want.Heads {
		if got.Width[h] != want.Width[h] || len(got.Heads[h]) != len(want.Heads[h]) {
			t.Fatalf("head %d: shape %d×%d, Predict %d×%d", h, len(got.Heads[h])/got.Width[h], got.Width[h], len(want.Heads[h])/want.Width[h], want.Width[h])
		}
		for i, v := range want.Heads[h] {
			if math.Abs(float64(got.Heads[h][i]-v)) > 1e-6 {
				t.Fatalf("head %d [%d] = %v, Predict %v", h, i, got.Heads[h][i], v)
			}
		}
	}
	if _, _, err := m.PredictLoss(Batch{Rows: 2, X: make([]float32, 3)}, tg); err == nil {
		t.Error("a short batch was accepted")
	}
}
