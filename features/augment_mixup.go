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
// if x or y is too short or Validate fails.
func (m Mixup) Mix(x []float32, y []float32, rows, cols, k int, rng *rand.Rand) {
	checkBatch(x, rows, cols)
	checkBatch(y, rows, k)
	if err := m.Validate(); err != nil {
		panic(err)
	}
	if m.Alpha == 0 || rows < 2 {
		return
	}
	x0 := append([]float32(nil), x[:rows*cols]...)
	y0 := append([]float32(nil), y[:rows*k]...)
	perm := rng.Perm(rows)
	for i, j := range perm {
		lambda := sampleBeta(rng, m.Alpha)
		l, r := float32(lambda), float32(1-lambda)
		xi, xj := x[i*cols:(i+1)*cols], x0[j*cols:(j+1)*cols]
		for c := range xi {
			xi[c] = l*x0[i*cols+c] + r*xj[c]
		}
		yi, yj := y[i*k:(i+1)*k], y0[j*k:(j+1)*k]
		for c := range yi {
			yi[c] = l*y0[i*k+c] + r*yj[c]
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
