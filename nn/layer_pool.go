package nn

import (
	"github.com/pipe-ml/pipe/nn/optim"
)

// pool is max or average pooling over k×k windows of every channel. Cells in the padding
// (padding same) are ignored: a max is over the cells inside the image, an average divides by
// their count (as Keras does).
type pool struct {
	lname string
	isMax bool
	c     int
	g     window
	idx   []int32 // [ho·wo, k·k] plane offsets, -1 in the padding
	start []int32 // per output position: inner window's top-left offset, or -1
	hw    int
	count []float32 // average pooling: 1/(cells inside the image) per output position
	two   bool      // 2×2 windows, stride 2, all inside the image: see maxPool2

	arg   []int32 // max pooling: the winning plane offset per output value
	y, dx []float32
}

func newPool(name string, isMax bool, c, h, w, k, stride int, padding string) (*pool, error) {
	g, err := newWindow(h, w, k, stride, padding)
	if err != nil {
		return nil, err
	}
	p := &pool{lname: name, isMax: isMax, c: c, g: g, idx: g.index(), start: g.starts(), hw: g.ho * g.wo}
	p.two = k == 2 && stride == 2 && g.padT == 0 && g.padL == 0 && 2*g.ho <= h && 2*g.wo <= w
	p.count = make([]float32, p.hw)
	kk := k * k
	for o := range p.count {
		n := 0
		for _, i := range p.idx[o*kk : (o+1)*kk] {
			if i >= 0 {
				n++
			}
		}
		p.count[o] = 1 / float32(n)
	}
	return p, nil
}

func (p *pool) name() string {
	return p.lname
}
func (p *pool) kind() string {
	if p.isMax {
		return LayerMaxPool
	}
	return LayerAvgPool
}
func (p *pool) inWidth() int            { return p.c * p.g.h * p.g.w }
func (p *pool) outWidth() int           { return p.c * p.hw }
func (p *pool) outShape() []int         { return []int{p.c, p.g.ho, p.g.wo} }
func (p *pool) params() []*optim.Param  { return nil }
func (p *pool) buffers() []*optim.Param { return nil }
func (p *pool) alloc(rows int) {
	p.y = grow(p.y, rows*p.outWidth())
	p.dx = grow(p.dx, rows*p.inWidth())
	if p.isMax {
		if cap(p.arg) < rows*p.outWidth() {
			p.arg = make([]int32, rows*p.outWidth())
		}
		p.arg = p.arg[:rows*p.outWidth()]
	}
}

// maxPool2 is max pooling of one plane src over 2×2 windows with stride 2, all inside the
// plane, into y and arg (see pool.arg): the same cells in the same order, and the same first-
// maximum tie rule, as the general path.
func (p *pool) maxPool2(src, y []float32, arg []int32) {
	w := p.g.w
	for oy := 0; oy < p.g.ho; oy++ {
		o0, i0 := oy*p.g.wo, 2*oy*w
		r0, r1 := src[i0:i0+2*p.g.wo], src[i0+w:i0+w+2*p.g.wo]
		yo, ao := y[o0:o0+p.g.wo], arg[o0:o0+p.g.wo]
		for ox := range yo {
			j := 2 * ox
			best, at := r0[j], i0+j
			if v := r0[j+1]; v > best {
				best, at = v, i0+j+1
			}
			if v := r1[j]; v > best {
				best, at = v, i0+w+j
			}
			if v := r1[j+1]; v > best {
				best, at = v, i0+w+j+1
			}
			yo[ox], ao[ox] = best, int32(at)
		}
	}
}

