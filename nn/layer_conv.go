package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/pipe-ml/pipe/internal/sgemm"
	"github.com/pipe-ml/pipe/internal/sgemm/elementwise"
	"github.com/pipe-ml/pipe/nn/gemm"
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

// conv is a 2-D convolution (dilation 1, one group) computed image by image as a GEMM in the
// CHW layout, so that no transpose is needed on either side: for image r, col_r is the
// [C·k·k, ho·wo] matrix whose row (c, ky, kx) holds, for every output position, the input value
// under that window cell (0 in the padding), and
//
//	y_r[F, ho·wo] = act(W[F, C·k·k]·col_r + b)
//
// W is [F, C, k, k]. A 1×1 convolution with stride 1 (direct) skips im2col: the input image
// [C, H·W] is already col_r.
type conv struct {
	lname   string
	c, f    int
	g       window
	w, b    *optim.Param
	act     activation
	ckk, hw int // C·k·k, ho·wo
	// ld is the row stride of col and dcol: hw rounded up to a multiple of 8 (the GEMM
	// kernels' row strip), the rows' tails zero. The products that read col_r or dcol
	// transposed then run over ld output positions, the last few of which are discarded, so
	// that no strip of rows is partial (a partial one is packed and merged through a scratch
	// tile).
	ld     int
	direct bool        // 1×1 kernel, stride 1: x_r is the GEMM operand (see conv)
	shift  bool        // stride 1 and an output as large as the input (padding same): see im2colShift
	cells  []shiftCell // when shift: per window cell ky·k+kx, its shift geometry
	// flipDX (a shift convolution with an odd kernel, so padded alike on every side): when
	// the input gradient is needed, both gradients come from one im2col of dz per image (see
	// flipBackward) instead of an im2col of x for dW and a GEMM and col2im for dx.
	flipDX bool

	x        []float32 // input of the last forward (not owned)
	col      []float32 // [ckk, hw]: one image's col_r, then its column gradient; unused when direct
	z, y, dx []float32
	dwt      []float32 // [ckk, F]: dWᵀ, accumulated over the images of a batch
	wflip    []float32 // when flipDX: [C, F·k·k], Wflip[c, f, q'] = W[f, c, q] (q' = q flipped)
	gflip    []float32 // when flipDX: [F·k·k, C], the weight gradient in Wflipᵀ's order
	dcol     []float32 // when flipDX: [F·k·k, hw], im2col of one image's dz
	dxt      []float32 // when flipDX: [hw, C], one image's input gradient, transposed
	yt       []float32 // [ld, F]: one image's output, transposed (rows past hw unused)
	zeroBias []float32 // F zeros: the bias of a layer without one, for BiasReLU
	bsum     []float32 // [F, hw]: the batch's dz summed over the images, for the bias gradient
}

func newConv(name string, c, h, w, filters, k, stride int, padding string, act activation, bias bool) (*conv, error) {
	g, err := newWindow(h, w, k, stride, padding)
	if err != nil {
		return nil, err
	}
	cv := &conv{lname: name, c: c, f: filters, g: g, act: act, ckk: c * k * k, hw: g.ho * g.wo, ld: (g.ho*g.wo + 7) &^ 7,
		direct: k == 1 && stride == 1, shift: stride == 1 && g.ho == h && g.wo == w, w: newParam(name+"/W", false, filters, c, k, k)}
	if bias {
		cv.b = newParam(name+"/b", true, filters)
	} else {
		cv.zeroBias = make([]float32, filters)
	}
	cv.flipDX = cv.shift && k%2 == 1 && !cv.direct
	if cv.shift {
		for ky := 0; ky < k; ky++ {
			for kx := 0; kx < k; kx++ {
				var sc shiftCell
				sc.d, sc.oyLo, sc.oyHi, sc.a, sc.b = g.shiftRows(ky, kx)
				sc.lo, sc.hi = g.span(kx)
				sc.empty = sc.a == sc.b || sc.lo == sc.hi
				sc.edges = sc.lo != 0 || sc.hi != g.w
				cv.cells = append(cv.cells, sc)
			}
		}
	}
	return cv, nil
}

