package elementwise

import (
	"math"
	"testing"
)

func geluInputs() []float32 {
	var z []float32
	for x := -20.0; x <= 20; x += 0.00071 {
		z = append(z, float32(x))
	}
	z = append(z, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 13.2, -13.2, 100, -100, 3e38, -3e38,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1, 2, 3) // 3 past a multiple of 8
	return z
}

// TestGELUAssemblyMatchesGo checks that the AVX2 kernels and the Go loops give identical
// bits, forward and backward, including zeros, infinities, NaN and the tail.
func TestGELUAssemblyMatchesGo(t *testing.T) {
	saved := useAVX2
	defer func() { useAVX2 = saved }()
	if !saved {
		t.Skip("no AVX2 on this machine")
	}
	z := geluInputs()
	run := func(on bool) (y, d []float32) {
		useAVX2 = on
		y = make([]float32, len(z))
		GELU(y, z)
		d = make([]float32, len(z))
		for i := range d {
			d[i] = 1 + float32(i%7)*0.25
		}
		GELUBackward(d, z)
		return y, d
	}
	ya, da := run(true)
	yg, dg := run(false)
	same := func(a, b float32) bool {
		return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
	}
	for i := range z {
		if !same(ya[i], yg[i]) || !same(da[i], dg[i]) {
			t.Fatalf("z = %g: assembly gives %g, %g; Go %g, %g", z[i], ya[i], da[i], yg[i], dg[i])
		}
	}
}

// TestGELUAccuracy bounds GELU and its derivative against the float64 definitions.
func TestGELUAccuracy(t *testing.T) {
	z := geluInputs()
	y := make([]float32, len(z))
	GELU(y, z)
	d := make([]float32, len(z))
	for i := range d {
		d[i] = 1
	}
	GELUBackward(d, z)
	for i, v := range z {
		x := float64(v)
		if math.IsNaN(x) {
			if y[i] == y[i] || d[i] == d[i] {
				t.Errorf("GELU(NaN) = %g, %g; want NaN", y[i], d[i])
			}
			continue
		}
		cdf := 0.5 * math.Erfc(-x/math.Sqrt2)
		want, dwant := x*cdf, cdf+x*math.Exp(-0.5*x*x)/math.Sqrt(2*math.Pi)
		if math.IsInf(x, 0) {
			dwant = cdf
			if x < 0 {
				want = 0
			}
		}
		if math.Abs(float64(y[i])-want) > 3.5e-7*math.Max(1, math.Abs(x)) && !(math.IsInf(want, 0) && float64(y[i]) == want) {
			t.Fatalf("GELU(%g) = %g, want %g", v, y[i], want)
		}
		if math.Abs(float64(d[i])-dwant) > 1e-6 {
			t.Fatalf("GELU'(%g) = %g, want %g", v, d[i], dwant)
		}
	}
}
