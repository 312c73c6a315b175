package search

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Folds splits the rows 0…len(strata)-1 into k folds for k-fold cross-validation, stratified:
// the rows of each stratum (a class, or a band of a regression target: see Bands) are shuffled
// by rng and dealt to the folds in turn, the dealing going on from fold to fold across strata,
// so every fold gets ⌊n/k⌋ or ⌈n/k⌉ rows and each stratum's rows are spread as evenly as they
// can be (its count in two folds differs by at most one). Strata are taken in ascending order,
// so the folds depend on strata and rng alone. Each fold lists its rows in ascending order;
// together the folds partition the rows.
func Folds(strata []int, k int, rng *rand.Rand) ([][]int, error) {
	if k < 2 {
		return nil, fmt.Errorf("%d folds: cross-validation needs at least 2", k)
	}
	if len(strata) < k {
		return nil, fmt.Errorf("%d folds of %d rows: every fold needs a row", k, len(strata))
	}
	groups := map[int][]int{}
	for i, s := range strata {
		groups[s] = append(groups[s], i)
	}
	keys := make([]int, 0, len(groups))
	for s := range groups {
		keys = append(keys, s)
	}
	slices.Sort(keys)
	folds := make([][]int, k)
	next := 0
	for _, s := range keys {
		rows := groups[s]
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		for _, i := range rows {
			folds[next] = append(folds[next], i)
			next = (next + 1) % k
		}
	}
	for _, f := range folds {
		slices.Sort(f)
	}
	return folds, nil
}

// Bands gives regression targets strata for Folds: the rows sorted by value (NaN last, ties
// by row) are cut into consecutive bands of k rows, so that each fold gets about one row of
// every band and the folds' target distributions match.
func Bands(values []float64, k int) []int {
	order := make([]int, len(values))
	for i := range order {
		order[i] = i
	}
	key := func(v float64) (bool, float64) { return v != v, v }
	slices.SortStableFunc(order, func(a, b int) int {
		na, va := key(values[a])
		nb, vb := key(values[b])
		switch {
		case na != nb:
			if na {
				return 1
			}
			return -1
		case na:
			return 0
		case va < vb:
			return -1
		case va > vb:
			return 1
		}
		return 0
	})
	out := make([]int, len(values))
	for rank, i := range order {
		out[i] = rank / max(k, 1)
	}
	return out
}