func (p *pool) forward(_ *runCtx, x []float32, rows int) []float32 {
	in, ow, plane, kk := p.inWidth(), p.outWidth(), p.g.h*p.g.w, p.g.k*p.g.k
	y := p.y[:rows*ow]
	for r := 0; r < rows; r++ {
		for c := 0; c < p.c; c++ {
			src := x[r*in+c*plane : r*in+(c+1)*plane]
			base := r*ow + c*p.hw
			if p.isMax && p.two {
				p.maxPool2(src, y[base:base+p.hw], p.arg[base:base+p.hw])
				continue
			}
			for o := 0; o < p.hw; o++ {
				if s := int(p.start[o]); s >= 0 {
					// Inner window: the same cells in the same order as the index table.
					k, w := p.g.k, p.g.w
					if p.isMax {
						best, arg := src[s], int32(s)
						for ky := 0; ky < k; ky++ {
							row := src[s+ky*w : s+ky*w+k]
							for kx, v := range row {
								if v > best {
									best, arg = v, int32(s+ky*w+kx)
								}
							}
						}
						y[base+o], p.arg[base+o] = best, arg
					} else {
						var sum float32
						for ky := 0; ky < k; ky++ {
							for _, v := range src[s+ky*w : s+ky*w+k] {
								sum += v
							}
						}
						y[base+o] = sum * p.count[o]
					}
					continue
				}
				idx := p.idx[o*kk : (o+1)*kk]
				if p.isMax {
					best, arg := float32(0), int32(-1)
					for _, i := range idx {
						// The first maximum wins a tie (deterministic).
						if i >= 0 && (arg < 0 || src[i] > best) {
							best, arg = src[i], i
						}
					}
					y[base+o], p.arg[base+o] = best, arg
				} else {
					var s float32
					for _, i := range idx {
						if i >= 0 {
							s += src[i]
						}
					}
					y[base+o] = s * p.count[o]
				}
			}
		}
	}
	return y
}

func (p *pool) backward(_ *runCtx, dy []float32, rows int, needDX bool) []float32 {
	if !needDX {
		return nil
	}
	in, ow, plane, kk := p.inWidth(), p.outWidth(), p.g.h*p.g.w, p.g.k*p.g.k
	dx := p.dx[:rows*in]
	clear(dx)
	for r := 0; r < rows; r++ {
		for c := 0; c < p.c; c++ {
			dst := dx[r*in+c*plane : r*in+(c+1)*plane]
			base := r*ow + c*p.hw
			for o := 0; o < p.hw; o++ {
				g := dy[base+o]
				if p.isMax {
					dst[p.arg[base+o]] += g
					continue
				}
				g *= p.count[o]
				for _, i := range p.idx[o*kk : (o+1)*kk] {
					if i >= 0 {
						dst[i] += g
					}
				}
			}
		}
	}
	return dx
}

// globalAvgPool averages every channel over its H×W plane: [C, H, W] → [C] plain features.
type globalAvgPool struct {
	lname    string
	c, plane int
	y, dx    []float32
}

func (g *globalAvgPool) name() string            { return g.lname }
func (g *globalAvgPool) kind() string            { return LayerGlobalAvgPool }
func (g *globalAvgPool) inWidth() int            { return g.c * g.plane }
func (g *globalAvgPool) outWidth() int           { return g.c }
func (g *globalAvgPool) params() []*optim.Param  { return nil }
func (g *globalAvgPool) buffers() []*optim.Param { return nil }
func (g *globalAvgPool) alloc(rows int) {
	g.y = grow(g.y, rows*g.c)
	g.dx = grow(g.dx, rows*g.inWidth())
}

func (g *globalAvgPool) forward(_ *runCtx, x []float32, rows int) []float32 {
	in, inv := g.inWidth(), 1/float32(g.plane)
	y := g.y[:rows*g.c]
	for r := 0; r < rows; r++ {
		for c := 0; c < g.c; c++ {
			y[r*g.c+c] = sum8(x[r*in+c*g.plane:r*in+(c+1)*g.plane]) * inv
		}
	}
	return y
}

func (g *globalAvgPool) backward(_ *runCtx, dy []float32, rows int, needDX bool) []float32 {
	if !needDX {
		return nil
	}
	in, inv := g.inWidth(), 1/float32(g.plane)
	dx := g.dx[:rows*in]
	for r := 0; r < rows; r++ {
		for c := 0; c < g.c; c++ {
			v := dy[r*g.c+c] * inv
			d := dx[r*in+c*g.plane : r*in+(c+1)*g.plane]
			for i := range d {
				d[i] = v
			}
		}
	}
	return dx
}

// flatten ends the image shape: the data (already row-major CHW) passes through unchanged and
// the layers after it see C·H·W plain features.
type flatten struct {
	lname string
	width int
}

func (f *flatten) name() string            { return f.lname }
func (f *flatten) kind() string            { return LayerFlatten }
func (f *flatten) inWidth() int            { return f.width }
func (f *flatten) outWidth() int           { return f.width }
func (f *flatten) params() []*optim.Param  { return nil }
func (f *flatten) buffers() []*optim.Param { return nil }
func (f *flatten) alloc(int)               {}
func (f *flatten) forward(_ *runCtx, x []float32, rows int) []float32 {
	return x[:rows*f.width]
}
func (f *flatten) backward(_ *runCtx, dy []float32, rows int, needDX bool) []float32 {
	if !needDX {
		return nil
	}
	return dy[:rows*f.width]
}