// shiftCell is the geometry of one window cell of a shift convolution: see window.shiftRows
// and window.span; empty when no output position sees the image through it, edges when some
// columns do not.
type shiftCell struct {
	d, oyLo, oyHi, a, b, lo, hi int
	empty, edges                bool
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
	if !cv.direct {
		cv.col = grow(cv.col, cv.ckk*cv.ld)
	}
	cv.dwt = grow(cv.dwt, cv.ckk*cv.f)
	cv.yt = grow(cv.yt, cv.ld*cv.f)
	cv.y = grow(cv.y, rows*cv.outWidth())
	if cv.act.needsPreActivation() {
		cv.z = grow(cv.z, rows*cv.outWidth())
	}
	cv.dx = grow(cv.dx, rows*cv.inWidth())
	if cv.b != nil {
		cv.bsum = grow(cv.bsum, cv.outWidth())
	}
	if cv.flipDX {
		kk := cv.g.k * cv.g.k
		cv.wflip = grow(cv.wflip, cv.c*cv.f*kk)
		cv.gflip = grow(cv.gflip, cv.c*cv.f*kk)
		cv.dcol = grow(cv.dcol, cv.f*kk*cv.ld)
		cv.dxt = grow(cv.dxt, cv.ld*cv.c)
	}
}

// span returns the output columns [lo, hi) whose window cell kx falls inside the image
// (lo == hi when none does).
func (g window) span(kx int) (lo, hi int) {
	if d := g.padL - kx; d > 0 {
		lo = (d + g.stride - 1) / g.stride
	}
	if n := g.w - 1 + g.padL - kx; n >= 0 {
		hi = min(g.wo, n/g.stride+1)
	}
	return min(lo, hi), hi
}

// shiftRows returns, for window cell (ky, kx) of a shift convolution, the offset d of the
// input plane position under output position p (p+d), the output rows [oyLo, oyHi) whose
// input row is inside the image, and [a, b), the output positions among those whose p+d lies
// in the plane; the positions of [oyLo·w, oyHi·w) outside [a, b) are all in the edge columns
// outside span(kx).
func (g window) shiftRows(ky, kx int) (d, oyLo, oyHi, a, b int) {
	dy, dx := ky-g.padT, kx-g.padL
	d = dy*g.w + dx
	oyLo, oyHi = max(0, -dy), min(g.h, g.h-dy)
	if oyLo >= oyHi {
		return d, 0, 0, 0, 0
	}
	plane := g.h * g.w
	a, b = max(oyLo*g.w, -d), min(oyHi*g.w, plane-d)
	return d, oyLo, oyHi, a, max(a, b)
}

// im2colShift is im2col for stride 1 with output size = input size: the row for window cell
// (ky, kx) is then the input plane shifted by d = (ky−padT)·W + (kx−padL), so it is one copy
// plus zeros in the rows and columns that fall in the padding.
func (cv *conv) im2colShift(xr, col []float32) {
	cv.shiftChannels(xr, col, cv.c)
}

// shiftChannels is im2colShift of an image of channels planes (the input's C, or F for the
// input gradient's im2col of dz).
func (cv *conv) shiftChannels(xr, col []float32, channels int) {
	g := cv.g
	kk, plane := g.k*g.k, g.h*g.w
	for c := 0; c < channels; c++ {
		src := xr[c*plane : (c+1)*plane]
		for q := range cv.cells {
			sc := &cv.cells[q]
			row := col[(c*kk+q)*cv.ld:][:cv.hw]
			if sc.empty {
				clear(row)
				continue
			}
			zero(row[:sc.a])
			copy(row[sc.a:sc.b], src[sc.a+sc.d:sc.b+sc.d])
			zero(row[sc.b:])
			if sc.edges {
				zeroEdges(row, g.w, sc.oyLo, sc.oyHi, sc.lo, sc.hi)
			}
		}
	}
}

