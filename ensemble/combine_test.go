package ensemble

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func closeTo(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i])-float64(b[i])) > tol {
			return false
		}
	}
	return true
}

// Three members' class probabilities for 2 rows × 2 classes.
var probs3 = [][]float32{
	{0.2, 0.8, 0.6, 0.4},
	{0.4, 0.6, 0.1, 0.9},
	{0.3, 0.7, 0.5, 0.5},
}

func TestCombinersByHand(t *testing.T) {
	weighted, err := NewWeighted([]float64{0.5, 0.25, 0.25})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		c       Combiner
		outs    [][]float32
		rows, k int
		want    []float32
	}{
		// Row 0: (0.2+0.4+0.3)/3 = 0.3, (0.8+0.6+0.7)/3 = 0.7.
		// Row 1: (0.6+0.1+0.5)/3 = 0.4, (0.4+0.9+0.5)/3 = 0.6.
		{"mean", Mean{}, probs3, 2, 2, []float32{0.3, 0.7, 0.4, 0.6}},
		// Row 0: 0.5·0.2 + 0.25·0.4 + 0.25·0.3 = 0.275; 0.5·0.8 + 0.25·0.6 + 0.25·0.7 = 0.725.
		// Row 1: 0.5·0.6 + 0.25·0.1 + 0.25·0.5 = 0.45;  0.5·0.4 + 0.25·0.9 + 0.25·0.5 = 0.55.
		{"weighted", weighted, probs3, 2, 2, []float32{0.275, 0.725, 0.45, 0.55}},
		// Regression, 3 rows × 1 output. Medians: {1,3,2} → 2; {5,4,100} → 5; {-2,10,0} → 0.
		{"median_odd", Median{}, [][]float32{{1, 5, -2}, {3, 4, 10}, {2, 100, 0}}, 3, 1, []float32{2, 5, 0}},
		// Four members: sorted {1,2,3,10} → (2+3)/2 = 2.5; {0,4,5,100} → 4.5; {-2,0,1,10} → 0.5.
		{"median_even", Median{}, [][]float32{{1, 5, -2}, {3, 4, 10}, {2, 100, 0}, {10, 0, 1}}, 3, 1, []float32{2.5, 4.5, 0.5}},
		// Mean of regression values: (1+3+2)/3 = 2, (5+4+100)/3 = 36.333…, (−2+10+0)/3 = 2.666….
		{"mean_regression", Mean{}, [][]float32{{1, 5, -2}, {3, 4, 10}, {2, 100, 0}}, 3, 1, []float32{2, 109.0 / 3, 8.0 / 3}},
		// Votes: member argmaxes 0, 1, 0 → class 0 wins 2–1, although the mean probability
		// favours class 1 ((0.5+0.1+0.4)/3 = 0.333 < (0.3+0.6+0.35)/3 = 0.417).
		{"vote_majority", Vote{}, [][]float32{{0.5, 0.3, 0.2}, {0.1, 0.6, 0.3}, {0.4, 0.35, 0.25}}, 1, 3, []float32{1, 0, 0}},
		// One vote each for classes 0 and 1: summed probabilities 0.6+0.1 = 0.7 < 0.4+0.8 = 1.2,
		// so class 1 wins.
		{"vote_tie_by_sum", Vote{}, [][]float32{{0.6, 0.4, 0}, {0.1, 0.8, 0.1}}, 1, 3, []float32{0, 1, 0}},
		// One vote each and equal sums (0.7+0.3 = 0.3+0.7): the lowest class index, 0, wins.
		{"vote_tie_by_index", Vote{}, [][]float32{{0.7, 0.3, 0}, {0.3, 0.7, 0}}, 1, 3, []float32{1, 0, 0}},
		// A member with tied probabilities votes for its lowest class: votes 0, 0, 2 → class 0.
		{"vote_member_tie", Vote{}, [][]float32{{0.4, 0.4, 0.2}, {0.5, 0.2, 0.3}, {0.1, 0.2, 0.7}}, 1, 3, []float32{1, 0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.c.Combine(tc.outs, tc.rows, tc.k)
			if !closeTo(got, tc.want, 1e-6) {
				t.Errorf("%s: got %v, want %v", tc.c.Name(), got, tc.want)
			}
			dst := make([]float32, tc.rows*tc.k)
			for i := range dst {
				dst[i] = 42 // CombineTo must overwrite everything
			}
			tc.c.CombineTo(dst, tc.outs, tc.rows, tc.k)
			if !closeTo(dst, got, 0) {
				t.Errorf("CombineTo %v differs from Combine %v", dst, got)
			}
			// Round trip through the serialisable form.
			back, err := NewCombiner(tc.c.Spec())
			if err != nil {
				t.Fatal(err)
			}
			if again := back.Combine(tc.outs, tc.rows, tc.k); !closeTo(again, got, 0) {
				t.Errorf("after NewCombiner(Spec()): %v, want %v", again, got)
			}
		})
	}
}

