package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// InputGradCheck compares the input gradient dL/dX that TrainStep keeps under
// SetKeepInputGrad (see InputGrad) with central finite differences on the batch's numeric
// inputs, in training mode with the dropout and noise draws held fixed, like GradCheck (the
// same options, step and error floor). It returns the worst coordinate as a GradCheckResult
// named "input". The batch is not modified (a copy is perturbed); the model's keep-input-grad
// setting, batch-norm running statistics and noise-source state are restored before it
// returns.
func InputGradCheck(m *Model, b Batch, t Targets, opts GradCheckOptions) (GradCheckResult, error) {
	eps := opts.Eps
	if eps == 0 {
		eps = 1e-2
	}
	maxCoords := opts.MaxCoords
	if maxCoords == 0 {
		maxCoords = 24
	}
	if err := m.checkBatch(b); err != nil {
		return GradCheckResult{}, err
	}
	rngState, err := m.pcg.MarshalBinary()
	if err != nil {
		return GradCheckResult{}, fmt.Errorf("nn: input gradcheck: save noise state: %w", err)
	}
	saved := make([][]float32, len(m.buffers))
	for i, p := range m.buffers {
		saved[i] = append([]float32(nil), p.Value...)
	}
	keep := m.keepDX
	defer func() {
		_ = m.pcg.UnmarshalBinary(rngState)
		for i, p := range m.buffers {
			copy(p.Value, saved[i])
		}
		m.keepDX = keep
	}()
	rewind := func() error { return m.pcg.UnmarshalBinary(rngState) }
	if err := rewind(); err != nil {
		return GradCheckResult{}, err
	}
	m.keepDX = true
	base, err := m.TrainStep(b, t)
	if err != nil {
		return GradCheckResult{}, err
	}
	n := b.Rows * m.numInputs
	analytic := append([]float32(nil), m.InputGrad(b.Rows)...)
	if len(analytic) != n {
		return GradCheckResult{}, fmt.Errorf("nn: input gradcheck: got %d input gradients, want %d", len(analytic), n)
	}
	x := append([]float32(nil), b.X[:n]...)
	pb := b
	pb.X = x
	lossAt := func() (float64, error) {
		if err := rewind(); err != nil {
			return 0, err
		}
		l, err := m.trainLoss(pb, t)
		return l.Total, err
	}
	l0, err := lossAt()
	if err != nil {
		return GradCheckResult{}, err
	}
	var coords []int
	if n <= maxCoords {
		for i := 0; i < n; i++ {
			coords = append(coords, i)
		}
	} else {
		coords = rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15)).Perm(n)[:maxCoords]
	}
	res := GradCheckResult{Param: "input", Coord: -1, CoordsSeen: len(coords)}
	var scale float64
	for _, c := range coords {
		scale = max(scale, math.Abs(float64(analytic[c])))
	}
	res.Floor = 1e-3*scale + 1e-6*max(1, math.Abs(base.Total))/eps
	for _, c := range coords {
		v := x[c]
		h := eps * max(1, math.Abs(float64(v)))
		plus, minus := float32(float64(v)+h), float32(float64(v)-h)
		x[c] = plus
		lp, err := lossAt()
		if err != nil {
			return GradCheckResult{}, err
		}
		x[c] = minus
		lm, err := lossAt()
		x[c] = v
		if err != nil {
			return GradCheckResult{}, err
		}
		num := (lp - lm) / (float64(plus) - float64(minus))
		if opts.SkipKinks {
			fwd := (lp - l0) / (float64(plus) - float64(v))
			bwd := (l0 - lm) / (float64(v) - float64(minus))
			noise := 4e-6 * max(1, math.Abs(l0)) / h
			if math.Abs(fwd-bwd) > 0.05*max(math.Abs(fwd), math.Abs(bwd))+noise {
				res.Kinks++
				continue
			}
		}
		a := float64(analytic[c])
		rel := math.Abs(a-num) / (max(math.Abs(a), math.Abs(num)) + res.Floor)
		if res.Coord < 0 || rel > res.RelError {
			res.Coord, res.Analytic, res.Numeric, res.RelError = c, a, num, rel
		}
	}
	return res, nil
}
