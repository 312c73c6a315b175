package nn

import (
	"math"

	"github.com/pipe-ml/pipe/nn/optim"
)

// batchNorm normalises every feature over the batch in training (and updates running
// statistics), and with the running statistics in eval: y = γ·(x−μ)/√(σ²+eps) + β.
// Running variance uses the unbiased batch variance, as in PyTorch. On an image (plane > 1)
// a feature is a channel: its statistics are over the batch and the channel's H×W plane
// (width channels of plane values each per row), as BatchNorm2d does. With noScale, γ stays
// 1 and is not a param (LayerSpec.NoScale).
type batchNorm struct {
	lname       string
	width       int // features (channels)
	plane       int // values per feature per row: 1, or H·W on an image
	momentum    float64
	eps         float64
	noScale     bool
	gamma, beta *optim.Param
	runMean     *optim.Param // buffers
	runVar      *optim.Param

	xhat, y []float32
	invStd  []float64
	mean    []float64
	acc     []float64
	acc2    []float64
	train   bool
}

func (b *batchNorm) name() string  { return b.lname }
func (b *batchNorm) kind() string  { return LayerBatchNorm }
func (b *batchNorm) inWidth() int  { return b.width * b.plane }
func (b *batchNorm) outWidth() int { return b.width * b.plane }
func (b *batchNorm) params() []*optim.Param {
	if b.noScale {
		return []*optim.Param{b.beta}
	}
	return []*optim.Param{b.gamma, b.beta}
}
func (b *batchNorm) buffers() []*optim.Param { return []*optim.Param{b.runMean, b.runVar} }
func (b *batchNorm) alloc(rows int) {
	b.xhat = grow(b.xhat, rows*b.outWidth())
	b.y = grow(b.y, rows*b.outWidth())
	if b.invStd == nil {
		b.invStd = make([]float64, b.width)
		b.mean = make([]float64, b.width)
		b.acc = make([]float64, b.width)
		b.acc2 = make([]float64, b.width)
	}
}

func newBatchNorm(name string, width int, momentum, eps float64) *batchNorm {
	b := &batchNorm{lname: name, width: width, plane: 1, momentum: momentum, eps: eps,
		gamma: newParam(name+"/gamma", true, width), beta: newParam(name+"/beta", true, width),
		runMean: newParam(name+"/running_mean", true, width), runVar: newParam(name+"/running_var", true, width)}
	if b.momentum == 0 {
		b.momentum = 0.1
	}
	if b.eps == 0 {
		b.eps = 1e-5
	}
	for i := range b.gamma.Value {
		b.gamma.Value[i] = 1
		b.runVar.Value[i] = 1
	}
	b.runMean.Frozen, b.runVar.Frozen = true, true
	return b
}

