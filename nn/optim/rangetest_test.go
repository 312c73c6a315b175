package optim

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// linearRegression is a least-squares problem 0.5*mean((x.w - y)^2) on a fixed dataset whose
// features have standard deviations scales, so the Hessian is ~diag(scales^2): plain gradient
// descent converges fastest near lr = 2/(lambda_min+lambda_max) and diverges past
// 2/lambda_max.
type linearRegression struct {
	x     [][]float64
	y     []float64
	batch int
	rng   *rand.Rand
}

func newLinearRegression(rng *rand.Rand, scales []float64, n, batch int, noise float64) *linearRegression {
	trueW := make([]float64, len(scales))
	for i := range trueW {
		trueW[i] = rng.NormFloat64()
	}
	lr := &linearRegression{batch: batch, rng: rng}
	for range n {
		row := make([]float64, len(scales))
		var y float64
		for j, s := range scales {
			row[j] = s * rng.NormFloat64()
			y += row[j] * trueW[j]
		}
		lr.x = append(lr.x, row)
		lr.y = append(lr.y, y+noise*rng.NormFloat64())
	}
	return lr
}

// stepFunc returns a RangeTest step running SGD on p: one minibatch per call.
func (lr *linearRegression) stepFunc(opt Optimizer, p *Param) func(float64) (float64, error) {
	return func(rate float64) (float64, error) {
		clear(p.Grad)
		var loss float64
		for range lr.batch {
			i := lr.rng.IntN(len(lr.x))
			var pred float64
			for j, v := range lr.x[i] {
				pred += v * float64(p.Value[j])
			}
			r := pred - lr.y[i]
			loss += 0.5 * r * r / float64(lr.batch)
			for j, v := range lr.x[i] {
				p.Grad[j] += float32(r * v / float64(lr.batch))
			}
		}
		opt.Step([]*Param{p}, rate)
		return loss, nil
	}
}

func TestRangeTestSuggestion(t *testing.T) {
	tests := []struct {
		name   string
		scales []float64
		batch  int
		noise  float64
	}{
		// lambda in [0.25, 4]: optimum 2/4.25 = 0.47, divergence past 0.5.
		{"full batch", []float64{0.5, 0.8, 1.2, 1.6, 2}, 256, 0},
		{"minibatch noisy", []float64{0.5, 0.8, 1.2, 1.6, 2}, 16, 0.3},
		// lambda in [0.01, 1]: optimum ~2, divergence past 2.
		{"small curvature", []float64{0.1, 0.3, 0.6, 1}, 32, 0.1},
		// lambda in [25, 400]: divergence past 0.005.
		{"large curvature", []float64{5, 10, 20}, 32, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lambdaMax := 0.0
			for _, s := range tc.scales {
				lambdaMax = max(lambdaMax, s*s)
			}
			for seed := range uint64(5) {
				rng := rand.New(rand.NewPCG(seed, 11))
				prob := newLinearRegression(rng, tc.scales, 512, tc.batch, tc.noise)
				opt, _ := New(Config{Name: "sgd"})
				p := &Param{Name: "w", Value: make([]float32, len(tc.scales)), Grad: make([]float32, len(tc.scales))}
				res, err := RangeTest(context.Background(), RangeTestConfig{MinLR: 1e-4}, prob.stepFunc(opt, p))
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("seed %d: suggested %.3g, best %.3g, 2/lambda_max %.3g, diverged %v after %d steps",
					seed, res.Suggested, res.BestLR, 2/lambdaMax, res.Diverged, len(res.LRs))
				// Right range: within an order of magnitude below the stability limit.
				if res.Suggested < 0.1*2/lambdaMax || res.Suggested > 2/lambdaMax {
					t.Errorf("seed %d: suggested %.3g, want it in [%.3g, %.3g]", seed, res.Suggested, 0.2/lambdaMax, 2/lambdaMax)
				}
				if !res.Diverged || len(res.LRs) == 100 {
					t.Errorf("seed %d: the sweep to lr 10 should stop on divergence (2/lambda_max = %.3g)", seed, 2/lambdaMax)
				}
				// The suggestion trains: from fresh weights, 300 steps at it cut the loss 10x.
				clear(p.Value)
				train := prob.stepFunc(opt, p)
				first, _ := train(res.Suggested)
				var last float64
				for i := range 300 {
					l, _ := train(res.Suggested)
					if i >= 280 {
						last += l / 20
					}
				}
				if !(last < first/10) {
					t.Errorf("seed %d: at the suggested lr the loss went from %.3g to %.3g", seed, first, last)
				}
			}
		})
	}
}

