package nn

import (
	"math/rand/v2"

	"github.com/pipe-ml/pipe/nn/gemm"
	"github.com/pipe-ml/pipe/nn/optim"
)

// runCtx is what a forward/backward pass needs besides the data.
type runCtx struct {
	train bool
	pass  TrainPass // how a training-mode pass treats noise and batch-norm statistics
	rng   *rand.Rand
	gemm  gemm.Backend
}

// layer is one trunk stage. Forward returns its output (rows×outWidth), which may alias x for
// identity layers or an internal buffer valid until the next Forward. Backward receives dL/dy
// (which it may overwrite), accumulates/writes its param gradients and returns dL/dx when
// needDX (else nil).
type layer interface {
	name() string
	kind() string
	inWidth() int
	outWidth() int
	// params are the trainable tensors this layer owns (tied tensors belong to their owner).
	params() []*optim.Param
	// buffers are non-trainable state saved with the model (batch-norm running statistics).
	buffers() []*optim.Param
	alloc(rows int)
	forward(rc *runCtx, x []float32, rows int) []float32
	backward(rc *runCtx, dy []float32, rows int, needDX bool) []float32
}

// grow returns s with length n, reusing its storage when large enough.
func grow(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float32, n)
}

func newParam(name string, noDecay bool, shape ...int) *optim.Param {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return &optim.Param{Name: name, Shape: shape, Value: make([]float32, n), Grad: make([]float32, n), NoDecay: noDecay}
}
