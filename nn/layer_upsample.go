package nn

import (
	"fmt"

	"github.com/pipe-ml/pipe/nn/optim"
)

// DefaultUpsampleFactor is the factor of an upsample layer that sets none.
const DefaultUpsampleFactor = 2

// upsample is nearest-neighbour upsampling of every channel by an integer factor f: output
// cell (y, x) of [C, H·f, W·f] is input cell (y/f, x/f) of [C, H, W]. It is the decoder's
// counterpart of a pooling layer (upsample + conv is the usual alternative to a transposed
// convolution, without its checkerboard artefacts). Backward sums the f×f cells' gradients.
type upsample struct {
	lname   string
	c, h, w int
	f       int
	y, dx   []float32
}

func newUpsample(name string, c, h, w, factor int) (*upsample, error) {
	if factor < 1 {
		return nil, fmt.Errorf("factor %d must be >= 1", factor)
	}
	return &upsample{lname: name, c: c, h: h, w: w, f: factor}, nil
}

func (u *upsample) name() string            { return u.lname }
func (u *upsample) kind() string            { return LayerUpsample }
func (u *upsample) inWidth() int            { return u.c * u.h * u.w }
func (u *upsample) outWidth() int           { return u.c * u.h * u.f * u.w * u.f }
func (u *upsample) outShape() []int         { return []int{u.c, u.h * u.f, u.w * u.f} }
func (u *upsample) params() []*optim.Param  { return nil }
func (u *upsample) buffers() []*optim.Param { return nil }
func (u *upsample) alloc(rows int) {
	u.y = grow(u.y, rows*u.outWidth())
	u.dx = grow(u.dx, rows*u.inWidth())
}

// forward copies every input row of a plane f times across and the widened row f times down.
func (u *upsample) forward(_ *runCtx, x []float32, rows int) []float32 {
	f, w := u.f, u.w
	wo := w * f
	planes := rows * u.c
	in, out := u.h*w, u.h*f*wo
	y := u.y[:planes*out]
	for p := range planes {
		src, dst := x[p*in:(p+1)*in], y[p*out:(p+1)*out]
		for iy := range u.h {
			row := dst[iy*f*wo : iy*f*wo+wo]
			for ix, v := range src[iy*w : (iy+1)*w] {
				cell := row[ix*f : ix*f+f]
				for j := range cell {
					cell[j] = v
				}
			}
			for k := 1; k < f; k++ {
				copy(dst[(iy*f+k)*wo:(iy*f+k+1)*wo], row)
			}
		}
	}
	return y
}

// backward sums each f×f block of dy into its input cell, rows of the block in order (the
// same order for any batch split: deterministic).
func (u *upsample) backward(_ *runCtx, dy []float32, rows int, needDX bool) []float32 {
	if !needDX {
		return nil
	}
	f, w := u.f, u.w
	wo := w * f
	planes := rows * u.c
	in, out := u.h*w, u.h*f*wo
	dx := u.dx[:planes*in]
	for p := range planes {
		src, dst := dy[p*out:(p+1)*out], dx[p*in:(p+1)*in]
		for iy := range u.h {
			d := dst[iy*w : (iy+1)*w]
			clear(d)
			for k := range f {
				row := src[(iy*f+k)*wo : (iy*f+k+1)*wo]
				for ix := range d {
					var s float32
					for _, v := range row[ix*f : ix*f+f] {
						s += v
					}
					d[ix] += s
				}
			}
		}
	}
	return dx
}

// validateUpsample defaults and checks an upsample layer's factor.
func (l *LayerSpec) validateUpsample() error {
	if l.Factor == 0 {
		l.Factor = DefaultUpsampleFactor
	}
	if l.Factor < 1 {
		return fmt.Errorf("upsample factor %d must be >= 1 (the output is factor times the input's height and width)", l.Factor)
	}
	return nil
}

// buildUpsample builds an upsample layer on an image of shape [C, H, W] (nil: an error, as
// for every image layer).
func buildUpsample(ls LayerSpec, shape []int) (layer, error) {
	if shape == nil {
		return nil, fmt.Errorf("nn: layer %q (%s) needs an image input: set input_shape = [channels, height, width] on the model, and put image layers before any flatten, global_avg_pool or dense layer", ls.Name, ls.Type)
	}
	u, err := newUpsample(ls.Name, shape[0], shape[1], shape[2], ls.Factor)
	if err != nil {
		return nil, fmt.Errorf("nn: layer %q (%s) on a %d×%d×%d input: %w", ls.Name, ls.Type, shape[0], shape[1], shape[2], err)
	}
	return u, nil
}
