package search

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// TestFoldsPartitionAndStratify: the folds hold every row once, their sizes differ by at most
// one, each stratum's count in two folds differs by at most one, and the same seed gives the
// same folds (another seed other folds).
func TestFoldsPartitionAndStratify(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ n, strata, k int }{{150, 3, 5}, {97, 2, 3}, {569, 2, 10}, {40, 7, 4}, {12, 1, 12}} {
		strata := make([]int, tc.n)
		for i := range strata {
			strata[i] = rng.IntN(tc.strata) * 3 // not 0…s-1: any ints
		}
		folds, err := Folds(strata, tc.k, rand.New(rand.NewPCG(7, 8)))
		if err != nil {
			t.Fatal(err)
		}
		if len(folds) != tc.k {
			t.Fatalf("%d folds, want %d", len(folds), tc.k)
		}
		var all []int
		minSize, maxSize := tc.n, 0
		count := map[int][]int{} // stratum → rows per fold
		for f, rows := range folds {
			if !slices.IsSorted(rows) {
				t.Errorf("fold %d not in ascending order", f)
			}
			all = append(all, rows...)
			minSize, maxSize = min(minSize, len(rows)), max(maxSize, len(rows))
			for _, i := range rows {
				if count[strata[i]] == nil {
					count[strata[i]] = make([]int, tc.k)
				}
				count[strata[i]][f]++
			}
		}
		slices.Sort(all)
		for i, r := range all {
			if r != i {
				t.Fatalf("n=%d k=%d: the folds do not partition the rows (row %d at %d)", tc.n, tc.k, r, i)
			}
		}
		if len(all) != tc.n || maxSize-minSize > 1 {
			t.Errorf("n=%d k=%d: %d rows, fold sizes %d…%d", tc.n, tc.k, len(all), minSize, maxSize)
		}
		for s, c := range count {
			if slices.Max(c)-slices.Min(c) > 1 {
				t.Errorf("n=%d k=%d: stratum %d per fold %v: not stratified", tc.n, tc.k, s, c)
			}
		}
		again, _ := Folds(strata, tc.k, rand.New(rand.NewPCG(7, 8)))
		other, _ := Folds(strata, tc.k, rand.New(rand.NewPCG(9, 8)))
		if !reflect.DeepEqual(folds, again) {
			t.Errorf("n=%d k=%d: the same seed drew other folds", tc.n, tc.k)
		}
		if tc.n > tc.k && reflect.DeepEqual(folds, other) {
			t.Errorf("n=%d k=%d: another seed drew the same folds", tc.n, tc.k)
		}
	}
	if _, err := Folds(make([]int, 10), 1, rng); err == nil {
		t.Error("k = 1: no error")
	}
	if _, err := Folds(make([]int, 3), 4, rng); err == nil {
		t.Error("4 folds of 3 rows: no error")
	}
}

// TestBandsSpreadTheTarget: with Bands as strata, every fold's sorted target values track
// the whole set's: fold f's j-th smallest value lies within band j (rows j·k … j·k+k-1 of
// the sorted values), so the folds' means differ little.
func TestBandsSpreadTheTarget(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, k = 103, 5
	values := make([]float64, n)
	for i := range values {
		values[i] = rng.ExpFloat64() * 10 // skewed
	}
	bands := Bands(values, k)
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	for i, b := range bands {
		if values[i] < sorted[b*k] || values[i] > sorted[min(b*k+k-1, n-1)] {
			t.Fatalf("row %d (%v) in band %d: outside [%v, %v]", i, values[i], b, sorted[b*k], sorted[min(b*k+k-1, n-1)])
		}
	}
	folds, err := Folds(bands, k, rand.New(rand.NewPCG(5, 6)))
	if err != nil {
		t.Fatal(err)
	}
	for f, rows := range folds {
		seen := map[int]int{}
		for _, i := range rows {
			seen[bands[i]]++
		}
		for b, c := range seen {
			if c > 1 {
				t.Errorf("fold %d holds %d rows of band %d", f, c, b)
			}
		}
		if len(seen) < n/k {
			t.Errorf("fold %d covers %d of the %d full bands", f, len(seen), n/k)
		}
	}
}
