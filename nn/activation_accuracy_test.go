package nn

import (
	"math"
	"testing"
)

// grid returns the float32 values from lo to hi in steps of step, plus special points.
func grid(lo, hi, step float64) []float32 {
	var xs []float32
	for x := lo; x <= hi; x += step {
		xs = append(xs, float32(x))
	}
	return append(xs, 0, float32(math.Copysign(0, -1)), 1e-8, -1e-8, 1e-30, -1e-30)
}

// within reports whether got is within abs + rel·|want| of want.
func within(got float32, want, abs, rel float64) bool {
	return math.Abs(float64(got)-want) <= abs+rel*math.Abs(want)
}

// TestActivationsAgainstFloat64 checks every activation's forward and backward pass against
// the float64 definitions.
func TestActivationsAgainstFloat64(t *testing.T) {
	z := grid(-15, 15, 0.0017)
	ref := map[activation]struct{ f, df func(float64) float64 }{
		actGELU: {func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) },
			func(x float64) float64 {
				return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-0.5*x*x)/math.Sqrt(2*math.Pi)
			}},
		actELU: {func(x float64) float64 {
			if x < 0 {
				return math.Expm1(x)
			}
			return x
		}, func(x float64) float64 {
			if x < 0 {
				return math.Exp(x)
			}
			return 1
		}},
		actTanh:    {math.Tanh, func(x float64) float64 { return 1 - math.Tanh(x)*math.Tanh(x) }},
		actSigmoid: {func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }, func(x float64) float64 { s := 1 / (1 + math.Exp(-x)); return s * (1 - s) }},
		actLeakyReLU: {func(x float64) float64 { return max(x, 0) + leakySlope*min(x, 0) },
			func(x float64) float64 {
				if x < 0 {
					return leakySlope
				}
				return 1
			}},
	}
	for a, r := range ref {
		y := make([]float32, len(z))
		a.applyTo(y, z)
		d := make([]float32, len(z))
		for i := range d {
			d[i] = 1
		}
		a.backwardInPlace(d, y, z)
		for i, x := range z {
			xf := float64(x)
			if !within(y[i], r.f(xf), 4e-7, 1e-6) {
				t.Fatalf("%s(%g) = %g, want %g", a, x, y[i], r.f(xf))
			}
			if !within(d[i], r.df(xf), 1e-6, 2e-6) {
				t.Fatalf("%s'(%g) = %g, want %g", a, x, d[i], r.df(xf))
			}
		}
	}
}
