package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// halfSquare is the OutputLoss Σ ½·scale·z² over head 0's logits (gradient scale·z).
func halfSquare(scale float32) OutputLoss {
	return func(head int, z, dz []float32, rows int) float64 {
		if head != 0 {
			return 0
		}
		var s float64
		for i, v := range z {
			s += 0.5 * float64(scale) * float64(v) * float64(v)
			dz[i] += scale * v
		}
		return s
	}
}

// TestLossStepGradModes checks LossStep's gradient modes and TrainStepWith against TrainStep
// and LossStep run separately: the gradients of a sum are the sums of the gradients.
func TestLossStepGradModes(t *testing.T) {
	spec := Spec{NumInputs: 4, L2: 1e-2, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh", Dropout: 0.25}},
		Heads: []HeadSpec{{Name: "a", Kind: HeadSoftmax, Classes: 3}, {Name: "b", Kind: HeadRegression}}}
	grads := func(m *Model) [][]float32 {
		var g [][]float32
		for _, p := range m.Params() {
			g = append(g, append([]float32(nil), p.Grad...))
		}
		return g
	}
	fresh := func() (*Model, Batch, Targets) {
		rng := rand.New(rand.NewPCG(4, 4))
		m, err := Build(spec, rng)
		if err != nil {
			t.Fatal(err)
		}
		return m, randomBatch(rng, m.Spec(), 5), randomTargets(rng, m.Spec(), 5, 0)
	}
	near := func(what string, got, want [][]float32) {
		t.Helper()
		for i := range want {
			for j := range want[i] {
				if d := math.Abs(float64(got[i][j] - want[i][j])); d > 1e-6*(1+math.Abs(float64(want[i][j]))) {
					t.Fatalf("%s: param %d grad %d = %v, want %v", what, i, j, got[i][j], want[i][j])
				}
			}
		}
	}
	// The parts, each from the same weights and noise state.
	m, b, tg := fresh()
	state, _ := m.NoiseSource().MarshalBinary()
	sup, err := m.TrainStep(b, tg)
	if err != nil {
		t.Fatal(err)
	}
	gSup := grads(m)
	_ = m.NoiseSource().UnmarshalBinary(state)
	extra, err := m.LossStep(b, true, GradOverwrite, halfSquare(0.3))
	if err != nil {
		t.Fatal(err)
	}
	gExtra := grads(m)
	sum := make([][]float32, len(gSup))
	for i := range gSup {
		sum[i] = make([]float32, len(gSup[i]))
		for j := range gSup[i] {
			sum[i][j] = gSup[i][j] + gExtra[i][j]
		}
	}

	_ = m.NoiseSource().UnmarshalBinary(state)
	with, err := m.TrainStepWith(b, tg, halfSquare(0.3))
	if err != nil {
		t.Fatal(err)
	}
	near("TrainStepWith", grads(m), sum)
	if math.Abs(with.Total-(sup.Total+extra)) > 1e-9*math.Abs(with.Total) {
		t.Errorf("TrainStepWith loss %v, want TrainStep's %v + the extra %v", with.Total, sup.Total, extra)
	}

	_ = m.NoiseSource().UnmarshalBinary(state)
	if _, err := m.TrainStep(b, tg); err != nil {
		t.Fatal(err)
	}
	_ = m.NoiseSource().UnmarshalBinary(state)
	if _, err := m.LossStep(b, true, GradAccumulate, halfSquare(0.3)); err != nil {
		t.Fatal(err)
	}
	near("GradAccumulate", grads(m), sum)

	m.SetKeepInputGrad(true)
	for _, mode := range []GradMode{GradDiscard, GradNone} {
		before := grads(m)
		called := false
		v, err := m.LossStep(b, true, mode, func(h int, z, dz []float32, rows int) float64 {
			called = called || h == 0
			return halfSquare(1)(h, z, dz, rows)
		})
		if err != nil {
			t.Fatal(err)
		}
		if !called || v <= 0 {
			t.Errorf("mode %d: the loss was not evaluated (value %v)", mode, v)
		}
		near("GradDiscard/GradNone", grads(m), before)
	}
	if m.InputGrad(5) == nil {
		t.Error("GradDiscard with SetKeepInputGrad kept no input gradient")
	}
}
