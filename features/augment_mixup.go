package features

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Mixup replaces each row of a batch, and its soft target, by a convex combination with another
// row of the batch (Zhang et al., 2018): x_i ← λ_i·x_i + (1-λ_i)·x_π(i), y_i likewise with the
// same λ_i, where π is a random permutation of the batch and λ_i ~ Beta(Alpha, Alpha).
// Draws: the permutation (rng.Perm), then one λ per row.
type Mixup struct {
	// Alpha is the Beta distribution's parameter; small values (0.2) keep most λ near 0 or 1.
	// Default (0): off.
	Alpha float64
}

// Validate reports whether Alpha is finite and not negative.
func (m Mixup) Validate() error {
	if !(m.Alpha >= 0) || math.IsInf(m.Alpha, 0) {
		return fmt.Errorf("augment: mixup alpha %g must be finite and ≥ 0", m.Alpha)
	}
	return nil
}

// Mix mixes the rows of x (rows×cols) and of their soft targets y (rows×k) in place. It panics
// if x or y is too short or Validate fails. It allocates copies of x and y; see DrawTo and
// MixRowsTo to mix with caller-owned buffers, or to mix further per-row data (sample weights,
// several heads' targets) with the same pairs.
func (m Mixup) Mix(x []float32, y []float32, rows, cols, k int, rng *rand.Rand) {
	checkBatch(x, rows, cols)
	checkBatch(y, rows, k)
	if err := m.Validate(); err != nil {
		panic(err)
	}
	if m.Alpha == 0 || rows < 2 {
		return
	}
	partner, lambda := make([]int, rows), make([]float64, rows)
	m.DrawTo(partner, lambda, rng)
	x0 := append([]float32(nil), x[:rows*cols]...)
	y0 := append([]float32(nil), y[:rows*k]...)
	MixRowsTo(x, x0, cols, partner, lambda)
	MixRowsTo(y, y0, k, partner, lambda)
}

// DrawTo draws the pairs of one batch of len(partner) rows, as Mix does: partner[i] = π(i) for
// a random permutation π (the draws of rng.Perm), then lambda[i] ~ Beta(Alpha, Alpha) for
// i = 0, 1, ... in order. π may map a row to itself (it then stays as it is). With Alpha 0 it
// draws nothing and pairs every row with itself, λ = 1. It panics if the lengths differ or
// Validate fails.
func (m Mixup) DrawTo(partner []int, lambda []float64, rng *rand.Rand) {
	if len(partner) != len(lambda) {
		panic(fmt.Sprintf("features: mixup: %d partners for %d lambdas", len(partner), len(lambda)))
	}
	if err := m.Validate(); err != nil {
		panic(err)
	}
	for i := range partner {
		partner[i], lambda[i] = i, 1
	}
	if m.Alpha == 0 {
		return
	}
	// rng.Perm's draws, without its allocation.
	rng.Shuffle(len(partner), func(i, j int) { partner[i], partner[j] = partner[j], partner[i] })
	for i := range lambda {
		lambda[i] = sampleBeta(rng, m.Alpha)
	}
}

// MixRowsTo writes dst_i = λ_i·src_i + (1−λ_i)·src_partner[i] for every row i of src (rows of
// cols values, rows = len(partner)), in float32 with λ_i and 1−λ_i rounded to float32. dst and
// src must not overlap. A NaN in either source row makes the mixed value NaN (a missing value
// stays missing). It panics if a slice is too short or a partner is out of range.
func MixRowsTo(dst, src []float32, cols int, partner []int, lambda []float64) {
	rows := len(partner)
	checkBatch(dst, rows, cols)
	checkBatch(src, rows, cols)
	if len(lambda) != rows {
		panic(fmt.Sprintf("features: mixup: %d lambdas for %d rows", len(lambda), rows))
	}
	for i, j := range partner {
		l, r := float32(lambda[i]), float32(1-lambda[i])
		di, si, sj := dst[i*cols:(i+1)*cols], src[i*cols:(i+1)*cols], src[j*cols:(j+1)*cols]
		for c := range di {
			di[c] = l*si[c] + r*sj[c]
		}
	}
}

// sampleBeta draws from Beta(a, a) as X/(X+Y) with X, Y ~ Gamma(a, 1).
func sampleBeta(rng *rand.Rand, a float64) float64 {
	x, y := sampleGamma(rng, a), sampleGamma(rng, a)
	if x+y == 0 {
		return 0.5
	}
	return x / (x + y)
}

// sampleGamma draws from Gamma(a, 1) by Marsaglia & Tsang's method (a < 1 via the boost
// Gamma(a+1)·U^(1/a)).
func sampleGamma(rng *rand.Rand, a float64) float64 {
	if a < 1 {
		u := rng.Float64()
		return sampleGamma(rng, a+1) * math.Pow(u, 1/a)
	}
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		z := rng.NormFloat64()
		v := 1 + c*z
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if u < 1-0.0331*z*z*z*z || math.Log(u) < 0.5*z*z+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}
