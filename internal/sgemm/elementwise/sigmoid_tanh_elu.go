package elementwise

import "math"

// Sigmoid sets y[i] = 1/(1+e^-z[i]), Tanh y[i] = tanh(z[i]) and ELU y[i] = z[i] for z[i] >= 0,
// e^z[i] - 1 below (alpha 1), for every i of z (y at least as long). Each follows a scalar
// reference (sigmoidOne, tanhOne, eluOne) operation for operation, which the AVX2 assembly
// reproduces bit for bit; all are within 3e-7 of the float64 functions.
func Sigmoid(y, z []float32) {
	y = y[:len(z)]
	done := unaryVector(unarySigmoid, y, z)
	for i, v := range z[done:] {
		y[done+i] = sigmoidOne(v)
	}
}

// Tanh: see Sigmoid.
func Tanh(y, z []float32) {
	y = y[:len(z)]
	done := unaryVector(unaryTanh, y, z)
	for i, v := range z[done:] {
		y[done+i] = tanhOne(v)
	}
}

// ELU: see Sigmoid.
func ELU(y, z []float32) {
	y = y[:len(z)]
	done := unaryVector(unaryELU, y, z)
	for i, v := range z[done:] {
		y[done+i] = eluOne(v)
	}
}

const (
	unarySigmoid = iota
	unaryTanh
	unaryELU
)

const (
	signBit   = 1 << 31
	tanhSmall = 0.625 // below: Cephes' odd polynomial; above: (1 - e^-2a)/(1 + e^-2a)
	tanhT0    = -5.70498872745e-3
	tanhT1    = 2.06390887954e-2
	tanhT2    = -5.37397155531e-2
	tanhT3    = 1.33314422036e-1
	tanhT4    = -3.33332819422e-1
)

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ signBit) }

// sigmoidOne computes e = e^-|v| (never overflows) and returns 1/(1+e) for v >= 0, e/(1+e)
// below.
func sigmoidOne(v float32) float32 {
	e := expNonPos(-abs32(v))
	den := geluOne + e
	if v >= 0 {
		return geluOne / den
	}
	return e / den
}

// tanhOne returns Cephes' odd polynomial below |v| = 0.625 and sign(v)·(1-e)/(1+e) with
// e = e^(-2|v|) above.
func tanhOne(v float32) float32 {
	a := abs32(v)
	if a < tanhSmall {
		z := float32(v * v)
		p := float32(tanhT0*z) + tanhT1
		p = float32(p*z) + tanhT2
		p = float32(p*z) + tanhT3
		p = float32(p*z) + tanhT4
		return float32(float32(p*z)*v) + v
	}
	e := expNonPos(float32(-2 * a))
	t := (geluOne - e) / (geluOne + e)
	return math.Float32frombits(math.Float32bits(t) | math.Float32bits(v)&signBit)
}

// eluOne returns v for v >= 0 (and NaN), e^v - 1 below.
func eluOne(v float32) float32 {
	if v < 0 {
		return expNonPos(v) - geluOne
	}
	return v
}
