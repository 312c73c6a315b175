package features

import (
	"math"
	"slices"
)

// MinIDRows is the fewest values LooksLikeRowID judges: on fewer rows, distinct integers are
// common by chance.
const MinIDRows = 50

// LooksLikeRowID reports whether the values of a feature column (nulls left out) look like a
// row id: at least MinIDRows values, all distinct, and either all integers, or (when the
// column was integer at the source, integerOrigin, and a transform such as normalize has
// since scaled it) evenly spaced with few holes: the span from the smallest to the largest
// value is at most twice the count in units of the smallest gap, as ids 1..n are after an
// affine map, and what a split leaves of them. A model that takes such a column learns the
// row order, which says nothing about new rows.
func LooksLikeRowID(values []float64, integerOrigin bool) bool {
	n := len(values)
	if n < MinIDRows {
		return false
	}
	v := slices.Clone(values)
	slices.Sort(v)
	integral := true
	minGap := math.Inf(1)
	for i, x := range v {
		if x-x != 0 {
			return false // NaN or Inf: not an id
		}
		if integral && x != math.Trunc(x) {
			integral = false
		}
		if i > 0 {
			gap := x - v[i-1]
			if gap == 0 {
				return false
			}
			minGap = min(minGap, gap)
		}
	}
	if integral {
		return true
	}
	if !integerOrigin {
		return false
	}
	return (v[n-1]-v[0])/minGap+1 <= 2*float64(n)
}
