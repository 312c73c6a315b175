package optim

import (
	"math"
	"math/rand/v2"
	"testing"
)

// scalarStep is the float32 update of SGD and Adam/AdamW one element at a time, in the
// operation order the optimizers document and have always used (every product rounded to
// float32 before the next operation: the conversions forbid fused multiply-adds). The
// optimizers run vectorised kernels; they must agree with this loop bit for bit, so that a
// checkpoint resumes identically and results do not depend on the machine.
func scalarStep(cfg Config, p *Param, bufs [][]float32, t int, lr float64) {
	plr := paramLR(p, lr)
	w, g := p.Value, p.Grad
	switch cfg.Name {
	case NameSGD:
		wd := float32(cfg.WeightDecay)
		if p.NoDecay {
			wd = 0
		}
		lr32, mu := float32(plr), float32(cfg.Momentum)
		for i := range w {
			switch {
			case mu == 0 && wd == 0:
				w[i] -= float32(lr32 * g[i])
			case mu == 0:
				w[i] -= float32(lr32 * (g[i] + float32(wd*w[i])))
			default:
				gi := g[i] + float32(wd*w[i])
				b := float32(mu*bufs[0][i]) + gi
				bufs[0][i] = b
				d := b
				if cfg.Nesterov {
					d = gi + float32(mu*b)
				}
				w[i] -= float32(lr32 * d)
			}
		}
	case NameAdam, NameAdamW:
		beta1, beta2, eps := orDefault(cfg.Beta1, 0.9), orDefault(cfg.Beta2, 0.999), orDefault(cfg.Eps, 1e-8)
		var l2, decay float32
		if !p.NoDecay {
			if cfg.Name == NameAdamW {
				decay = float32(plr * orDefault(cfg.WeightDecay, 0.01))
			} else {
				l2 = float32(cfg.WeightDecay)
			}
		}
		stepSize := float32(plr / (1 - math.Pow(beta1, float64(t))))
		invSqrtBC2 := float32(1 / math.Sqrt(1-math.Pow(beta2, float64(t))))
		b1, b2, omb1, omb2, eps32 := float32(beta1), float32(beta2), float32(1-beta1), float32(1-beta2), float32(eps)
		m, v := bufs[0], bufs[1]
		for i, wi := range w {
			gi := g[i] + float32(l2*wi)
			mi := float32(b1*m[i]) + float32(omb1*gi)
			vi := float32(b2*v[i]) + float32(float32(omb2*gi)*gi)
			m[i], v[i] = mi, vi
			denom := float32(float32(math.Sqrt(float64(vi)))*invSqrtBC2) + eps32
			w[i] = (wi - float32(wi*decay)) - float32(stepSize*mi)/denom
		}
	default:
		panic("scalarStep: " + cfg.Name)
	}
}

func TestStepIsBitExactScalarLoop(t *testing.T) {
	configs := []Config{
		{Name: "sgd"},
		{Name: "sgd", WeightDecay: 0.05},
		{Name: "sgd", Momentum: 0.9},
		{Name: "sgd", Momentum: 0.9, WeightDecay: 0.01},
		{Name: "sgd", Momentum: 0.8, Nesterov: true, WeightDecay: 0.1},
		{Name: "adam"},
		{Name: "adam", WeightDecay: 0.1, Beta1: 0.8, Beta2: 0.99},
		{Name: "adamw"},
		{Name: "adamw", WeightDecay: 0.3, Eps: 1e-6},
	}
	for _, cfg := range configs {
		t.Run(configName(cfg), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 12))
			opt, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// Lengths off a multiple of 8 so the vector loops and their scalar tails both run.
			params := []*Param{
				{Name: "dense/W", Value: make([]float32, 1003), Grad: make([]float32, 1003)},
				{Name: "dense/b", Value: make([]float32, 37), Grad: make([]float32, 37), NoDecay: true},
				{Name: "head/W", Value: make([]float32, 64), Grad: make([]float32, 64), LRScale: 0.5},
			}
			ref := make([]*Param, len(params))
			refBufs := make([][][]float32, len(params))
			for i, p := range params {
				for j := range p.Value {
					p.Value[j] = float32(rng.NormFloat64())
				}
				ref[i] = &Param{Name: p.Name, Value: append([]float32(nil), p.Value...), Grad: p.Grad, NoDecay: p.NoDecay, LRScale: p.LRScale}
				refBufs[i] = [][]float32{make([]float32, len(p.Value)), make([]float32, len(p.Value))}
			}
			for step := 1; step <= 5; step++ {
				fillGrads(rng, params, nil)
				lr := 0.03 * (1 + 0.2*float64(step))
				opt.Step(params, lr)
				for i, p := range ref {
					scalarStep(cfg, p, refBufs[i], step, lr)
				}
				for i, p := range params {
					for j, v := range p.Value {
						if want := ref[i].Value[j]; math.Float32bits(v) != math.Float32bits(want) {
							t.Fatalf("step %d, %s[%d] = %v, scalar loop %v", step, p.Name, j, v, want)
						}
					}
				}
			}
		})
	}
}
