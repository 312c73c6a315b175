package features

import (
	"math"
	"slices"
)

// columnValues holds one exact copy of a column's non-null training values, for the quantiles
// of robust scaling and median imputation. float32 and float16 columns are held as float32
// (4 bytes a value, exact), every other numeric type as float64 (8 bytes a value, exact for
// every integer up to 2^53).
//
// Why exact rather than a sketch: the tables pipe fits on in one process are at most a few
// million rows, where one copy of the selected columns (MNIST: 70,000 × 784 float32 = 220 MB)
// is affordable, and an exact median/IQR matches scikit-learn's RobustScaler and SimpleImputer
// to the last bit, which a sketch's rank error would not.
type columnValues struct {
	f32 []float32
	f64 []float64
}

// quantiles reorders the held values (in place: they are the fitter's own copy) and returns
// the requested quantiles with linear interpolation between closest ranks, numpy's default
// ("linear", type 7): q at position q·(n-1) of the sorted values. It selects the needed ranks
// with quickselect, in expected linear time, rather than sorting.
func (c *columnValues) quantiles(qs ...float64) []float64 {
	out := make([]float64, len(qs))
	if len(c.f32) > 0 && len(c.f64) > 0 {
		// A column whose batches came with different types: merge as float64.
		for _, v := range c.f32 {
			c.f64 = append(c.f64, float64(v))
		}
		c.f32 = nil
	}
	switch {
	case len(c.f32) > 0:
		return selectQuantiles(c.f32, qs)
	case len(c.f64) > 0:
		return selectQuantiles(c.f64, qs)
	default:
		for i := range out {
			out[i] = math.NaN()
		}
	}
	return out
}

// selectQuantiles returns the qs-quantiles (ascending qs) of v, numpy "linear" method,
// reordering v.
func selectQuantiles[T float32 | float64](v []T, qs []float64) []float64 {
	out := make([]float64, len(qs))
	n := len(v)
	done := 0 // v[:done] is partitioned: every rank below done is in place
	for i, q := range qs {
		pos := q * float64(n-1)
		lo := int(math.Floor(pos))
		if lo >= n-1 {
			lo = n - 1
		}
		if lo >= done {
			selectRank(v[done:], lo-done)
			done = lo + 1
		}
		a := float64(v[lo])
		frac := pos - float64(lo)
		if frac == 0 || lo == n-1 {
			out[i] = a
			continue
		}
		// Rank lo+1 is the smallest value right of lo.
		if lo+1 >= done {
			m := lo + 1
			for j := lo + 2; j < n; j++ {
				if v[j] < v[m] {
					m = j
				}
			}
			v[lo+1], v[m] = v[m], v[lo+1]
			done = lo + 2
		}
		out[i] = a + frac*(float64(v[lo+1])-a)
	}
	return out
}

// selectRank reorders v so that v[k] is the value of rank k, values before it ≤ v[k] and
// values after it ≥ v[k] (Hoare's quickselect, median-of-three pivot; sorts small ranges).
func selectRank[T float32 | float64](v []T, k int) {
	lo, hi := 0, len(v)-1
	for hi-lo > 16 {
		mid := lo + (hi-lo)/2
		if v[mid] < v[lo] {
			v[mid], v[lo] = v[lo], v[mid]
		}
		if v[hi] < v[lo] {
			v[hi], v[lo] = v[lo], v[hi]
		}
		if v[hi] < v[mid] {
			v[hi], v[mid] = v[mid], v[hi]
		}
		pivot := v[mid]
		i, j := lo, hi
		for i <= j {
			for v[i] < pivot {
				i++
			}
			for v[j] > pivot {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return // j < k < i: v[k] == pivot, in place
		}
	}
	slices.Sort(v[lo : hi+1])
}
