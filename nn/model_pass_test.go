package nn

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestTrainPass checks the ladder's two training passes against the ordinary one, on a trunk
// of batch norm, Gaussian noise and dropout: NoNoise makes noise and dropout the identity
// while batch norm still uses (and records) the batch's statistics; KeepRunningStats leaves
// the running statistics bit for bit while the pass normalises with the batch's statistics
// and draws its noise.
func TestTrainPass(t *testing.T) {
	spec := Spec{NumInputs: 2, Layers: []LayerSpec{{Type: LayerBatchNorm, Momentum: 0.5}, {Type: LayerGaussianNoise, Stddev: 0.5}, {Type: LayerDropout, Rate: 0.3}},
		Heads: []HeadSpec{{Kind: HeadRegression, Outputs: 2}}}
	b := Batch{Rows: 4, X: []float32{1, 10, 2, 20, 3, 30, 6, 0}}
	tg := Targets{Heads: []HeadTargets{{Values: make([]float32, 8)}}}
	stats := func(m *Model) []float32 {
		return append(append([]float32(nil), m.Param("batch_norm_1/running_mean").Value...), m.Param("batch_norm_1/running_var").Value...)
	}
	// Column 0 of the batch: mean 3, biased variance 14/4, so the normalised values are these.
	sd := math.Sqrt(14.0/4 + 1e-5)
	norm0 := []float64{(1 - 3) / sd, (2 - 3) / sd, 0, (6 - 3) / sd}
	col0 := func(v []float32) []float64 {
		return []float64{float64(v[0]), float64(v[2]), float64(v[4]), float64(v[6])}
	}
	close := func(a, b []float64) bool {
		for i := range a {
			if math.Abs(a[i]-b[i]) > 1e-5 {
				return false
			}
		}
		return true
	}
	tests := []struct {
		name       string
		pass       TrainPass
		noisy      bool // the trunk's output differs from batch norm's
		statsMoved bool
	}{
		{"ordinary", TrainPass{}, true, true},
		{"clean", TrainPass{NoNoise: true}, false, true},
		{"corrupted", TrainPass{KeepRunningStats: true}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mustBuild(t, spec)
			before := stats(m)
			m.SetTrainPass(tc.pass)
			if _, err := m.TrainStep(b, tg); err != nil {
				t.Fatal(err)
			}
			if got := col0(m.layerOut[0]); !close(got, norm0) {
				t.Errorf("batch norm output %v, want the batch-normalised column %v", got, norm0)
			}
			if got, bn := col0(m.layerOut[2]), col0(m.layerOut[0]); close(got, bn) != !tc.noisy {
				t.Errorf("trunk output %v against batch norm's %v: noisy = %v, want %v", got, bn, !close(got, bn), tc.noisy)
			}
			after := stats(m)
			moved := false
			for i := range after {
				if math.Float32bits(after[i]) != math.Float32bits(before[i]) {
					moved = true
				}
			}
			if moved != tc.statsMoved {
				t.Errorf("running statistics moved = %v, want %v (%v -> %v)", moved, tc.statsMoved, before, after)
			}
			if tc.statsMoved {
				if rm := float64(after[0]); math.Abs(rm-0.5*3) > 1e-6 {
					t.Errorf("running mean %v, want %v", rm, 0.5*3)
				}
			}
		})
	}
}

// TestSetLayerGradients checks the gradients SetLayerGradients adds against central finite
// differences of L = Σ g₀·out₀ + Σ g₂·out₂ (the outputs of a dense layer and of the tanh after
// its batch norm; the heads contribute nothing), for every weight, and that setting nil
// takes them out again.
func TestSetLayerGradients(t *testing.T) {
	spec := Spec{NumInputs: 3, Layers: []LayerSpec{{Type: LayerDense, Units: 4, Activation: "linear"}, {Type: LayerBatchNorm}, {Type: LayerActivation, Activation: "tanh"}},
		Heads: []HeadSpec{{Kind: HeadRegression, Outputs: 2}}}
	m := mustBuild(t, spec)
	const rows = 5
	rng := rand.New(rand.NewPCG(3, 4))
	b := Batch{Rows: rows, X: make([]float32, rows*3)}
	for i := range b.X {
		b.X[i] = float32(rng.NormFloat64())
	}
	g := [][]float32{make([]float32, rows*4), nil, make([]float32, rows*4)}
	for _, gi := range g {
		for i := range gi {
			gi[i] = float32(rng.NormFloat64())
		}
	}
	none := func(int, []float32, []float32, int) float64 { return 0 }
	lossOf := func() float64 {
		if _, err := m.LossStep(b, true, GradNone, none); err != nil {
			t.Fatal(err)
		}
		var l float64
		for i, lt := range m.LayerTensors(rows) {
			for j, v := range g[i] {
				l += float64(v) * float64(lt.Output[j])
			}
		}
		return l
	}
	m.SetLayerGradients(g)
	if _, err := m.LossStep(b, true, GradOverwrite, none); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, p := range m.Params() {
		if strings.HasPrefix(p.Name, "head_") {
			continue
		}
		grad := append([]float32(nil), p.Grad...)
		for i := range p.Value {
			num := centralDiff(p.Value, i, 1e-2, lossOf)
			if math.Abs(num-float64(grad[i])) > 1e-2*max(1, math.Abs(num)) {
				t.Errorf("%s[%d]: analytic %g, numeric %g", p.Name, i, grad[i], num)
			}
			checked++
		}
	}
	if checked < 20 {
		t.Fatalf("checked %d coordinates", checked)
	}
	m.SetLayerGradients(nil)
	if _, err := m.LossStep(b, true, GradOverwrite, none); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params() {
		for i, v := range p.Grad {
			if v != 0 {
				t.Fatalf("after SetLayerGradients(nil), %s[%d] has gradient %g, want 0", p.Name, i, v)
			}
		}
	}
}

// TestBatchNormOneRowKeepsRunningStats trains on a one-row batch (the last batch of an epoch can
// be one row): batch norm's running statistics stay as they were, bit for bit, instead of taking
// in a variance of zero; a two-row batch still updates them.
func TestBatchNormOneRowKeepsRunningStats(t *testing.T) {
	spec := Spec{NumInputs: 2, Layers: []LayerSpec{{Type: LayerDense, Units: 3}, {Type: LayerBatchNorm, Momentum: 0.5}},
		Heads: []HeadSpec{{Kind: HeadRegression, Outputs: 1}}}
	m := mustBuild(t, spec)
	stats := func() []float32 {
		return append(append([]float32(nil), m.Param("batch_norm_1/running_mean").Value...), m.Param("batch_norm_1/running_var").Value...)
	}
	before := stats()
	one := Batch{Rows: 1, X: []float32{1, 2}}
	if _, err := m.TrainStep(one, Targets{Heads: []HeadTargets{{Values: []float32{1}}}}); err != nil {
		t.Fatal(err)
	}
	for i, v := range stats() {
		if math.Float32bits(v) != math.Float32bits(before[i]) {
			t.Fatalf("a one-row batch moved the running statistics: %v -> %v", before, stats())
		}
	}
	two := Batch{Rows: 2, X: []float32{1, 2, -3, 5}}
	if _, err := m.TrainStep(two, Targets{Heads: []HeadTargets{{Values: []float32{1, 0}}}}); err != nil {
		t.Fatal(err)
	}
	moved := false
	for i, v := range stats() {
		moved = moved || math.Float32bits(v) != math.Float32bits(before[i])
	}
	if !moved {
		t.Errorf("a two-row batch left the running statistics at %v", before)
	}
}
