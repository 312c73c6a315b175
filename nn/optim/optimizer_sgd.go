package optim

import "github.com/pipe-ml/pipe/internal/sgemm/elementwise"

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
		// The elementwise kernels compute exactly the loops in their doc comments, rounding
		// every operation to float32 (AVX on amd64, bit-identical Go elsewhere).
		if o.momentum == 0 {
			elementwise.SGDUpdate(p.Value, p.Grad, plr, float32(wd))
			continue
		}
		elementwise.SGDMomentum(p.Value, p.Grad, s.bufs[0], plr, float32(wd), float32(o.momentum), o.nesterov)
	}
}

// MarshalState implements Optimizer.
func (o *SGD) MarshalState() ([]byte, error) { return o.state.marshal() }

// UnmarshalState implements Optimizer.
func (o *SGD) UnmarshalState(b []byte) error { return o.state.unmarshal(b) }
