package optim

// SGD is stochastic gradient descent with optional momentum and Nesterov momentum, in
// PyTorch's formulation (torch.optim.SGD with dampening 0). Per element, with g the gradient,
// w the weight, mu the momentum, lambda the coupled L2 coefficient and lr the learning rate:
//
//	g = g + lambda*w                    (skipped for NoDecay params)
//	b = mu*b + g                        (b starts at 0, so the first b is g, as PyTorch)
//	d = g + mu*b  if Nesterov, else b   (d = g when mu == 0)
//	w = w - lr*d
//
// PyTorch's momentum differs from Sutskever's/Keras's (v = mu*v - lr*g; w += v) only when lr
// changes between steps: here the buffer holds gradients, not lr-scaled velocities.
type SGD struct {
	momentum, weightDecay float64
	nesterov              bool
	state                 stateTable
}

func newSGD(cfg Config) *SGD {
	nbufs := 0
	if cfg.Momentum != 0 {
		nbufs = 1
	}
	return &SGD{
		momentum:    cfg.Momentum,
		weightDecay: cfg.WeightDecay,
		nesterov:    cfg.Nesterov,
		state:       newStateTable(NameSGD, nbufs),
	}
}

// Name returns "sgd".
func (o *SGD) Name() string { return NameSGD }

// Step implements Optimizer.
func (o *SGD) Step(params []*Param, lr float64) {
	o.state.steps++
	for _, p := range params {
		if p.Frozen {
			continue
		}
		s := o.state.get(p)
		s.step++
		wd := o.weightDecay
		if p.NoDecay {
			wd = 0
		}
		plr := float32(paramLR(p, lr))
		if o.momentum == 0 {
			sgdPlainKernel(p.Value, p.Grad, plr, float32(wd))
			continue
		}
		sgdMomentumKernel(p.Value, p.Grad, s.bufs[0], plr, float32(wd), float32(o.momentum), o.nesterov)
	}
}

func sgdPlainKernel(w, g []float32, lr, wd float32) {
	g = g[:len(w)]
	if wd == 0 {
		for i := range w {
			w[i] -= lr * g[i]
		}
		return
	}
	for i := range w {
		w[i] -= lr * (g[i] + wd*w[i])
	}
}

func sgdMomentumKernel(w, g, buf []float32, lr, wd, mu float32, nesterov bool) {
	g = g[:len(w)]
	buf = buf[:len(w)]
	if nesterov {
		for i := range w {
			gi := g[i] + wd*w[i]
			b := mu*buf[i] + gi
			buf[i] = b
			w[i] -= lr * (gi + mu*b)
		}
		return
	}
	for i := range w {
		gi := g[i] + wd*w[i]
		b := mu*buf[i] + gi
		buf[i] = b
		w[i] -= lr * b
	}
}

// MarshalState implements Optimizer.
func (o *SGD) MarshalState() ([]byte, error) { return o.state.marshal() }

// UnmarshalState implements Optimizer.
func (o *SGD) UnmarshalState(b []byte) error { return o.state.unmarshal(b) }
