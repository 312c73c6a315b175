package ensemble

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randomProbs returns members × rows×k random probability rows; sharpness > 1 makes them
// peakier (more distinct members).
func randomProbs(rng *rand.Rand, members, rows, k int, sharpness float64) [][]float32 {
	outs := make([][]float32, members)
	for m := range outs {
		outs[m] = make([]float32, rows*k)
		for r := 0; r < rows; r++ {
			var s float64
			row := make([]float64, k)
			for j := range row {
				row[j] = math.Pow(rng.Float64()+1e-3, sharpness)
				s += row[j]
			}
			for j := range row {
				outs[m][r*k+j] = float32(row[j] / s)
			}
		}
	}
	return outs
}

func TestWeightObjectiveGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 1))
	const rows, k, members = 50, 3, 4
	outs := randomProbs(rng, members, rows, k, 2)
	labels := make([]int32, rows)
	y := make([]float32, rows*k)
	for r := range labels {
		labels[r] = int32(rng.IntN(k))
		if r%7 == 0 {
			labels[r] = -1 // missing
		}
	}
	for i := range y {
		y[i] = float32(rng.NormFloat64())
	}
	y[4] = float32(math.NaN())
	ll, _, err := logLossObjective(outs, rows, k, labels)
	if err != nil {
		t.Fatal(err)
	}
	mse, _, err := mseObjective(outs, rows, k, y)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    objective
	}{{"logloss", ll}, {"mse", mse}} {
		t.Run(tc.name, func(t *testing.T) {
			w := []float64{0.1, 0.4, 0.3, 0.2}
			g := make([]float64, members)
			tc.f(w, g)
			const h = 1e-6
			for m := range w {
				wp := append([]float64(nil), w...)
				wm := append([]float64(nil), w...)
				wp[m] += h
				wm[m] -= h
				fd := (tc.f(wp, nil) - tc.f(wm, nil)) / (2 * h)
				if math.Abs(fd-g[m]) > 1e-6*max(1, math.Abs(fd)) {
					t.Errorf("d/dw%d: analytic %.9g, central difference %.9g", m, g[m], fd)
				}
			}
		})
	}
}

func TestFitWeightsMSERecoversKnownWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const rows, k = 400, 2
	truth := []float64{0.6, 0.3, 0.1, 0} // the last member is noise and must get weight 0
	outs := make([][]float32, len(truth))
	for m := range outs {
		outs[m] = make([]float32, rows*k)
		for i := range outs[m] {
			outs[m][i] = float32(rng.NormFloat64())
		}
	}
	y := make([]float32, rows*k)
	for i := range y {
		var s float64
		for m, w := range truth {
			s += w * float64(outs[m][i])
		}
		y[i] = float32(s)
	}
	c, fit, err := FitWeightsMSE(outs, rows, k, y, WeightFitOptions{Tol: 1e-13})
	if err != nil {
		t.Fatal(err)
	}
	if !fit.Converged {
		t.Errorf("fit did not converge: %+v", fit)
	}
	for m, w := range c.Weights() {
		if w < 0 || math.Abs(w-truth[m]) > 1e-4 {
			t.Errorf("weight %d = %.6f, want %.2f ± 1e-4 and >= 0", m, w, truth[m])
		}
	}
	if fit.Loss > 1e-8 {
		t.Errorf("MSE at the fitted weights %.3g, want ≈ 0 (exact mixture)", fit.Loss)
	}
}

