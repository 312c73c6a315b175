package ensemble

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Combiner names of CombinerSpec.Name.
const (
	CombinerMean     = "mean"
	CombinerMedian   = "median"
	CombinerVote     = "vote"
	CombinerWeighted = "weighted"
)

// Combiner merges the outputs of an ensemble's members for one head. outs holds one slice per
// member, each rows×k row-major (class probabilities or regression values, nn.Outputs'
// layout); the result is rows×k in the same layout. Combiners are pure: they neither modify
// nor retain outs.
//
// Combine and CombineTo panic when a member's slice is not rows×k long, when dst is not rows×k
// long, or when a Weighted combiner's weights do not match the member count: these are broken
// invariants of the caller (Ensemble checks them before calling). A NaN in any member's value
// propagates to that output value.
type Combiner interface {
	// Name is one of the Combiner* constants.
	Name() string
	// Combine returns the combined outputs in a new slice.
	Combine(outs [][]float32, rows, k int) []float32
	// CombineTo writes the combined outputs into dst (rows×k).
	CombineTo(dst []float32, outs [][]float32, rows, k int)
	// Spec is the serialisable form of the combiner (NewCombiner restores it).
	Spec() CombinerSpec
}

// CombinerSpec is the serialisable form of a Combiner: its name and, for "weighted", the
// member weights (non-negative, summing to 1, in member order).
type CombinerSpec struct {
	Name    string    `json:"name"`
	Weights []float64 `json:"weights,omitempty"`
}

// NewCombiner rebuilds a Combiner from its spec.
func NewCombiner(s CombinerSpec) (Combiner, error) {
	switch strings.ToLower(s.Name) {
	case CombinerMean:
		return Mean{}, nil
	case CombinerMedian:
		return Median{}, nil
	case CombinerVote:
		return Vote{}, nil
	case CombinerWeighted:
		return NewWeighted(s.Weights)
	}
	return nil, fmt.Errorf("ensemble: unknown combiner %q (want mean, median, vote or weighted)", s.Name)
}

func checkShapes(dst []float32, outs [][]float32, rows, k int) {
	if len(outs) == 0 {
		panic("ensemble: combine: no member outputs")
	}
	if len(dst) != rows*k {
		panic(fmt.Sprintf("ensemble: combine: dst has %d values, want rows %d × k %d", len(dst), rows, k))
	}
	for m, o := range outs {
		if len(o) != rows*k {
			panic(fmt.Sprintf("ensemble: combine: member %d has %d values, want rows %d × k %d", m, len(o), rows, k))
		}
	}
}

// Mean averages the members' outputs: the mean probability per class (soft voting), or the
// mean regression value. Sums run in float64 in member order.
type Mean struct{}

// Name returns "mean".
func (Mean) Name() string { return CombinerMean }

// Spec returns {Name: "mean"}.
func (Mean) Spec() CombinerSpec { return CombinerSpec{Name: CombinerMean} }

// Combine returns the mean of outs.
func (c Mean) Combine(outs [][]float32, rows, k int) []float32 {
	dst := make([]float32, rows*k)
	c.CombineTo(dst, outs, rows, k)
	return dst
}

// CombineTo writes the mean of outs into dst.
func (Mean) CombineTo(dst []float32, outs [][]float32, rows, k int) {
	checkShapes(dst, outs, rows, k)
	inv := 1 / float64(len(outs))
	for i := range dst {
		var s float64
		for _, o := range outs {
			s += float64(o[i])
		}
		dst[i] = float32(s * inv)
	}
}

// Median takes the element-wise median of the members' outputs (for regression heads; it is
// robust to a member that went astray). With an even member count it is the mean of the two
// middle values. On class probabilities the rows no longer sum to 1.
type Median struct{}

// Name returns "median".
func (Median) Name() string { return CombinerMedian }

// Spec returns {Name: "median"}.
func (Median) Spec() CombinerSpec { return CombinerSpec{Name: CombinerMedian} }

// Combine returns the element-wise median of outs.
func (c Median) Combine(outs [][]float32, rows, k int) []float32 {
	dst := make([]float32, rows*k)
	c.CombineTo(dst, outs, rows, k)
	return dst
}

// CombineTo writes the element-wise median of outs into dst.
func (Median) CombineTo(dst []float32, outs [][]float32, rows, k int) {
	checkShapes(dst, outs, rows, k)
	vals := make([]float32, len(outs))
	n := len(outs)
	for i := range dst {
		nan := false
		for m, o := range outs {
			vals[m] = o[i]
			nan = nan || math.IsNaN(float64(o[i]))
		}
		if nan {
			dst[i] = float32(math.NaN())
			continue
		}
		sortSmall(vals)
		if n%2 == 1 {
			dst[i] = vals[n/2]
		} else {
			dst[i] = float32((float64(vals[n/2-1]) + float64(vals[n/2])) / 2)
		}
	}
}

