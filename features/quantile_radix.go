package features

import (
	"math"
	"slices"
	"sync"
)

// radixMinValues is the column size from which quantiles are selected by radixQuantiles rather
// than by quickselect: below it, clearing and scanning the 65,536-bucket histogram costs more
// than the quickselect passes it saves.
const radixMinValues = 1 << 15

// radixBuckets is the histogram size: the top 16 bits of a value's order-preserving key.
const radixBuckets = 1 << 16

// radixCounts pools the histograms ([radixBuckets]uint32, 256 KB), which are all zero when put
// back.
var radixCounts = sync.Pool{New: func() any { return new([radixBuckets]uint32) }}

// bucket32 and bucket64 map a value to the top 16 bits of its order-preserving key (the IEEE
// bits with the sign bit flipped for positives and every bit flipped for negatives), so that
// x < y implies bucket(x) ≤ bucket(y).
func bucket32(x float32) uint32 {
	b := math.Float32bits(x)
	b ^= uint32(int32(b)>>31) | 1<<31
	return b >> 16
}

func bucket64(x float64) uint32 {
	b := math.Float64bits(x)
	b ^= uint64(int64(b)>>63) | 1<<63
	return uint32(b >> 48)
}

// radixQuantiles returns the qs-quantiles of the n values held in chunks, with
// the same definition and the same result, bit for bit, as selectQuantiles (numpy's "linear":
// the value at position q·(n-1) of the sorted values, interpolated between the two closest
// ranks). It is exact: one pass histograms the values' top 16 key bits, a second gathers the
// values of the few buckets that hold the needed ranks (at most two per quantile), and
// quickselect finds the ranks among those. It does not modify chunks.
func radixQuantiles[T float32 | float64](chunks [][]T, n int, qs []float64) []float64 {
	counts := radixCounts.Get().(*[radixBuckets]uint32)
	defer radixCounts.Put(counts)
	lowest, highest := histogramTo(counts, chunks)

	// The ranks needed, ascending: floor(q·(n-1)) and, when it falls between two, the next.
	type need struct {
		rank, bucket, within int
		value                float64
	}
	var needs []need
	for _, q := range qs {
		lo, frac := quantileRank(q, n)
		needs = append(needs, need{rank: lo})
		if frac != 0 && lo < n-1 {
			needs = append(needs, need{rank: lo + 1})
		}
	}
	slices.SortFunc(needs, func(a, b need) int { return a.rank - b.rank })
	needs = slices.CompactFunc(needs, func(a, b need) bool { return a.rank == b.rank })
	// Locate each rank's bucket and its rank within the bucket.
	cum, k := 0, 0
	for b := int(lowest); b <= int(highest) && k < len(needs); b++ {
		c := int(counts[b])
		for k < len(needs) && needs[k].rank < cum+c {
			needs[k].bucket, needs[k].within = b, needs[k].rank-cum
			k++
		}
		cum += c
	}
	// Mark the target buckets (slot number + 1) in the cleared histogram and gather their values.
	clear(counts[lowest : highest+1])
	var slots [][]T
	for i := range needs {
		b := needs[i].bucket
		if counts[b] == 0 {
			slots = append(slots, nil)
			counts[b] = uint32(len(slots))
		}
	}
	gatherBuckets(slots, counts, chunks)
	for i := range needs {
		bucketValues := slots[counts[needs[i].bucket]-1]
		selectRank(bucketValues, needs[i].within)
		needs[i].value = float64(bucketValues[needs[i].within])
	}
	for i := range needs {
		counts[needs[i].bucket] = 0 // back to all zero for the pool
	}

	out := make([]float64, len(qs))
	valueAt := func(r int) float64 {
		for _, nd := range needs {
			if nd.rank == r {
				return nd.value
			}
		}
		panic("features: radix quantiles: rank not selected") // broken invariant
	}
	for i, q := range qs {
		lo, frac := quantileRank(q, n)
		a := valueAt(lo)
		if frac == 0 || lo == n-1 {
			out[i] = a
			continue
		}
		out[i] = lerp(a, valueAt(lo+1), frac)
	}
	return out
}

// quantileRank returns the lower rank and the interpolation fraction of quantile q of n sorted
// values (numpy "linear"), as selectQuantiles computes them.
func quantileRank(q float64, n int) (int, float64) {
	pos := q * float64(n-1)
	lo := int(math.Floor(pos))
	if lo >= n-1 {
		lo = n - 1
	}
	return lo, pos - float64(lo)
}

// histogramTo counts the values of chunks per bucket into counts, and returns the lowest and
// highest bucket counted (every other count is untouched), or (1, 0) when there are none.
func histogramTo[T float32 | float64](counts *[radixBuckets]uint32, chunks [][]T) (lowest, highest uint32) {
	lowest, highest = radixBuckets-1, 0
	switch cs := any(chunks).(type) {
	case [][]float32:
		for _, ch := range cs {
			for _, x := range ch {
				b := bucket32(x)
				counts[b]++
				lowest, highest = min(lowest, b), max(highest, b)
			}
		}
	case [][]float64:
		for _, ch := range cs {
			for _, x := range ch {
				b := bucket64(x)
				counts[b]++
				lowest, highest = min(lowest, b), max(highest, b)
			}
		}
	}
	if lowest > highest {
		return 1, 0
	}
	return lowest, highest
}

// gatherBuckets appends every value of chunks whose bucket is marked in slot (slot number + 1,
// 0 = not wanted) to slots[slot-1].
func gatherBuckets[T float32 | float64](slots [][]T, slot *[radixBuckets]uint32, chunks [][]T) {
	switch cs := any(chunks).(type) {
	case [][]float32:
		ss := any(slots).([][]float32)
		for _, ch := range cs {
			for _, x := range ch {
				if s := slot[bucket32(x)]; s != 0 {
					ss[s-1] = append(ss[s-1], x)
				}
			}
		}
	case [][]float64:
		ss := any(slots).([][]float64)
		for _, ch := range cs {
			for _, x := range ch {
				if s := slot[bucket64(x)]; s != 0 {
					ss[s-1] = append(ss[s-1], x)
				}
			}
		}
	}
}