func TestCombinersDoNotModifyInputs(t *testing.T) {
	w, _ := NewWeighted([]float64{0.2, 0.3, 0.5})
	for _, c := range []Combiner{Mean{}, Median{}, Vote{}, w} {
		t.Run(c.Name(), func(t *testing.T) {
			outs := [][]float32{{3, 1, 2, 0}, {1, 2, 0, 3}, {2, 0, 3, 1}}
			c.Combine(outs, 2, 2)
			want := [][]float32{{3, 1, 2, 0}, {1, 2, 0, 3}, {2, 0, 3, 1}}
			for m := range outs {
				if !closeTo(outs[m], want[m], 0) {
					t.Errorf("member %d modified: %v", m, outs[m])
				}
			}
		})
	}
}

func TestCombinersPropagateNaN(t *testing.T) {
	nan32 := float32(math.NaN())
	outs := [][]float32{{0.5, 0.5}, {nan32, 0.5}}
	for _, c := range []Combiner{Mean{}, Median{}, Vote{}} {
		t.Run(c.Name(), func(t *testing.T) {
			got := c.Combine(outs, 1, 2)
			if !math.IsNaN(float64(got[0])) {
				t.Errorf("got %v, want NaN in the first output", got)
			}
		})
	}
}

func TestNewWeightedRejects(t *testing.T) {
	cases := []struct {
		name string
		w    []float64
	}{
		{"empty", nil},
		{"negative", []float64{1.5, -0.5}},
		{"sum_not_one", []float64{0.5, 0.4}},
		{"nan", []float64{math.NaN(), 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewWeighted(tc.w); err == nil {
				t.Errorf("NewWeighted(%v) accepted", tc.w)
			}
		})
	}
	if _, err := NewCombiner(CombinerSpec{Name: "geometric"}); err == nil {
		t.Error("NewCombiner accepted an unknown name")
	}
}

func TestCombineShapeMismatchPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Mean.Combine accepted a member of the wrong length")
		}
	}()
	Mean{}.Combine([][]float32{{1, 2}, {1}}, 1, 2)
}

// TestMedianMatchesSortReference compares Median with a reference that sorts every column
// with slices.Sort, for member counts on both sides of the insertion-sort cut-off.
func TestMedianMatchesSortReference(t *testing.T) {
	for _, members := range []int{1, 2, 5, 32, 33, 40} {
		t.Run(fmt.Sprint(members), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(members), 1))
			const rows, k = 20, 3
			outs := make([][]float32, members)
			for m := range outs {
				outs[m] = make([]float32, rows*k)
				for i := range outs[m] {
					outs[m][i] = float32(rng.IntN(7)) // many ties
				}
			}
			got := Median{}.Combine(outs, rows, k)
			col := make([]float64, members)
			for i := range got {
				for m := range outs {
					col[m] = float64(outs[m][i])
				}
				slices.Sort(col)
				want := col[members/2]
				if members%2 == 0 {
					want = (col[members/2-1] + col[members/2]) / 2
				}
				if float64(got[i]) != want {
					t.Fatalf("value %d: median %g, want %g", i, got[i], want)
				}
			}
		})
	}
}
