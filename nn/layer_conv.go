package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/pipe-ml/pipe/nn/optim"
)

// Image layers see each batch row as a C×H×W image flattened row-major (CHW order), so the
// batch layout stays the dense rows×features one: a layer reads C·H·W features per row and
// writes its output image the same way.

// shaper is implemented by layers whose output is an image; outShape is [C, H, W].
type shaper interface {
	outShape() []int
}

// Padding modes of LayerSpec.Padding.
const (
	PaddingValid = "valid"
	PaddingSame  = "same"
)

// window is the geometry of a k×k window sliding with a stride over an H×W plane.
type window struct {
	h, w, k, stride int
	ho, wo          int
	padT, padL      int
}

// newWindow returns the geometry for padding valid (no padding, windows that fit) or same
// (output ⌈n/stride⌉, zero padding split as TensorFlow does: the extra row/column at the end).
func newWindow(h, w, k, stride int, padding string) (window, error) {
	g := window{h: h, w: w, k: k, stride: stride}
	if k < 1 || stride < 1 {
		return g, fmt.Errorf("kernel %d and stride %d must be >= 1", k, stride)
	}
	switch padding {
	case PaddingValid:
		if h < k || w < k {
			return g, fmt.Errorf("kernel %d does not fit the %d×%d input with padding valid (use padding same or a smaller kernel)", k, h, w)
		}
		g.ho, g.wo = (h-k)/stride+1, (w-k)/stride+1
	case PaddingSame:
		g.ho, g.wo = (h+stride-1)/stride, (w+stride-1)/stride
		g.padT = max((g.ho-1)*stride+k-h, 0) / 2
		g.padL = max((g.wo-1)*stride+k-w, 0) / 2
	default:
		return g, fmt.Errorf("padding %q: want same or valid", padding)
	}
	return g, nil
}

// index returns, for every output position p (row-major over ho×wo) and window cell q
// (row-major over k×k), the input offset iy·w+ix in the plane, or -1 where the cell falls in
// the padding: table[p·k·k+q].
func (g window) index() []int32 {
	kk := g.k * g.k
	t := make([]int32, g.ho*g.wo*kk)
	for oy := 0; oy < g.ho; oy++ {
		for ox := 0; ox < g.wo; ox++ {
			p := oy*g.wo + ox
			for ky := 0; ky < g.k; ky++ {
				for kx := 0; kx < g.k; kx++ {
					iy, ix := oy*g.stride-g.padT+ky, ox*g.stride-g.padL+kx
					v := int32(-1)
					if iy >= 0 && iy < g.h && ix >= 0 && ix < g.w {
						v = int32(iy*g.w + ix)
					}
					t[p*kk+ky*g.k+kx] = v
				}
			}
		}
	}
	return t
}

// starts returns, for every output position, the plane offset of its window's top-left cell
// when the whole window lies inside the image, else -1 (a border window, which goes through
// the index table).
func (g window) starts() []int32 {
	s := make([]int32, g.ho*g.wo)
	for oy := 0; oy < g.ho; oy++ {
		for ox := 0; ox < g.wo; ox++ {
			iy, ix := oy*g.stride-g.padT, ox*g.stride-g.padL
			v := int32(-1)
			if iy >= 0 && ix >= 0 && iy+g.k <= g.h && ix+g.k <= g.w {
				v = int32(iy*g.w + ix)
			}
			s[oy*g.wo+ox] = v
		}
	}
	return s
}

// conv is a 2-D convolution (dilation 1, one group) computed as im2col + GEMM:
// for every row and output position p, col[p] holds the C·k·k input values under the window
// (channel-major, then kernel row, then kernel column; 0 in the padding), and
// y[f, p] = act(Σ_j W[f, j]·col[p, j] + b[f]). W is [F, C, k, k].
type conv struct {
	lname   string
	c, f    int
	g       window
	w, b    *optim.Param
	act     activation
	idx     []int32 // [ho·wo, k·k] plane offsets (see window.index)
	start   []int32 // per output position: inner window's top-left offset, or -1
	ckk, hw int     // C·k·k, ho·wo

	x        []float32 // input of the last forward (not owned)
	col      []float32 // [rows·hw, ckk]
	out      []float32 // [rows·hw, F]: col·Wᵀ, then dL/d(out) in backward
	z, y, dx []float32
	dcol     []float32
}

func newConv(name string, c, h, w, filters, k, stride int, padding string, act activation, bias bool) (*conv, error) {
	g, err := newWindow(h, w, k, stride, padding)
	if err != nil {
		return nil, err
	}
	cv := &conv{lname: name, c: c, f: filters, g: g, act: act, idx: g.index(), start: g.starts(), ckk: c * k * k, hw: g.ho * g.wo,
		w: newParam(name+"/W", false, filters, c, k, k)}
	if bias {
		cv.b = newParam(name+"/b", true, filters)
	}
	return cv, nil
}

