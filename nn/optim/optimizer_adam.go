package optim

import (
	"math"

	"github.com/pipe-ml/pipe/internal/sgemm/elementwise"
)

// Adam is the adaptive moment estimator (Kingma & Ba 2015) with bias correction, and AdamW its
// variant with decoupled weight decay (Loshchilov & Hutter 2019), both in PyTorch's
// formulation (torch.optim.Adam / torch.optim.AdamW, amsgrad off). Per element, with t the
// param's own step count (starting at 1):
//
//	g = g + lambda*w                          (Adam with WeightDecay only: coupled L2)
//	w = w * (1 - lr*lambda)                   (AdamW only: decoupled decay)
//	m = beta1*m + (1-beta1)*g
//	v = beta2*v + (1-beta2)*g*g
//	w = w - lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
//
// With Beta1Decay set, the steps of the decay phase (SetDecayPhase) use beta1_decay in place of
// beta1, and the bias correction 1-beta1^t becomes 1 - beta1^(t-t2) * beta1_decay^t2, t2 being
// the param's steps in that phase (the product of the β1 values used, as TensorFlow computes it).
//
// Decay of either kind is skipped for NoDecay params. AdamW's decay is multiplied by the
// learning rate as in PyTorch (so it follows the schedule), with default lambda 0.01.
type Adam struct {
	beta1, beta2, eps, weightDecay float64
	// beta1Decay is β1 in the decay phase (0: no phase); decaying is whether Step is in it.
	beta1Decay float64
	decaying   bool
	decoupled  bool
	state      stateTable
}

// DecayPhaser is an optimizer whose coefficients change in the decay phase of the training
// schedule (Adam and AdamW with Config.Beta1Decay). The trainer calls SetDecayPhase before
// each Step; an optimizer without such a setting ignores it.
type DecayPhaser interface {
	SetDecayPhase(decaying bool)
}

// SetDecayPhase implements DecayPhaser: from the next Step on, β1 is Beta1Decay while decaying
// is true (when Beta1Decay is set), Beta1 otherwise.
func (o *Adam) SetDecayPhase(decaying bool) { o.decaying = decaying && o.beta1Decay != 0 }

func newAdam(cfg Config, decoupled bool) *Adam {
	name, wd := NameAdam, cfg.WeightDecay
	if decoupled {
		name, wd = NameAdamW, orDefault(cfg.WeightDecay, 0.01)
	}
	return &Adam{
		beta1:       orDefault(cfg.Beta1, 0.9),
		beta1Decay:  cfg.Beta1Decay,
		beta2:       orDefault(cfg.Beta2, 0.999),
		eps:         orDefault(cfg.Eps, 1e-8),
		weightDecay: wd,
		decoupled:   decoupled,
		state:       newStateTable(name, 2),
	}
}

// Name returns "adam" or "adamw".
func (o *Adam) Name() string { return o.state.kind }

// Step implements Optimizer.
func (o *Adam) Step(params []*Param, lr float64) {
	o.state.steps++
	for _, p := range params {
		if p.Frozen {
			continue
		}
		s := o.state.get(p)
		s.step++
		plr := paramLR(p, lr)
		var l2, decay float64
		if !p.NoDecay {
			if o.decoupled {
				decay = plr * o.weightDecay
			} else {
				l2 = o.weightDecay
			}
		}
		beta1 := o.beta1
		if o.decaying {
			beta1 = o.beta1Decay
			s.decaySteps++
		}
		t := float64(s.step)
		// With no decay-phase step this is 1 - beta1^t exactly (x * 1 is exact).
		bc1 := 1 - math.Pow(o.beta1, float64(s.step-s.decaySteps))*math.Pow(o.beta1Decay, float64(s.decaySteps))
		bc2 := 1 - math.Pow(o.beta2, t)
		// elementwise.AdamUpdate computes exactly the Go loop
		//	gi := g + l2*w; m = beta1*m + (1-beta1)*gi; v = beta2*v + (1-beta2)*gi*gi
		//	w = (w - w*decay) - stepSize*m / (sqrt(v)*invSqrtBC2 + eps)
		// rounding every operation to float32 (AVX on amd64, bit-identical Go elsewhere).
		// decay is AdamW's lr*lambda: w - w*decay rather than w*(1-decay), whose float32
		// factor would round away most of a decay of ~1e-5.
		elementwise.AdamUpdate(p.Value, p.Grad, s.bufs[0], s.bufs[1], elementwise.AdamScalars{
			StepSize:      float32(plr / bc1),
			InvSqrtBC2:    float32(1 / math.Sqrt(bc2)),
			Beta1:         float32(beta1),
			Beta2:         float32(o.beta2),
			OneMinusBeta1: float32(1 - beta1),
			OneMinusBeta2: float32(1 - o.beta2),
			Eps:           float32(o.eps),
			L2:            float32(l2),
			Decay:         float32(decay),
		})
	}
}

// MarshalState implements Optimizer.
func (o *Adam) MarshalState() ([]byte, error) { return o.state.marshal() }

// UnmarshalState implements Optimizer.
func (o *Adam) UnmarshalState(b []byte) error { return o.state.unmarshal(b) }
