package features

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"
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

// TestRadixQuantiles compares the histogram selection with a sorted reference (numpy
// "linear", naiveQuantile) and with quickselect, bit for bit, on float32 and float64 columns
// split into uneven chunks: wide and clustered ranges (many values in one bucket), ties,
// negatives and signed zeros, subnormals, tiny sizes; and through columnValues.quantiles at
// the size where it switches to the histogram.
func TestRadixQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	qs := []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, 1}
	dists := []struct {
		name string
		draw func() float64
	}{
		{"uniform_0.01_1", func() float64 { return 0.01 + 0.99*rng.Float64() }},
		{"normal_wide", func() float64 { return 1e3 * rng.NormFloat64() }},
		{"one_bucket_cluster", func() float64 { return 1 + 1e-4*rng.Float64() }},
		{"ties_and_signed_zeros", func() float64 {
			return []float64{-2, -1, math.Copysign(0, -1), 0, 1, 3}[rng.IntN(6)]
		}},
		{"subnormal_and_huge", func() float64 {
			// float32 subnormals (1e-40, 1.4e-45) and values near float32's largest.
			return []float64{1e-40, -1e-40, 1e37, -1e37, 1.5e-45}[rng.IntN(5)] * (1 + rng.Float64())
		}},
	}
	chunked := func(xs []float64, f32 bool) ([][]float32, [][]float64) {
		var c32 [][]float32
		var c64 [][]float64
		for lo := 0; lo < len(xs); {
			hi := min(len(xs), lo+1+rng.IntN(300))
			if f32 {
				ch := make([]float32, 0, hi-lo)
				for _, x := range xs[lo:hi] {
					ch = append(ch, float32(x))
				}
				c32 = append(c32, ch)
			} else {
				c64 = append(c64, slices.Clone(xs[lo:hi]))
			}
			lo = hi
		}
		return c32, c64
	}
	for _, d := range dists {
		for _, n := range []int{1, 2, 3, 17, 1000, 5000} {
			for _, f32 := range []bool{true, false} {
				name := fmt.Sprintf("%s/n%d/f32_%v", d.name, n, f32)
				t.Run(name, func(t *testing.T) {
					xs := make([]float64, n)
					for i := range xs {
						xs[i] = d.draw()
						if f32 {
							xs[i] = float64(float32(xs[i]))
						}
					}
					c32, c64 := chunked(xs, f32)
					var got []float64
					if f32 {
						got = radixQuantiles(c32, n, qs)
					} else {
						got = radixQuantiles(c64, n, qs)
					}
					quick := selectQuantiles(slices.Clone(xs), qs)
					for i, q := range qs {
						want := naiveQuantile(xs, q)
						if f32 {
							// Interpolated in float64 from float32 values, as the quickselect path does.
							want = quick[i]
							if math.Abs(want-naiveQuantile(xs, q)) > 1e-12*max(1, math.Abs(want)) {
								t.Fatalf("q %g: quickselect %g, sorted reference %g", q, want, naiveQuantile(xs, q))
							}
						}
						if got[i] != quick[i] { // numerically: -0 and +0 may swap places among ties
							t.Fatalf("q %g: radix %g, quickselect %g", q, got[i], quick[i])
						}
						if got[i] != want {
							t.Fatalf("q %g: radix %g, want %g", q, got[i], want)
						}
					}
				})
			}
		}
	}
	t.Run("columnValues_switches_at_radixMinValues", func(t *testing.T) {
		n := radixMinValues + 3
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(float32(rng.NormFloat64()))
		}
		c32, _ := chunked(xs, true)
		c := columnValues{chunks32: c32}
		got := c.quantiles(0.25, 0.5, 0.75)
		for i, q := range []float64{0.25, 0.5, 0.75} {
			if want := naiveQuantile(xs, q); got[i] != want {
				t.Fatalf("q %g: %g, want %g", q, got[i], want)
			}
		}
		if len(c.f32) != 0 {
			t.Error("the radix path flattened the chunks (an extra copy of the column)")
		}
	})
}

// TestForEachParallelBound: forEachParallel calls fn once per index and never runs more than
// workers calls at once.
func TestForEachParallelBound(t *testing.T) {
	for _, workers := range []int{1, 3} {
		var running, peak atomic.Int32
		seen := make([]atomic.Int32, 40)
		forEachParallel(len(seen), workers, func(i int) {
			r := running.Add(1)
			for {
				p := peak.Load()
				if r <= p || peak.CompareAndSwap(p, r) {
					break
				}
			}
			time.Sleep(200 * time.Microsecond)
			seen[i].Add(1)
			running.Add(-1)
		})
		if p := peak.Load(); p > int32(workers) {
			t.Errorf("workers %d: %d calls ran at once", workers, p)
		}
		for i := range seen {
			if n := seen[i].Load(); n != 1 {
				t.Errorf("workers %d: index %d called %d times", workers, i, n)
			}
		}
	}
}
