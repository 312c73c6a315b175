package graphmodel

import (
	"math"
	"math/rand/v2"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The initialisers below draw from the *rand.Rand given to a BuildFunc, so that a model's
// initial weights depend only on its seed (gorgonia's own initialisers seed themselves from
// the clock). For a matrix of shape (in, out), as used in x·W, fanIn = in and fanOut = out; a
// vector of length n has fanIn = fanOut = n. They fill float32 or float64 learnables.

// GlorotUniform draws from U(−a, a), a = gain·√(6 / (fanIn + fanOut)) with gain 1 (Glorot &
// Bengio 2010; PyTorch's xavier_uniform_, Keras' glorot_uniform). For tanh and sigmoid.
func GlorotUniform(rng *rand.Rand) gorgonia.InitWFn {
	return initWith(rng, func(fanIn, fanOut int, r *rand.Rand) float64 {
		a := math.Sqrt(6 / float64(fanIn+fanOut))
		return (2*r.Float64() - 1) * a
	})
}

// HeNormal draws from N(0, 2/fanIn) (He et al. 2015; PyTorch's kaiming_normal_ with
// nonlinearity="relu", Keras' he_normal without truncation). For ReLU-family activations.
func HeNormal(rng *rand.Rand) gorgonia.InitWFn {
	return initWith(rng, func(fanIn, _ int, r *rand.Rand) float64 {
		return r.NormFloat64() * math.Sqrt(2/float64(fanIn))
	})
}

// Normal draws from N(0, stddev²).
func Normal(rng *rand.Rand, stddev float64) gorgonia.InitWFn {
	return initWith(rng, func(_, _ int, r *rand.Rand) float64 { return r.NormFloat64() * stddev })
}

func initWith(rng *rand.Rand, draw func(fanIn, fanOut int, r *rand.Rand) float64) gorgonia.InitWFn {
	return func(dt tensor.Dtype, shape ...int) interface{} {
		n, fanIn, fanOut := 1, 1, 1
		for _, d := range shape {
			n *= d
		}
		switch len(shape) {
		case 0:
		case 1:
			fanIn, fanOut = shape[0], shape[0]
		default:
			fanIn, fanOut = shape[0], n/shape[0]
		}
		fanIn, fanOut = max(fanIn, 1), max(fanOut, 1)
		if dt == tensor.Float64 {
			v := make([]float64, n)
			for i := range v {
				v[i] = draw(fanIn, fanOut, rng)
			}
			return v
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(draw(fanIn, fanOut, rng))
		}
		return v
	}
}