// zero clears s: in a loop when it is short (a row or two of padding: cheaper than a call),
// else with clear.
func zero(s []float32) {
	if len(s) > 32 {
		clear(s)
		return
	}
	for i := range s {
		s[i] = 0
	}
}

// zeroEdges zeroes, in rows [oyLo, oyHi) of the w-wide plane p, the columns before lo and from
// hi on: column by column (one or two columns for a small kernel), a strided store per row.
func zeroEdges(p []float32, w, oyLo, oyHi, lo, hi int) {
	if oyLo >= oyHi {
		return
	}
	p = p[oyLo*w : oyHi*w]
	for i := 0; i < lo; i++ {
		for j := i; j < len(p); j += w {
			p[j] = 0
		}
	}
	for i := hi; i < w; i++ {
		for j := i; j < len(p); j += w {
			p[j] = 0
		}
	}
}

// addTo sets dst[i] += src[i]. (elementwise.SGDUpdate with lr = −1 and no L2 computes
// dst − (−1·src) = dst + src exactly, vectorised.)
func addTo(dst, src []float32) {
	elementwise.SGDUpdate(dst[:len(src)], src, -1, 0)
}

// col2imShift is col2im for a shift convolution (see im2colShift). It zeroes the padding
// columns of dcol (scratch) so that each row is one contiguous add.
func (cv *conv) col2imShift(dcol, dxr []float32) {
	g := cv.g
	kk, plane := g.k*g.k, g.h*g.w
	for c := 0; c < cv.c; c++ {
		dst := dxr[c*plane : (c+1)*plane]
		for q, sc := range cv.cells {
			if sc.empty {
				continue
			}
			row := dcol[(c*kk+q)*cv.ld:][:cv.hw]
			if sc.edges {
				zeroEdges(row, g.w, sc.oyLo, sc.oyHi, sc.lo, sc.hi)
			}
			addTo(dst[sc.a+sc.d:sc.b+sc.d], row[sc.a:sc.b])
		}
	}
}

// im2col fills col ([ckk, hw]) from one input image xr ([C, H, W]).
func (cv *conv) im2col(xr, col []float32) {
	g := cv.g
	if cv.shift {
		cv.im2colShift(xr, col)
		return
	}
	k, plane := g.k, g.h*g.w
	for c := 0; c < cv.c; c++ {
		src := xr[c*plane : (c+1)*plane]
		for ky := 0; ky < k; ky++ {
			for kx := 0; kx < k; kx++ {
				row := col[((c*k+ky)*k+kx)*cv.ld:][:cv.hw]
				lo, hi := g.span(kx)
				ix0 := lo*g.stride - g.padL + kx
				for oy := 0; oy < g.ho; oy++ {
					d := row[oy*g.wo : (oy+1)*g.wo]
					iy := oy*g.stride - g.padT + ky
					if iy < 0 || iy >= g.h || lo == hi {
						clear(d)
						continue
					}
					clear(d[:lo])
					clear(d[hi:])
					sr := src[iy*g.w : (iy+1)*g.w]
					if g.stride == 1 {
						copy(d[lo:hi], sr[ix0:ix0+hi-lo])
						continue
					}
					for ox, ix := lo, ix0; ox < hi; ox, ix = ox+1, ix+g.stride {
						d[ox] = sr[ix]
					}
				}
			}
		}
	}
}