// sortSmall sorts v ascending (no NaNs): insertion sort for ensemble-sized slices, where it
// beats the general sort by avoiding its setup, else slices.Sort.
func sortSmall(v []float32) {
	if len(v) > 32 {
		slices.Sort(v)
		return
	}
	for i := 1; i < len(v); i++ {
		x := v[i]
		j := i - 1
		for ; j >= 0 && v[j] > x; j-- {
			v[j+1] = v[j]
		}
		v[j+1] = x
	}
}

// Vote is hard majority voting for classification heads: each member votes for its most
// probable class (ties within a member go to the lowest class index) and the class with the
// most votes wins. A tie between classes with the same number of votes is broken by the
// larger summed probability over all members, then by the lowest class index. The output row
// is one-hot on the winning class, so log-loss is not meaningful for Vote (use accuracy).
type Vote struct{}

// Name returns "vote".
func (Vote) Name() string { return CombinerVote }

// Spec returns {Name: "vote"}.
func (Vote) Spec() CombinerSpec { return CombinerSpec{Name: CombinerVote} }

// Combine returns the one-hot rows of the winning classes.
func (c Vote) Combine(outs [][]float32, rows, k int) []float32 {
	dst := make([]float32, rows*k)
	c.CombineTo(dst, outs, rows, k)
	return dst
}

// CombineTo writes the one-hot rows of the winning classes into dst.
func (Vote) CombineTo(dst []float32, outs [][]float32, rows, k int) {
	checkShapes(dst, outs, rows, k)
	votes := make([]int, k)
	sums := make([]float64, k)
	for r := 0; r < rows; r++ {
		clear(votes)
		clear(sums)
		nan := false
		for _, o := range outs {
			row := o[r*k : (r+1)*k]
			best := 0
			for j, v := range row {
				if math.IsNaN(float64(v)) {
					nan = true
				}
				if v > row[best] {
					best = j
				}
				sums[j] += float64(v)
			}
			votes[best]++
		}
		d := dst[r*k : (r+1)*k]
		if nan {
			for j := range d {
				d[j] = float32(math.NaN())
			}
			continue
		}
		win := 0
		for j := 1; j < k; j++ {
			if votes[j] > votes[win] || (votes[j] == votes[win] && sums[j] > sums[win]) {
				win = j
			}
		}
		clear(d)
		d[win] = 1
	}
}

// Weighted is a convex combination of the members' outputs: Σ_m w_m·out_m with w_m ≥ 0 and
// Σ w_m = 1, so probabilities stay probabilities. Fit the weights with FitWeightsLogLoss or
// FitWeightsMSE.
type Weighted struct {
	weights []float64
}

// NewWeighted returns the Weighted combiner with the given member weights, which must be
// finite, non-negative and sum to 1 within 1e-6 (they are renormalised to sum exactly to 1).
func NewWeighted(weights []float64) (Weighted, error) {
	if len(weights) == 0 {
		return Weighted{}, fmt.Errorf("ensemble: weighted combiner needs one weight per member, got none")
	}
	var s float64
	for m, w := range weights {
		if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
			return Weighted{}, fmt.Errorf("ensemble: weighted combiner: weight %d is %g, want a finite value >= 0", m, w)
		}
		s += w
	}
	if math.Abs(s-1) > 1e-6 {
		return Weighted{}, fmt.Errorf("ensemble: weighted combiner: weights sum to %g, want 1", s)
	}
	w := make([]float64, len(weights))
	for m, v := range weights {
		w[m] = v / s
	}
	return Weighted{weights: w}, nil
}

// Weights returns a copy of the member weights.
func (c Weighted) Weights() []float64 { return slices.Clone(c.weights) }

// Name returns "weighted".
func (Weighted) Name() string { return CombinerWeighted }

// Spec returns {Name: "weighted", Weights: the member weights}.
func (c Weighted) Spec() CombinerSpec {
	return CombinerSpec{Name: CombinerWeighted, Weights: c.Weights()}
}

// Combine returns Σ_m w_m·outs[m].
func (c Weighted) Combine(outs [][]float32, rows, k int) []float32 {
	dst := make([]float32, rows*k)
	c.CombineTo(dst, outs, rows, k)
	return dst
}

// CombineTo writes Σ_m w_m·outs[m] into dst. A member with weight 0 is skipped (its NaNs do
// not propagate).
func (c Weighted) CombineTo(dst []float32, outs [][]float32, rows, k int) {
	checkShapes(dst, outs, rows, k)
	if len(c.weights) != len(outs) {
		panic(fmt.Sprintf("ensemble: weighted combiner has %d weights for %d members", len(c.weights), len(outs)))
	}
	for i := range dst {
		var s float64
		for m, o := range outs {
			if w := c.weights[m]; w != 0 {
				s += w * float64(o[i])
			}
		}
		dst[i] = float32(s)
	}
}
