package features

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Augmenter perturbs a dense float32 training batch in place. The trainer applies it afresh
// each epoch, to its own copy of the batch, drawing from a seeded *rand.Rand, so that an
// augmented run is reproducible. An Augmenter holds only its configuration: it is safe for
// concurrent use with different rngs.
type Augmenter interface {
	// Validate reports whether the augmenter can work on batches of cols columns. The trainer
	// calls it once, before the first Augment.
	Validate(cols int) error
	// Augment perturbs x, rows×cols values in row-major order, in place. It panics if
	// len(x) < rows*cols or Validate(cols) fails.
	Augment(x []float32, rows, cols int, rng *rand.Rand)
}

func checkBatch(x []float32, rows, cols int) {
	if rows < 0 || cols < 0 || len(x) < rows*cols {
		panic(fmt.Sprintf("features: augment: batch of %d values is smaller than %d rows × %d cols", len(x), rows, cols))
	}
}

// GaussianNoise adds independent N(0, Std²) noise to every value. Draws: one rng.NormFloat64
// per value, in row-major order.
type GaussianNoise struct {
	// Std is the noise standard deviation, in the units of the (normalised) features.
	// Default (0): no noise.
	Std float64
}

// Validate reports whether Std is finite and not negative.
func (g GaussianNoise) Validate(cols int) error {
	if !(g.Std >= 0) || math.IsInf(g.Std, 0) {
		return fmt.Errorf("augment: gaussian noise std %g must be finite and ≥ 0", g.Std)
	}
	return nil
}

// Augment adds the noise to x in place.
func (g GaussianNoise) Augment(x []float32, rows, cols int, rng *rand.Rand) {
	checkBatch(x, rows, cols)
	if g.Std == 0 {
		return
	}
	for i := range x[:rows*cols] {
		x[i] += float32(g.Std * rng.NormFloat64())
	}
}

// FeatureDropout sets each value to 0 independently with probability Rate, without rescaling
// the others (on standardised features, 0 is the training mean: a dropped value reads as
// "unknown"). Draws: one rng.Float64 per value, in row-major order.
type FeatureDropout struct {
	// Rate is the probability that a value is dropped, in [0, 1). Default (0): none.
	Rate float64
}

// Validate reports whether Rate is in [0, 1).
func (d FeatureDropout) Validate(cols int) error {
	if !(d.Rate >= 0 && d.Rate < 1) {
		return fmt.Errorf("augment: feature dropout rate %g must be in [0, 1)", d.Rate)
	}
	return nil
}

// Augment drops values of x in place.
func (d FeatureDropout) Augment(x []float32, rows, cols int, rng *rand.Rand) {
	checkBatch(x, rows, cols)
	if d.Rate == 0 {
		return
	}
	for i := range x[:rows*cols] {
		if rng.Float64() < d.Rate {
			x[i] = 0
		}
	}
}
