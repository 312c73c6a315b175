package nn

import (
	"math"
	"math/rand/v2"
)

// randomBatch returns a batch with dense N(0,1) features and categorical columns drawn
// uniformly in [0, cardinality+1) (so the out-of-range → unknown bucket path is exercised).
func randomBatch(rng *rand.Rand, spec Spec, rows int) Batch {
	b := Batch{Rows: rows, X: make([]float32, rows*spec.NumInputs)}
	for i := range b.X {
		b.X[i] = float32(rng.NormFloat64())
	}
	for _, e := range spec.Embeddings {
		c := make([]int32, rows)
		for i := range c {
			c[i] = int32(rng.IntN(e.Cardinality + 1))
		}
		b.Cat = append(b.Cat, c)
	}
	return b
}

// randomTargets draws targets for every head; missingEvery > 0 marks every n-th row missing.
func randomTargets(rng *rand.Rand, spec Spec, rows, missingEvery int) Targets {
	var t Targets
	for hi, h := range spec.Heads {
		var ht HeadTargets
		switch h.Kind {
		case HeadSoftmax, HeadBinary:
			k := h.Classes
			if h.Kind == HeadBinary {
				k = 2
			}
			ht.Labels = make([]int32, rows)
			for i := range ht.Labels {
				ht.Labels[i] = int32(rng.IntN(k))
				if missingEvery > 0 && (i+hi)%missingEvery == 0 {
					ht.Labels[i] = -1
				}
			}
		default:
			k := h.headOutputs()
			ht.Values = make([]float32, rows*k)
			for i := range ht.Values {
				ht.Values[i] = float32(rng.NormFloat64())
				if missingEvery > 0 && (i+hi)%missingEvery == 0 {
					ht.Values[i] = float32(math.NaN())
				}
			}
		}
		t.Heads = append(t.Heads, ht)
	}
	return t
}

// randomSoftTargets gives every classification head of t random soft targets: rows×classes
// distributions (binary: rows×2) with every class present, so each class's logit gets a
// gradient. Missing rows (negative labels) stay missing.
func randomSoftTargets(rng *rand.Rand, spec Spec, t *Targets, rows int) {
	for hi, h := range spec.Heads {
		k := h.Classes
		switch h.Kind {
		case HeadBinary:
			k = 2
		case HeadSoftmax:
		default:
			continue
		}
		soft := make([]float32, rows*k)
		for r := 0; r < rows; r++ {
			row := soft[r*k : (r+1)*k]
			var sum float32
			for j := range row {
				row[j] = 0.05 + rng.Float32()
				sum += row[j]
			}
			for j := range row {
				row[j] /= sum
			}
		}
		t.Heads[hi].Soft = soft
	}
}

// centralDiff is (loss(v+h) − loss(v−h))/2h in coordinate i of v, which it restores.
func centralDiff(v []float32, i int, h float32, loss func() float64) float64 {
	orig := v[i]
	v[i] = orig + h
	up := loss()
	v[i] = orig - h
	down := loss()
	v[i] = orig
	return (up - down) / float64(2*h)
}