// col2im adds the column gradient dcol ([ckk, hw]) of one image onto dxr ([C, H, W]), in a
// fixed order.
func (cv *conv) col2im(dcol, dxr []float32) {
	g := cv.g
	if cv.shift {
		cv.col2imShift(dcol, dxr)
		return
	}
	k, plane := g.k, g.h*g.w
	for c := 0; c < cv.c; c++ {
		dst := dxr[c*plane : (c+1)*plane]
		for ky := 0; ky < k; ky++ {
			for kx := 0; kx < k; kx++ {
				row := dcol[((c*k+ky)*k+kx)*cv.ld:][:cv.hw]
				lo, hi := g.span(kx)
				if lo == hi {
					continue
				}
				ix0 := lo*g.stride - g.padL + kx
				for oy := 0; oy < g.ho; oy++ {
					iy := oy*g.stride - g.padT + ky
					if iy < 0 || iy >= g.h {
						continue
					}
					s := row[oy*g.wo+lo : oy*g.wo+hi]
					dr := dst[iy*g.w : (iy+1)*g.w]
					if g.stride == 1 {
						dr = dr[ix0 : ix0+len(s)]
						for i, v := range s {
							dr[i] += v
						}
						continue
					}
					for i, v := range s {
						dr[ix0+i*g.stride] += v
					}
				}
			}
		}
	}
}

// operand returns image r's GEMM operand col_r ([ckk, hw], row stride lda) of the last
// forward's input: the input image itself when direct (lda = hw), else im2col'ed into the
// one-image buffer col (lda = ld). col_r is built again in backward rather than kept for the
// whole batch: one image's col_r stays in cache, the batch's (rows times larger than the
// input) would not.
func (cv *conv) operand(r int) (a []float32, lda int) {
	xr := cv.x[r*cv.inWidth() : (r+1)*cv.inWidth()]
	if cv.direct {
		return xr, cv.hw
	}
	cv.im2col(xr, cv.col)
	return cv.col, cv.ld
}

func (cv *conv) forward(rc *runCtx, x []float32, rows int) []float32 {
	cv.x = x
	ow := cv.outWidth()
	y := cv.y[:rows*ow]
	yt := cv.yt[:cv.ld*cv.f]
	for r := 0; r < rows; r++ {
		// y_rᵀ[hw, F] = col_rᵀ·Wᵀ: the GEMM reads col_r in place (its transposed-A kernel reads
		// 8 output positions of a row of col_r at a time) and packs only the small W, where
		// y_r = W·col_r would pack the whole col_r.
		// Over lda output positions: hw when direct, ld (whole row strips) through col.
		a, lda := cv.operand(r)
		convSgemm(rc, true, true, lda, cv.f, cv.ckk, 1, a, lda, cv.w.Value, cv.ckk, 0, yt, cv.f)
		// The bias and ReLU on yt (a bias per column: vectorised), then transpose to [F, hw]
		// while the image is in cache.
		relu := cv.act == actReLU
		switch {
		case relu:
			elementwise.BiasReLU(yt, cv.hw, cv.f, cv.bias())
		case cv.b != nil:
			elementwise.BiasAdd(yt, cv.hw, cv.f, cv.b.Value)
		}
		yr := y[r*ow : (r+1)*ow]
		sgemm.Transpose(yr, cv.hw, yt, cv.f, cv.hw, cv.f)
		if !relu && cv.act != actLinear {
			if cv.z != nil {
				copy(cv.z[r*ow:(r+1)*ow], yr)
			}
			cv.act.applyTo(yr, yr)
		}
	}
	return y
}

