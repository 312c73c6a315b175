package ensemble

import (
	"fmt"
	"math"
	"slices"
)

// WeightFitOptions configure FitWeightsLogLoss and FitWeightsMSE.
type WeightFitOptions struct {
	// Tol is the convergence criterion: the fit stops when the Frank–Wolfe gap
	// max_j (g·w − g_j), an upper bound on f(w) − min f over the simplex for these convex
	// objectives, is at most Tol·max(1, f(w)). Default 1e-7.
	Tol float64
	// MaxIter bounds the projected-gradient iterations; default 10000.
	MaxIter int
}

// WeightFit describes a weight fit.
type WeightFit struct {
	// Loss is the objective at the returned weights (mean log-loss in nats, or MSE).
	Loss float64
	// Gap is the final Frank–Wolfe gap (see WeightFitOptions.Tol).
	Gap float64
	// Iterations run, and whether the gap criterion was met within MaxIter.
	Iterations int
	Converged  bool
	// Rows is the number of rows (values for MSE) with a target that entered the fit.
	Rows int
}

// probFloor bounds the mixture probability away from 0 inside the log-loss.
const probFloor = 1e-15

// FitWeightsLogLoss fits Weighted weights that minimise the mean log-loss of the mixture
// Σ_m w_m·p_m on labelled rows (labels[r] < 0: missing, skipped), over the simplex
// {w ≥ 0, Σ w = 1}. outs are the members' class probabilities (rows×k each).
//
// The problem is convex; it is solved by projected gradient descent from the uniform weights
// with a backtracking (Armijo) step, projecting onto the simplex exactly (sort-based), so
// members that do not help get a weight of exactly 0. The procedure is deterministic.
func FitWeightsLogLoss(outs [][]float32, rows, k int, labels []int32, opts WeightFitOptions) (Weighted, WeightFit, error) {
	obj, n, err := logLossObjective(outs, rows, k, labels)
	if err != nil {
		return Weighted{}, WeightFit{}, err
	}
	w, fit := minimiseOnSimplex(len(outs), obj, 0, opts)
	fit.Rows = n
	c, err := NewWeighted(w)
	return c, fit, err
}

// objective evaluates a convex function of the member weights and, when grad is not nil,
// writes its gradient there.
type objective func(w, grad []float64) float64

// smoothness is a Lipschitz constant of an objective's gradient; 0 means unknown (backtracking).
type smoothness float64

// logLossObjective returns the mean log-loss of the mixture as a function of the weights, and
// the number of labelled rows.
func logLossObjective(outs [][]float32, rows, k int, labels []int32) (objective, int, error) {
	if err := checkFitShapes(outs, rows, k); err != nil {
		return nil, 0, err
	}
	if len(labels) != rows {
		return nil, 0, fmt.Errorf("ensemble: weight fit: %d labels for %d rows", len(labels), rows)
	}
	nm := len(outs)
	// p[i*nm+m] is member m's probability of row i's label.
	var p []float64
	for r, l := range labels {
		if l < 0 {
			continue
		}
		if int(l) >= k {
			return nil, 0, fmt.Errorf("ensemble: weight fit: label %d of row %d out of range [0, %d)", l, r, k)
		}
		for _, o := range outs {
			p = append(p, float64(o[r*k+int(l)]))
		}
	}
	n := len(p) / nm
	if n == 0 {
		return nil, 0, fmt.Errorf("ensemble: weight fit: no labelled rows")
	}
	q := make([]float64, n)
	return func(w, grad []float64) float64 {
		var loss float64
		for i := range q {
			var s float64
			for m, v := range p[i*nm : (i+1)*nm] {
				s += w[m] * v
			}
			q[i] = max(s, probFloor)
			loss -= math.Log(q[i])
		}
		if grad != nil {
			clear(grad)
			for i, qi := range q {
				for m, v := range p[i*nm : (i+1)*nm] {
					grad[m] -= v / qi
				}
			}
			for m := range grad {
				grad[m] /= float64(n)
			}
		}
		return loss / float64(n)
	}, n, nil
}

// FitWeightsMSE fits Weighted weights that minimise the mean squared error of Σ_m w_m·out_m
// against y (rows×k, NaN: missing, skipped) over the simplex, by the same projected-gradient
// method as FitWeightsLogLoss (on the quadratic wᵀGw − 2bᵀw + c, with G and b accumulated once).
func FitWeightsMSE(outs [][]float32, rows, k int, y []float32, opts WeightFitOptions) (Weighted, WeightFit, error) {
	obj, n, lips, err := mseObjectiveL(outs, rows, k, y)
	if err != nil {
		return Weighted{}, WeightFit{}, err
	}
	w, fit := minimiseOnSimplex(len(outs), obj, lips, opts)
	fit.Rows = n
	c, err := NewWeighted(w)
	return c, fit, err
}

// mseObjective returns the MSE of the combination as a function of the weights, and the number
// of target values.
func mseObjective(outs [][]float32, rows, k int, y []float32) (objective, int, error) {
	f, n, _, err := mseObjectiveL(outs, rows, k, y)
	return f, n, err
}

