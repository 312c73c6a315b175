package nn

import (
	"math"
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
