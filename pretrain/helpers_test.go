package pretrain

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
	"github.com/pipe-ml/pipe/nn/train"
)

// lowRank returns rows×cols data in [0, 1] that lies near a rank-4 subspace, with a class
// label (the sign pattern of the first two latent factors: 4 classes).
func lowRank(rows, cols int, seed uint64) (x []float32, labels []int32) {
	rng := rand.New(rand.NewPCG(seed, 7))
	const rank = 4
	a := make([]float64, rank*cols)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	x = make([]float32, rows*cols)
	labels = make([]int32, rows)
	for r := range rows {
		var z [rank]float64
		for k := range z {
			z[k] = rng.NormFloat64()
		}
		if z[0] > 0 {
			labels[r] |= 1
		}
		if z[1] > 0 {
			labels[r] |= 2
		}
		for c := range cols {
			v := 0.0
			for k := range z {
				v += z[k] * a[k*cols+c]
			}
			x[r*cols+c] = float32(1 / (1 + math.Exp(-v/2)))
		}
	}
	return x, labels
}

// rowsView returns a dataset view of rows [lo, hi) of a base dataset.
func rowsView(d train.Dataset, lo, hi int) train.Dataset {
	idx := make([]int, hi-lo)
	for i := range idx {
		idx[i] = lo + i
	}
	d.Index = idx
	return d
}

// quietConfig is a small deterministic training config for tests.
func quietConfig(epochs int, seed uint64) train.Config {
	return train.Config{Epochs: epochs, BatchSize: 32, Seed: seed, EarlyStopping: train.EarlyStopping{Disabled: true}}
}

// paramCopy returns a copy of every param value of m by name.
func paramCopy(m *nn.Model) map[string][]float32 {
	out := map[string][]float32{}
	for _, p := range m.Params() {
		out[p.Name] = append([]float32(nil), p.Value...)
	}
	return out
}

func bitEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func mustNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func optimLR(lr float64) optim.Config { return optim.Config{LR: lr} }
