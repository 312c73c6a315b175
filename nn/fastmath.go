package nn

import "math"

// Float32 elementary functions for the ELU, tanh and sigmoid activations (GELU's, vectorised,
// are in package elementwise): polynomial approximations evaluated in float32, several times
// faster than converting to float64 for math.Exp / math.Tanh, and accurate to a few float32
// ulps (the tests bound them against the float64 functions over the whole range).

const (
	log2e32 = 1.44269504088896341
	expHi32 = 88.72283905206835  // above: +Inf
	expLo32 = -87.33654475055310 // below: 0 (the smallest normal float32 is e^-87.3)
	ln2Hi32 = 0.693359375
	ln2Lo32 = -2.12194440e-4
)

// exp32 returns e^x with a relative error below 2e-7 (Cephes expf: x = n·ln2 + r with
// |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n through the exponent bits). It returns
// +Inf above 88.72, 0 below -87.34 (no subnormals), and NaN for NaN.
func exp32(x float32) float32 {
	if !(x <= expHi32) { // also NaN
		if x != x {
			return x
		}
		return float32(math.Inf(1))
	}
	if x < expLo32 {
		return 0
	}
	// n = round(x·log2 e), half away from zero (a conversion, not a call to math.Floor).
	fx := x * log2e32
	ni := int32(fx + 0.5)
	if fx < 0 {
		ni = int32(fx - 0.5)
	}
	n := float32(ni)
	r := x - n*ln2Hi32
	r -= n * ln2Lo32
	p := ((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r + 5.0000001201e-1
	y := p*r*r + r + 1
	if ni > 127 { // e^x just below the float32 maximum: 2^128 itself is not representable
		return y * math.Float32frombits(uint32(ni+126)<<23) * 2
	}
	return y * math.Float32frombits(uint32(ni+127)<<23)
}

// tanh32 returns tanh(x) with an absolute error below 2e-7 (Cephes tanhf: an odd polynomial
// below 0.625, 1 - 2/(e^2|x| + 1) above).
func tanh32(x float32) float32 {
	a := x
	if a < 0 {
		a = -a
	}
	if a < 0.625 {
		z := x * x
		return ((((-5.70498872745e-3*z+2.06390887954e-2)*z-5.37397155531e-2)*z+1.33314422036e-1)*z-3.33332819422e-1)*z*x + x
	}
	if a > 9.1 {
		return float32(math.Copysign(1, float64(x)))
	}
	y := 1 - 2/(exp32(2*a)+1)
	if x < 0 {
		return -y
	}
	return y
}

// sigmoid32 returns 1/(1+e^-v), computed on the side that does not overflow.
func sigmoid32(v float32) float32 {
	if v >= 0 {
		return 1 / (1 + exp32(-v))
	}
	e := exp32(v)
	return e / (1 + e)
}

// sigmoidExact is the sigmoid through float64 math.Exp, correctly rounded to float32: the
// heads use it (their probabilities are reported and compared), the activations use
// sigmoid32.
func sigmoidExact(v float32) float32 {
	if v >= 0 {
		return float32(1 / (1 + math.Exp(-float64(v))))
	}
	e := math.Exp(float64(v))
	return float32(e / (1 + e))
}
