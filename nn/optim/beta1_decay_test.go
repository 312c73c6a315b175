package optim

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// beta1Grads draws steps gradients for a 5-value param.
func beta1Grads(steps int) [][]float32 {
	rng := rand.New(rand.NewPCG(7, 7))
	g := make([][]float32, steps)
	for s := range g {
		g[s] = make([]float32, 5)
		for i := range g[s] {
			g[s][i] = float32(rng.NormFloat64())
		}
	}
	return g
}

// runAdam steps a fresh 5-value param through grads with cfg, in the decay phase from step
// decayFrom on (0-based; -1: never), and returns the optimizer and the param.
func runAdam(t *testing.T, cfg Config, grads [][]float32, decayFrom int) (Optimizer, *Param) {
	t.Helper()
	opt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &Param{Name: "w", Value: []float32{0.5, -1, 2, 0, 0.1}, Grad: make([]float32, 5)}
	for s, g := range grads {
		copy(p.Grad, g)
		if ph, ok := opt.(DecayPhaser); ok {
			ph.SetDecayPhase(decayFrom >= 0 && s >= decayFrom)
		}
		opt.Step([]*Param{p}, 0.01)
	}
	return opt, p
}

// TestAdamBeta1DecayMatchesClosedForm: with Beta1Decay = 0.5 and the decay phase from step 4
// on, Adam's weights follow an independent float64 computation of the rule (β1 = 0.9 for steps
// 1-4, 0.5 for steps 5-9; bias correction 1 - 0.9^t₁·0.5^t₂), and differ from plain Adam's by far
// more than the tolerance (so the test fails if the phase is ignored).
func TestAdamBeta1DecayMatchesClosedForm(t *testing.T) {
	const steps, decayFrom, lr = 9, 4, 0.01
	grads := beta1Grads(steps)
	_, got := runAdam(t, Config{Name: NameAdam, Beta1Decay: 0.5}, grads, decayFrom)
	_, plain := runAdam(t, Config{Name: NameAdam}, grads, -1)

	w := []float64{0.5, -1, 2, 0, 0.1}
	m, v := make([]float64, 5), make([]float64, 5)
	pow1 := 1.0 // the product of the β1 values used so far
	for s, g := range grads {
		beta1 := 0.9
		if s >= decayFrom {
			beta1 = 0.5
		}
		pow1 *= beta1
		bc1, bc2 := 1-pow1, 1-math.Pow(0.999, float64(s+1))
		for i := range w {
			gi := float64(g[i])
			m[i] = beta1*m[i] + (1-beta1)*gi
			v[i] = 0.999*v[i] + 0.001*gi*gi
			w[i] -= lr / bc1 * m[i] / (math.Sqrt(v[i])/math.Sqrt(bc2) + 1e-8)
		}
	}
	apart := 0.0
	for i := range w {
		if d := math.Abs(float64(got.Value[i]) - w[i]); d > 1e-5 {
			t.Errorf("w[%d] = %.8g, closed form %.8g", i, got.Value[i], w[i])
		}
		apart = max(apart, math.Abs(float64(plain.Value[i])-w[i]))
	}
	if apart < 1e-3 {
		t.Errorf("plain Adam ends within %.2g of the β1-decay closed form: the test cannot tell them apart", apart)
	}
}

// TestAdamBeta1DecayOutsideThePhaseIsPlainAdam: Beta1Decay set but never in the decay phase,
// and the phase set without Beta1Decay, both give plain Adam's weights bit for bit.
func TestAdamBeta1DecayOutsideThePhaseIsPlainAdam(t *testing.T) {
	grads := beta1Grads(12)
	_, plain := runAdam(t, Config{Name: NameAdam}, grads, -1)
	_, unused := runAdam(t, Config{Name: NameAdam, Beta1Decay: 0.5}, grads, -1)
	_, noKey := runAdam(t, Config{Name: NameAdamW}, grads, 0)
	_, plainW := runAdam(t, Config{Name: NameAdamW}, grads, -1)
	for i := range plain.Value {
		if math.Float32bits(plain.Value[i]) != math.Float32bits(unused.Value[i]) {
			t.Errorf("w[%d]: %v with an unused beta1_decay, %v plain", i, unused.Value[i], plain.Value[i])
		}
		if math.Float32bits(plainW.Value[i]) != math.Float32bits(noKey.Value[i]) {
			t.Errorf("w[%d]: adamw %v in the phase without beta1_decay, %v plain", i, noKey.Value[i], plainW.Value[i])
		}
	}
}

// TestAdamBeta1DecayStateResumes: the state saved in the decay phase holds the phase's step
// count, so a resumed optimizer continues bit for bit; a version-1 state (before the count
// existed) still reads, with the count at 0.
func TestAdamBeta1DecayStateResumes(t *testing.T) {
	cfg := Config{Name: NameAdam, Beta1Decay: 0.5}
	grads := beta1Grads(10)
	_, whole := runAdam(t, cfg, grads, 3)

	first, p := runAdam(t, cfg, grads[:6], 3)
	state, err := first.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	resumed, _ := New(cfg)
	if err := resumed.UnmarshalState(state); err != nil {
		t.Fatal(err)
	}
	for _, g := range grads[6:] {
		copy(p.Grad, g)
		resumed.(DecayPhaser).SetDecayPhase(true)
		resumed.Step([]*Param{p}, 0.01)
	}
	for i := range whole.Value {
		if math.Float32bits(whole.Value[i]) != math.Float32bits(p.Value[i]) {
			t.Errorf("w[%d]: resumed %v, uninterrupted %v", i, p.Value[i], whole.Value[i])
		}
	}

	// A version-1 state of plain Adam: the same bytes without the count.
	plain, _ := runAdam(t, Config{Name: NameAdam}, grads[:3], -1)
	v2, err := plain.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	tab := plain.(*Adam).state
	s := tab.byName["w"]
	w := &stateWriter{}
	w.string(stateMagic)
	w.uint64(1)
	w.string(tab.kind)
	w.int64(tab.steps)
	w.uint64(1)
	w.string("w")
	w.int64(s.step)
	w.uint64(uint64(len(s.bufs)))
	for _, b := range s.bufs {
		w.float32s(b)
	}
	old, _ := New(Config{Name: NameAdam})
	if err := old.UnmarshalState(w.b); err != nil {
		t.Fatalf("a version-1 state: %v", err)
	}
	again, err := old.MarshalState()
	if err != nil || !bytes.Equal(again, v2) {
		t.Fatalf("a version-1 state read back differs from the version-2 state of the same optimizer (err %v)", err)
	}
}

// TestBeta1DecayValidates: beta1_decay is a β1 (in [0, 1)) of adam and adamw only.
func TestBeta1DecayValidates(t *testing.T) {
	for _, cfg := range []Config{{Name: NameAdam, Beta1Decay: 1}, {Name: NameAdam, Beta1Decay: -0.5}, {Name: NameSGD, Beta1Decay: 0.5}, {Name: NameRMSProp, Beta1Decay: 0.5}, {Name: NameAdam, Beta1Decay: math.NaN()}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted beta1_decay %v", cfg, cfg.Beta1Decay)
		}
	}
	if _, err := New(Config{Name: NameAdamW, Beta1Decay: 0.5}); err != nil {
		t.Errorf("adamw with beta1_decay 0.5: %v", err)
	}
}
