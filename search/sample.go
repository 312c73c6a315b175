package search

import (
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// Params are one trial's parameter values by name: float64 for uniform and log_uniform,
// int64 for int and log_int, the chosen value (a copy) for a choice. A conditional parameter
// whose condition does not hold is absent.
type Params map[string]any

// Names returns the parameters' names in sorted order.
func (p Params) Names() []string {
	out := make([]string, 0, len(p))
	for k := range p {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// String writes the parameters as TOML key = value pairs (quoted keys, sorted), separated by
// ", ": "\"optimizer.lr\" = 0.003, \"optimizer.name\" = \"adam\"".
func (p Params) String() string {
	var b strings.Builder
	for i, k := range p.Names() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(formatKey(k))
		b.WriteString(" = ")
		b.WriteString(FormatValue(p[k]))
	}
	return b.String()
}

// Range is the part of a numeric parameter's axis that a region samples.
//
// Sampling is uniform on the parameter's sampling axis z: z = x for uniform and int, z = ln x
// for log_uniform and log_int. A uniform or log_uniform parameter draws x in [Lo, Hi]. An int
// or log_int parameter draws x in [Lo−½, Hi+½) on its axis and rounds it to the nearest
// integer, so that in the full range every integer gets its fair share: equal for int, the
// width of [k−½, k+½] on the log axis for log_int. After a zoom, Lo and Hi of an integer
// parameter may be fractional: the integers at the edges then get a part of their share.
type Range struct {
	Dist   Dist
	Lo, Hi float64
}

// axis returns the interval of the sampling axis that r covers.
func (r Range) axis() (a, b float64) {
	lo, hi := r.Lo, r.Hi
	if r.Dist.integer() {
		lo, hi = lo-0.5, hi+0.5
	}
	if r.Dist.log() {
		return math.Log(lo), math.Log(hi)
	}
	return lo, hi
}

// rangeOnAxis is the inverse of axis: the Range whose axis interval is [a, b].
func rangeOnAxis(d Dist, a, b float64) Range {
	lo, hi := a, b
	if d.log() {
		lo, hi = math.Exp(a), math.Exp(b)
	}
	if d.integer() {
		lo, hi = lo+0.5, hi-0.5
	}
	return Range{Dist: d, Lo: lo, Hi: hi}
}

// valueAxis returns the interval of the sampling axis that value v occupies: a point for a
// float, [k−½, k+½] (on the log axis for log_int) for an integer k.
func valueAxis(d Dist, v float64) (a, b float64) {
	lo, hi := v, v
	if d.integer() {
		lo, hi = v-0.5, v+0.5
	}
	if d.log() {
		return math.Log(lo), math.Log(hi)
	}
	return lo, hi
}

// Contains reports whether the range can draw the value v. An integer k can be drawn when
// [k−½, k+½] overlaps [Lo−½, Hi+½] by more than a point: Lo−1 < k < Hi+1.
func (r Range) Contains(v float64) bool {
	if r.Dist.integer() {
		return v == math.Trunc(v) && r.Lo-1 < v && v < r.Hi+1
	}
	return v >= r.Lo && v <= r.Hi
}

// Region is the part of a space that one round samples: a Range per numeric parameter and
// the probabilities of the values of each choice parameter (in the order of Param.Choices,
// summing to 1). Space.Region gives the full space; Zoom narrows it.
type Region struct {
	Ranges  map[string]Range
	Weights map[string][]float64
}

// Region returns the full space: every range at its bounds, every choice equally likely.
func (s *Space) Region() Region {
	r := Region{Ranges: map[string]Range{}, Weights: map[string][]float64{}}
	for _, p := range s.params {
		if p.Dist == Choice {
			w := make([]float64, len(p.Choices))
			for i := range w {
				w[i] = 1 / float64(len(w))
			}
			r.Weights[p.Name] = w
			continue
		}
		r.Ranges[p.Name] = Range{Dist: p.Dist, Lo: p.Lo, Hi: p.Hi}
	}
	return r
}

// rangeOf returns the region's range of p, or p's full range if the region has none.
func (r Region) rangeOf(p Param) Range {
	if rg, ok := r.Ranges[p.Name]; ok && rg.Dist == p.Dist {
		return rg
	}
	return Range{Dist: p.Dist, Lo: p.Lo, Hi: p.Hi}
}

// weightsOf returns the region's weights of choice p, or equal weights if the region has none
// that fit.
func (r Region) weightsOf(p Param) []float64 {
	if w, ok := r.Weights[p.Name]; ok && len(w) == len(p.Choices) {
		return w
	}
	w := make([]float64, len(p.Choices))
	for i := range w {
		w[i] = 1
	}
	return w
}

// Contains reports whether the region can draw value v for the parameter called name: a
// numeric value inside its Range, a choice with a positive weight.
func (s *Space) Contains(r Region, name string, v any) bool {
	p, ok := s.Param(name)
	if !ok {
		return false
	}
	if p.Dist == Choice {
		w := r.weightsOf(p)
		for i, c := range p.Choices {
			if equalValues(c, v) {
				return w[i] > 0
			}
		}
		return false
	}
	x, ok := number(v)
	return ok && r.rangeOf(p).Contains(x)
}

// Sample draws one point of the region. It takes exactly one rng.Float64 per parameter of
// the space, in name order, whether or not the parameter's condition holds, so a parameter's
// draw does not depend on which other parameters exist; then it drops the parameters whose
// conditions do not hold. The same rng state gives the same Params.
func (s *Space) Sample(r Region, rng *rand.Rand) Params {
	vals := make([]any, len(s.params))
	for i, p := range s.params {
		u := rng.Float64()
		if p.Dist == Choice {
			vals[i] = copyValue(p.Choices[pick(r.weightsOf(p), u)])
			continue
		}
		vals[i] = drawNumber(p, r.rangeOf(p), u)
	}
	present := s.present(vals)
	out := make(Params, len(vals))
	for i, p := range s.params {
		if present[i] {
			out[p.Name] = vals[i]
		}
	}
	return out
}

// present decides which parameters exist for the values vals (one per parameter, in order).
func (s *Space) present(vals []any) []bool {
	present := make([]bool, len(s.params))
	for _, i := range s.order {
		ok := true
		for _, d := range s.deps[i] {
			if !present[d.param] || !equalValues(vals[d.param], d.value) {
				ok = false
				break
			}
		}
		present[i] = ok
	}
	return present
}

// pick returns the index whose cumulative weight first exceeds u·total.
func pick(w []float64, u float64) int {
	total := 0.0
	for _, x := range w {
		total += x
	}
	t := u * total
	acc := 0.0
	last := 0
	for i, x := range w {
		if x <= 0 {
			continue
		}
		acc += x
		last = i
		if t < acc {
			return i
		}
	}
	return last
}

// drawNumber maps u in [0, 1) to a value of p inside rg.
func drawNumber(p Param, rg Range, u float64) any {
	a, b := rg.axis()
	z := a + u*(b-a)
	x := z
	if p.Dist.log() {
		x = math.Exp(z)
	}
	if p.Dist.integer() {
		k := math.Floor(x + 0.5)
		// Guard the edges against rounding in exp: the integers whose [k−½, k+½) meets
		// [Lo−½, Hi+½) are floor(Lo) … ceil(Hi).
		k = math.Max(k, math.Max(p.Lo, math.Floor(rg.Lo)))
		k = math.Min(k, math.Min(p.Hi, math.Ceil(rg.Hi)))
		return int64(k)
	}
	return math.Min(math.Max(x, rg.Lo), rg.Hi)
}
