//go:build amd64 && !purego

package elementwise

import (
	"math"

	"golang.org/x/sys/cpu"
)

// useAVX2 selects the GELU assembly (it shifts 256-bit integer lanes: AVX2).
var useAVX2 = cpu.X86.HasAVX2

//go:noescape
func geluAVX2(y, z *float32, n int, c *float32)

//go:noescape
func geluBackwardAVX2(d, z *float32, n int, c *float32)

//go:noescape
func sigmoidAVX2(y, z *float32, n int, c *float32)

//go:noescape
func tanhAVX2(y, z *float32, n int, c *float32)

//go:noescape
func eluAVX2(y, z *float32, n int, c *float32)

// geluTable holds geluTerms' constants, each broadcast to 8 lanes, in the order the
// assembly reads them (offset 32·index).
var geluTable = func() (t [31][8]float32) {
	vals := [...]float32{geluMinusHalf, geluLog2e, geluHalf, geluLn2Hi, geluLn2Lo, geluP0, geluP1, geluP2, geluP3, geluP4, geluP5,
		geluOne, geluExpLo, geluInvSqrt2Pi, geluInvSqrt2, geluASp, geluA1, geluA2, geluA3, geluA4, geluA5,
		math.Float32frombits(0x7fffffff), math.Float32frombits(127),
		math.Float32frombits(signBit), -2, tanhSmall, tanhT0, tanhT1, tanhT2, tanhT3, tanhT4}
	for i, v := range vals {
		for j := range t[i] {
			t[i][j] = v
		}
	}
	return t
}()

func geluVector(y, z []float32) int {
	n := len(z) &^ 7
	if !useAVX2 || n == 0 {
		return 0
	}
	_ = y[n-1]
	geluAVX2(&y[0], &z[0], n, &geluTable[0][0])
	return n
}

func geluBackwardVector(d, z []float32) int {
	n := len(d) &^ 7
	if !useAVX2 || n == 0 {
		return 0
	}
	_ = z[n-1]
	geluBackwardAVX2(&d[0], &z[0], n, &geluTable[0][0])
	return n
}

// unaryVector runs the assembly of Sigmoid, Tanh or ELU over the largest multiple-of-8
// prefix and returns its length.
func unaryVector(op int, y, z []float32) int {
	n := len(z) &^ 7
	if !useAVX2 || n == 0 {
		return 0
	}
	_ = y[n-1]
	switch op {
	case unarySigmoid:
		sigmoidAVX2(&y[0], &z[0], n, &geluTable[0][0])
	case unaryTanh:
		tanhAVX2(&y[0], &z[0], n, &geluTable[0][0])
	case unaryELU:
		eluAVX2(&y[0], &z[0], n, &geluTable[0][0])
	}
	return n
}
