package optim

import (
	"math"

	"github.com/pipe-ml/pipe/internal/sgemm/elementwise"
)

// GradNorm is the global L2 norm sqrt(sum g²) of the gradients of the params that are not
// Frozen, accumulated in float64.
func GradNorm(params []*Param) float64 {
	var sum float64
	for _, p := range params {
		if p.Frozen {
			continue
		}
		sum += elementwise.SumSquares(p.Grad)
	}
	return math.Sqrt(sum)
}

// ClipGlobalNorm rescales the gradients of the non-frozen params, all by the same factor
// maxNorm/norm, when their global L2 norm exceeds maxNorm, so that the norm becomes maxNorm and
// the direction is kept (PyTorch clip_grad_norm_, without its 1e-6 in the denominator). It
// returns the norm before clipping.
//
// maxNorm <= 0 disables clipping. A non-finite norm (a NaN or Inf gradient) leaves the
// gradients untouched and is returned as is, so that the caller sees it and can skip the step.
func ClipGlobalNorm(params []*Param, maxNorm float64) float64 {
	norm := GradNorm(params)
	if maxNorm <= 0 || !(norm > maxNorm) || math.IsInf(norm, 0) {
		return norm
	}
	scale := float32(maxNorm / norm)
	for _, p := range params {
		if p.Frozen {
			continue
		}
		for i := range p.Grad {
			p.Grad[i] *= scale
		}
	}
	return norm
}

// ClipValue clamps every gradient element of the non-frozen params to [-limit, limit] (PyTorch
// clip_grad_value_, Keras clipvalue) and returns the global L2 norm before clipping. limit <= 0
// disables clipping. NaN elements stay NaN.
func ClipValue(params []*Param, limit float64) float64 {
	norm := GradNorm(params)
	if limit <= 0 {
		return norm
	}
	hi := float32(limit)
	lo := -hi
	for _, p := range params {
		if p.Frozen {
			continue
		}
		for i, g := range p.Grad {
			if g > hi {
				p.Grad[i] = hi
			} else if g < lo {
				p.Grad[i] = lo
			}
		}
	}
	return norm
}
