package features

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestDefaultRatios(t *testing.T) {
	// Held-out share h = 0.15·√(10,000/n) above 10,000 rows, floored at 0.01, computed by hand.
	tests := []struct {
		n    int
		held float64
	}{
		{1, 0.15},
		{150, 0.15},
		{5_000, 0.15},
		{10_000, 0.15},
		{40_000, 0.075},     // 0.15·√(1/4)
		{250_000, 0.03},     // 0.15·√(1/25)
		{1_000_000, 0.015},  // 0.15·√(1/100)
		{2_250_000, 0.01},   // 0.15·√(1/225)
		{10_000_000, 0.01},  // floor
		{100_000_000, 0.01}, // floor
	}
	prev := 1.0
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			r := DefaultRatios(tc.n)
			want := Ratios{Train: 1 - 2*tc.held, Val: tc.held, Test: tc.held}
			if !near(r.Train, want.Train, 1e-12) || !near(r.Val, want.Val, 1e-12) || !near(r.Test, want.Test, 1e-12) || r.TrainDev != 0 {
				t.Fatalf("DefaultRatios(%d) = %+v, want %+v", tc.n, r, want)
			}
			if err := r.Validate(); err != nil {
				t.Fatal(err)
			}
			if r.Val > prev {
				t.Fatalf("held-out share grew with n: %g > %g", r.Val, prev)
			}
			prev = r.Val
		})
	}
}

// countRoles returns counts[class][role].
func countRoles(roles []Role, classes []int32) map[int32]*[numRoles]int {
	out := map[int32]*[numRoles]int{}
	for i, r := range roles {
		c := int32(0)
		if classes != nil {
			c = classes[i]
		}
		if out[c] == nil {
			out[c] = &[numRoles]int{}
		}
		out[c][r]++
	}
	return out
}

// checkStratified fails if any class's count in any split is not within ±1 row of the
// class's exact share.
func checkStratified(t testing.TB, roles []Role, classes []int32, r Ratios) {
	t.Helper()
	shares := r.shares()
	for c, counts := range countRoles(roles, classes) {
		m := 0
		for _, k := range counts {
			m += k
		}
		for role, k := range counts {
			if exact := float64(m) * shares[role]; math.Abs(float64(k)-exact) >= 1+1e-9 {
				t.Fatalf("class %d: %s has %d of %d rows, exact share %.3f: more than ±1 off", c, Role(role), k, m, exact)
			}
		}
	}
}

func TestAssignStratified(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name    string
		n       int
		classes int // 0 = no stratification
		skew    bool
		r       Ratios
	}{
		{"no classes", 1000, 0, false, Ratios{Train: 0.7, Val: 0.15, Test: 0.15}},
		{"iris-like", 150, 3, false, Ratios{Train: 0.7, Val: 0.15, Test: 0.15}},
		{"imbalanced", 5000, 4, true, Ratios{Train: 0.8, Val: 0.1, Test: 0.1}},
		{"many classes", 997, 40, true, Ratios{Train: 0.6, Val: 0.2, Test: 0.2}},
		{"train_dev", 2000, 2, true, Ratios{Train: 0.8, Val: 0.1, Test: 0.1, TrainDev: 0.05}},
		{"no test", 300, 3, false, Ratios{Train: 0.75, Val: 0.25}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var classes []int32
			if tc.classes > 0 {
				classes = make([]int32, tc.n)
				for i := range classes {
					if tc.skew {
						classes[i] = int32(min(rng.ExpFloat64()*2, float64(tc.classes-1)))
					} else {
						classes[i] = int32(i % tc.classes)
					}
				}
			}
			roles, err := Assign(tc.n, classes, nil, tc.r, 7)
			if err != nil {
				t.Fatal(err)
			}
			checkStratified(t, roles, classes, tc.r)
			// Totals stay within a couple of rows of the overall quotas.
			got := AchievedRatios(roles)
			for _, p := range [][2]float64{{got.Train, tc.r.Train}, {got.Val, tc.r.Val}, {got.Test, tc.r.Test}, {got.TrainDev, tc.r.TrainDev}} {
				if math.Abs(p[0]-p[1])*float64(tc.n) > 2 {
					t.Errorf("achieved %+v, want %+v within 2 rows", got, tc.r)
				}
			}
		})
	}
}

func TestAssignDeterministic(t *testing.T) {
	n := 500
	classes := make([]int32, n)
	groups := make([]uint64, n)
	for i := range classes {
		classes[i] = int32(i % 3)
		groups[i] = uint64(i / 5)
	}
	r := Ratios{Train: 0.7, Val: 0.15, Test: 0.15}
	for _, g := range [][]uint64{nil, groups} {
		a, err := Assign(n, classes, g, r, 42)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Assign(n, classes, g, r, 42)
		c, _ := Assign(n, classes, g, r, 43)
		if !slices.Equal(a, b) {
			t.Error("same seed, different split")
		}
		if slices.Equal(a, c) {
			t.Error("different seed, same split")
		}
	}
}

