package features

import (
	"math/rand/v2"
	"testing"
)

// TestSelectQuantiles compares quickselect quantiles with a sorted reference on random data
// with many ties and on small sizes.
func TestSelectQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	qs := []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, 1}
	for _, n := range []int{1, 2, 3, 5, 16, 17, 18, 100, 1001, 10_000} {
		for _, distinct := range []int{2, 10, 1 << 30} {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = float64(rng.IntN(distinct))
			}
			c := columnValues{f64: append([]float64(nil), xs...)}
			got := c.quantiles(qs...)
			for i, q := range qs {
				if want := naiveQuantile(xs, q); got[i] != want {
					t.Fatalf("n %d distinct %d q %g: %g, want %g", n, distinct, q, got[i], want)
				}
			}
		}
	}
}
