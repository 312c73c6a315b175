package optim

import "math"

// Adagrad scales each coordinate by the root of its accumulated squared gradients (Duchi,
// Hazan & Singer 2011), in PyTorch's formulation (torch.optim.Adagrad with lr_decay 0 and
// initial_accumulator_value 0; Keras starts the accumulator at 0.1 and uses eps 1e-7). Per
// element:
//
//	g = g + lambda*w              (skipped for NoDecay params)
//	s = s + g*g
//	w = w - lr*g/(sqrt(s) + eps)  (eps default 1e-10)
type Adagrad struct {
	eps, weightDecay float64
	state            stateTable
}

func newAdagrad(cfg Config) *Adagrad {
	return &Adagrad{
		eps:         orDefault(cfg.Eps, 1e-10),
		weightDecay: cfg.WeightDecay,
		state:       newStateTable(NameAdagrad, 1),
	}
}

// Name returns "adagrad".
func (o *Adagrad) Name() string { return NameAdagrad }

// Step implements Optimizer.
func (o *Adagrad) Step(params []*Param, lr float64) {
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
		adagradKernel(p.Value, p.Grad, s.bufs[0], float32(paramLR(p, lr)), float32(wd), float32(o.eps))
	}
}

func adagradKernel(w, g, sum []float32, lr, wd, eps float32) {
	g = g[:len(w)]
	sum = sum[:len(w)]
	for i := range w {
		gi := g[i] + wd*w[i]
		s := sum[i] + gi*gi
		sum[i] = s
		w[i] -= lr * gi / (float32(math.Sqrt(float64(s))) + eps)
	}
}

// MarshalState implements Optimizer.
func (o *Adagrad) MarshalState() ([]byte, error) { return o.state.marshal() }

// UnmarshalState implements Optimizer.
func (o *Adagrad) UnmarshalState(b []byte) error { return o.state.unmarshal(b) }