// TestAssignGroupsNeverSplit: over many seeds and random group sizes, no group is in two
// splits, and the achieved shares are as close as whole groups allow.
func TestAssignGroupsNeverSplit(t *testing.T) {
	seeds := 200
	if raceEnabled {
		seeds = 50
	}
	r := Ratios{Train: 0.7, Val: 0.15, Test: 0.15}
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 99))
		n := 200 + rng.IntN(2000)
		groups := make([]uint64, n)
		classes := make([]int32, n)
		g := uint64(0)
		left := 0
		maxGroup := 0
		size := 0
		for i := range groups {
			if left == 0 {
				g = rng.Uint64()
				left = 1 + rng.IntN(12)
				size = 0
			}
			groups[i] = g
			classes[i] = int32(g % 3)
			left--
			size++
			maxGroup = max(maxGroup, size)
		}
		withClasses := classes
		if seed%2 == 0 {
			withClasses = nil
		}
		roles, err := Assign(n, withClasses, groups, r, seed)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		roleOf := map[uint64]Role{}
		for i, k := range groups {
			if prev, ok := roleOf[k]; ok && prev != roles[i] {
				t.Fatalf("seed %d: group %x is in %s and %s", seed, k, prev, roles[i])
			}
			roleOf[k] = roles[i]
		}
		got := AchievedRatios(roles)
		// Per stratum the greedy ends within one group of each quota.
		strataN := 1.0
		if withClasses != nil {
			strataN = 3
		}
		tol := strataN * float64(maxGroup) / float64(n)
		if math.Abs(got.Val-r.Val) > tol || math.Abs(got.Test-r.Test) > tol {
			t.Fatalf("seed %d: achieved %+v, want %+v within %.3f", seed, got, r, tol)
		}
	}
}

func TestAssignErrors(t *testing.T) {
	r := Ratios{Train: 0.7, Val: 0.15, Test: 0.15}
	tests := []struct {
		name    string
		n       int
		classes []int32
		groups  []uint64
		r       Ratios
		errHas  []string
	}{
		{"too few rows", 3, nil, nil, r, []string{"3 rows", "got no rows", "at least 7 rows"}},
		{"too few groups", 40, nil, make([]uint64, 40), r, []string{"40 rows in 1 groups", "val"}},
		{"bad sum", 10, nil, nil, Ratios{Train: 0.5, Val: 0.1}, []string{"sum to 0.6"}},
		{"negative", 10, nil, nil, Ratios{Train: 1.1, Val: -0.1}, []string{"outside [0, 1]"}},
		{"train_dev too big", 10, nil, nil, Ratios{Train: 0.5, Val: 0.5, TrainDev: 0.5}, []string{"train_dev"}},
		{"classes length", 10, make([]int32, 9), nil, r, []string{"9 class labels for 10 rows"}},
		{"no rows", 0, nil, nil, r, []string{"no rows"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Assign(tc.n, tc.classes, tc.groups, tc.r, 1)
			if err == nil {
				t.Fatalf("no error, want one mentioning %v", tc.errHas)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// TestHashRole: shares within 5 binomial standard deviations, stable per key and seed.
func TestHashRole(t *testing.T) {
	r := Ratios{Train: 0.8, Val: 0.1, Test: 0.1, TrainDev: 0.05}
	n := 200_000
	if raceEnabled {
		n = 50_000
	}
	var counts [numRoles]int
	for k := range uint64(n) {
		role := HashRole(k, 3, r)
		if HashRole(k, 3, r) != role {
			t.Fatal("HashRole is not deterministic")
		}
		counts[role]++
	}
	for role, share := range r.shares() {
		sd := math.Sqrt(float64(n) * share * (1 - share))
		if math.Abs(float64(counts[role])-float64(n)*share) > 5*sd {
			t.Errorf("%s: %d of %d, want %.0f ± %.0f", Role(role), counts[role], n, float64(n)*share, 5*sd)
		}
	}
	same := 0
	for k := range uint64(1000) {
		if HashRole(k, 3, r) == HashRole(k, 4, r) {
			same++
		}
	}
	// Independent draws agree with probability Σ share² = 0.5625+0.0025+0.01+0.01 ≈ 0.585.
	if same > 700 {
		t.Errorf("seeds 3 and 4 agree on %d of 1000 keys: the seed barely matters", same)
	}
}

// FuzzAssign checks Assign's invariants on arbitrary sizes, classes, groups, shares and seeds:
// either a clear error, or every row assigned, stratified within ±1 per class (no groups), and
// no group in two splits.
func FuzzAssign(f *testing.F) {
	f.Add(uint16(150), uint8(3), uint8(0), uint8(15), uint8(15), uint8(0), uint64(1))
	f.Add(uint16(1000), uint8(7), uint8(50), uint8(10), uint8(20), uint8(5), uint64(2))
	f.Add(uint16(5), uint8(1), uint8(0), uint8(40), uint8(0), uint8(0), uint64(3))
	f.Fuzz(func(t *testing.T, n16 uint16, nClasses, nGroups, valPct, testPct, devPct uint8, seed uint64) {
		n := int(n16%5000) + 1
		val, test, dev := float64(valPct%50)/100, float64(testPct%50)/100, float64(devPct%20)/100
		r := Ratios{Train: 1 - val - test, Val: val, Test: test, TrainDev: min(dev, (1-val-test)/2)}
		rng := rand.New(rand.NewPCG(seed, uint64(n)))
		var classes []int32
		if nClasses > 0 {
			classes = make([]int32, n)
			for i := range classes {
				classes[i] = int32(rng.IntN(int(nClasses)))
			}
		}
		var groups []uint64
		if nGroups > 0 {
			groups = make([]uint64, n)
			for i := range groups {
				groups[i] = uint64(rng.IntN(int(nGroups)))
			}
		}
		roles, err := Assign(n, classes, groups, r, seed)
		if err != nil {
			if !strings.Contains(err.Error(), "got no rows") {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		if len(roles) != n {
			t.Fatalf("%d roles for %d rows", len(roles), n)
		}
		for _, role := range roles {
			if role >= numRoles {
				t.Fatalf("invalid role %d", role)
			}
		}
		if groups == nil {
			checkStratified(t, roles, classes, r)
			return
		}
		roleOf := map[uint64]Role{}
		for i, k := range groups {
			if prev, ok := roleOf[k]; ok && prev != roles[i] {
				t.Fatalf("group %d in %s and %s", k, prev, roles[i])
			}
			roleOf[k] = roles[i]
		}
	})
}