func (cv *conv) backward(rc *runCtx, dy []float32, rows int, needDX bool) []float32 {
	in, ow := cv.inWidth(), cv.outWidth()
	dz := dy[:rows*ow]
	wGrad := !cv.w.Frozen
	if wGrad {
		clear(cv.dwt)
	}
	var dx []float32
	if needDX {
		dx = cv.dx[:rows*in]
	}
	if needDX && cv.flipDX {
		// Both gradients from one im2col per image, of dz_r: see flipBackward.
		cv.flipWeights()
		if wGrad {
			clear(cv.gflip)
		}
		for r := 0; r < rows; r++ {
			dzr := dz[r*ow : (r+1)*ow]
			var zr []float32
			if cv.z != nil {
				zr = cv.z[r*ow : (r+1)*ow]
			}
			cv.act.backwardInPlace(dzr, cv.y[r*ow:(r+1)*ow], zr)
			cv.flipBackward(rc, dzr, cv.x[r*in:(r+1)*in], dx[r*in:(r+1)*in], wGrad)
		}
		if wGrad {
			cv.unflipGrad()
		}
		cv.biasGrad(dz, rows)
		return dx
	}
	// Image by image in order, so that col_r, dz_r and dx_r stay in cache.
	for r := 0; r < rows; r++ {
		dzr := dz[r*ow : (r+1)*ow]
		var zr []float32
		if cv.z != nil {
			zr = cv.z[r*ow : (r+1)*ow]
		}
		cv.act.backwardInPlace(dzr, cv.y[r*ow:(r+1)*ow], zr)
		if wGrad {
			// dWᵀ[ckk, F] += col_r·dz_rᵀ. (Computing dWᵀ rather than dW = dz_r·col_rᵀ makes the
			// GEMM transpose the F×hw dz_r instead of the larger ckk×hw col_r when it packs its
			// right operand.)
			a, lda := cv.operand(r)
			convSgemm(rc, false, true, cv.ckk, cv.f, cv.hw, 1, a, lda, dzr, cv.hw, 1, cv.dwt, cv.f)
		}
		if !needDX {
			continue
		}
		dxr := dx[r*in : (r+1)*in]
		if cv.direct {
			// dx_r[C, hw] = Wᵀ·dz_r.
			convSgemm(rc, true, false, cv.c, cv.hw, cv.f, 1, cv.w.Value, cv.ckk, dzr, cv.hw, 0, dxr, cv.hw)
			continue
		}
		// dcol_r = Wᵀ·dz_r (into col, which col_r no longer needs), then col2im.
		convSgemm(rc, true, false, cv.ckk, cv.hw, cv.f, 1, cv.w.Value, cv.ckk, dzr, cv.hw, 0, cv.col, cv.ld)
		clear(dxr)
		cv.col2im(cv.col, dxr)
	}
	if wGrad {
		g := cv.w.Grad[:cv.f*cv.ckk]
		for j := 0; j < cv.ckk; j++ {
			for f, v := range cv.dwt[j*cv.f : (j+1)*cv.f] {
				g[f*cv.ckk+j] = v
			}
		}
	}
	cv.biasGrad(dz, rows)
	return dx
}

// biasGrad sets the bias gradient (when the layer has a trainable bias) from the
// pre-activation gradient dz of the batch.
func (cv *conv) biasGrad(dz []float32, rows int) {
	if cv.b == nil || cv.b.Frozen {
		return
	}
	// Over the images first, vectorised (one sum per output position), then over each
	// channel's plane.
	sums := cv.bsum[:cv.outWidth()]
	elementwise.ColumnSum(sums, dz, rows, len(sums))
	for f := range cv.b.Grad[:cv.f] {
		cv.b.Grad[f] = sum8(sums[f*cv.hw : (f+1)*cv.hw])
	}
}

// convSgemm is rc.gemm.Sgemm for a conv layer's products. When the backend is pipe's own
// (gemm.Asm, alone or under gemm.Parallel) it calls sgemm.SgemmParallel over the whole
// product instead: that packs op(B) once, where gemm.Parallel's 128-row blocks pack it once
// per block (three times for the 288 rows of a 3×3 conv's dWᵀ on 32 channels), and gives
// the same bits (see TestConvSgemmMatchesBackend): both split only M and N on register
// tiles, never K, and the kernels compute every element of C the same way whatever the
// split, for any number of workers.
func convSgemm(rc *runCtx, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	switch g := rc.gemm.(type) {
	case gemm.Asm:
		sgemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	case gemm.Parallel:
		if _, ok := g.Backend.(gemm.Asm); ok {
			sgemm.SgemmParallel(g.Workers, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
			return
		}
	}
	rc.gemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// bias returns the bias values, or zeros when the layer has no bias.
func (cv *conv) bias() []float32 {
	if cv.b != nil {
		return cv.b.Value
	}
	return cv.zeroBias
}

// sum8 returns the sum of s in eight interleaved partial sums (element i goes to sum i mod 8;
// the partial sums are then added pairwise, in a fixed order): eight independent chains
// instead of one.
func sum8(s []float32) float32 {
	var a0, a1, a2, a3, a4, a5, a6, a7 float32
	i := 0
	for ; i+8 <= len(s); i += 8 {
		v := s[i : i+8 : i+8]
		a0, a1, a2, a3 = a0+v[0], a1+v[1], a2+v[2], a3+v[3]
		a4, a5, a6, a7 = a4+v[4], a5+v[5], a6+v[6], a7+v[7]
	}
	for j, v := range s[i:] {
		switch j {
		case 0:
			a0 += v
		case 1:
			a1 += v
		case 2:
			a2 += v
		case 3:
			a3 += v
		case 4:
			a4 += v
		case 5:
			a5 += v
		default:
			a6 += v
		}
	}
	return ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7))
}

