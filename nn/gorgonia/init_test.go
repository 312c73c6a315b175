package graphmodel

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestInitialisers checks each initialiser's range and standard deviation on a 200×300
// matrix against its formula, and that it depends only on the rng's seed.
func TestInitialisers(t *testing.T) {
	const fanIn, fanOut = 200, 300
	glorot := math.Sqrt(6.0 / (fanIn + fanOut))
	cases := []struct {
		name  string
		init  func(*rand.Rand) gorgonia.InitWFn
		std   float64 // expected standard deviation
		bound float64 // |w| ≤ bound when > 0
	}{
		{"glorot_uniform", GlorotUniform, glorot / math.Sqrt(3), glorot},
		{"he_normal", HeNormal, math.Sqrt(2.0 / fanIn), 0},
		{"normal_0.05", func(r *rand.Rand) gorgonia.InitWFn { return Normal(r, 0.05) }, 0.05, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.init(rand.New(rand.NewPCG(1, 2)))(tensor.Float32, fanIn, fanOut).([]float32)
			if len(w) != fanIn*fanOut {
				t.Fatalf("%d values, want %d", len(w), fanIn*fanOut)
			}
			var s, ss float64
			for _, v := range w {
				if tc.bound > 0 && math.Abs(float64(v)) > tc.bound {
					t.Fatalf("value %v outside ±%v", v, tc.bound)
				}
				s += float64(v)
				ss += float64(v) * float64(v)
			}
			n := float64(len(w))
			mean := s / n
			std := math.Sqrt(ss/n - mean*mean)
			// 60000 draws: the sample std is within 1% of the true one with overwhelming
			// probability; 3% leaves room.
			if math.Abs(std-tc.std) > 0.03*tc.std || math.Abs(mean) > 0.03*tc.std {
				t.Errorf("mean %.4g, std %.4g; want 0 and %.4g", mean, std, tc.std)
			}
			again := tc.init(rand.New(rand.NewPCG(1, 2)))(tensor.Float64, fanIn, fanOut).([]float64)
			for i := range w {
				if float32(again[i]) != w[i] {
					t.Fatalf("value %d: %v in float32, %v in float64 from the same seed", i, w[i], again[i])
				}
			}
		})
	}
}
