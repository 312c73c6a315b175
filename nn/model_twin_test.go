package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestTwin checks that a twin shares its model's values (an update to one is seen by the
// other, batch-norm running statistics included), keeps its own activations while the model
// runs another pass, and that LossBackward on the twin's kept pass plus AddGrads gives the
// model exactly (bit for bit) the gradients of the two passes run in one model with
// GradAccumulate, the sequence the ladder ran before.
func TestTwin(t *testing.T) {
	spec := Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerDense, Units: 8, Activation: "linear"}, {Type: LayerBatchNorm}, {Type: LayerActivation, Activation: "tanh"}},
		Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 3}}}
	build := func() *Model {
		m, err := Build(spec, rand.New(rand.NewPCG(5, 6)))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	rng := rand.New(rand.NewPCG(1, 1))
	rows := 12
	a := randomBatch(rng, spec, rows)
	b := randomBatch(rng, spec, rows)
	tg := randomTargets(rng, spec, rows, 0)
	// A loss on the logits: Σ logits·c, c fixed per class.
	lin := func(head int, logits, dl []float32, n int) float64 {
		var s float64
		for i, v := range logits[:n*3] {
			c := float32(i%3) - 1
			s += float64(v * c)
			dl[i] += c
		}
		return s
	}

	// Reference: one model runs a (clean) and b, then a again accumulating.
	ref := build()
	if _, err := ref.LossStep(a, true, GradNone, lin); err != nil {
		t.Fatal(err)
	}
	ref.SetTrainPass(TrainPass{KeepRunningStats: true})
	if _, err := ref.TrainStep(b, tg); err != nil {
		t.Fatal(err)
	}
	if _, err := ref.LossStep(a, true, GradAccumulate, lin); err != nil {
		t.Fatal(err)
	}

	// The twin keeps a's pass while m runs b.
	m := build()
	tw, err := m.Twin(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tw.LossStep(a, true, GradNone, lin); err != nil {
		t.Fatal(err)
	}
	m.SetTrainPass(TrainPass{KeepRunningStats: true})
	if _, err := m.TrainStep(b, tg); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.LossBackward(a, GradOverwrite, lin); err != nil {
		t.Fatal(err)
	}
	m.AddGrads(tw)
	for i, p := range m.Params() {
		for j := range p.Grad {
			if math.Float32bits(p.Grad[j]) != math.Float32bits(ref.Params()[i].Grad[j]) {
				t.Fatalf("%s.Grad[%d] = %v, want %v (the single-model sequence)", p.Name, j, p.Grad[j], ref.Params()[i].Grad[j])
			}
		}
	}
	// The twin's pass updated the shared running statistics, as ref's first pass did.
	for i, p := range m.Buffers() {
		for j := range p.Value {
			if p.Value[j] != ref.Buffers()[i].Value[j] {
				t.Fatalf("%s[%d] = %v, want %v", p.Name, j, p.Value[j], ref.Buffers()[i].Value[j])
			}
		}
	}
	// Values are shared both ways, and a replaced Value slice is aliased again by Twin.
	w := m.Param("dense_1/W")
	w.Value[0] += 1
	if tw.Param("dense_1/W").Value[0] != w.Value[0] {
		t.Fatal("the twin does not see the model's update")
	}
	w.Value = append([]float32(nil), w.Value...)
	w.Value[1] = 42
	if tw, err = m.Twin(tw); err != nil {
		t.Fatal(err)
	}
	if tw.Param("dense_1/W").Value[1] != 42 {
		t.Fatal("Twin did not alias the replaced Value slice")
	}
}
