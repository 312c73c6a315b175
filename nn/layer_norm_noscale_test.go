package nn

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn/optim"
)

// TestBatchNormNoScale checks batch_norm with NoScale: γ is not a param (so no optimizer moves
// it), the train pass's output is x̂ + β (per unit: batch mean β, batch spread 1 whatever the
// training did), the model saves and loads with its predictions unchanged, and a layer other
// than batch_norm refuses the setting.
func TestBatchNormNoScale(t *testing.T) {
	spec := Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6}, {Type: LayerBatchNorm, NoScale: true}, {Type: LayerActivation, Activation: "relu"}},
		Heads: softmaxHead(3)}
	rng := rand.New(rand.NewPCG(5, 6))
	m, err := Build(spec, rng)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Param("batch_norm_1/gamma"); p != nil {
		t.Fatalf("batch_norm_1/gamma is a param of a no_scale batch norm")
	}
	if m.Param("batch_norm_1/beta") == nil {
		t.Fatal("batch_norm_1/beta is missing")
	}
	rows := 32
	b := randomBatch(rng, m.Spec(), rows)
	tg := randomTargets(rng, m.Spec(), rows, 0)
	opt, err := optim.New(optim.Config{Name: optim.NameAdam})
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if _, err := m.TrainStep(b, tg); err != nil {
			t.Fatal(err)
		}
		opt.Step(m.Params(), 0.05)
	}
	if _, err := m.LossStep(b, true, GradNone, func(int, []float32, []float32, int) float64 { return 0 }); err != nil {
		t.Fatal(err)
	}
	out := m.LayerTensors(rows)[1]
	be := m.Param("batch_norm_1/beta").Value
	moved := false
	for j := range 6 {
		var s, ss float64
		for r := range rows {
			s += float64(out.Output[r*6+j])
		}
		mu := s / float64(rows)
		for r := range rows {
			d := float64(out.Output[r*6+j]) - mu
			ss += d * d
		}
		sd := math.Sqrt(ss / float64(rows))
		if math.Abs(mu-float64(be[j])) > 1e-4 || math.Abs(sd-1) > 1e-3 {
			t.Errorf("unit %d: batch output mean %.5f sd %.5f, want β %.5f and 1", j, mu, sd, be[j])
		}
		moved = moved || be[j] != 0
	}
	if !moved {
		t.Error("training left every β at 0")
	}
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.Predict(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := back.Predict(b)
	if err != nil {
		t.Fatal(err)
	}
	for h := range want.Heads {
		for i, v := range want.Heads[h] {
			if got.Heads[h][i] != v {
				t.Fatalf("loaded model predicts %g at %d, the saved one %g", got.Heads[h][i], i, v)
			}
		}
	}
	bad := Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, NoScale: true}}, Heads: softmaxHead(3)}
	if _, err := Build(bad, rng); err == nil || !strings.Contains(err.Error(), "no_scale is a setting of batch_norm layers") {
		t.Fatalf("no_scale on a dense layer: %v", err)
	}
}