// flipWeights sets wflip[c, f, q'] = W[f, c, q], where cell q' = (k−1−ky, k−1−kx) is cell
// q = (ky, kx) flipped.
func (cv *conv) flipWeights() {
	kk := cv.g.k * cv.g.k
	w := cv.w.Value
	for f := 0; f < cv.f; f++ {
		for c := 0; c < cv.c; c++ {
			src := w[f*cv.ckk+c*kk : f*cv.ckk+(c+1)*kk]
			dst := cv.wflip[(c*cv.f+f)*kk : (c*cv.f+f+1)*kk]
			for q, v := range src {
				dst[kk-1-q] = v
			}
		}
	}
}

// flipBackward computes one image's input gradient dx_r, and adds its share of the weight
// gradient to gflip, from its dz_r and input x_r, through one im2col: dcol = im2col(dz_r)
// ([F·k·k, hw], rows (f, q')). With stride 1 and the same padding p on every side, input
// position i feeds output position i−d_q through cell q (d_q = (ky−p)·W + (kx−p)), and the
// flipped cell q' = (k−1−ky, k−1−kx) has d_q' = −d_q, so dcol[(f, q'), i] = dz_r[f, i−d_q]
// (0 where i−d_q is no output position, as for the forward pass). Then
//
//	dx_r[c, i]    = Σ_{f,q} W[f, c, q]·dz_r[f, i−d_q] = Σ_{f,q'} Wflip[c, f, q']·dcol[(f, q'), i]
//	dW[f, c, q]  += Σ_p dz_r[f, p]·x_r[c, p+d_q]   = Σ_i dcol[(f, q'), i]·x_r[c, i]
//
// the first the forward convolution of dz_r by Wflip (dx_rᵀ = dcolᵀ·Wflipᵀ, then a
// transpose), the second gflip[(f, q'), c] += dcol·x_rᵀ (unflipGrad puts it in W's order).
func (cv *conv) flipBackward(rc *runCtx, dzr, xr, dxr []float32, wGrad bool) {
	fkk := cv.f * cv.g.k * cv.g.k
	cv.shiftChannels(dzr, cv.dcol, cv.f)
	if wGrad {
		convSgemm(rc, false, true, fkk, cv.c, cv.hw, 1, cv.dcol, cv.ld, xr, cv.hw, 1, cv.gflip, cv.c)
	}
	convSgemm(rc, true, true, cv.ld, cv.c, fkk, 1, cv.dcol, cv.ld, cv.wflip, fkk, 0, cv.dxt, cv.c)
	sgemm.Transpose(dxr, cv.hw, cv.dxt, cv.c, cv.hw, cv.c)
}

// unflipGrad sets W's gradient from gflip: dW[f, c, q] = gflip[(f, q'), c].
func (cv *conv) unflipGrad() {
	kk := cv.g.k * cv.g.k
	g := cv.w.Grad[:cv.f*cv.ckk]
	for f := 0; f < cv.f; f++ {
		for q := 0; q < kk; q++ {
			src := cv.gflip[(f*kk+kk-1-q)*cv.c : (f*kk+kk-q)*cv.c]
			for c, v := range src {
				g[f*cv.ckk+c*kk+q] = v
			}
		}
	}
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
