package features

import (
	"math"
	"runtime"
	"slices"
	"sync"
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
	// Chunks appended batch by batch, concatenated once by quantiles: appending to one slice
	// would copy the values several times as it grows.
	chunks32 [][]float32
	chunks64 [][]float64
}

// add appends copies of the valid values of one batch.
func (c *columnValues) add32(v []float32, val validity) {
	c.chunks32 = append(c.chunks32, copyValid(v, val))
}

func (c *columnValues) add64(v []float64, val validity) {
	c.chunks64 = append(c.chunks64, copyValid(v, val))
}

// copyValid returns a copy of the valid values of v.
func copyValid[T float32 | float64](v []T, val validity) []T {
	if val.all() {
		return append([]T(nil), v...) // no zeroing before the copy, unlike make
	}
	return appendValid(make([]T, 0, len(v)), v, val)
}

// flatten concatenates the chunks into f32 and f64.
func (c *columnValues) flatten() {
	if len(c.chunks32) > 0 {
		c.f32 = concatChunks(c.f32, c.chunks32)
		c.chunks32 = nil
	}
	if len(c.chunks64) > 0 {
		c.f64 = concatChunks(c.f64, c.chunks64)
		c.chunks64 = nil
	}
}

func chunkedLen[T float32 | float64](chunks [][]T) int {
	n := 0
	for _, ch := range chunks {
		n += len(ch)
	}
	return n
}

func concatChunks[T float32 | float64](dst []T, chunks [][]T) []T {
	n := len(dst)
	for _, ch := range chunks {
		n += len(ch)
	}
	out := make([]T, 0, n)
	out = append(out, dst...)
	for _, ch := range chunks {
		out = append(out, ch...)
	}
	return out
}

// quantiles reorders the held values (in place: they are the fitter's own copy) and returns
// the requested quantiles (ascending qs) with linear interpolation between closest ranks,
// numpy's default ("linear", type 7): q at position q·(n-1) of the sorted values. It selects
// the needed ranks exactly, without sorting: from radixMinValues values of one type by a
// histogram of the values' leading bits and a second pass over the few buckets that hold the
// ranks (radixQuantiles, straight from the per-batch chunks), else with quickselect, in
// expected linear time. Both give the same result.
func (c *columnValues) quantiles(qs ...float64) []float64 {
	if n := chunkedLen(c.chunks32); n >= radixMinValues && len(c.f32)+len(c.f64)+len(c.chunks64) == 0 {
		return radixQuantiles(c.chunks32, n, qs)
	}
	if n := chunkedLen(c.chunks64); n >= radixMinValues && len(c.f32)+len(c.f64)+len(c.chunks32) == 0 {
		return radixQuantiles(c.chunks64, n, qs)
	}
	c.flatten()
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
		out[i] = lerp(a, float64(v[lo+1]), frac)
	}
	return out
}

// lerp interpolates a + frac·(b - a) between two sorted values; when b - a overflows float64
// (a near -1e308, b near 1e308) it takes the weighted mean instead, which cannot.
func lerp(a, b, frac float64) float64 {
	if d := b - a; !math.IsInf(d, 0) {
		return a + frac*d
	}
	return a*(1-frac) + b*frac
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

// appendValid appends the valid values of v to dst.
func appendValid[T float32 | float64](dst, v []T, val validity) []T {
	if val.all() {
		return append(dst, v...)
	}
	for i, x := range v {
		if val.valid(i) {
			dst = append(dst, x)
		}
	}
	return dst
}

// forEachParallel calls fn(0..n-1) on up to workers goroutines (0: GOMAXPROCS) and waits
// for them.
func forEachParallel(n, workers int, fn func(i int)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, n)
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= n {
					return
				}
				fn(k)
			}
		})
	}
	wg.Wait()
}
