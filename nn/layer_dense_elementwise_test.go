package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDenseElementwiseBitExact checks the dense layer's element-wise passes (bias + activation
// forward, ReLU backward mask, bias-gradient column sums), which run vectorised kernels,
// against plain scalar loops written out here, bit for bit and with NaN and ±0 among the
// inputs, so the layer computes the same on every machine and build.
func TestDenseElementwiseBitExact(t *testing.T) {
	nan, negZero := float32(math.NaN()), float32(math.Copysign(0, -1))
	same := func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b) }
	for _, tc := range []struct {
		rows, n int
		act     activation
	}{
		{1, 1, actReLU}, {3, 10, actReLU}, {5, 37, actReLU}, {128, 256, actReLU},
		{4, 29, actLinear}, {4, 70, actTanh}, {2, 13, actGELU},
	} {
		t.Run(fmt.Sprintf("%s/%dx%d", tc.act, tc.rows, tc.n), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.rows), uint64(tc.n)))
			rnd := func(size int) []float32 {
				s := make([]float32, size)
				for i := range s {
					s[i] = float32(rng.NormFloat64())
				}
				return s
			}
			y, bias := rnd(tc.rows*tc.n), rnd(tc.n)
			y[0] = negZero
			bias[0] = negZero // -0 + -0 = -0: ReLU must give +0, as Go's max does
			if len(y) > 2 {
				y[2] = nan
			}
			want := slices.Clone(y)
			for r := 0; r < tc.rows; r++ {
				for j := range tc.n {
					want[r*tc.n+j] += bias[j]
				}
			}
			var z, wantZ []float32
			if tc.act.needsPreActivation() {
				z, wantZ = make([]float32, len(y)), slices.Clone(want)
			}
			for i, v := range want {
				switch tc.act {
				case actReLU:
					want[i] = max(v, 0)
				case actLinear:
				default:
					tc.act.applyTo(want[i:i+1], []float32{v}) // scalar call: the non-ReLU path is unchanged Go
				}
			}
			biasActivateTo(y, z, bias, tc.n, tc.act)
			for i := range y {
				if !same(y[i], want[i]) {
					t.Fatalf("forward y[%d] = %v (%#x), scalar loop %v (%#x)", i, y[i], math.Float32bits(y[i]), want[i], math.Float32bits(want[i]))
				}
			}
			for i := range wantZ {
				if !same(z[i], wantZ[i]) {
					t.Fatalf("pre-activation z[%d] = %v, scalar loop %v", i, z[i], wantZ[i])
				}
			}
			if tc.act == actReLU {
				d := rnd(len(y))
				wantD := slices.Clone(d)
				for i, v := range y {
					if v <= 0 { // NaN passes the gradient, as PyTorch's threshold_backward
						wantD[i] = 0
					}
				}
				tc.act.backwardInPlace(d, y, nil)
				for i := range d {
					if !same(d[i], wantD[i]) {
						t.Fatalf("backward d[%d] = %v, scalar loop %v (y = %v)", i, d[i], wantD[i], y[i])
					}
				}
			}
			m := rnd(tc.rows * tc.n)
			m[0] = negZero
			dst := rnd(tc.n) // garbage columnSumTo must overwrite
			columnSumTo(dst, m, tc.n)
			for j := range tc.n {
				var s float32
				for r := 0; r < tc.rows; r++ {
					s += m[r*tc.n+j]
				}
				if !same(dst[j], s) {
					t.Fatalf("column sum [%d] = %v, scalar loop %v", j, dst[j], s)
				}
			}
		})
	}
}
