package graphmodel

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pipe-ml/pipe/nn"
)

// TestNativeGradientsMatchGorgonia cross-checks nn's hand-written backward pass against
// gorgonia's symbolic differentiation: the same dense → ReLU → dense → softmax cross-entropy
// network, with the same weights and data, is built natively (float32) and as a float64
// gorgonia graph written out below; the mean loss and the gradient of every weight and bias
// must agree.
func TestNativeGradientsMatchGorgonia(t *testing.T) {
	cases := []struct {
		name                      string
		rows, in, hidden, classes int
	}{
		{"batch_32", 32, 7, 16, 4},
		{"single_row", 1, 5, 8, 3},
		{"wide", 64, 20, 48, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, uint64(tc.rows)))
			m, err := nn.Build(nn.Spec{NumInputs: tc.in, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: tc.hidden, Activation: "relu"}},
				Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: tc.classes}}}, rng)
			if err != nil {
				t.Fatal(err)
			}
			// Non-zero biases, so that their use in the forward pass is checked too.
			for _, name := range []string{"dense_1/b", "head_out/b"} {
				for i, p := 0, m.Param(name); i < len(p.Value); i++ {
					p.Value[i] = float32(0.1 * rng.NormFloat64())
				}
			}
			x := make([]float32, tc.rows*tc.in)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			labels := make([]int32, tc.rows)
			for i := range labels {
				labels[i] = int32(rng.IntN(tc.classes))
			}
			loss, err := m.TrainStep(nn.Batch{Rows: tc.rows, X: x}, nn.Targets{Heads: []nn.HeadTargets{{Labels: labels}}})
			if err != nil {
				t.Fatal(err)
			}

			names := []string{"dense_1/W", "dense_1/b", "head_out/W", "head_out/b"}
			refLoss, refGrads := gorgoniaSoftmaxMLP(t, m, names, x, labels, tc.rows, tc.in, tc.hidden, tc.classes)
			if rel := math.Abs(loss.Total-refLoss) / math.Abs(refLoss); rel > 1e-5 {
				t.Errorf("loss: native %.9g, gorgonia %.9g (relative error %.2g > 1e-5)", loss.Total, refLoss, rel)
			}
			for i, name := range names {
				rel := maxRelError(m.Param(name).Grad, refGrads[i])
				t.Logf("%s: relative error %.2g", name, rel)
				if rel > 1e-5 {
					t.Errorf("%s: max |native − gorgonia| / max |gorgonia| = %.2g > 1e-5", name, rel)
				}
			}
		})
	}
}

// gorgoniaSoftmaxMLP evaluates mean_r −log softmax(relu(x·W1 + b1)·W2 + b2)[label_r] in float64
// with gorgonia and returns it and its gradients with respect to the named params of m
// (W1, b1, W2, b2).
func gorgoniaSoftmaxMLP(t *testing.T, m *nn.Model, names []string, x []float32, labels []int32, rows, in, hidden, classes int) (float64, [][]float64) {
	t.Helper()
	g := gorgonia.NewGraph()
	matrix := func(name string, v []float64, shape ...int) *gorgonia.Node {
		tv := tensor.New(tensor.WithBacking(v), tensor.WithShape(shape...))
		if len(shape) == 1 {
			return gorgonia.NewVector(g, gorgonia.Float64, gorgonia.WithShape(shape...), gorgonia.WithName(name), gorgonia.WithValue(tv))
		}
		return gorgonia.NewMatrix(g, gorgonia.Float64, gorgonia.WithShape(shape...), gorgonia.WithName(name), gorgonia.WithValue(tv))
	}
	onehot := make([]float64, rows*classes)
	for r, l := range labels {
		onehot[r*classes+int(l)] = 1
	}
	xn := matrix("x", to64(x), rows, in)
	yn := matrix("onehot", onehot, rows, classes)
	w1 := matrix("W1", to64(m.Param(names[0]).Value), in, hidden)
	b1 := matrix("b1", to64(m.Param(names[1]).Value), hidden)
	w2 := matrix("W2", to64(m.Param(names[2]).Value), hidden, classes)
	b2 := matrix("b2", to64(m.Param(names[3]).Value), classes)

	must := gorgonia.Must
	h := must(gorgonia.Rectify(must(gorgonia.BroadcastAdd(must(gorgonia.Mul(xn, w1)), b1, nil, []byte{0}))))
	z := must(gorgonia.BroadcastAdd(must(gorgonia.Mul(h, w2)), b2, nil, []byte{0}))
	// log softmax: z − log Σ_j exp z_j, row by row.
	lse := must(gorgonia.Reshape(must(gorgonia.Log(must(gorgonia.Sum(must(gorgonia.Exp(z)), 1)))), tensor.Shape{rows, 1}))
	logp := must(gorgonia.BroadcastSub(z, lse, nil, []byte{1}))
	nll := must(gorgonia.Neg(must(gorgonia.Sum(must(gorgonia.HadamardProd(yn, logp))))))
	cost := must(gorgonia.Div(nll, gorgonia.NewConstant(float64(rows))))
	grads, err := gorgonia.Grad(cost, w1, b1, w2, b2)
	if err != nil {
		t.Fatal(err)
	}
	vm := gorgonia.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	out := make([][]float64, len(grads))
	for i, gn := range grads {
		out[i] = append([]float64(nil), gn.Value().Data().([]float64)...)
	}
	return cost.Value().Data().(float64), out
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, f := range v {
		out[i] = float64(f)
	}
	return out
}

// maxRelError is max_i |got_i − want_i| / max_i |want_i| (1 when want is all zero and got is
// not).
func maxRelError(got []float32, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var diff, scale float64
	for i := range want {
		diff = max(diff, math.Abs(float64(got[i])-want[i]))
		scale = max(scale, math.Abs(want[i]))
	}
	if scale == 0 {
		if diff == 0 {
			return 0
		}
		return 1
	}
	return diff / scale
}