func (cv *conv) name() string            { return cv.lname }
func (cv *conv) kind() string            { return LayerConv }
func (cv *conv) inWidth() int            { return cv.c * cv.g.h * cv.g.w }
func (cv *conv) outWidth() int           { return cv.f * cv.hw }
func (cv *conv) outShape() []int         { return []int{cv.f, cv.g.ho, cv.g.wo} }
func (cv *conv) buffers() []*optim.Param { return nil }
func (cv *conv) params() []*optim.Param {
	if cv.b == nil {
		return []*optim.Param{cv.w}
	}
	return []*optim.Param{cv.w, cv.b}
}

func (cv *conv) alloc(rows int) {
	cv.col = grow(cv.col, rows*cv.hw*cv.ckk)
	cv.out = grow(cv.out, rows*cv.hw*cv.f)
	cv.y = grow(cv.y, rows*cv.outWidth())
	if cv.act.needsPreActivation() {
		cv.z = grow(cv.z, rows*cv.outWidth())
	}
	cv.dx = grow(cv.dx, rows*cv.inWidth())
	cv.dcol = grow(cv.dcol, rows*cv.hw*cv.ckk)
}

// im2col fills col from x for rows rows.
func (cv *conv) im2col(x []float32, rows int) {
	k, w := cv.g.k, cv.g.w
	kk := k * k
	plane, in := cv.g.h*cv.g.w, cv.inWidth()
	for r := 0; r < rows; r++ {
		xr := x[r*in : (r+1)*in]
		for p := 0; p < cv.hw; p++ {
			dst := cv.col[(r*cv.hw+p)*cv.ckk : (r*cv.hw+p+1)*cv.ckk]
			if s := int(cv.start[p]); s >= 0 {
				// Inner window: k contiguous values per kernel row.
				for c := 0; c < cv.c; c++ {
					for ky := 0; ky < k; ky++ {
						o := c*plane + s + ky*w
						copy(dst[c*kk+ky*k:c*kk+ky*k+k], xr[o:o+k])
					}
				}
				continue
			}
			idx := cv.idx[p*kk : (p+1)*kk]
			for c := 0; c < cv.c; c++ {
				src, d := xr[c*plane:(c+1)*plane], dst[c*kk:(c+1)*kk]
				for q, i := range idx {
					if i < 0 {
						d[q] = 0
					} else {
						d[q] = src[i]
					}
				}
			}
		}
	}
}

func (cv *conv) forward(rc *runCtx, x []float32, rows int) []float32 {
	cv.x = x
	m := rows * cv.hw
	cv.im2col(x, rows)
	out := cv.out[:m*cv.f]
	rc.gemm.Sgemm(false, true, m, cv.f, cv.ckk, 1, cv.col[:m*cv.ckk], cv.ckk, cv.w.Value, cv.ckk, 0, out, cv.f)
	// Transpose [rows, hw, F] into the CHW layout [rows, F, hw], adding the bias.
	ow := cv.outWidth()
	y := cv.y[:rows*ow]
	for r := 0; r < rows; r++ {
		yr, or := y[r*ow:(r+1)*ow], out[r*cv.hw*cv.f:(r+1)*cv.hw*cv.f]
		for f := 0; f < cv.f; f++ {
			var bias float32
			if cv.b != nil {
				bias = cv.b.Value[f]
			}
			yf := yr[f*cv.hw : (f+1)*cv.hw]
			for p := range yf {
				yf[p] = or[p*cv.f+f] + bias
			}
		}
	}
	if cv.act != actLinear {
		if cv.z != nil {
			copy(cv.z[:len(y)], y)
		}
		cv.act.applyTo(y, y)
	}
	return y
}

