package elementwise

import "math"

// GELU sets y[i] = z[i]·Φ(z[i]) (Φ the standard normal CDF) for every i of z; y must be at
// least as long as z. GELUBackward multiplies d[i] by GELU'(z[i]) = Φ(z[i]) + z[i]·φ(z[i])
// in place (z at least as long as d). Φ comes from Abramowitz & Stegun 7.1.26 (absolute
// error below 3e-7 here) and φ from a Cephes-style float32 exp; geluTerms writes out the
// exact operation order, which the AVX2 assembly follows bit for bit.
func GELU(y, z []float32) {
	y = y[:len(z)]
	done := geluVector(y, z)
	for i, v := range z[done:] {
		cdf, _ := geluTerms(v)
		y[done+i] = v * cdf
	}
}

// GELUBackward: see GELU.
func GELUBackward(d, z []float32) {
	z = z[:len(d)]
	done := geluBackwardVector(d, z)
	for i, v := range z[done:] {
		cdf, pdf := geluTerms(v)
		d[done+i] *= cdf + float32(v*pdf)
	}
}

// The constants of geluTerms, as float32 (the assembly reads the same values).
const (
	geluMinusHalf  = -0.5
	geluLog2e      = 1.44269504088896341
	geluHalf       = 0.5
	geluLn2Hi      = 0.693359375
	geluLn2Lo      = -2.12194440e-4
	geluP0         = 1.9875691500e-4
	geluP1         = 1.3981999507e-3
	geluP2         = 8.3334519073e-3
	geluP3         = 4.1665795894e-2
	geluP4         = 1.6666665459e-1
	geluP5         = 5.0000001201e-1
	geluOne        = 1.0
	geluExpLo      = -87.33654475055310
	geluInvSqrt2Pi = 0.39894228040143267794
	geluInvSqrt2   = 0.70710678118654752440
	geluASp        = 0.3275911
	geluA1         = 1.061405429
	geluA2         = -1.453152027
	geluA3         = 1.421413741
	geluA4         = -0.284496736
	geluA5         = 0.254829592
)

// expNonPos returns e^arg for arg <= 0 (or NaN) with a relative error below 2e-7, rounding
// after every operation: arg = n·ln2 + r, e^r by a degree-6 polynomial (Cephes expf), 2^n
// through the exponent bits; below -87.34 (no float32 normal) it is 0.
func expNonPos(arg float32) float32 {
	fx := float32(arg * geluLog2e)
	ni := int32(fx - geluHalf) // round(fx), fx <= 0
	n := float32(ni)
	r := arg - float32(n*geluLn2Hi)
	r = r - float32(n*geluLn2Lo)
	p := float32(geluP0*r) + geluP1
	p = float32(p*r) + geluP2
	p = float32(p*r) + geluP3
	p = float32(p*r) + geluP4
	p = float32(p*r) + geluP5
	y := float32(float32(p*r)*r) + r
	y = y + geluOne
	e := y * math.Float32frombits(uint32(ni+127)<<23)
	if arg < geluExpLo {
		e = 0
	}
	return e
}

// geluTerms returns Φ(v) and φ(v), rounding after every operation (no fused multiply-add).
func geluTerms(v float32) (cdf, pdf float32) {
	arg := float32(float32(geluMinusHalf*v) * v) // -v²/2 <= 0 (or NaN)
	e := expNonPos(arg)
	pdf = geluInvSqrt2Pi * e
	a := float32(v * geluInvSqrt2)
	a = math.Float32frombits(math.Float32bits(a) &^ (1 << 31))
	t := geluOne / (float32(geluASp*a) + geluOne)
	q := float32(geluA1*t) + geluA2
	q = float32(q*t) + geluA3
	q = float32(q*t) + geluA4
	q = float32(q*t) + geluA5
	q = q * t
	half := float32(geluHalf*q) * e
	if v < 0 {
		return half, pdf
	}
	return geluOne - half, pdf
}
