package ensemble

import (
	"math"
	"slices"
	"testing"

	"github.com/pipe-ml/pipe/nn/train"
)

func TestBootstrapSample(t *testing.T) {
	cases := []struct {
		name string
		n    int
	}{{"tiny", 7}, {"small", 100}, {"large", 5000}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := bootstrapSample(tc.n, memberRand(1, 0, streamSample))
			if len(s.pos) != tc.n {
				t.Fatalf("sample size %d, want n = %d", len(s.pos), tc.n)
			}
			if !slices.IsSorted(s.pos) || !slices.IsSorted(s.oob) {
				t.Error("positions not sorted")
			}
			drawn := make([]int, tc.n)
			for _, p := range s.pos {
				if p < 0 || p >= tc.n {
					t.Fatalf("position %d out of [0, %d)", p, tc.n)
				}
				drawn[p]++
			}
			// Out of bag = exactly the positions never drawn.
			var want []int
			repeats := false
			for p, c := range drawn {
				if c == 0 {
					want = append(want, p)
				}
				repeats = repeats || c > 1
			}
			if !slices.Equal(s.oob, want) {
				t.Errorf("OOB %v is not the complement of the drawn rows %v", s.oob, want)
			}
			if tc.n >= 100 && !repeats {
				t.Error("no row drawn twice: not sampling with replacement")
			}
			// Seeded: the same stream gives the same sample, another member another one.
			again := bootstrapSample(tc.n, memberRand(1, 0, streamSample))
			if !slices.Equal(again.pos, s.pos) {
				t.Error("same seed, different sample")
			}
			other := bootstrapSample(tc.n, memberRand(1, 1, streamSample))
			if tc.n >= 100 && slices.Equal(other.pos, s.pos) {
				t.Error("members 0 and 1 drew the same sample")
			}
		})
	}
}

// TestBootstrapOOBFraction checks that about (1 − 1/n)^n ≈ e^−1 ≈ 0.368 of the rows are out
// of bag. Over 20 members of n = 2000 the mean fraction has a standard deviation of about
// sqrt(0.368·0.632/2000/20) ≈ 0.0024; the tolerance is 0.01 (4 sigma).
func TestBootstrapOOBFraction(t *testing.T) {
	const n, members = 2000, 20
	var total float64
	for m := range members {
		s := bootstrapSample(n, memberRand(42, m, streamSample))
		total += float64(len(s.oob)) / n
	}
	mean := total / members
	want := math.Pow(1-1.0/n, n)
	if math.Abs(mean-want) > 0.01 {
		t.Errorf("mean OOB fraction %.4f, want %.4f ± 0.01", mean, want)
	}
}

func TestSubsample(t *testing.T) {
	cases := []struct {
		name     string
		n        int
		fraction float64
		want     int
	}{{"half", 100, 0.5, 50}, {"rounding", 10, 0.26, 3}, {"at_least_one", 10, 0.01, 1}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := subsample(tc.n, tc.fraction, memberRand(3, 2, streamSample))
			if len(s.pos) != tc.want || len(s.oob) != tc.n-tc.want {
				t.Fatalf("%d in, %d out; want %d in, %d out", len(s.pos), len(s.oob), tc.want, tc.n-tc.want)
			}
			all := append(slices.Clone(s.pos), s.oob...)
			slices.Sort(all)
			for i, p := range all {
				if p != i {
					t.Fatalf("in ∪ out is not a partition of 0..%d: %v", tc.n-1, all)
				}
			}
		})
	}
}

func TestFeatureSubset(t *testing.T) {
	cfg := Config{FeatureFraction: 0.25}
	cols := cfg.featureSubset(64, 9, 3)
	if len(cols) != 16 || !slices.IsSorted(cols) || len(slices.Compact(slices.Clone(cols))) != 16 {
		t.Fatalf("columns %v: want 16 distinct sorted columns of 64", cols)
	}
	if again := cfg.featureSubset(64, 9, 3); !slices.Equal(again, cols) {
		t.Error("same (seed, member), different columns")
	}
	if other := cfg.featureSubset(64, 9, 4); slices.Equal(other, cols) {
		t.Error("members 3 and 4 got the same columns")
	}
	if all := (Config{}).featureSubset(64, 9, 3); all != nil {
		t.Errorf("FeatureFraction 0 gave %v, want nil (all columns)", all)
	}
}

// TestMemberDatasetSharesBase checks that a member's training set is an index view of the
// base matrix (no copy), also when the base is itself a view.
func TestMemberDatasetSharesBase(t *testing.T) {
	full := blobs(50, 3, 2, 1)
	cases := []struct {
		name string
		base train.Dataset
	}{
		{"whole", full},
		{"view", full.Subset([]int{4, 9, 11, 20, 21, 30, 40, 49})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.base.Len()
			s := bootstrapSample(n, memberRand(5, 0, streamSample))
			ds := memberDataset(tc.base, s)
			if &ds.X[0] != &full.X[0] || len(ds.X) != len(full.X) {
				t.Error("member dataset does not share the base X slice")
			}
			if &ds.Targets[0].Labels[0] != &full.Targets[0].Labels[0] {
				t.Error("member dataset does not share the base labels")
			}
			if ds.Len() != n {
				t.Fatalf("member dataset has %d rows, want %d", ds.Len(), n)
			}
			for i, p := range s.pos {
				if ds.Index[i] != baseRow(tc.base, p) {
					t.Fatalf("row %d maps to base row %d, want %d", i, ds.Index[i], baseRow(tc.base, p))
				}
			}
		})
	}
}
