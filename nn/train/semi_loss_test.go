package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pipe-ml/pipe/nn"
)

// lossParamGradCheck compares the param gradient that LossStep backpropagates from fn with
// central finite differences of fn's value (the noise source rewound before every pass, so
// dropout draws are held fixed), returning the worst relative error over sampled coordinates.
func lossParamGradCheck(t *testing.T, m *nn.Model, b nn.Batch, fn func() nn.OutputLoss) float64 {
	t.Helper()
	state, err := m.NoiseSource().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	rewind := func() {
		if err := m.NoiseSource().UnmarshalBinary(state); err != nil {
			t.Fatal(err)
		}
	}
	rewind()
	if _, err := m.LossStep(b, true, nn.GradOverwrite, fn()); err != nil {
		t.Fatal(err)
	}
	var analytic [][]float32
	for _, p := range m.Params() {
		analytic = append(analytic, append([]float32(nil), p.Grad...))
	}
	value := func() float64 {
		rewind()
		l, err := m.LossStep(b, true, nn.GradNone, fn())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l0 := value()
	pick := rand.New(rand.NewPCG(3, 3))
	worst := 0.0
	checked := 0
	for pi, p := range m.Params() {
		var scale float64
		for _, g := range analytic[pi] {
			scale = max(scale, math.Abs(float64(g)))
		}
		for range 12 {
			c := pick.IntN(p.Size())
			w := p.Value[c]
			h := 1e-2 * max(1, math.Abs(float64(w)))
			p.Value[c] = float32(float64(w) + h)
			lp := value()
			p.Value[c] = float32(float64(w) - h)
			lm := value()
			p.Value[c] = w
			num := (lp - lm) / (2 * h)
			a := float64(analytic[pi][c])
			floor := 1e-3*scale + 1e-6*max(1, math.Abs(l0))/1e-2
			rel := math.Abs(a-num) / (max(math.Abs(a), math.Abs(num)) + floor)
			if rel > worst {
				worst = rel
				t.Logf("%s[%d]: analytic %.6g numeric %.6g rel %.3g", p.Name, c, a, num, rel)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no coordinate checked")
	}
	return worst
}

// TestSemiLossGradients checks the gradients of the consistency losses (VAT's KL, the
// Π-model's and Mean Teacher's softmax MSE, entropy minimisation) with respect to the params
// by finite differences, on a model with dropout (draws held fixed) and with batch norm.
func TestSemiLossGradients(t *testing.T) {
	const k, rows = 4, 9
	specs := map[string]nn.Spec{
		"tanh_dropout": {NumInputs: 5, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 7, Activation: "tanh", Dropout: 0.2},
			{Type: nn.LayerDense, Units: 6, Activation: "tanh"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: k}}},
		"batch_norm": {NumInputs: 5, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 7}, {Type: nn.LayerBatchNorm}, {Type: nn.LayerActivation, Activation: "tanh"}},
			Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: k}}},
	}
	rng := rand.New(rand.NewPCG(8, 8))
	target := make([]float32, rows*k)
	for r := 0; r < rows; r++ {
		var s float32
		for j := 0; j < k; j++ {
			target[r*k+j] = 0.05 + rng.Float32()
			s += target[r*k+j]
		}
		for j := 0; j < k; j++ {
			target[r*k+j] /= s
		}
	}
	losses := map[string]func() nn.OutputLoss{
		"kl":      func() nn.OutputLoss { return klLoss(target, k, 0.7) },
		"mse":     func() nn.OutputLoss { return mseLoss(target, k, 3) },
		"entropy": func() nn.OutputLoss { return entropyLoss(k, 0.5, nil) },
	}
	for sname, spec := range specs {
		for lname, fn := range losses {
			t.Run(sname+"/"+lname, func(t *testing.T) {
				m := buildModel(t, spec)
				b := nn.Batch{Rows: rows, X: make([]float32, rows*5)}
				for i := range b.X {
					b.X[i] = float32(rng.NormFloat64())
				}
				tol := 1e-2
				if sname == "batch_norm" {
					tol = 2e-2
				}
				if worst := lossParamGradCheck(t, m, b, fn); worst > tol {
					t.Errorf("worst relative error %.3g > %g", worst, tol)
				}
			})
		}
	}
}

// TestSemiLossValues checks the losses' values against their definitions on one row.
func TestSemiLossValues(t *testing.T) {
	const k = 3
	z := []float32{0.5, -1, 2}
	p := []float32{0.2, 0.3, 0.5}
	q := make([]float32, k)
	softmaxRowsTo(q, z, k)
	var kl, mse, ent float64
	for j := range q {
		kl += float64(p[j]) * math.Log(float64(p[j])/float64(q[j]))
		mse += (float64(q[j]) - float64(p[j])) * (float64(q[j]) - float64(p[j]))
		ent -= float64(q[j]) * math.Log(float64(q[j]))
	}
	dz := make([]float32, k)
	for _, tc := range []struct {
		name string
		fn   nn.OutputLoss
		want float64
	}{{"kl", klLoss(p, k, 2), 2 * kl}, {"mse", mseLoss(p, k, 2), 2 * mse}, {"entropy", entropyLoss(k, 2, nil), 2 * ent}} {
		if got := tc.fn(0, z, dz, 1); math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("%s = %.9g, want %.9g", tc.name, got, tc.want)
		}
		if got := tc.fn(1, z, dz, 1); got != 0 {
			t.Errorf("%s on a second head = %g, want 0 (only head 0 has a consistency loss)", tc.name, got)
		}
	}
	for _, c := range []struct{ progress, length, want float64 }{{0, 10, math.Exp(-5)}, {5, 10, math.Exp(-1.25)}, {10, 10, 1}, {20, 10, 1}, {3, -1, 1}} {
		if got := sigmoidRampup(c.progress, c.length); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("sigmoidRampup(%g, %g) = %g, want %g", c.progress, c.length, got, c.want)
		}
	}
}
