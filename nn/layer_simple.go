package nn

import (
	"github.com/pipe-ml/pipe/nn/optim"
)

// activationLayer applies a standalone nonlinearity.
type activationLayer struct {
	lname string
	width int
	act   activation
	z, y  []float32
}

func (a *activationLayer) name() string            { return a.lname }
func (a *activationLayer) kind() string            { return LayerActivation }
func (a *activationLayer) inWidth() int            { return a.width }
func (a *activationLayer) outWidth() int           { return a.width }
func (a *activationLayer) params() []*optim.Param  { return nil }
func (a *activationLayer) buffers() []*optim.Param { return nil }
func (a *activationLayer) alloc(rows int) {
	a.y = grow(a.y, rows*a.width)
	if a.act.needsPreActivation() {
		a.z = grow(a.z, rows*a.width)
	}
}

func (a *activationLayer) forward(_ *runCtx, x []float32, rows int) []float32 {
	n := rows * a.width
	if a.z != nil {
		copy(a.z[:n], x[:n])
	}
	a.act.applyTo(a.y[:n], x[:n])
	return a.y[:n]
}

func (a *activationLayer) backward(_ *runCtx, dy []float32, rows int, needDX bool) []float32 {
	n := rows * a.width
	a.act.backwardInPlace(dy[:n], a.y[:n], a.z)
	return dy[:n]
}

// dropoutLayer is inverted dropout: in training each unit is zeroed with probability rate and
// the survivors are scaled by 1/(1−rate); in eval it is the identity.
type dropoutLayer struct {
	lname string
	width int
	rate  float64
	mask  []float32
	y     []float32
	used  bool // the last forward applied a mask
}

func (d *dropoutLayer) name() string            { return d.lname }
func (d *dropoutLayer) kind() string            { return LayerDropout }
func (d *dropoutLayer) inWidth() int            { return d.width }
func (d *dropoutLayer) outWidth() int           { return d.width }
func (d *dropoutLayer) params() []*optim.Param  { return nil }
func (d *dropoutLayer) buffers() []*optim.Param { return nil }
func (d *dropoutLayer) alloc(rows int) {
	d.mask = grow(d.mask, rows*d.width)
	d.y = grow(d.y, rows*d.width)
}

func (d *dropoutLayer) forward(rc *runCtx, x []float32, rows int) []float32 {
	n := rows * d.width
	d.used = rc.train && !rc.pass.NoNoise && d.rate > 0
	if !d.used {
		return x[:n]
	}
	keep := float32(1 / (1 - d.rate))
	mask, y := d.mask[:n], d.y[:n]
	x = x[:n]
	for i := range mask {
		if rc.rng.Float64() < d.rate {
			mask[i] = 0
		} else {
			mask[i] = keep
		}
		y[i] = x[i] * mask[i]
	}
	return y
}

func (d *dropoutLayer) backward(_ *runCtx, dy []float32, rows int, needDX bool) []float32 {
	n := rows * d.width
	dy = dy[:n]
	if d.used {
		mask := d.mask[:n]
		for i := range dy {
			dy[i] *= mask[i]
		}
	}
	return dy
}

// noiseLayer adds N(0, stddev²) noise in training; identity in eval.
type noiseLayer struct {
	lname  string
	width  int
	stddev float64
	y      []float32
}

func (g *noiseLayer) name() string            { return g.lname }
func (g *noiseLayer) kind() string            { return LayerGaussianNoise }
func (g *noiseLayer) inWidth() int            { return g.width }
func (g *noiseLayer) outWidth() int           { return g.width }
func (g *noiseLayer) params() []*optim.Param  { return nil }
func (g *noiseLayer) buffers() []*optim.Param { return nil }
func (g *noiseLayer) alloc(rows int)          { g.y = grow(g.y, rows*g.width) }

func (g *noiseLayer) forward(rc *runCtx, x []float32, rows int) []float32 {
	n := rows * g.width
	if !rc.train || rc.pass.NoNoise || g.stddev == 0 {
		return x[:n]
	}
	y := g.y[:n]
	for i, v := range x[:n] {
		y[i] = v + float32(rc.rng.NormFloat64()*g.stddev)
	}
	return y
}

func (g *noiseLayer) backward(_ *runCtx, dy []float32, rows int, needDX bool) []float32 {
	return dy[:rows*g.width]
}