func (b *batchNorm) forward(rc *runCtx, x []float32, rows int) []float32 {
	n, pl := b.width, b.plane
	w := n * pl
	x = x[:rows*w]
	b.train = rc.train
	if rc.train {
		cnt := rows * pl // values per feature in the batch
		acc, acc2, mean := b.acc[:n], b.acc2[:n], b.mean[:n]
		clear(acc)
		clear(acc2)
		if pl == 1 {
			// A dense layer's: one value per feature and row (the same sums, in row order).
			for r := 0; r < rows; r++ {
				for j, v := range x[r*n : (r+1)*n] {
					acc[j] += float64(v)
				}
			}
			for j := range mean {
				mean[j] = acc[j] / float64(cnt)
			}
			for r := 0; r < rows; r++ {
				for j, v := range x[r*n : (r+1)*n] {
					d := float64(v) - mean[j]
					acc2[j] += d * d
				}
			}
		} else {
			for r := 0; r < rows; r++ {
				for j := 0; j < n; j++ {
					for _, v := range x[r*w+j*pl : r*w+(j+1)*pl] {
						acc[j] += float64(v)
					}
				}
			}
			for j := range mean {
				mean[j] = acc[j] / float64(cnt)
			}
			for r := 0; r < rows; r++ {
				for j := 0; j < n; j++ {
					for _, v := range x[r*w+j*pl : r*w+(j+1)*pl] {
						d := float64(v) - mean[j]
						acc2[j] += d * d
					}
				}
			}
		}
		m := b.momentum
		if rc.pass.StatsMomentum > 0 {
			m = rc.pass.StatsMomentum
		}
		if rc.pass.KeepRunningStats || cnt < 2 {
			// A single value per feature (a one-row last batch of a dense layer) has no
			// variance to estimate: recording its 0 would pull the running variance, which
			// inference divides by, towards zero. Such a batch leaves the statistics alone.
			m = 0
		}
		for j := range b.invStd {
			v := b.acc2[j] / float64(cnt)
			b.invStd[j] = 1 / math.Sqrt(v+b.eps)
			unbiased := v
			if cnt > 1 {
				unbiased = b.acc2[j] / float64(cnt-1)
			}
			b.runMean.Value[j] = float32((1-m)*float64(b.runMean.Value[j]) + m*b.mean[j])
			b.runVar.Value[j] = float32((1-m)*float64(b.runVar.Value[j]) + m*unbiased)
		}
	} else {
		for j := range b.invStd {
			b.mean[j] = float64(b.runMean.Value[j])
			b.invStd[j] = 1 / math.Sqrt(float64(b.runVar.Value[j])+b.eps)
		}
	}
	xhat, y := b.xhat[:rows*w], b.y[:rows*w]
	g, be := b.gamma.Value, b.beta.Value
	if pl == 1 {
		mean, inv := b.mean[:n], b.invStd[:n]
		g, be = g[:n], be[:n]
		for r := 0; r < rows; r++ {
			xr, hr, yr := x[r*n:(r+1)*n], xhat[r*n:(r+1)*n], y[r*n:(r+1)*n]
			for j, v := range xr {
				h := float32((float64(v) - mean[j]) * inv[j])
				hr[j] = h
				yr[j] = g[j]*h + be[j]
			}
		}
		return y
	}
	for r := 0; r < rows; r++ {
		for j := 0; j < n; j++ {
			for k := r*w + j*pl; k < r*w+(j+1)*pl; k++ {
				h := float32((float64(x[k]) - b.mean[j]) * b.invStd[j])
				xhat[k] = h
				y[k] = g[j]*h + be[j]
			}
		}
	}
	return y
}

func (b *batchNorm) backward(_ *runCtx, dy []float32, rows int, needDX bool) []float32 {
	n, pl := b.width, b.plane
	w := n * pl
	dy = dy[:rows*w]
	xhat := b.xhat[:rows*w]
	sumDy, sumDyX := b.acc, b.acc2
	clear(sumDy)
	clear(sumDyX)
	if pl == 1 {
		sumDy, sumDyX = sumDy[:n], sumDyX[:n]
		for r := 0; r < rows; r++ {
			hr := xhat[r*n : (r+1)*n]
			for j, v := range dy[r*n : (r+1)*n] {
				d := float64(v)
				sumDy[j] += d
				sumDyX[j] += d * float64(hr[j])
			}
		}
	} else {
		for r := 0; r < rows; r++ {
			for j := 0; j < n; j++ {
				for k := r*w + j*pl; k < r*w+(j+1)*pl; k++ {
					d := float64(dy[k])
					sumDy[j] += d
					sumDyX[j] += d * float64(xhat[k])
				}
			}
		}
	}
	if !b.gamma.Frozen && !b.noScale {
		for j := 0; j < n; j++ {
			b.gamma.Grad[j] = float32(sumDyX[j])
		}
	}
	if !b.beta.Frozen {
		for j := 0; j < n; j++ {
			b.beta.Grad[j] = float32(sumDy[j])
		}
	}
	if !needDX {
		return nil
	}
	g := b.gamma.Value
	if !b.train {
		// Eval-mode statistics are constants: dx = dy·γ/σ.
		for r := 0; r < rows; r++ {
			for j := 0; j < n; j++ {
				for k := r*w + j*pl; k < r*w+(j+1)*pl; k++ {
					dy[k] = float32(float64(dy[k]) * float64(g[j]) * b.invStd[j])
				}
			}
		}
		return dy
	}
	fr := float64(rows * pl)
	// dx = γ/(N·σ)·(N·dy − Σdy − x̂·Σdy·x̂), written into dy (N values per feature).
	if pl == 1 {
		inv := b.invStd[:n]
		g = g[:n]
		for r := 0; r < rows; r++ {
			hr, dr := xhat[r*n:(r+1)*n], dy[r*n:(r+1)*n]
			for j, d := range dr {
				dr[j] = float32(float64(g[j]) * inv[j] / fr * (fr*float64(d) - sumDy[j] - float64(hr[j])*sumDyX[j]))
			}
		}
		return dy
	}
	for r := 0; r < rows; r++ {
		for j := 0; j < n; j++ {
			for k := r*w + j*pl; k < r*w+(j+1)*pl; k++ {
				v := float64(g[j]) * b.invStd[j] / fr * (fr*float64(dy[k]) - sumDy[j] - float64(xhat[k])*sumDyX[j])
				dy[k] = float32(v)
			}
		}
	}
	return dy
}

