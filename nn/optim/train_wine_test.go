package optim

import (
	"bytes"
	"encoding/csv"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/nn/metrics"
)

// wineSplit is the embedded wine dataset, standardised with the train rows' statistics.
type wineSplit struct {
	trainX, testX [][]float64
	trainY, testY []int32
}

func loadWine(t *testing.T) wineSplit {
	t.Helper()
	raw, err := datasets.CSV("wine")
	if err != nil {
		t.Fatal(err)
	}
	split, err := datasets.SplitColumn("wine")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	rows = rows[1:]
	if len(rows) != len(split) {
		t.Fatalf("%d rows, %d split entries", len(rows), len(split))
	}
	var w wineSplit
	for i, r := range rows {
		x := make([]float64, len(r)-1)
		for j := range x {
			if x[j], err = strconv.ParseFloat(r[j], 64); err != nil {
				t.Fatal(err)
			}
		}
		y, err := strconv.Atoi(r[len(r)-1])
		if err != nil {
			t.Fatal(err)
		}
		if split[i] == "test" {
			w.testX, w.testY = append(w.testX, x), append(w.testY, int32(y))
		} else {
			w.trainX, w.trainY = append(w.trainX, x), append(w.trainY, int32(y))
		}
	}
	d := len(w.trainX[0])
	for j := range d {
		var mean, sq float64
		for _, x := range w.trainX {
			mean += x[j]
		}
		mean /= float64(len(w.trainX))
		for _, x := range w.trainX {
			sq += (x[j] - mean) * (x[j] - mean)
		}
		sd := math.Sqrt(sq / float64(len(w.trainX)))
		for _, xs := range [][][]float64{w.trainX, w.testX} {
			for _, x := range xs {
				x[j] = (x[j] - mean) / sd
			}
		}
	}
	return w
}

// softmaxProbs writes the n×k class probabilities of a linear softmax model (W k×d, b k).
func softmaxProbs(W, b *Param, xs [][]float64, k int) []float32 {
	d := len(xs[0])
	out := make([]float32, len(xs)*k)
	z := make([]float64, k)
	for i, x := range xs {
		zmax := math.Inf(-1)
		for c := range k {
			z[c] = float64(b.Value[c])
			for j := range d {
				z[c] += float64(W.Value[c*d+j]) * x[j]
			}
			zmax = max(zmax, z[c])
		}
		var sum float64
		for c := range k {
			z[c] = math.Exp(z[c] - zmax)
			sum += z[c]
		}
		for c := range k {
			out[i*k+c] = float32(z[c] / sum)
		}
	}
	return out
}

// TestOptimizersTrainWine trains a softmax regression on the embedded wine dataset with each
// optimizer (minibatches of 16, 40 epochs) and checks that the loss falls and that test
// accuracy clears a floor. A linear model separates wine almost perfectly (~97% test accuracy
// with scikit-learn's LogisticRegression), so the floor is 90%.
func TestOptimizersTrainWine(t *testing.T) {
	w := loadWine(t)
	const k, batch, epochs = 3, 16, 40
	d := len(w.trainX[0])
	for _, tc := range []struct {
		cfg Config
		lr  float64
	}{
		{Config{Name: "sgd", Momentum: 0.9, Nesterov: true}, 0.05},
		{Config{Name: "rmsprop"}, 0.01},
		{Config{Name: "adam"}, 0.01},
		{Config{Name: "adamw"}, 0.01},
		{Config{Name: "adagrad"}, 0.1},
	} {
		t.Run(tc.cfg.Name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(42, 1))
			W := &Param{Name: "dense/W", Shape: []int{k, d}, Value: make([]float32, k*d), Grad: make([]float32, k*d)}
			b := &Param{Name: "dense/b", Shape: []int{k}, Value: make([]float32, k), Grad: make([]float32, k), NoDecay: true}
			for i := range W.Value {
				W.Value[i] = float32(0.01 * rng.NormFloat64())
			}
			params := []*Param{W, b}
			opt, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			initial := metrics.LogLoss(w.trainY, softmaxProbs(W, b, w.trainX, k), k)
			order := make([]int, len(w.trainX))
			for i := range order {
				order[i] = i
			}
			for range epochs {
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				for start := 0; start < len(order); start += batch {
					idx := order[start:min(start+batch, len(order))]
					xs := make([][]float64, len(idx))
					for i, r := range idx {
						xs[i] = w.trainX[r]
					}
					probs := softmaxProbs(W, b, xs, k)
					clear(W.Grad)
					clear(b.Grad)
					// d(mean NLL)/dz = p - onehot(y).
					for i, r := range idx {
						for c := range k {
							g := float64(probs[i*k+c]) / float64(len(idx))
							if int32(c) == w.trainY[r] {
								g -= 1 / float64(len(idx))
							}
							b.Grad[c] += float32(g)
							for j := range d {
								W.Grad[c*d+j] += float32(g * xs[i][j])
							}
						}
					}
					opt.Step(params, tc.lr)
				}
			}
			final := metrics.LogLoss(w.trainY, softmaxProbs(W, b, w.trainX, k), k)
			acc := metrics.Accuracy(w.testY, softmaxProbs(W, b, w.testX, k), k)
			t.Logf("train log loss %.4f -> %.4f, test accuracy %.3f", initial, final, acc)
			if !(final < initial/5) {
				t.Errorf("train log loss fell only from %.4f to %.4f", initial, final)
			}
			if !(acc >= 0.9) {
				t.Errorf("test accuracy %.3f, floor 0.90", acc)
			}
		})
	}
}
