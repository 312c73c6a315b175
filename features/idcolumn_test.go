package features

import (
	"math/rand/v2"
	"testing"
)

// TestLooksLikeRowID: distinct integers, and evenly spaced values of an integer column after
// normalize (with holes left by a split), look like ids; repeated values, too few rows,
// unevenly spread distinct floats, or scaled values of a float column do not.
func TestLooksLikeRowID(t *testing.T) {
	seq := func(n int, f func(i int) float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	rng := rand.New(rand.NewPCG(1, 2))
	shuffled := seq(500, func(i int) float64 { return float64(1000 + i) })
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	// What a 70% split leaves of ids 0..999, standardised to float32 precision.
	var kept []float64
	for i := range 1000 {
		if rng.Float64() < 0.7 {
			kept = append(kept, float64(float32((float64(i)-500)/288.7)))
		}
	}
	cases := []struct {
		name          string
		values        []float64
		integerOrigin bool
		want          bool
	}{
		{"ids in order", seq(200, func(i int) float64 { return float64(i + 1) }), true, true},
		{"ids shuffled", shuffled, true, true},
		{"sparse random ids", seq(200, func(i int) float64 { return float64(i*7919 + 13) }), true, true},
		{"normalized ids with holes", kept, true, true},
		{"repeats", seq(200, func(i int) float64 { return float64(i % 50) }), true, false},
		{"too few rows", seq(MinIDRows-1, func(i int) float64 { return float64(i) }), true, false},
		{"distinct floats", seq(200, func(i int) float64 { return rng.NormFloat64() }), false, false},
		{"normalized float column", seq(200, func(i int) float64 { return float64(i) / 3.7 }), false, false},
		{"scaled integers, uneven", seq(200, func(i int) float64 { return float64(i*i) / 1e3 }), true, false},
	}
	for _, c := range cases {
		if got := LooksLikeRowID(c.values, c.integerOrigin); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
