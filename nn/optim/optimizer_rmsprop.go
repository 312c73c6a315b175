package optim

import "math"

// RMSProp divides the gradient by a running root-mean-square of recent gradients (Hinton's
// lecture 6e), in PyTorch's formulation (torch.optim.RMSprop). Per element, with rho the decay
// (Config.Rho, default 0.9 as Keras), mu the momentum and lambda the coupled L2 coefficient:
//
//	g  = g + lambda*w                     (skipped for NoDecay params)
//	s  = rho*s + (1-rho)*g*g              (s starts at 0)
//	a  = rho*a + (1-rho)*g                (Centered only; a starts at 0)
//	r  = sqrt(s - a*a) + eps  if Centered, else sqrt(s) + eps
//	b  = mu*b + g/r;  w = w - lr*b        if mu > 0
//	w  = w - lr*g/r                       otherwise
//
// eps is outside the square root, as in both PyTorch and Keras.
type RMSProp struct {
	rho, eps, momentum, weightDecay float64
	centered                        bool
	state                           stateTable
}

func newRMSProp(cfg Config) *RMSProp {
	o := &RMSProp{
		rho:         orDefault(cfg.Rho, 0.9),
		eps:         orDefault(cfg.Eps, 1e-8),
		momentum:    cfg.Momentum,
		weightDecay: cfg.WeightDecay,
		centered:    cfg.Centered,
	}
	nbufs := 1
	if o.centered {
		nbufs++
	}
	if o.momentum != 0 {
		nbufs++
	}
	o.state = newStateTable(NameRMSProp, nbufs)
	return o
}

// Name returns "rmsprop".
func (o *RMSProp) Name() string { return NameRMSProp }

// Step implements Optimizer.
func (o *RMSProp) Step(params []*Param, lr float64) {
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
		sq := s.bufs[0]
		next := 1
		var avg, mom []float32
		if o.centered {
			avg = s.bufs[next]
			next++
		}
		if o.momentum != 0 {
			mom = s.bufs[next]
		}
		rmspropKernel(p.Value, p.Grad, sq, avg, mom, float32(paramLR(p, lr)), float32(wd),
			float32(o.rho), float32(o.eps), float32(o.momentum))
	}
}

// rmspropKernel updates w; avg is nil unless centered, mom is nil unless momentum is used.
func rmspropKernel(w, g, sq, avg, mom []float32, lr, wd, rho, eps, mu float32) {
	g = g[:len(w)]
	sq = sq[:len(w)]
	oneMinusRho := 1 - rho
	if avg != nil {
		avg = avg[:len(w)]
	}
	if mom != nil {
		mom = mom[:len(w)]
	}
	for i := range w {
		gi := g[i] + wd*w[i]
		s := rho*sq[i] + oneMinusRho*gi*gi
		sq[i] = s
		if avg != nil {
			a := rho*avg[i] + oneMinusRho*gi
			avg[i] = a
			s -= a * a
		}
		r := float32(math.Sqrt(float64(s))) + eps
		if mom != nil {
			b := mu*mom[i] + gi/r
			mom[i] = b
			w[i] -= lr * b
		} else {
			w[i] -= lr * gi / r
		}
	}
}

// MarshalState implements Optimizer.
func (o *RMSProp) MarshalState() ([]byte, error) { return o.state.marshal() }

// UnmarshalState implements Optimizer.
func (o *RMSProp) UnmarshalState(b []byte) error { return o.state.unmarshal(b) }