func TestFitWeightsLogLossRecoversMixture(t *testing.T) {
	// Labels are sampled from the mixture 0.5·p0 + 0.3·p1 + 0.2·p2 (+ 0·p3): the maximum-
	// likelihood weights converge to the mixture weights; with 20000 rows of peaky members the
	// sampling error is about 0.01, so 0.04 is the tolerance.
	rng := rand.New(rand.NewPCG(5, 5))
	const rows, k = 20000, 4
	truth := []float64{0.5, 0.3, 0.2, 0}
	outs := randomProbs(rng, len(truth), rows, k, 4)
	labels := make([]int32, rows)
	for r := range labels {
		u := rng.Float64()
		var acc float64
		labels[r] = int32(k - 1)
		for c := 0; c < k; c++ {
			var p float64
			for m, w := range truth {
				p += w * float64(outs[m][r*k+c])
			}
			acc += p
			if u < acc {
				labels[r] = int32(c)
				break
			}
		}
	}
	c, fit, err := FitWeightsLogLoss(outs, rows, k, labels, WeightFitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !fit.Converged {
		t.Errorf("fit did not converge: %+v", fit)
	}
	t.Logf("fitted %v after %d iterations (gap %.2g)", c.Weights(), fit.Iterations, fit.Gap)
	var sum float64
	for m, w := range c.Weights() {
		sum += w
		if w < 0 || math.Abs(w-truth[m]) > 0.04 {
			t.Errorf("weight %d = %.4f, want %.2f ± 0.04 and >= 0", m, w, truth[m])
		}
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Errorf("weights sum to %.15f", sum)
	}
}

// TestFitWeightsMatchesGridSearch compares two-member fits against a brute-force search over
// w0 ∈ [0, 1] (w1 = 1 − w0) on random problems, including ones whose optimum is a vertex.
func TestFitWeightsMatchesGridSearch(t *testing.T) {
	for seed := uint64(0); seed < 6; seed++ {
		rng := rand.New(rand.NewPCG(seed, 11))
		const rows, k = 60, 3
		outs := randomProbs(rng, 2, rows, k, 1+float64(seed))
		labels := make([]int32, rows)
		y := make([]float32, rows*k)
		for r := range labels {
			labels[r] = int32(rng.IntN(k))
		}
		for i := range y {
			y[i] = float32(rng.Float64()) + float32(seed%3)*outs[0][i]
		}
		ll, _, _ := logLossObjective(outs, rows, k, labels)
		mse, _, _ := mseObjective(outs, rows, k, y)
		cases := []struct {
			name string
			f    objective
			fit  func() (Weighted, WeightFit, error)
		}{
			{"logloss", ll, func() (Weighted, WeightFit, error) {
				return FitWeightsLogLoss(outs, rows, k, labels, WeightFitOptions{})
			}},
			{"mse", mse, func() (Weighted, WeightFit, error) { return FitWeightsMSE(outs, rows, k, y, WeightFitOptions{}) }},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c, fit, err := tc.fit()
				if err != nil {
					t.Fatal(err)
				}
				best := math.Inf(1)
				for i := 0; i <= 10000; i++ {
					w0 := float64(i) / 10000
					best = min(best, tc.f([]float64{w0, 1 - w0}, nil))
				}
				w := c.Weights()
				if w[0] < 0 || w[1] < 0 {
					t.Errorf("seed %d: negative weight %v", seed, w)
				}
				if fit.Loss > best+1e-9 {
					t.Errorf("seed %d: fitted loss %.12f above grid minimum %.12f (weights %v)", seed, fit.Loss, best, w)
				}
			})
		}
	}
}

func TestProjectSimplex(t *testing.T) {
	// In two dimensions the projection of (a, b) onto {w ≥ 0, w0 + w1 = 1} is
	// w0 = clamp((a − b + 1)/2, 0, 1), w1 = 1 − w0.
	cases := [][2]float64{{0.3, 0.7}, {2, 0}, {-1, 5}, {0.9, 0.9}, {0, 0}, {10, 9.5}}
	scratch := make([]float64, 2)
	for _, c := range cases {
		u := []float64{c[0], c[1]}
		projectSimplex(u, scratch)
		w0 := min(max((c[0]-c[1]+1)/2, 0), 1)
		if math.Abs(u[0]-w0) > 1e-12 || math.Abs(u[1]-(1-w0)) > 1e-12 {
			t.Errorf("project(%v) = %v, want [%g %g]", c, u, w0, 1-w0)
		}
	}
}
