package nn

import (
	"fmt"
	"math"

	"github.com/pipe-ml/pipe/internal/sgemm/elementwise"
)

// activation is an elementwise nonlinearity.
type activation uint8

const (
	actLinear activation = iota
	actReLU
	actLeakyReLU
	actGELU
	actELU
	actTanh
	actSigmoid
)

// leakySlope is the negative slope of leaky_relu (PyTorch's default).
const leakySlope = 0.01

var activationNames = map[string]activation{
	"": actLinear, "linear": actLinear, "relu": actReLU, "leaky_relu": actLeakyReLU,
	"gelu": actGELU, "elu": actELU, "tanh": actTanh, "sigmoid": actSigmoid,
}

func parseActivation(s string) (activation, error) {
	a, ok := activationNames[s]
	if !ok {
		return 0, fmt.Errorf("unknown activation %q (want relu, leaky_relu, gelu, elu, tanh, sigmoid or linear)", s)
	}
	return a, nil
}

func (a activation) String() string {
	for k, v := range activationNames {
		if v == a && k != "" {
			return k
		}
	}
	return "linear"
}

// reluFamily reports whether He initialisation suits a.
func (a activation) reluFamily() bool {
	return a == actReLU || a == actLeakyReLU || a == actGELU || a == actELU
}

// needsPreActivation reports whether the derivative needs z rather than y = f(z).
func (a activation) needsPreActivation() bool { return a == actGELU }

// applyTo sets y[i] = f(z[i]); y and z may be the same slice.
func (a activation) applyTo(y, z []float32) {
	y = y[:len(z)]
	switch a {
	case actLinear:
		copy(y, z)
	case actReLU:
		for i, v := range z {
			y[i] = max(v, 0)
		}
	case actLeakyReLU:
		for i, v := range z {
			y[i] = max(v, 0) + leakySlope*min(v, 0)
		}
	case actGELU:
		elementwise.GELU(y, z)
	case actELU:
		elementwise.ELU(y, z)
	case actTanh:
		elementwise.Tanh(y, z)
	case actSigmoid:
		elementwise.Sigmoid(y, z)
	}
}

// backwardInPlace multiplies d (dL/dy) by f'(z) in place, given y = f(z) (and z for gelu).
func (a activation) backwardInPlace(d, y, z []float32) {
	y = y[:len(d)]
	switch a {
	case actLinear:
	case actReLU:
		elementwise.ReLUBackward(d, y)
	case actLeakyReLU:
		for i, v := range y {
			if v < 0 {
				d[i] *= leakySlope
			}
		}
	case actGELU:
		elementwise.GELUBackward(d, z)
	case actELU:
		for i, v := range y {
			if v < 0 {
				d[i] *= v + 1
			}
		}
	case actTanh:
		for i, v := range y {
			d[i] *= 1 - v*v
		}
	case actSigmoid:
		for i, v := range y {
			d[i] *= v * (1 - v)
		}
	}
}

// sigmoidExact is the sigmoid through float64 math.Exp, correctly rounded to float32: the
// heads use it (their probabilities are reported and compared); the sigmoid activation uses
// elementwise.Sigmoid.
func sigmoidExact(v float32) float32 {
	if v >= 0 {
		return float32(1 / (1 + math.Exp(-float64(v))))
	}
	e := math.Exp(float64(v))
	return float32(e / (1 + e))
}
