package nn

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestHeadBatchNorm checks a batch-normalised head: in training its logits are normalised
// by the batch (per class: mean β, spread γ), inference uses the running statistics (a row
// predicts the same alone as in a batch), and a regression head refuses it.
func TestHeadBatchNorm(t *testing.T) {
	spec := Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}},
		Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 3, BatchNorm: true}}}
	rng := rand.New(rand.NewPCG(3, 4))
	m, err := Build(spec, rng)
	if err != nil {
		t.Fatal(err)
	}
	rows := 32
	b := randomBatch(rng, m.Spec(), rows)
	tg := randomTargets(rng, m.Spec(), rows, 0)
	for range 20 {
		if _, err := m.TrainStep(b, tg); err != nil {
			t.Fatal(err)
		}
	}
	// The train pass's logits, per class: mean β_j and standard deviation γ_j (biased, eps 1e-5).
	if _, err := m.LossStep(b, true, GradNone, func(head int, logits, _ []float32, n int) float64 {
		g, be := m.Param("head_out/bn/gamma").Value, m.Param("head_out/bn/beta").Value
		for j := range 3 {
			var s, ss float64
			for r := range n {
				s += float64(logits[r*3+j])
			}
			mu := s / float64(n)
			for r := range n {
				d := float64(logits[r*3+j]) - mu
				ss += d * d
			}
			sd := math.Sqrt(ss / float64(n))
			if math.Abs(mu-float64(be[j])) > 1e-4 || math.Abs(sd-math.Abs(float64(g[j]))) > 1e-2*math.Abs(float64(g[j]))+1e-4 {
				t.Errorf("class %d: batch logits mean %.5f sd %.5f, want β %.5f and |γ| %.5f", j, mu, sd, be[j], g[j])
			}
		}
		return 0
	}); err != nil {
		t.Fatal(err)
	}
	if rm := m.Param("head_out/bn/running_mean"); rm == nil || rm.Value[0] == 0 {
		t.Fatalf("the head's running mean was not updated: %v", rm)
	}
	// Inference: one row alone predicts what it predicts in the batch.
	all, err := m.Predict(b)
	if err != nil {
		t.Fatal(err)
	}
	one := Batch{Rows: 1, X: b.X[5*4 : 6*4]}
	got, err := m.Predict(one)
	if err != nil {
		t.Fatal(err)
	}
	for j := range 3 {
		if math.Abs(float64(got.Heads[0][j]-all.Heads[0][5*3+j])) > 1e-6 {
			t.Fatalf("row 5 alone predicts %v, in the batch %v: inference must use the running statistics", got.Heads[0], all.Heads[0][15:18])
		}
	}
	// A regression head refuses it.
	_, err = Build(Spec{NumInputs: 4, Heads: []HeadSpec{{Kind: HeadRegression, BatchNorm: true}}}, rng)
	if err == nil || !strings.Contains(err.Error(), "batch_norm") {
		t.Fatalf("regression head with batch_norm: err = %v, want a batch_norm error", err)
	}
}
