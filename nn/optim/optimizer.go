package optim

import (
	"fmt"
	"math"
	"strings"
)

// Optimizer updates params in place from their gradients.
//
// An Optimizer is not safe for concurrent use.
type Optimizer interface {
	// Name is "sgd", "rmsprop", "adam", "adamw" or "adagrad".
	Name() string
	// Step applies one update to every param that is not Frozen, from p.Grad, at learning rate
	// lr (times p.LRScale when that is non-zero). It does not zero Grad. Coupled L2
	// (WeightDecay for non-AdamW optimizers) and decoupled decay (AdamW) skip params marked
	// NoDecay.
	//
	// State buffers are allocated the first time a param name is seen; later Steps do not
	// allocate. Step panics if len(p.Grad) != len(p.Value), or if a name it has state for
	// comes back with another size: both are broken invariants of the caller's model.
	Step(params []*Param, lr float64)
	// MarshalState and UnmarshalState save and restore the complete state (step counts, moment
	// buffers keyed by param name) bit-exactly, for checkpoints. UnmarshalState replaces the
	// whole state; it fails when the bytes were written by another kind of optimizer. The
	// hyper-parameters are not part of the state: they come from the Config.
	MarshalState() ([]byte, error)
	UnmarshalState(b []byte) error
}

// Optimizer names accepted by Config.Name.
const (
	NameSGD     = "sgd"
	NameRMSProp = "rmsprop"
	NameAdam    = "adam"
	NameAdamW   = "adamw"
	NameAdagrad = "adagrad"
)

var optimizerNames = []string{NameSGD, NameRMSProp, NameAdam, NameAdamW, NameAdagrad, NameSVRG}

// Config selects an optimizer. Every zero field means that optimizer's documented default, so
// a zero Config is Adam with PyTorch's defaults. Because zero means "default", a coefficient
// whose default is non-zero (Beta1, Beta2, Rho, Eps, AdamW's WeightDecay) cannot be set to
// exactly zero; use another optimizer instead (e.g. "adam" for AdamW without decay).
type Config struct {
	// Name is "sgd" | "rmsprop" | "adam" | "adamw" | "adagrad" | "svrg" (any case); "" means
	// "adam". svrg wraps the Inner optimizer, to which the other fields apply (see SVRG).
	Name string
	// LR is the base learning rate; 0 means DefaultLR(). The optimizer itself uses the lr
	// passed to Step (the trainer derives it from LR through a Schedule).
	LR float64
	// Momentum is used by sgd (default 0, as PyTorch; Keras also 0) and rmsprop (default 0, as
	// PyTorch and Keras).
	Momentum float64
	// Nesterov selects Nesterov momentum for sgd only (PyTorch's formulation, see SGD).
	Nesterov bool
	// Beta1 is adam/adamw's first-moment decay, default 0.9 (PyTorch and Keras).
	Beta1 float64
	// Beta1Decay, when non-zero, is adam/adamw's first-moment decay in the decay phase of the
	// training schedule, in place of Beta1: the trainer calls SetDecayPhase(true) on each
	// step of the linear schedule's epochs from DecayStart on. The VAT authors (Miyato et al.
	// 2018) lower β1 from 0.9 to 0.5 there. Bias correction uses the product of the β1 values
	// each param's steps used, 1 - β1^t₁·β1_decay^t₂, as TensorFlow's Adam does with a β1 that
	// changes (its beta1_power accumulator). Default 0: off.
	Beta1Decay float64
	// Beta2 is adam/adamw's second-moment decay, default 0.999 (PyTorch and Keras).
	Beta2 float64
	// Eps is added to the denominator. Defaults: adam/adamw 1e-8 (PyTorch; Keras uses 1e-7),
	// rmsprop 1e-8 (PyTorch; Keras uses 1e-7 — we keep PyTorch's value for all optimizers so
	// that results match the reference most users compare against), adagrad 1e-10 (PyTorch).
	Eps float64
	// Rho is rmsprop's squared-gradient decay, default 0.9 (Keras; PyTorch's alpha defaults to
	// 0.99).
	Rho float64
	// Centered makes rmsprop normalise by the estimated variance of the gradient instead of
	// its uncentered second moment (PyTorch centered=True, Keras centered=True). Default false.
	Centered bool
	// WeightDecay is, for adamw, the decoupled decay coefficient (default 0.01, as PyTorch;
	// each step multiplies the weights by 1 - lr*WeightDecay). For the other optimizers it is a
	// coupled L2 penalty added to the gradient, g += WeightDecay*w (default 0, as PyTorch).
	WeightDecay float64
	// Inner is svrg's inner optimizer (default "sgd"); only with svrg.
	Inner string
	// SnapshotEpochs is svrg's period: a new snapshot and full gradient every this many
	// epochs (default 1); only with svrg.
	SnapshotEpochs int
}

