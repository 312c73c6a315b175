package features

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Assign assigns each of n rows to a split (count mode): it meets the shares of r exactly up to
// rounding, deterministically for a seed.
//
//   - classes (nil = no stratification) holds each row's class: every class is split on its
//     own, each split getting within ±1 row of the class's exact share (largest-remainder
//     rounding whose leftover rows go first to the splits that are furthest below their
//     overall quota, so that the totals stay within about one row of theirs as well); the rows
//     of a class are shuffled before they are dealt out.
//   - groups (nil = no grouping) holds each row's hashed group key: whole groups are assigned,
//     so no group is in two splits. Groups are dealt largest first (random order among equal
//     sizes) to the split furthest below its row quota, which meets the quotas as closely as
//     whole groups allow. With classes too, groups are stratified by their majority class
//     (ties: the smallest class).
//
// An invalid r, a classes or groups slice whose length is not n, or a split with a positive
// share that gets no row is an error that says how many rows there were and what to change.
// AchievedRatios returns the shares that the assignment achieved.
func Assign(n int, classes []int32, groups []uint64, r Ratios, seed uint64) ([]Role, error) {
	if n <= 0 {
		return nil, fmt.Errorf("split: no rows to assign (n = %d)", n)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if classes != nil && len(classes) != n {
		return nil, fmt.Errorf("split: %d class labels for %d rows", len(classes), n)
	}
	if groups != nil && len(groups) != n {
		return nil, fmt.Errorf("split: %d group keys for %d rows", len(groups), n)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed5b1170000001))
	shares := r.shares()
	roles := make([]Role, n)
	var ngroups int
	if groups == nil {
		assignRows(roles, classes, shares, rng)
	} else {
		ngroups = assignGroups(roles, classes, groups, shares, rng)
	}
	var counts [numRoles]int
	for _, role := range roles {
		counts[role]++
	}
	for role := RoleTrain; role < numRoles; role++ {
		if shares[role] > 0 && counts[role] == 0 {
			need := int(math.Ceil(1 / shares[role]))
			if groups != nil {
				return nil, fmt.Errorf("split: the %s split got no rows: %d rows in %d groups cannot give a share of %.3g to %s without splitting a group; use more groups (about %d+), raise the %s share, or set it to 0", role, n, ngroups, shares[role], role, need, role)
			}
			return nil, fmt.Errorf("split: the %s split got no rows: %d rows at a share of %.3g round to 0; use at least %d rows, raise the %s share, or set it to 0", role, n, shares[role], need, role)
		}
	}
	return roles, nil
}

// strata returns the row indices of each class in ascending class order (one stratum of all
// rows when classes is nil).
func strata(n int, classes []int32) [][]int {
	if classes == nil {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return [][]int{all}
	}
	byClass := map[int32][]int{}
	for i, c := range classes {
		byClass[c] = append(byClass[c], i)
	}
	keys := make([]int32, 0, len(byClass))
	for k := range byClass {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([][]int, len(keys))
	for i, k := range keys {
		out[i] = byClass[k]
	}
	return out
}

// assignRows deals out each stratum's rows with per-stratum quotas.
func assignRows(roles []Role, classes []int32, shares [numRoles]float64, rng *rand.Rand) {
	var exactSoFar, givenSoFar [numRoles]float64
	for _, rows := range strata(len(roles), classes) {
		quota := stratumQuotas(len(rows), shares, &exactSoFar, &givenSoFar, rng)
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		k := 0
		for role := RoleTrain; role < numRoles; role++ {
			for range quota[role] {
				roles[rows[k]] = role
				k++
			}
		}
	}
}

// stratumQuotas splits m rows by shares: each role gets the floor of its exact quota, and the
// leftover rows go, one each, to roles with a fractional part, those furthest below their
// running overall quota first (random among ties). Each quota is within ±1 of m·share.
func stratumQuotas(m int, shares [numRoles]float64, exactSoFar, givenSoFar *[numRoles]float64, rng *rand.Rand) [numRoles]int {
	var quota [numRoles]int
	var frac [numRoles]float64
	left := m
	for role := range numRoles {
		exact := float64(m) * shares[role]
		quota[role] = int(math.Floor(exact + 1e-9))
		frac[role] = exact - float64(quota[role])
		left -= quota[role]
		exactSoFar[role] += exact
	}
	order := []Role{RoleTrain, RoleTrainDev, RoleVal, RoleTest}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	slices.SortStableFunc(order, func(a, b Role) int {
		return cmp.Compare(exactSoFar[b]-givenSoFar[b]-float64(quota[b]), exactSoFar[a]-givenSoFar[a]-float64(quota[a]))
	})
	for _, role := range order {
		if left == 0 {
			break
		}
		if frac[role] > 1e-9 {
			quota[role]++
			left--
		}
	}
	// Rounding slack (shares summing to 1 within 1e-9): give any rest to train.
	quota[RoleTrain] += left
	for role := range numRoles {
		givenSoFar[role] += float64(quota[role])
	}
	return quota
}

type rowGroup struct {
	key  uint64
	rows []int
	// class is the majority class of the group's rows (ties: the smallest).
	class int32
}

// assignGroups assigns whole groups and returns the number of groups.
func assignGroups(roles []Role, classes []int32, keys []uint64, shares [numRoles]float64, rng *rand.Rand) int {
	byKey := map[uint64]int{}
	var groups []rowGroup
	for i, k := range keys {
		g, ok := byKey[k]
		if !ok {
			g = len(groups)
			byKey[k] = g
			groups = append(groups, rowGroup{key: k})
		}
		groups[g].rows = append(groups[g].rows, i)
	}
	// Row order must not matter: order groups by key.
	slices.SortFunc(groups, func(a, b rowGroup) int { return cmp.Compare(a.key, b.key) })
	byClass := map[int32][]rowGroup{}
	for gi := range groups {
		g := &groups[gi]
		if classes != nil {
			count := map[int32]int{}
			for _, i := range g.rows {
				count[classes[i]]++
			}
			best, bestN := int32(math.MaxInt32), -1
			for c, k := range count {
				if k > bestN || (k == bestN && c < best) {
					best, bestN = c, k
				}
			}
			g.class = best
		}
		byClass[g.class] = append(byClass[g.class], *g)
	}
	classKeys := make([]int32, 0, len(byClass))
	for c := range byClass {
		classKeys = append(classKeys, c)
	}
	slices.Sort(classKeys)
	for _, c := range classKeys {
		stratum := byClass[c]
		rows := 0
		for _, g := range stratum {
			rows += len(g.rows)
		}
		rng.Shuffle(len(stratum), func(i, j int) { stratum[i], stratum[j] = stratum[j], stratum[i] })
		slices.SortStableFunc(stratum, func(a, b rowGroup) int { return cmp.Compare(len(b.rows), len(a.rows)) })
		var given [numRoles]float64
		for _, g := range stratum {
			best, bestDeficit := RoleTrain, math.Inf(-1)
			for role := range numRoles {
				if shares[role] <= 0 {
					continue
				}
				// Giving a group of s rows to a split with deficit d changes the squared
				// quota error by s² - 2·s·d: the largest deficit minimises it.
				d := float64(rows)*shares[role] - given[role]
				if d > bestDeficit {
					best, bestDeficit = role, d
				}
			}
			given[best] += float64(len(g.rows))
			for _, i := range g.rows {
				roles[i] = best
			}
		}
	}
	return len(groups)
}
