package train

import (
	"bytes"
	"context"
	"encoding/csv"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

var writeSVRG = flag.Bool("write", false, "write the SVRG/SGD suboptimality curves to bench/svrg/")

// logReg is L2-regularised logistic regression on a design matrix, in float64:
// f(W, b) = mean_i [log(1+exp(z_i)) - y_i z_i] + l2*|W|², z_i = x_i·W + b, which is what a
// model with no hidden layer and a binary head minimises (nn's L2 penalty is l2*|W|², not on b).
type logReg struct {
	x    [][]float64
	y    []float64
	l2   float64
	dims int
}

// loss returns f at theta = (W, b).
func (p logReg) loss(theta []float64) float64 {
	var s float64
	for i, xi := range p.x {
		z := theta[p.dims]
		for j, v := range xi {
			z += v * theta[j]
		}
		// log(1+e^z) - y z, computed stably.
		s += math.Max(z, 0) + math.Log1p(math.Exp(-math.Abs(z))) - p.y[i]*z
	}
	var r float64
	for _, w := range theta[:p.dims] {
		r += w * w
	}
	return s/float64(len(p.x)) + p.l2*r
}

// optimum minimises f by Newton's method (f is strongly convex: l2 > 0) to machine precision.
func (p logReg) optimum(t *testing.T) []float64 {
	k := p.dims + 1
	theta := make([]float64, k)
	n := float64(len(p.x))
	for it := 0; it < 50; it++ {
		g := make([]float64, k)
		h := mat.NewSymDense(k, nil)
		for i, xi := range p.x {
			z := theta[p.dims]
			for j, v := range xi {
				z += v * theta[j]
			}
			s := 1 / (1 + math.Exp(-z))
			row := append(append([]float64(nil), xi...), 1)
			for a := range row {
				g[a] += (s - p.y[i]) * row[a] / n
				for b := a; b < k; b++ {
					h.SetSym(a, b, h.At(a, b)+s*(1-s)*row[a]*row[b]/n)
				}
			}
		}
		for j := 0; j < p.dims; j++ {
			g[j] += 2 * p.l2 * theta[j]
			h.SetSym(j, j, h.At(j, j)+2*p.l2)
		}
		var chol mat.Cholesky
		if !chol.Factorize(h) {
			t.Fatal("Hessian not positive definite")
		}
		var step mat.VecDense
		if err := chol.SolveVecTo(&step, mat.NewVecDense(k, g)); err != nil {
			t.Fatal(err)
		}
		var norm float64
		for a := range theta {
			theta[a] -= step.AtVec(a)
			norm += g[a] * g[a]
		}
		if math.Sqrt(norm) < 1e-14 {
			break
		}
	}
	return theta
}

// breastCancer reads the shipped breast_cancer dataset, standardises its 30 features and
// returns them as a Dataset and as the float64 problem of the same (float32-rounded) values.
func breastCancer(t *testing.T, l2 float64) (Dataset, logReg) {
	raw, err := datasets.CSV("breast_cancer")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	recs = recs[1:]
	dims := len(recs[0]) - 1
	cols := make([][]float64, dims)
	var labels []int32
	for r, rec := range recs {
		for j := 0; j < dims; j++ {
			v, err := strconv.ParseFloat(rec[j], 64)
			if err != nil {
				t.Fatalf("breast_cancer row %d column %d: %v", r+2, j+1, err)
			}
			cols[j] = append(cols[j], v)
		}
		y, err := strconv.Atoi(strings.TrimSpace(rec[dims]))
		if err != nil {
			t.Fatalf("breast_cancer row %d target: %v", r+2, err)
		}
		labels = append(labels, int32(y))
	}
	n := len(recs)
	d := Dataset{NumInputs: dims, X: make([]float32, n*dims), Targets: []Target{{Labels: labels}}}
	p := logReg{x: make([][]float64, n), y: make([]float64, n), l2: l2, dims: dims}
	for j, c := range cols {
		var mean, sq float64
		for _, v := range c {
			mean += v
		}
		mean /= float64(n)
		for _, v := range c {
			sq += (v - mean) * (v - mean)
		}
		sd := math.Sqrt(sq / float64(n))
		for i, v := range c {
			d.X[i*dims+j] = float32((v - mean) / sd)
		}
	}
	for i := range p.x {
		p.x[i] = make([]float64, dims)
		for j := range p.x[i] {
			p.x[i][j] = float64(d.X[i*dims+j])
		}
		p.y[i] = float64(labels[i])
	}
	return d, p
}

// thetaOf reads (W, b) of a logistic-regression model.
func thetaOf(t *testing.T, m *nn.Model, dims int) []float64 {
	var theta []float64
	var bias float64
	for _, p := range m.Params() {
		switch len(p.Value) {
		case dims:
			for _, v := range p.Value {
				theta = append(theta, float64(v))
			}
		case 1:
			bias = float64(p.Value[0])
		default:
			t.Fatalf("param %s has %d values: not logistic regression", p.Name, len(p.Value))
		}
	}
	return append(theta, bias)
}

type curvePoint struct {
	evals  float64
	subopt float64
}

// suboptimality trains a logistic regression with cfg and returns f(w)-f* after every epoch,
// against the per-row gradient evaluations so far.
func suboptimality(t *testing.T, d Dataset, p logReg, fStar float64, cfg Config) []curvePoint {
	m, err := nn.Build(nn.Spec{NumInputs: p.dims, L2: p.l2, Heads: []nn.HeadSpec{{Kind: nn.HeadBinary}}}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range m.Params() {
		clear(q.Value) // start at zero: both optimizers start at the same point
	}
	var curve []curvePoint
	n := float64(d.Len())
	hook := OnEpochEnd("suboptimality", 0, func(e *EpochInfo) error {
		evals := float64(e.Epoch+1) * n
		if v, ok := e.Metrics["grad_evals"]; ok {
			evals = v
		}
		curve = append(curve, curvePoint{evals, p.loss(thetaOf(t, m, p.dims)) - fStar})
		return nil
	})
	cfg.EarlyStopping.Disabled = true
	if _, err := Fit(context.Background(), m, d, d, cfg, hook); err != nil {
		t.Fatal(err)
	}
	return curve
}

// TestSVRGConvergesLinearlyWhereSGDStalls: on L2-regularised logistic regression on
// breast_cancer (strongly convex), with the same constant step and batch size, SVRG's
// suboptimality after a fixed budget of gradient evaluations is small and far below plain
// SGD's, which stalls at its noise floor. With -args -write it writes the curves to bench/svrg/.
func TestSVRGConvergesLinearlyWhereSGDStalls(t *testing.T) {
	const (
		l2     = 1e-2
		lr     = 0.2
		bs     = 4
		budget = 60 // gradient evaluations, in passes over the data
	)
	d, p := breastCancer(t, l2)
	thetaStar := p.optimum(t)
	fStar := p.loss(thetaStar)
	// The model computes the same objective as p (so that f - f* measures its training).
	{
		m, err := nn.Build(nn.Spec{NumInputs: p.dims, L2: l2, Heads: []nn.HeadSpec{{Kind: nn.HeadBinary}}}, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range m.Params() {
			for i := range q.Value {
				q.Value[i] = float32(0.01 * float64(i+1))
			}
		}
		b, tg := materialize(d)
		loss, err := m.TrainStep(b, tg)
		if err != nil {
			t.Fatal(err)
		}
		if f := p.loss(thetaOf(t, m, p.dims)); math.Abs(loss.Total-f) > 1e-5 {
			t.Fatalf("model loss %v, float64 objective %v: the test's objective is not the model's", loss.Total, f)
		}
	}
	n := float64(d.Len())
	sgd := suboptimality(t, d, p, fStar, Config{Epochs: budget, BatchSize: bs, Seed: 1, Optimizer: optim.Config{Name: optim.NameSGD, LR: lr}})
	svrg := suboptimality(t, d, p, fStar, Config{Epochs: budget / 3, BatchSize: bs, Seed: 1,
		Optimizer: optim.Config{Name: optim.NameSVRG, LR: lr, SnapshotEpochs: 1}})
	last := func(c []curvePoint) curvePoint { return c[len(c)-1] }
	if e := last(svrg).evals; e != budget*n {
		t.Fatalf("svrg used %v gradient evaluations, want %v", e, budget*n)
	}
	sgdEnd, svrgEnd := last(sgd).subopt, last(svrg).subopt
	t.Logf("after %d passes of gradient evaluations: sgd f-f* = %.3g, svrg f-f* = %.3g (f* = %.10f)", budget, sgdEnd, svrgEnd, fStar)
	if *writeSVRG {
		writeCurves(t, sgd, svrg, n, fStar, lr, bs, l2)
	}
	if svrgEnd > 1e-9 {
		t.Errorf("svrg suboptimality %.3g after %d passes, want < 1e-9", svrgEnd, budget)
	}
	// SGD stalls at its noise floor: even its best epoch of the second half is far above
	// where svrg ends.
	sgdBest := math.Inf(1)
	for _, pt := range sgd[len(sgd)/2:] {
		sgdBest = math.Min(sgdBest, pt.subopt)
	}
	if sgdBest < 1e4*svrgEnd {
		t.Errorf("sgd's best suboptimality over its second half %.3g is not 10^4 times svrg's final %.3g", sgdBest, svrgEnd)
	}
	// Linear convergence: from 12 to 30 passes (6 epochs of svrg) it falls by 10^3 or more.
	if a, b := svrg[3].subopt, svrg[9].subopt; b > a*1e-3 {
		t.Errorf("svrg went from %.3g (12 passes) to %.3g (30 passes): not a linear decrease", a, b)
	}
}

func writeCurves(t *testing.T, sgd, svrg []curvePoint, n, fStar, lr float64, bs int, l2 float64) {
	dir := filepath.Join("..", "..", "bench", "svrg")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var c, md bytes.Buffer
	c.WriteString("optimizer,grad_evals,passes,suboptimality\n")
	for _, s := range []struct {
		name  string
		curve []curvePoint
	}{{"sgd", sgd}, {"svrg", svrg}} {
		for _, pt := range s.curve {
			fmt.Fprintf(&c, "%s,%.0f,%.0f,%.6g\n", s.name, pt.evals, pt.evals/n, pt.subopt)
		}
	}
	fmt.Fprintf(&md, "# SVRG against SGD on a strongly convex problem\n\n")
	fmt.Fprintf(&md, "L2-regularised logistic regression (l2 = %g) on breast_cancer (%d rows, 30 standardised features),\n", l2, int(n))
	fmt.Fprintf(&md, "constant step lr = %g, batch %d, both from zero weights. f* = %.10f by Newton's method in float64.\n", lr, bs, fStar)
	fmt.Fprintf(&md, "SVRG takes a snapshot every epoch: each epoch costs 3 passes of per-row gradient evaluations\n")
	fmt.Fprintf(&md, "(one for the full gradient, two per step). Written by `go test ./nn/train -run TestSVRGConvergesLinearlyWhereSGDStalls -args -write`.\n\n")
	md.WriteString("| gradient evaluations (passes) | SGD f - f* | SVRG f - f* |\n|---:|---:|---:|\n")
	for _, pt := range svrg {
		k := int(math.Round(pt.evals/n)) - 1 // sgd's epoch with the same budget
		if k < len(sgd) {
			fmt.Fprintf(&md, "| %.0f | %.3g | %.3g |\n", pt.evals/n, sgd[k].subopt, pt.subopt)
		}
	}
	for name, b := range map[string][]byte{"curves.csv": c.Bytes(), "README.md": md.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
