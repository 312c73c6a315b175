package optim

import (
	"context"
	"fmt"
	"math"
)

// RangeTestConfig configures RangeTest. Every zero field means its default.
type RangeTestConfig struct {
	// MinLR and MaxLR bound the sweep (defaults 1e-7 and 10).
	MinLR, MaxLR float64
	// Steps is the number of steps of the sweep (default 100, Smith's "first ~100 iterations").
	Steps int
	// Smoothing is the weight of the newest loss in the exponential smoothing of the losses,
	// default 0.05 (0.95 on the history, as fastai); the smoothed loss is bias-corrected.
	Smoothing float64
	// DivergeAt stops the sweep once the smoothed loss exceeds DivergeAt times the best
	// smoothed loss (default 4, as fastai).
	DivergeAt float64
}

// RangeTestResult is the outcome of RangeTest.
type RangeTestResult struct {
	// LRs and Losses are the sweep: each step's learning rate and smoothed loss.
	LRs, Losses []float64
	// BestLR is the LR with the lowest smoothed loss.
	BestLR float64
	// Suggested is the suggested initial learning rate: see RangeTest for the rule.
	Suggested float64
	// Diverged reports that the sweep stopped early because the loss diverged (smoothed loss
	// above DivergeAt times the best, or a non-finite loss).
	Diverged bool
}

// RangeTest runs the learning-rate range test (Smith 2017, "Cyclical learning rates"; the
// fastai lr_find): it calls step(lr) for Steps learning rates growing exponentially from MinLR
// to MaxLR, smooths the losses, and stops early when they diverge. step runs one training step
// at that lr and returns the batch loss. The caller saves and restores the weights (and
// optimizer state) around the test.
//
// The suggestion rule is Suggested = BestLR/10 (fastai's "minimum/10"). The smoothed loss
// bottoms out at the edge of divergence — its exponential smoothing lags, so BestLR is
// typically already past the stability limit (about 2x on the quadratic problems of the tests)
// — and one order of magnitude below it is the largest LR that still trains stably and fast.
// On a least-squares problem with Hessian eigenvalues up to lambda_max, whose stability limit
// is 2/lambda_max, the tests check that the suggestion lands in [0.2, 2]/lambda_max. The
// steepest-descent point of the curve (fastai's "steep") was tried and rejected: in 100 noisy
// steps its finite differences are dominated by minibatch noise in the flat early part.
//
// RangeTest returns an error, together with the sweep so far, when step fails, when ctx is
// done, or when the very first loss is not finite.
func RangeTest(ctx context.Context, cfg RangeTestConfig, step func(lr float64) (float64, error)) (RangeTestResult, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return RangeTestResult{}, err
	}
	res := RangeTestResult{LRs: make([]float64, 0, c.Steps), Losses: make([]float64, 0, c.Steps)}
	ratio := math.Log(c.MaxLR / c.MinLR)
	beta := 1 - c.Smoothing
	var avg, betaPow float64 = 0, 1
	best := math.Inf(1)
	for i := range c.Steps {
		if err := ctx.Err(); err != nil {
			res.finish()
			return res, fmt.Errorf("optim: range test stopped after %d of %d steps: %w", i, c.Steps, err)
		}
		lr := c.MinLR * math.Exp(ratio*float64(i)/float64(c.Steps-1))
		loss, err := step(lr)
		if err != nil {
			res.finish()
			return res, fmt.Errorf("optim: range test step %d at lr %.3g: %w", i, lr, err)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			if i == 0 {
				return res, fmt.Errorf("optim: range test: loss is %v at the first step (lr %.3g): the model or data is broken before any learning rate matters", loss, lr)
			}
			res.Diverged = true
			break
		}
		avg = beta*avg + (1-beta)*loss
		betaPow *= beta
		smoothed := avg / (1 - betaPow)
		res.LRs = append(res.LRs, lr)
		res.Losses = append(res.Losses, smoothed)
		best = min(best, smoothed)
		if i > 0 && smoothed > c.DivergeAt*best {
			res.Diverged = true
			break
		}
	}
	res.finish()
	return res, nil
}

// finish fills BestLR and Suggested from the sweep.
func (r *RangeTestResult) finish() {
	if len(r.LRs) == 0 {
		return
	}
	b := 0
	for i, l := range r.Losses {
		if l < r.Losses[b] {
			b = i
		}
	}
	r.BestLR = r.LRs[b]
	r.Suggested = r.BestLR / 10
}

func (c RangeTestConfig) withDefaults() (RangeTestConfig, error) {
	c.MinLR = orDefault(c.MinLR, 1e-7)
	c.MaxLR = orDefault(c.MaxLR, 10)
	c.Steps = int(orDefault(float64(c.Steps), 100))
	c.Smoothing = orDefault(c.Smoothing, 0.05)
	c.DivergeAt = orDefault(c.DivergeAt, 4)
	switch {
	case !(c.MinLR > 0 && c.MaxLR > c.MinLR) || math.IsInf(c.MaxLR, 0):
		return c, fmt.Errorf("optim: range test: want 0 < MinLR < MaxLR < Inf, got MinLR %v, MaxLR %v", c.MinLR, c.MaxLR)
	case c.Steps < 3:
		return c, fmt.Errorf("optim: range test: Steps is %d, want at least 3", c.Steps)
	case !(c.Smoothing > 0 && c.Smoothing <= 1):
		return c, fmt.Errorf("optim: range test: Smoothing is %v, want a value in (0, 1]", c.Smoothing)
	case !(c.DivergeAt > 1) || math.IsInf(c.DivergeAt, 0):
		return c, fmt.Errorf("optim: range test: DivergeAt is %v, want a finite value > 1", c.DivergeAt)
	}
	return c, nil
}
