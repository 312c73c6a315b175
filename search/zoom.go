package search

import (
	"fmt"
	"math"
)

// ZoomConfig sets how a round's region narrows around the best trials so far. The zero value
// is the documented default of every field.
type ZoomConfig struct {
	// Top is the fraction q of the trials so far whose parameters define the next region: the
	// best max(2, ⌈q·n⌉) of the n trials that completed with a value, pruned trials left
	// out; only while fewer than 2 completed, of the n trials that did not fail (completed
	// first, then pruned ones by epochs reached). Default 0.25; in (0, 1].
	Top float64
	// Margin widens the top trials' span on each side by Margin × the width of the previous
	// range (on the sampling axis: log scale for log parameters). Default 0.1; ≥ 0.
	Margin float64
	// MinWidth is the narrowest a range may become, as a fraction of the full range's width
	// on the sampling axis. Default 0.05; in (0, 1].
	MinWidth float64
}

// Defaults of ZoomConfig.
const (
	DefaultZoomTop      = 0.25
	DefaultZoomMargin   = 0.1
	DefaultZoomMinWidth = 0.05
)

func (z ZoomConfig) withDefaults() ZoomConfig {
	if z.Top == 0 {
		z.Top = DefaultZoomTop
	}
	if z.Margin == 0 {
		z.Margin = DefaultZoomMargin
	}
	if z.MinWidth == 0 {
		z.MinWidth = DefaultZoomMinWidth
	}
	return z
}

// Validate checks the fields' ranges (zero values stand for the defaults).
func (z ZoomConfig) Validate() error {
	z = z.withDefaults()
	switch {
	case !(z.Top > 0 && z.Top <= 1):
		return fmt.Errorf("search: zoom top = %g: must be in (0, 1]", z.Top)
	case !(z.Margin >= 0) || math.IsInf(z.Margin, 0):
		return fmt.Errorf("search: zoom margin = %g: must be ≥ 0", z.Margin)
	case !(z.MinWidth > 0 && z.MinWidth <= 1):
		return fmt.Errorf("search: zoom min_width = %g: must be in (0, 1]", z.MinWidth)
	}
	return nil
}

// TopCount returns how many of n ranked trials define the next region: max(2, ⌈q·n⌉), at most n.
func (z ZoomConfig) TopCount(n int) int {
	z = z.withDefaults()
	k := max(2, int(math.Ceil(z.Top*float64(n)-1e-9)))
	return min(k, n)
}

// Zoom returns the region of the next round, given the previous round's region and the
// parameters of the top trials (the caller picks them; Run takes the best TopCount(n) of the
// n trials so far that completed, pruned ones left out, as ZoomConfig.Top says). Per
// parameter:
//
//   - Numeric: on the sampling axis (ln x for log parameters; each integer k covering
//     [k−½, k+½]), take the span [a, b] of the top trials' values, widen it by
//     Margin × (previous range's width) on each side and clip it to the previous range. If it
//     is then narrower than MinWidth × (full range's width), it becomes that wide, centred on
//     the span and shifted to stay inside the previous range. A parameter that none of the
//     top trials has (its condition never held) keeps its previous range.
//   - Choice: value i gets weight (cᵢ + 1) / Σ(cⱼ + 1), where cᵢ counts the top trials that
//     chose it (Laplace smoothing: no value's probability drops to 0, and a parameter that
//     none of them has goes back to equal weights). The previous weights play no part.
func (s *Space) Zoom(prev Region, top []Params, cfg ZoomConfig) Region {
	cfg = cfg.withDefaults()
	next := Region{Ranges: map[string]Range{}, Weights: map[string][]float64{}}
	for _, p := range s.params {
		if p.Dist == Choice {
			w := make([]float64, len(p.Choices))
			total := 0.0
			for i := range w {
				w[i] = 1
			}
			for _, t := range top {
				v, ok := t[p.Name]
				if !ok {
					continue
				}
				for i, c := range p.Choices {
					if equalValues(c, v) {
						w[i]++
						break
					}
				}
			}
			for _, x := range w {
				total += x
			}
			for i := range w {
				w[i] /= total
			}
			next.Weights[p.Name] = w
			continue
		}
		old := prev.rangeOf(p)
		pa, pb := old.axis()
		fa, fb := Range{Dist: p.Dist, Lo: p.Lo, Hi: p.Hi}.axis()
		ha, hb := math.Inf(1), math.Inf(-1)
		for _, t := range top {
			v, ok := t[p.Name]
			if !ok {
				continue
			}
			x, ok := number(v)
			if !ok {
				continue
			}
			va, vb := valueAxis(p.Dist, x)
			ha, hb = math.Min(ha, va), math.Max(hb, vb)
		}
		if ha > hb { // no top trial has the parameter
			next.Ranges[p.Name] = old
			continue
		}
		m := cfg.Margin * (pb - pa)
		a, b := math.Max(ha-m, pa), math.Min(hb+m, pb)
		if minW := cfg.MinWidth * (fb - fa); b-a < minW {
			c := (ha + hb) / 2
			a, b = c-minW/2, c+minW/2
			if a < pa {
				a, b = pa, b+(pa-a)
			}
			if b > pb {
				a, b = a-(b-pb), pb
			}
			a = math.Max(a, pa)
		}
		next.Ranges[p.Name] = rangeOnAxis(p.Dist, a, b)
	}
	return next
}
