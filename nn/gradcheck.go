package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// GradCheckOptions configures GradCheck. The zero value is usable.
type GradCheckOptions struct {
	// Eps is the finite-difference step, relative to max(1, |w|); default 1e-2 (large enough
	// that float32 rounding of the loss, ~1e-7 relative, stays below 1e-4 of the difference).
	Eps float64
	// MaxCoords is the number of coordinates checked per tensor; larger tensors are sampled
	// (seeded by Seed). Default 24.
	MaxCoords int
	// Seed for the coordinate sample; default 0.
	Seed uint64
	// SkipKinks skips coordinates where the two one-sided differences disagree, i.e. where the
	// step crosses a kink (ReLU at 0, L1 or MAE at 0, Huber at ±delta) and the central
	// difference means nothing; they are counted in GradCheckResult.Kinks. A wrong backward
	// pass does not make the loss one-sidedly different, so skipping them hides no bug; it
	// only checks fewer coordinates. Default false.
	SkipKinks bool
}

// GradCheckResult is the worst coordinate of one param tensor.
type GradCheckResult struct {
	Param    string
	Coord    int     // flat index of the worst coordinate
	Analytic float64 // backward's gradient there
	Numeric  float64 // central difference there
	RelError float64 // |a−n| / (max(|a|, |n|) + Floor)
	// Floor keeps float32 noise on tiny gradients from counting as error: 1e-3·(largest
	// |analytic| in the tensor sample) + 1e-6·max(1, |L|)/Eps (the central difference of a loss
	// computed with float32 activations is only good to about that much).
	Floor      float64
	CoordsSeen int
	// Kinks is the number of coordinates skipped because the step crossed a kink (SkipKinks).
	Kinks int
}

// GradCheck compares TrainStep's analytic gradient of Loss.Total with central finite
// differences (L(w+h) − L(w−h))/2h, in training mode with the dropout/noise draws held fixed
// (the noise source is rewound before every evaluation). It returns the worst relative error
// of every non-frozen param tensor. The model's weights, batch-norm running statistics and
// noise-source state are restored before it returns.
//
// Kinks (ReLU at 0, L1 and MAE at 0, Huber at ±delta) make the difference meaningless when a
// step crosses them; use smooth activations or small steps when checking those.
func GradCheck(m *Model, b Batch, t Targets, opts GradCheckOptions) ([]GradCheckResult, error) {
	eps := opts.Eps
	if eps == 0 {
		eps = 1e-2
	}
	maxCoords := opts.MaxCoords
	if maxCoords == 0 {
		maxCoords = 24
	}
	rngState, err := m.pcg.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("nn: gradcheck: save noise state: %w", err)
	}
	saved := make([][]float32, len(m.buffers))
	for i, p := range m.buffers {
		saved[i] = append([]float32(nil), p.Value...)
	}
	defer func() {
		_ = m.pcg.UnmarshalBinary(rngState)
		for i, p := range m.buffers {
			copy(p.Value, saved[i])
		}
	}()
	rewind := func() error { return m.pcg.UnmarshalBinary(rngState) }
	if err := rewind(); err != nil {
		return nil, err
	}
	base, err := m.TrainStep(b, t)
	if err != nil {
		return nil, err
	}
	analytic := make([][]float32, len(m.params))
	for i, p := range m.params {
		analytic[i] = append([]float32(nil), p.Grad...)
	}
	lossAt := func() (float64, error) {
		if err := rewind(); err != nil {
			return 0, err
		}
		l, err := m.trainLoss(b, t)
		return l.Total, err
	}
	l0, err := lossAt()
	if err != nil {
		return nil, err
	}
	pick := rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15))
	var results []GradCheckResult
	for pi, p := range m.params {
		if p.Frozen {
			continue
		}
		coords := make([]int, 0, maxCoords)
		if p.Size() <= maxCoords {
			for i := 0; i < p.Size(); i++ {
				coords = append(coords, i)
			}
		} else {
			coords = append(coords, pick.Perm(p.Size())[:maxCoords]...)
		}
		res := GradCheckResult{Param: p.Name, Coord: -1, CoordsSeen: len(coords)}
		var scale float64
		for _, c := range coords {
			scale = max(scale, math.Abs(float64(analytic[pi][c])))
		}
		res.Floor = 1e-3*scale + 1e-6*max(1, math.Abs(base.Total))/eps
		for _, c := range coords {
			w := p.Value[c]
			h := eps * max(1, math.Abs(float64(w)))
			plus, minus := float32(float64(w)+h), float32(float64(w)-h)
			p.Value[c] = plus
			lp, err := lossAt()
			if err != nil {
				p.Value[c] = w
				return nil, err
			}
			p.Value[c] = minus
			lm, err := lossAt()
			p.Value[c] = w
			if err != nil {
				return nil, err
			}
			num := (lp - lm) / (float64(plus) - float64(minus))
			if opts.SkipKinks {
				fwd := (lp - l0) / (float64(plus) - float64(w))
				bwd := (l0 - lm) / (float64(w) - float64(minus))
				noise := 4e-6 * max(1, math.Abs(l0)) / h
				if math.Abs(fwd-bwd) > 0.05*max(math.Abs(fwd), math.Abs(bwd))+noise {
					res.Kinks++
					continue
				}
			}
			a := float64(analytic[pi][c])
			rel := math.Abs(a-num) / (max(math.Abs(a), math.Abs(num)) + res.Floor)
			if res.Coord < 0 || rel > res.RelError {
				res.Coord, res.Analytic, res.Numeric, res.RelError = c, a, num, rel
			}
		}
		results = append(results, res)
	}
	return results, nil
}