// layerNorm normalises every row over its features: y = γ·(x−μ_row)/√(σ²_row+eps) + β.
type layerNorm struct {
	lname       string
	width       int
	eps         float64
	gamma, beta *optim.Param
	xhat, y     []float32
	invStd      []float64
	acc, acc2   []float64
}

func newLayerNorm(name string, width int, eps float64) *layerNorm {
	l := &layerNorm{lname: name, width: width, eps: eps,
		gamma: newParam(name+"/gamma", true, width), beta: newParam(name+"/beta", true, width)}
	if l.eps == 0 {
		l.eps = 1e-5
	}
	for i := range l.gamma.Value {
		l.gamma.Value[i] = 1
	}
	return l
}

func (l *layerNorm) name() string            { return l.lname }
func (l *layerNorm) kind() string            { return LayerLayerNorm }
func (l *layerNorm) inWidth() int            { return l.width }
func (l *layerNorm) outWidth() int           { return l.width }
func (l *layerNorm) params() []*optim.Param  { return []*optim.Param{l.gamma, l.beta} }
func (l *layerNorm) buffers() []*optim.Param { return nil }
func (l *layerNorm) alloc(rows int) {
	l.xhat = grow(l.xhat, rows*l.width)
	l.y = grow(l.y, rows*l.width)
	if cap(l.invStd) < rows {
		l.invStd = make([]float64, rows)
	}
	if l.acc == nil {
		l.acc = make([]float64, l.width)
		l.acc2 = make([]float64, l.width)
	}
}

func (l *layerNorm) forward(_ *runCtx, x []float32, rows int) []float32 {
	n := l.width
	g, be := l.gamma.Value, l.beta.Value
	for r := 0; r < rows; r++ {
		row := x[r*n : r*n+n]
		var s float64
		for _, v := range row {
			s += float64(v)
		}
		mean := s / float64(n)
		var ss float64
		for _, v := range row {
			d := float64(v) - mean
			ss += d * d
		}
		inv := 1 / math.Sqrt(ss/float64(n)+l.eps)
		l.invStd[r] = inv
		xh, y := l.xhat[r*n:r*n+n], l.y[r*n:r*n+n]
		for j, v := range row {
			h := float32((float64(v) - mean) * inv)
			xh[j] = h
			y[j] = g[j]*h + be[j]
		}
	}
	return l.y[:rows*n]
}

func (l *layerNorm) backward(_ *runCtx, dy []float32, rows int, needDX bool) []float32 {
	n := l.width
	g := l.gamma.Value
	clear(l.acc)
	clear(l.acc2)
	for r := 0; r < rows; r++ {
		d, xh := dy[r*n:r*n+n], l.xhat[r*n:r*n+n]
		for j := range d {
			l.acc[j] += float64(d[j]) * float64(xh[j])
			l.acc2[j] += float64(d[j])
		}
	}
	if !l.gamma.Frozen {
		for j := range l.acc {
			l.gamma.Grad[j] = float32(l.acc[j])
		}
	}
	if !l.beta.Frozen {
		for j := range l.acc2 {
			l.beta.Grad[j] = float32(l.acc2[j])
		}
	}
	if !needDX {
		return nil
	}
	// dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·γ, written into dy.
	for r := 0; r < rows; r++ {
		d, xh := dy[r*n:r*n+n], l.xhat[r*n:r*n+n]
		var m1, m2 float64
		for j := range d {
			gh := float64(d[j]) * float64(g[j])
			m1 += gh
			m2 += gh * float64(xh[j])
		}
		m1 /= float64(n)
		m2 /= float64(n)
		inv := l.invStd[r]
		for j := range d {
			gh := float64(d[j]) * float64(g[j])
			d[j] = float32(inv * (gh - m1 - float64(xh[j])*m2))
		}
	}
	return dy[:rows*n]
}