func (cv *conv) backward(rc *runCtx, dy []float32, rows int, needDX bool) []float32 {
	ow := cv.outWidth()
	dz := dy[:rows*ow]
	cv.act.backwardInPlace(dz, cv.y[:rows*ow], cv.z)
	m := rows * cv.hw
	// Back to [rows, hw, F].
	dout := cv.out[:m*cv.f]
	for r := 0; r < rows; r++ {
		dr, or := dz[r*ow:(r+1)*ow], dout[r*cv.hw*cv.f:(r+1)*cv.hw*cv.f]
		for f := 0; f < cv.f; f++ {
			df := dr[f*cv.hw : (f+1)*cv.hw]
			for p, v := range df {
				or[p*cv.f+f] = v
			}
		}
	}
	if !cv.w.Frozen {
		// dW[F, ckk] = doutᵀ·col.
		rc.gemm.Sgemm(true, false, cv.f, cv.ckk, m, 1, dout, cv.f, cv.col[:m*cv.ckk], cv.ckk, 0, cv.w.Grad, cv.ckk)
	}
	if cv.b != nil && !cv.b.Frozen {
		columnSumTo(cv.b.Grad[:cv.f], dout, cv.f)
	}
	if !needDX {
		return nil
	}
	dcol := cv.dcol[:m*cv.ckk]
	rc.gemm.Sgemm(false, false, m, cv.ckk, cv.f, 1, dout, cv.f, cv.w.Value, cv.ckk, 0, dcol, cv.ckk)
	// col2im: scatter-add the column gradients back onto the input, in a fixed order.
	in, plane, kk := cv.inWidth(), cv.g.h*cv.g.w, cv.g.k*cv.g.k
	dx := cv.dx[:rows*in]
	clear(dx)
	for r := 0; r < rows; r++ {
		dxr := dx[r*in : (r+1)*in]
		for p := 0; p < cv.hw; p++ {
			src := dcol[(r*cv.hw+p)*cv.ckk : (r*cv.hw+p+1)*cv.ckk]
			if s := int(cv.start[p]); s >= 0 {
				k, w := cv.g.k, cv.g.w
				for c := 0; c < cv.c; c++ {
					for ky := 0; ky < k; ky++ {
						o := c*plane + s + ky*w
						d, sv := dxr[o:o+k], src[c*kk+ky*k:c*kk+ky*k+k]
						for i, v := range sv {
							d[i] += v
						}
					}
				}
				continue
			}
			idx := cv.idx[p*kk : (p+1)*kk]
			for c := 0; c < cv.c; c++ {
				d, s := dxr[c*plane:(c+1)*plane], src[c*kk:(c+1)*kk]
				for q, i := range idx {
					if i >= 0 {
						d[i] += s[q]
					}
				}
			}
		}
	}
	return dx
}

// checkInputShape checks Spec.InputShape against the numeric inputs.
func checkInputShape(shape []int, numInputs, embeddings int) error {
	if len(shape) != 3 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1 {
		return fmt.Errorf("nn: input_shape %v: want [channels, height, width], each >= 1", shape)
	}
	if n := shape[0] * shape[1] * shape[2]; n != numInputs {
		return fmt.Errorf("nn: input_shape %v holds %d values per row but num_inputs = %d: they must match", shape, n, numInputs)
	}
	if embeddings > 0 {
		return fmt.Errorf("nn: input_shape is set and the model has %d embeddings: an image model takes only the image as input", embeddings)
	}
	return nil
}

// validateImage checks and defaults the fields of an image layer.
func (l *LayerSpec) validateImage() error {
	switch l.Type {
	case LayerConv:
		if l.Filters < 1 || l.Kernel < 1 {
			return fmt.Errorf("conv needs filters >= 1 and kernel >= 1, got filters = %d, kernel = %d", l.Filters, l.Kernel)
		}
		if l.Stride == 0 {
			l.Stride = 1
		}
	case LayerMaxPool, LayerAvgPool:
		if l.Kernel == 0 {
			l.Kernel = 2
		}
		if l.Stride == 0 {
			l.Stride = l.Kernel
		}
	default:
		return nil
	}
	if l.Kernel < 1 || l.Stride < 1 {
		return fmt.Errorf("%s: kernel %d and stride %d must be >= 1", l.Type, l.Kernel, l.Stride)
	}
	if l.Padding == "" {
		l.Padding = PaddingValid
	}
	if l.Padding != PaddingValid && l.Padding != PaddingSame {
		return fmt.Errorf("padding %q: want same or valid", l.Padding)
	}
	return nil
}