// DefaultLR is the learning rate used when LR is zero: sgd 0.01 (Keras), rmsprop 0.001
// (Keras), adam 0.001 and adamw 0.001 (PyTorch and Keras), adagrad 0.01 (PyTorch). An
// unknown name gives 0.
func (c Config) DefaultLR() float64 {
	name := c.name()
	if name == NameSVRG {
		name = strings.ToLower(c.Inner)
		if name == "" {
			name = NameSGD
		}
	}
	switch name {
	case NameSGD, NameAdagrad:
		return 0.01
	case NameRMSProp, NameAdam, NameAdamW:
		return 0.001
	}
	return 0
}

// EffectiveLR is c.LR, or DefaultLR() when LR is zero.
func (c Config) EffectiveLR() float64 {
	if c.LR != 0 {
		return c.LR
	}
	return c.DefaultLR()
}

func (c Config) name() string {
	if c.Name == "" {
		return NameAdam
	}
	return strings.ToLower(c.Name)
}

// New returns the optimizer selected by cfg with its defaults filled in. It fails on an unknown
// name (the error lists the valid ones) and on out-of-range coefficients.
func New(cfg Config) (Optimizer, error) {
	name := cfg.name()
	if err := cfg.validate(name); err != nil {
		return nil, fmt.Errorf("optim: %s: %w", name, err)
	}
	switch name {
	case NameSGD:
		return newSGD(cfg), nil
	case NameRMSProp:
		return newRMSProp(cfg), nil
	case NameAdam, NameAdamW:
		return newAdam(cfg, name == NameAdamW), nil
	case NameAdagrad:
		return newAdagrad(cfg), nil
	case NameSVRG:
		o, err := newSVRG(cfg)
		if err != nil {
			return nil, fmt.Errorf("optim: svrg: %w", err)
		}
		return o, nil
	}
	return nil, fmt.Errorf("optim: unknown optimizer %q (valid: %s)", cfg.Name, strings.Join(optimizerNames, ", "))
}

func (c Config) validate(name string) error {
	finite := func(field string, v float64) error {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%s is %v, want a finite number", field, v)
		}
		return nil
	}
	for _, f := range []struct {
		field string
		v     float64
	}{{"LR", c.LR}, {"Momentum", c.Momentum}, {"Beta1", c.Beta1}, {"Beta1Decay", c.Beta1Decay}, {"Beta2", c.Beta2}, {"Eps", c.Eps}, {"Rho", c.Rho}, {"WeightDecay", c.WeightDecay}} {
		if err := finite(f.field, f.v); err != nil {
			return err
		}
		if f.v < 0 {
			return fmt.Errorf("%s is %v, want >= 0 (0 means the default)", f.field, f.v)
		}
	}
	for _, f := range []struct {
		field string
		v     float64
	}{{"Momentum", c.Momentum}, {"Beta1", c.Beta1}, {"Beta1Decay", c.Beta1Decay}, {"Beta2", c.Beta2}, {"Rho", c.Rho}} {
		if f.v >= 1 {
			return fmt.Errorf("%s is %v, want < 1", f.field, f.v)
		}
	}
	if c.Beta1Decay != 0 && name != NameAdam && name != NameAdamW {
		return fmt.Errorf("Beta1Decay applies to adam and adamw only (the optimizer is %q)", name)
	}
	if name != NameSVRG && (c.Inner != "" || c.SnapshotEpochs != 0) {
		return fmt.Errorf("inner and snapshot_epochs apply to svrg only")
	}
	if c.SnapshotEpochs < 0 {
		return fmt.Errorf("SnapshotEpochs is %d, want >= 1 (0 means the default, 1)", c.SnapshotEpochs)
	}
	if name == NameSVRG {
		return nil // the inner optimizer's New checks the rest
	}
	if c.Nesterov && name != NameSGD {
		return fmt.Errorf("nesterov applies to sgd only")
	}
	if c.Nesterov && c.Momentum == 0 {
		return fmt.Errorf("nesterov needs momentum > 0 (as in PyTorch)")
	}
	if c.Centered && name != NameRMSProp {
		return fmt.Errorf("centered applies to rmsprop only")
	}
	return nil
}

