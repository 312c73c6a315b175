package nn

import (
	"github.com/pipe-ml/pipe/internal/sgemm/elementwise"
	"github.com/pipe-ml/pipe/nn/optim"
)

// dense is y = f(x·W + b) with W [in, out] (or, tied and transposed, y = f(x·Wᵀ + b) with the
// owner's W [out, in]).
type dense struct {
	lname      string
	in, out    int
	w, b       *optim.Param
	transposed bool // use Wᵀ of a tied [out, in] tensor
	shared     bool // W is used by more than one layer: accumulate its gradient
	act        activation

	x    []float32 // input of the last forward (not owned)
	z, y []float32 // pre-activation (gelu only) and output
	dx   []float32
}

func (d *dense) name() string  { return d.lname }
func (d *dense) kind() string  { return LayerDense }
func (d *dense) inWidth() int  { return d.in }
func (d *dense) outWidth() int { return d.out }

func (d *dense) params() []*optim.Param {
	var ps []*optim.Param
	if !d.transposed && !d.sharedOwnerElsewhere() {
		ps = append(ps, d.w)
	}
	if d.b != nil {
		ps = append(ps, d.b)
	}
	return ps
}

// sharedOwnerElsewhere reports whether W belongs to another layer (this one ties to it).
func (d *dense) sharedOwnerElsewhere() bool {
	return d.w.Name != d.lname+"/W"
}

func (d *dense) buffers() []*optim.Param { return nil }

func (d *dense) alloc(rows int) {
	d.y = grow(d.y, rows*d.out)
	if d.act.needsPreActivation() {
		d.z = grow(d.z, rows*d.out)
	}
	d.dx = grow(d.dx, rows*d.in)
}

func (d *dense) forward(rc *runCtx, x []float32, rows int) []float32 {
	d.x = x
	y := d.y[:rows*d.out]
	if d.transposed {
		rc.gemm.Sgemm(false, true, rows, d.out, d.in, 1, x, d.in, d.w.Value, d.in, 0, y, d.out)
	} else {
		rc.gemm.Sgemm(false, false, rows, d.out, d.in, 1, x, d.in, d.w.Value, d.out, 0, y, d.out)
	}
	biasActivateTo(y, d.z, d.bias(), d.out, d.act)
	return y
}

func (d *dense) bias() []float32 {
	if d.b == nil {
		return nil
	}
	return d.b.Value
}

// biasActivateTo adds bias to every row of y (width n) and applies act in place, keeping the
// pre-activation in z when act needs it.
func biasActivateTo(y, z, bias []float32, n int, act activation) {
	if bias != nil {
		bias = bias[:n]
		rows := len(y) / n
		if act == actReLU && z == nil {
			elementwise.BiasReLU(y, rows, n, bias)
			return
		}
		elementwise.BiasAdd(y, rows, n, bias)
	}
	if act == actLinear {
		return
	}
	if z != nil {
		copy(z[:len(y)], y)
	}
	act.applyTo(y, y)
}

func (d *dense) backward(rc *runCtx, dy []float32, rows int, needDX bool) []float32 {
	dz := dy[:rows*d.out]
	x := d.x[:rows*d.in]
	d.act.backwardInPlace(dz, d.y[:rows*d.out], d.z)
	if !d.w.Frozen {
		beta := float32(0)
		if d.shared {
			beta = 1
		}
		if d.transposed {
			// W is [out, in]: dW += dzᵀ·x.
			rc.gemm.Sgemm(true, false, d.out, d.in, rows, 1, dz, d.out, x, d.in, beta, d.w.Grad, d.in)
		} else {
			rc.gemm.Sgemm(true, false, d.in, d.out, rows, 1, x, d.in, dz, d.out, beta, d.w.Grad, d.out)
		}
	}
	if d.b != nil && !d.b.Frozen {
		columnSumTo(d.b.Grad[:d.out], dz, d.out)
	}
	if !needDX {
		return nil
	}
	dx := d.dx[:rows*d.in]
	if d.transposed {
		rc.gemm.Sgemm(false, false, rows, d.in, d.out, 1, dz, d.out, d.w.Value, d.in, 0, dx, d.in)
	} else {
		rc.gemm.Sgemm(false, true, rows, d.in, d.out, 1, dz, d.out, d.w.Value, d.out, 0, dx, d.in)
	}
	return dx
}

// columnSumTo sets dst[j] = Σ_r m[r·n+j], adding the rows in order.
func columnSumTo(dst, m []float32, n int) {
	elementwise.ColumnSum(dst[:n], m, len(m)/n, n)
}
