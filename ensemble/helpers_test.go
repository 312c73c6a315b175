package ensemble

import (
	"bytes"
	"encoding/csv"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
	"github.com/pipe-ml/pipe/nn/train"
)

// blobs is a seeded synthetic classification problem: k Gaussian clusters in d dimensions
// (unit variance around centres drawn in [-2, 2]^d), n rows, labels 0..k-1.
func blobs(n, d, k int, seed uint64) train.Dataset {
	rng := rand.New(rand.NewPCG(seed, 99))
	centres := make([]float64, k*d)
	for i := range centres {
		centres[i] = 4*rng.Float64() - 2
	}
	ds := train.Dataset{NumInputs: d, X: make([]float32, n*d)}
	labels := make([]int32, n)
	for r := 0; r < n; r++ {
		c := rng.IntN(k)
		labels[r] = int32(c)
		for j := 0; j < d; j++ {
			ds.X[r*d+j] = float32(centres[c*d+j] + rng.NormFloat64())
		}
	}
	ds.Targets = []train.Target{{Labels: labels}}
	return ds
}

// smallMember is a 16-unit ReLU MLP with a softmax head, trained briefly.
func smallMember(d, k, epochs int) Member {
	return Member{
		Spec: nn.Spec{NumInputs: d, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 16, Activation: "relu"}},
			Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: k}}},
		Train: train.Config{Epochs: epochs, BatchSize: 32, EarlyStopping: train.EarlyStopping{Disabled: true}},
	}
}

// digitsSplit is the embedded digits dataset split as shipped, standardised with training
// statistics.
type digitsSplit struct {
	train, val, test train.Dataset
	numInputs        int
}

func loadDigits(t testing.TB) digitsSplit {
	t.Helper()
	raw, err := datasets.CSV("digits")
	if err != nil {
		t.Fatal(err)
	}
	which, err := datasets.SplitColumn("digits")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	recs = recs[1:]
	if len(recs) != len(which) {
		t.Fatalf("digits: %d rows, %d split entries", len(recs), len(which))
	}
	nf := len(recs[0]) - 1
	feats := map[string][][]float64{}
	labels := map[string][]int32{}
	for i, rec := range recs {
		f := make([]float64, nf)
		for j := range f {
			if f[j], err = strconv.ParseFloat(rec[j], 64); err != nil {
				t.Fatalf("digits row %d col %d: %v", i, j, err)
			}
		}
		y, err := strconv.Atoi(rec[nf])
		if err != nil {
			t.Fatalf("digits row %d target: %v", i, err)
		}
		feats[which[i]] = append(feats[which[i]], f)
		labels[which[i]] = append(labels[which[i]], int32(y))
	}
	mean, std := make([]float64, nf), make([]float64, nf)
	tr := feats["train"]
	for j := 0; j < nf; j++ {
		for _, r := range tr {
			mean[j] += r[j]
		}
		mean[j] /= float64(len(tr))
		for _, r := range tr {
			std[j] += (r[j] - mean[j]) * (r[j] - mean[j])
		}
		std[j] = math.Sqrt(std[j] / float64(len(tr)))
		if std[j] == 0 {
			std[j] = 1
		}
	}
	build := func(part string) train.Dataset {
		d := train.Dataset{NumInputs: nf}
		for _, r := range feats[part] {
			for j, v := range r {
				d.X = append(d.X, float32((v-mean[j])/std[j]))
			}
		}
		d.Targets = []train.Target{{Labels: labels[part]}}
		return d
	}
	return digitsSplit{train: build("train"), val: build("val"), test: build("test"), numInputs: nf}
}

// batchOf materialises every row of d into a batch.
func batchOf(d train.Dataset) nn.Batch {
	n := d.Len()
	b := nn.Batch{Rows: n, X: make([]float32, 0, n*d.NumInputs)}
	for i := 0; i < n; i++ {
		r := baseRow(d, i)
		b.X = append(b.X, d.X[r*d.NumInputs:(r+1)*d.NumInputs]...)
	}
	return b
}

func optimLR(lr float64) optim.Config { return optim.Config{LR: lr} }