func TestRangeTestSweep(t *testing.T) {
	t.Run("exponential grid and smoothing", func(t *testing.T) {
		// Losses 4, 2, 2, ... with Smoothing 0.5 (beta 0.5), bias-corrected:
		//   step 0: avg = 0.5*4 = 2,           smoothed = 2/(1-0.5)   = 4
		//   step 1: avg = 0.5*2 + 0.5*2 = 2,   smoothed = 2/(1-0.25)  = 8/3
		//   step 2: avg = 0.5*2 + 0.5*2 = 2,   smoothed = 2/(1-0.125) = 16/7
		losses := []float64{4, 2, 2, 2, 2}
		i := 0
		res, err := RangeTest(context.Background(), RangeTestConfig{MinLR: 1e-3, MaxLR: 10, Steps: 5, Smoothing: 0.5},
			func(float64) (float64, error) { i++; return losses[i-1], nil })
		if err != nil {
			t.Fatal(err)
		}
		// 1e-3 * 10^(i) for i = 0..4: a decade per step.
		for j, lr := range res.LRs {
			if want := 1e-3 * math.Pow(10, float64(j)); math.Abs(lr-want) > 1e-12*want {
				t.Errorf("LRs[%d] = %g, want %g", j, lr, want)
			}
		}
		for j, want := range []float64{4, 8.0 / 3, 16.0 / 7} {
			if math.Abs(res.Losses[j]-want) > 1e-12 {
				t.Errorf("Losses[%d] = %.15g, want %.15g", j, res.Losses[j], want)
			}
		}
		// The smoothed loss keeps falling towards 2: best at the last step, 10.
		if res.BestLR != res.LRs[4] || res.Suggested != res.BestLR/10 || res.Diverged {
			t.Errorf("BestLR %g, Suggested %g, Diverged %v", res.BestLR, res.Suggested, res.Diverged)
		}
	})
	t.Run("stops on divergence", func(t *testing.T) {
		calls := 0
		res, err := RangeTest(context.Background(), RangeTestConfig{}, func(lr float64) (float64, error) {
			calls++
			return 1 + 1e4*lr, nil // blows up once lr >> 1e-4
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Diverged || calls == 100 || calls != len(res.LRs) {
			t.Errorf("diverged %v after %d calls, %d points", res.Diverged, calls, len(res.LRs))
		}
		last := res.Losses[len(res.Losses)-1]
		if !(last > 4*res.Losses[0]) {
			t.Errorf("stopped at smoothed loss %g, best %g", last, res.Losses[0])
		}
	})
	t.Run("non-finite loss", func(t *testing.T) {
		calls := 0
		res, err := RangeTest(context.Background(), RangeTestConfig{}, func(lr float64) (float64, error) {
			calls++
			if calls == 10 {
				return math.NaN(), nil
			}
			return 1, nil
		})
		if err != nil || !res.Diverged || len(res.LRs) != 9 {
			t.Errorf("err %v, diverged %v, %d points", err, res.Diverged, len(res.LRs))
		}
		_, err = RangeTest(context.Background(), RangeTestConfig{}, func(float64) (float64, error) { return math.Inf(1), nil })
		if err == nil || !strings.Contains(err.Error(), "first step") {
			t.Errorf("non-finite first loss: %v", err)
		}
	})
	t.Run("honours ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		calls := 0
		res, err := RangeTest(ctx, RangeTestConfig{}, func(float64) (float64, error) {
			calls++
			if calls == 10 {
				cancel()
			}
			return 1, nil
		})
		if !errors.Is(err, context.Canceled) || calls != 10 || len(res.LRs) != 10 {
			t.Errorf("err %v after %d calls, %d points", err, calls, len(res.LRs))
		}
	})
	t.Run("step error", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := RangeTest(context.Background(), RangeTestConfig{}, func(float64) (float64, error) { return 0, boom })
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "step 0") {
			t.Errorf("err %v", err)
		}
	})
	for _, bad := range []RangeTestConfig{{MinLR: 1, MaxLR: 0.1}, {Steps: 2}, {Smoothing: 1.5}, {DivergeAt: 0.5}} {
		t.Run("config", func(t *testing.T) {
			if _, err := RangeTest(context.Background(), bad, func(float64) (float64, error) { return 1, nil }); err == nil {
				t.Errorf("%+v: no error", bad)
			}
		})
	}
}
