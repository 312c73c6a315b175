package elementwise

import (
	"math"
	"testing"
)

// TestUnaryAssemblyMatchesGo checks Sigmoid, Tanh and ELU: the AVX2 kernels give the bits of
// the Go references (zeros, infinities, NaN, the tail included), and every value is within
// 3e-7 (absolute, or 1e-6 relative) of the float64 function.
func TestUnaryAssemblyMatchesGo(t *testing.T) {
	z := geluInputs()
	for _, tc := range []struct {
		name string
		f    func(y, z []float32)
		ref  func(float64) float64
	}{
		{"sigmoid", Sigmoid, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }},
		{"tanh", Tanh, math.Tanh},
		{"elu", ELU, func(x float64) float64 {
			if x < 0 {
				return math.Expm1(x)
			}
			return x
		}},
	} {
		run := func(on bool) []float32 {
			saved := useAVX2
			defer func() { useAVX2 = saved }()
			useAVX2 = on && saved
			y := make([]float32, len(z))
			tc.f(y, z)
			return y
		}
		asm, gof := run(true), run(false)
		for i, v := range z {
			if math.Float32bits(asm[i]) != math.Float32bits(gof[i]) && !(asm[i] != asm[i] && gof[i] != gof[i]) {
				t.Fatalf("%s(%g): assembly %g, Go %g", tc.name, v, asm[i], gof[i])
			}
			want := tc.ref(float64(v))
			if math.IsNaN(want) {
				if asm[i] == asm[i] {
					t.Errorf("%s(%g) = %g, want NaN", tc.name, v, asm[i])
				}
				continue
			}
			if err := math.Abs(float64(asm[i]) - want); err > 3e-7 && err > 1e-6*math.Abs(want) && !(math.IsInf(want, 0) && float64(asm[i]) == want) {
				t.Fatalf("%s(%g) = %g, want %g", tc.name, v, asm[i], want)
			}
		}
	}
}
