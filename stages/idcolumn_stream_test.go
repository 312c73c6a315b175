package stages

import (
	"testing"

	"github.com/pipe-ml/pipe/features"
)

// A column is ruled out of the row-id check, and its values freed, as soon as it cannot be
// an id; the verdict is LooksLikeRowID's on the whole column.
func TestIDCandidateDropsValuesEarly(t *testing.T) {
	ids := make([]float64, features.MinIDRows+10)
	for i := range ids {
		ids[i] = float64(i * 3)
	}
	cases := []struct {
		name          string
		vals          []float64
		integerOrigin bool
	}{
		{"ids", ids, false},
		{"repeat", append([]float64{0, 0}, ids...), false},
		{"fraction", append([]float64{0.5}, ids...), false},
		{"fraction_integer_origin", append([]float64{0.5}, ids...), true},
	}
	for _, tc := range cases {
		c := &idCandidate{integerOrigin: tc.integerOrigin}
		half := len(tc.vals) / 2
		c.add(tc.vals[:half])
		c.add(tc.vals[half:])
		want := features.LooksLikeRowID(tc.vals, tc.integerOrigin)
		got := !c.out && features.LooksLikeRowID(c.values, c.integerOrigin)
		if got != want {
			t.Errorf("%s: id %v, LooksLikeRowID on all values says %v", tc.name, got, want)
		}
		if c.out && (c.values != nil || c.seen != nil) {
			t.Errorf("%s: ruled out but %d values kept", tc.name, len(c.values))
		}
		if tc.name == "repeat" && (!c.out || len(c.values) != 0) {
			t.Errorf("repeat: out %v with %d values, want ruled out at the repeat", c.out, len(c.values))
		}
	}
}