// orDefault returns v, or def when v is zero.
func orDefault(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// paramLR is lr times p.LRScale (zero LRScale means 1).
func paramLR(p *Param, lr float64) float64 {
	if p.LRScale != 0 {
		return lr * float64(p.LRScale)
	}
	return lr
}

// paramState is the per-param state of an optimizer: its own step count (a param that was
// frozen for a while has taken fewer steps) and the optimizer's buffers, each len(Value) long.
type paramState struct {
	step int64
	// decaySteps counts the steps of step taken in the decay phase (Adam with Beta1Decay:
	// those used beta1_decay as β1).
	decaySteps int64
	bufs       [][]float32
}

// stateTable keys the per-param state by Param.Name.
type stateTable struct {
	kind   string // the optimizer's Name, written in the serialized state
	nbufs  int
	steps  int64 // number of Step calls
	byName map[string]*paramState
}

func newStateTable(kind string, nbufs int) stateTable {
	return stateTable{kind: kind, nbufs: nbufs, byName: make(map[string]*paramState)}
}

// get returns p's state, allocating zeroed buffers the first time p.Name is seen. It panics
// when the param breaks the size invariants (see Optimizer.Step).
func (t *stateTable) get(p *Param) *paramState {
	if len(p.Grad) != len(p.Value) {
		panic(fmt.Sprintf("optim: param %q has %d values but %d gradients", p.Name, len(p.Value), len(p.Grad)))
	}
	s, ok := t.byName[p.Name]
	if !ok {
		s = &paramState{bufs: make([][]float32, t.nbufs)}
		for i := range s.bufs {
			s.bufs[i] = make([]float32, len(p.Value))
		}
		t.byName[p.Name] = s
		return s
	}
	for _, b := range s.bufs {
		if len(b) != len(p.Value) {
			panic(fmt.Sprintf("optim: param %q has %d values, its optimizer state has %d", p.Name, len(p.Value), len(b)))
		}
	}
	return s
}

func (t *stateTable) marshal() ([]byte, error) {
	w := newStateWriter(t.kind)
	w.int64(t.steps)
	w.uint64(uint64(len(t.byName)))
	for _, name := range sortedKeys(t.byName) {
		s := t.byName[name]
		w.string(name)
		w.int64(s.step)
		w.int64(s.decaySteps)
		w.uint64(uint64(len(s.bufs)))
		for _, b := range s.bufs {
			w.float32s(b)
		}
	}
	return w.b, nil
}

func (t *stateTable) unmarshal(b []byte) error {
	r, err := newStateReader(b, t.kind)
	if err != nil {
		return fmt.Errorf("optim: %s: restore state: %w", t.kind, err)
	}
	steps := r.int64()
	n := r.length(8)
	byName := make(map[string]*paramState, n)
	for i := 0; i < n && r.err == nil; i++ {
		name := r.string()
		s := &paramState{step: r.int64()}
		if r.version >= 2 {
			s.decaySteps = r.int64()
		}
		nb := r.length(8)
		if r.err == nil && nb != t.nbufs {
			return fmt.Errorf("optim: %s: restore state: param %q has %d buffers, this configuration uses %d (was it saved with other options, e.g. Momentum or Centered?)", t.kind, name, nb, t.nbufs)
		}
		s.bufs = make([][]float32, nb)
		for j := range s.bufs {
			s.bufs[j] = r.float32s()
		}
		byName[name] = s
	}
	if err := r.finish(); err != nil {
		return fmt.Errorf("optim: %s: restore state: %w", t.kind, err)
	}
	t.steps, t.byName = steps, byName
	return nil
}

// stateHolder is implemented by this package's optimizers.
type stateHolder interface{ table() *stateTable }

func (o *SGD) table() *stateTable     { return &o.state }
func (o *RMSProp) table() *stateTable { return &o.state }
func (o *Adam) table() *stateTable    { return &o.state }
func (o *Adagrad) table() *stateTable { return &o.state }

// CheckStateFits reports, after UnmarshalState, whether opt's state fits params: an error names
// the params whose saved state has another size (Step would panic on them) and the saved names
// that no param has (state of a model with other layer names, which would be silently unused).
// Params without saved state are fine: their state starts at zero. Optimizers from outside this
// package always fit.
func CheckStateFits(opt Optimizer, params []*Param) error {
	h, ok := opt.(stateHolder)
	if !ok {
		return nil
	}
	t := h.table()
	var problems []string
	seen := make(map[string]bool, len(params))
	for _, p := range params {
		seen[p.Name] = true
		s, ok := t.byName[p.Name]
		if !ok || len(s.bufs) == 0 {
			continue
		}
		if len(s.bufs[0]) != len(p.Value) {
			problems = append(problems, fmt.Sprintf("%q has %d values, its saved state %d", p.Name, len(p.Value), len(s.bufs[0])))
		}
	}
	for _, name := range sortedKeys(t.byName) {
		if !seen[name] {
			problems = append(problems, fmt.Sprintf("saved state for %q matches no param", name))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("optim: %s state does not fit the model: %s", t.kind, strings.Join(problems, "; "))
	}
	return nil
}
