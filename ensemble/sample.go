package ensemble

import (
	"math"
	"math/rand/v2"

	"github.com/pipe-ml/pipe/nn/train"
)

// rowSample is one member's training rows: positions within the base dataset (sorted, with
// repeats for a bootstrap) and the positions it never saw (its out-of-bag rows, sorted).
type rowSample struct {
	pos []int
	oob []int
}

// bootstrapSample draws n positions out of n with replacement. Positions are returned sorted
// (the trainer shuffles them each epoch; sorted order reads the base matrix sequentially) and
// the out-of-bag positions are exactly the complement of the drawn set.
func bootstrapSample(n int, rng *rand.Rand) rowSample {
	counts := make([]int32, n)
	for range n {
		counts[rng.IntN(n)]++
	}
	s := rowSample{pos: make([]int, 0, n)}
	for p, c := range counts {
		if c == 0 {
			s.oob = append(s.oob, p)
		}
		for range c {
			s.pos = append(s.pos, p)
		}
	}
	return s
}

// subsample draws round(fraction·n) distinct positions (at least 1, at most n) without
// replacement; the others are out of bag. Both lists are sorted.
func subsample(n int, fraction float64, rng *rand.Rand) rowSample {
	k := min(max(int(math.Round(fraction*float64(n))), 1), n)
	perm := rng.Perm(n)
	in := make([]bool, n)
	for _, p := range perm[:k] {
		in[p] = true
	}
	s := rowSample{pos: make([]int, 0, k), oob: make([]int, 0, n-k)}
	for p, ok := range in {
		if ok {
			s.pos = append(s.pos, p)
		} else {
			s.oob = append(s.oob, p)
		}
	}
	return s
}

// allRows is the sample of a member that trains on every row (no out-of-bag rows).
func allRows(n int) rowSample {
	pos := make([]int, n)
	for i := range pos {
		pos[i] = i
	}
	return rowSample{pos: pos}
}

// sampleRows returns member's row sample under cfg's sampling scheme.
func (c Config) sampleRows(n int, seed uint64, member int) rowSample {
	rng := memberRand(seed, member, streamSample)
	switch {
	case c.Bootstrap:
		return bootstrapSample(n, rng)
	case c.Subsample > 0:
		return subsample(n, c.Subsample, rng)
	}
	return allRows(n)
}

// featureSubset returns the sorted input columns a member uses, or nil for all of them.
func (c Config) featureSubset(numInputs int, seed uint64, member int) []int {
	if c.FeatureFraction == 0 || numInputs == 0 {
		return nil
	}
	k := min(max(int(math.Round(c.FeatureFraction*float64(numInputs))), 1), numInputs)
	if k == numInputs {
		return nil
	}
	perm := memberRand(seed, member, streamFeatures).Perm(numInputs)
	used := make([]bool, numInputs)
	for _, j := range perm[:k] {
		used[j] = true
	}
	cols := make([]int, 0, k)
	for j, ok := range used {
		if ok {
			cols = append(cols, j)
		}
	}
	return cols
}

// baseRow maps a position of d to its row of the base matrix.
func baseRow(d train.Dataset, pos int) int {
	if d.Index != nil {
		return d.Index[pos]
	}
	return pos
}

// memberDataset is the view of base that a member trains on: base's matrices with the
// sample's rows as Index. It copies nothing but the index (8 bytes per sampled row).
func memberDataset(base train.Dataset, s rowSample) train.Dataset {
	return base.Subset(s.pos)
}
