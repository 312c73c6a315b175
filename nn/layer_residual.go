package nn

import (
	"github.com/pipe-ml/pipe/nn/optim"
)

// residual is a pre-norm residual MLP block:
//
//	y = skip(x) + dense_b(dropout(act(dense_a(norm(x)))))
//
// where norm is optional, dense_a and dense_b have Units outputs, and skip is the identity when
// the input width equals Units, else a bias-free projection proj (x·P).
//
// On an image it is the same block with convolutions (a pre-activation ResNet basic block):
// conv_a is Filters k×k convolutions with the stride and act, conv_b Filters k×k convolutions
// with stride 1, both padding same, norm is batch_norm over channels, and proj a bias-free 1×1
// convolution with the stride when the channels or the stride change.
type residual struct {
	lname  string
	in     int
	units  int           // output width
	shape  []int         // output image shape [C, H, W]; nil for the MLP block
	norm   layer         // nil, *batchNorm or *layerNorm
	a, b   layer         // *dense, or *conv on an image
	drop   *dropoutLayer // nil when dropout is 0
	proj   layer         // nil when the skip is the identity
	y, dxs []float32
}

func (r *residual) outShape() []int { return r.shape }

func (r *residual) name() string  { return r.lname }
func (r *residual) kind() string  { return LayerResidual }
func (r *residual) inWidth() int  { return r.in }
func (r *residual) outWidth() int { return r.units }

func (r *residual) sublayers() []layer {
	var ls []layer
	if r.norm != nil {
		ls = append(ls, r.norm)
	}
	ls = append(ls, r.a)
	if r.drop != nil {
		ls = append(ls, r.drop)
	}
	ls = append(ls, r.b)
	if r.proj != nil {
		ls = append(ls, r.proj)
	}
	return ls
}

func (r *residual) params() []*optim.Param {
	var ps []*optim.Param
	for _, l := range r.sublayers() {
		ps = append(ps, l.params()...)
	}
	return ps
}

func (r *residual) buffers() []*optim.Param {
	if r.norm != nil {
		return r.norm.buffers()
	}
	return nil
}

func (r *residual) alloc(rows int) {
	for _, l := range r.sublayers() {
		l.alloc(rows)
	}
	r.y = grow(r.y, rows*r.units)
	r.dxs = grow(r.dxs, rows*r.in)
}

func (r *residual) forward(rc *runCtx, x []float32, rows int) []float32 {
	h := x
	if r.norm != nil {
		h = r.norm.forward(rc, h, rows)
	}
	h = r.a.forward(rc, h, rows)
	if r.drop != nil {
		h = r.drop.forward(rc, h, rows)
	}
	h = r.b.forward(rc, h, rows)
	skip := x
	if r.proj != nil {
		skip = r.proj.forward(rc, x, rows)
	}
	y := r.y[:rows*r.units]
	copy(y, h[:len(y)])
	addTo(y, skip[:len(y)]) // vectorised; h + skip rounds as skip + h
	return y
}

func (r *residual) backward(rc *runCtx, dy []float32, rows int, needDX bool) []float32 {
	dxs := r.dxs[:rows*r.in]
	// The skip path first: proj is linear and leaves dy untouched.
	if needDX {
		if r.proj != nil {
			copy(dxs, r.proj.backward(rc, dy, rows, true))
		} else {
			copy(dxs, dy[:rows*r.in])
		}
	} else if r.proj != nil {
		r.proj.backward(rc, dy, rows, false)
	}
	d := r.b.backward(rc, dy, rows, true)
	if r.drop != nil {
		d = r.drop.backward(rc, d, rows, true)
	}
	d = r.a.backward(rc, d, rows, needDX || r.norm != nil)
	if r.norm != nil {
		d = r.norm.backward(rc, d, rows, needDX)
	}
	if !needDX {
		return nil
	}
	addTo(dxs, d[:len(dxs)])
	return dxs
}