// buildImageLayer builds an image layer on an input image of shape [C, H, W] (nil when the
// input is plain features, an error for every image layer).
func buildImageLayer(ls LayerSpec, shape []int, act activation, fill func(w []float32, fanIn, fanOut int)) (layer, error) {
	if shape == nil {
		return nil, fmt.Errorf("nn: layer %q (%s) needs an image input: set input_shape = [channels, height, width] on the model, and put image layers before any flatten, global_avg_pool or dense layer", ls.Name, ls.Type)
	}
	c, h, w := shape[0], shape[1], shape[2]
	var (
		l   layer
		err error
	)
	switch ls.Type {
	case LayerConv:
		var cv *conv
		cv, err = newConv(ls.Name, c, h, w, ls.Filters, ls.Kernel, ls.Stride, ls.Padding, act, !ls.NoBias)
		if err == nil {
			// Fan-in C·k·k, fan-out F·k·k (as Keras and PyTorch count them for convolutions).
			fill(cv.w.Value, c*ls.Kernel*ls.Kernel, ls.Filters*ls.Kernel*ls.Kernel)
			l = cv
		}
	case LayerMaxPool, LayerAvgPool:
		l, err = newPool(ls.Name, ls.Type == LayerMaxPool, c, h, w, ls.Kernel, ls.Stride, ls.Padding)
	case LayerGlobalAvgPool:
		l = &globalAvgPool{lname: ls.Name, c: c, plane: h * w}
	case LayerFlatten:
		l = &flatten{lname: ls.Name, width: c * h * w}
	}
	if err != nil {
		return nil, fmt.Errorf("nn: layer %q (%s) on a %d×%d×%d input: %w", ls.Name, ls.Type, c, h, w, err)
	}
	return l, nil
}

// imageShapeAfter returns the image shape after layer l given the shape before it: the
// layer's own when it makes an image, unchanged through elementwise layers, nil (plain
// features) after anything else.
func imageShapeAfter(l layer, before []int) []int {
	if s, ok := l.(shaper); ok {
		return s.outShape()
	}
	switch l.(type) {
	case *activationLayer, *dropoutLayer, *noiseLayer, *batchNorm:
		return before
	}
	return nil
}

// validateConvResidual checks and defaults a residual block with Filters (an image block):
// kernel 3, stride 1, activation relu; padding is always same; units does not apply.
func (l *LayerSpec) validateConvResidual() error {
	if l.Units != 0 {
		return fmt.Errorf("residual: set filters (image block) or units (MLP block), not both")
	}
	if l.Kernel == 0 {
		l.Kernel = 3
	}
	if l.Stride == 0 {
		l.Stride = 1
	}
	if l.Kernel < 1 || l.Stride < 1 {
		return fmt.Errorf("residual: kernel %d and stride %d must be >= 1", l.Kernel, l.Stride)
	}
	if l.Padding != "" && l.Padding != PaddingSame {
		return fmt.Errorf("residual: padding %q: an image residual block always pads same", l.Padding)
	}
	if l.Activation == "" {
		l.Activation = "relu"
	}
	if l.Norm != "" && l.Norm != LayerBatchNorm {
		return fmt.Errorf("residual: norm %q on an image block: want \"\" or batch_norm (over channels)", l.Norm)
	}
	return nil
}

// buildConvResidual builds the image form of the residual block (see residual) on a [C, H, W]
// input.
func buildConvResidual(ls LayerSpec, shape []int, act activation, rng *rand.Rand) (*residual, error) {
	c, h, w := shape[0], shape[1], shape[2]
	wrap := func(err error) error {
		return fmt.Errorf("nn: layer %q (residual) on a %d×%d×%d input: %w", ls.Name, c, h, w, err)
	}
	if ls.Filters < 1 {
		return nil, wrap(fmt.Errorf("an image residual block needs filters >= 1 (units applies to the MLP block after a flatten)"))
	}
	f, k, s := ls.Filters, ls.Kernel, ls.Stride
	newC := func(suffix string, cin, hin, win, k, s int, act activation, bias bool) (*conv, error) {
		cv, err := newConv(ls.Name+"/"+suffix, cin, hin, win, f, k, s, PaddingSame, act, bias)
		if err != nil {
			return nil, wrap(err)
		}
		// As in the MLP block: the init follows each convolution's own activation.
		defaultInit(ls.Init, act).fill(cv.w.Value, cin*k*k, f*k*k, rng)
		return cv, nil
	}
	r := &residual{lname: ls.Name, in: c * h * w}
	if ls.Norm == LayerBatchNorm {
		bn := newBatchNorm(ls.Name+"/norm", c, ls.Momentum, ls.Eps)
		bn.plane = h * w
		r.norm = bn
	}
	a, err := newC("conv_a", c, h, w, k, s, act, true)
	if err != nil {
		return nil, err
	}
	r.a = a
	ho, wo := a.g.ho, a.g.wo
	if ls.Dropout > 0 {
		r.drop = &dropoutLayer{lname: ls.Name + "/dropout", width: a.outWidth(), rate: ls.Dropout}
	}
	if r.b, err = newC("conv_b", f, ho, wo, k, 1, actLinear, true); err != nil {
		return nil, err
	}
	if c != f || s != 1 {
		if r.proj, err = newC("proj", c, h, w, 1, s, actLinear, false); err != nil {
			return nil, err
		}
	}
	r.shape = []int{f, ho, wo}
	r.units = f * ho * wo
	return r, nil
}