// mseObjectiveL is mseObjective with a Lipschitz constant of its gradient, 2·max_a Σ_b |G_ab|
// (an upper bound of 2·λmax(G)).
func mseObjectiveL(outs [][]float32, rows, k int, y []float32) (objective, int, smoothness, error) {
	if err := checkFitShapes(outs, rows, k); err != nil {
		return nil, 0, 0, err
	}
	if len(y) != rows*k {
		return nil, 0, 0, fmt.Errorf("ensemble: weight fit: %d targets for rows %d × k %d", len(y), rows, k)
	}
	nm := len(outs)
	gram := make([]float64, nm*nm)
	b := make([]float64, nm)
	var c float64
	n := 0
	for i, t := range y {
		if math.IsNaN(float64(t)) {
			continue
		}
		n++
		tv := float64(t)
		c += tv * tv
		for a, oa := range outs {
			va := float64(oa[i])
			b[a] += va * tv
			for bb := a; bb < nm; bb++ {
				gram[a*nm+bb] += va * float64(outs[bb][i])
			}
		}
	}
	if n == 0 {
		return nil, 0, 0, fmt.Errorf("ensemble: weight fit: no target values")
	}
	inv := 1 / float64(n)
	for a := 0; a < nm; a++ {
		b[a] *= inv
		for bb := a; bb < nm; bb++ {
			gram[a*nm+bb] *= inv
			gram[bb*nm+a] = gram[a*nm+bb]
		}
	}
	c *= inv
	var lips float64
	for a := 0; a < nm; a++ {
		var row float64
		for bb := 0; bb < nm; bb++ {
			row += math.Abs(gram[a*nm+bb])
		}
		lips = max(lips, 2*row)
	}
	gw := make([]float64, nm)
	return func(w, grad []float64) float64 {
		var quad, lin float64
		for a := 0; a < nm; a++ {
			var s float64
			for bb := 0; bb < nm; bb++ {
				s += gram[a*nm+bb] * w[bb]
			}
			gw[a] = s
			quad += w[a] * s
			lin += b[a] * w[a]
		}
		for a := range grad {
			grad[a] = 2 * (gw[a] - b[a])
		}
		return max(quad-2*lin+c, 0)
	}, n, smoothness(lips), nil
}

func checkFitShapes(outs [][]float32, rows, k int) error {
	if len(outs) == 0 {
		return fmt.Errorf("ensemble: weight fit: no member outputs")
	}
	for m, o := range outs {
		if len(o) != rows*k {
			return fmt.Errorf("ensemble: weight fit: member %d has %d values, want rows %d × k %d", m, len(o), rows, k)
		}
	}
	return nil
}

// minimiseOnSimplex runs projected gradient descent on a convex objective from the uniform
// weights: with a known Lipschitz constant L of the gradient at the fixed step 1/L, else with
// a backtracking (Armijo) step that doubles after every accepted step.
func minimiseOnSimplex(nm int, f objective, lips smoothness, opts WeightFitOptions) ([]float64, WeightFit) {
	tol := opts.Tol
	if tol <= 0 {
		tol = 1e-7
	}
	maxIter := opts.MaxIter
	if maxIter <= 0 {
		maxIter = 10000
	}
	w := make([]float64, nm)
	for m := range w {
		w[m] = 1 / float64(nm)
	}
	g := make([]float64, nm)
	cand := make([]float64, nm)
	scratch := make([]float64, nm)
	fw := f(w, g)
	step := 1.0
	if lips > 0 {
		step = 1 / float64(lips)
	}
	var fit WeightFit
	for fit.Iterations = 0; fit.Iterations < maxIter; fit.Iterations++ {
		fit.Gap = frankWolfeGap(w, g)
		if fit.Gap <= tol*max(1, fw) {
			fit.Converged = true
			break
		}
		for tries := 0; ; tries++ {
			for m := range cand {
				cand[m] = w[m] - step*g[m]
			}
			projectSimplex(cand, scratch)
			if lips > 0 {
				break
			}
			// Armijo condition of projected gradient: f(c) ≤ f(w) + g·(c−w) + ‖c−w‖²/(2·step),
			// with a slack for the rounding of f near the optimum.
			var lin, sq float64
			for m := range cand {
				d := cand[m] - w[m]
				lin += g[m] * d
				sq += d * d
			}
			fc := f(cand, nil)
			if fc <= fw+lin+sq/(2*step)+1e-14*math.Abs(fw) || tries >= 60 {
				break
			}
			step /= 2
		}
		copy(w, cand)
		fw = f(w, g)
		if lips == 0 {
			step *= 2
		}
	}
	fit.Loss = fw
	if !fit.Converged {
		fit.Gap = frankWolfeGap(w, g)
	}
	return w, fit
}

// frankWolfeGap is max over vertices e_j of g·(w − e_j) = g·w − min_j g_j.
func frankWolfeGap(w, g []float64) float64 {
	var gw float64
	for m := range w {
		gw += g[m] * w[m]
	}
	return gw - slices.Min(g)
}

// projectSimplex replaces u by its Euclidean projection onto {w ≥ 0, Σ w = 1} (Duchi et al.,
// 2008); scratch has len(u).
func projectSimplex(u, scratch []float64) {
	s := scratch[:len(u)]
	copy(s, u)
	slices.Sort(s)
	slices.Reverse(s)
	var cum, theta float64
	for j, v := range s {
		cum += v
		t := (cum - 1) / float64(j+1)
		if v-t > 0 {
			theta = t
		}
	}
	for m, v := range u {
		u[m] = max(v-theta, 0)
	}
}
