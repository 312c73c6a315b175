package optim

import (
	"fmt"
	"math"
	"strings"
)

// Progress tells a schedule where training is.
type Progress struct {
	Step          int // global optimizer step, 0-based
	Epoch         int // 0-based
	StepsPerEpoch int // 0 = unknown: schedules then move once per epoch
	Epochs        int // planned total epochs (0 = unknown)
}

// epochs is the position in epochs, fractional within an epoch when StepsPerEpoch is known.
func (p Progress) epochs() float64 {
	if p.StepsPerEpoch > 0 {
		return float64(p.Step) / float64(p.StepsPerEpoch)
	}
	return float64(p.Epoch)
}

// Schedule gives the learning rate for each step. A Schedule is not safe for concurrent use.
type Schedule interface {
	// LR is the learning rate for the step at p, given the base (initial) rate.
	LR(base float64, p Progress) float64
	// EpochEnd is called after each epoch with the monitored metric (lower is better); only
	// reduce-on-plateau uses it. A NaN metric counts as no improvement.
	EpochEnd(epoch int, metric float64)
	// MarshalState and UnmarshalState save and restore the schedule's mutable state
	// (reduce-on-plateau's best metric, counters and reduction factor) bit-exactly. The other
	// schedules are pure functions of Progress and save only their kind.
	MarshalState() ([]byte, error)
	UnmarshalState(b []byte) error
}

// Schedule names accepted by ScheduleConfig.Name.
const (
	ScheduleConstant    = "constant"
	ScheduleStep        = "step"
	ScheduleExponential = "exponential"
	ScheduleCosine      = "cosine"
	SchedulePlateau     = "plateau"
	ScheduleLinear      = "linear"
)

var scheduleNames = []string{ScheduleConstant, ScheduleStep, ScheduleExponential, ScheduleCosine, SchedulePlateau, ScheduleLinear}

// ScheduleConfig selects a learning-rate schedule. The zero value is a constant learning rate;
// every zero field means its documented default.
type ScheduleConfig struct {
	// Name is "constant" (the default for "") | "step" | "exponential" | "cosine" | "plateau" |
	// "linear", in any case.
	Name string
	// StepEpochs is step's period: the rate is multiplied by Gamma every StepEpochs epochs
	// (default 30, as PyTorch's StepLR example; lr = base * Gamma^floor(epoch/StepEpochs)).
	StepEpochs int
	// Gamma is step's factor (default 0.1, as PyTorch StepLR) and exponential's per-epoch
	// factor (default 0.95), applied smoothly per step when StepsPerEpoch is known:
	// lr = base * Gamma^(step/StepsPerEpoch).
	Gamma float64
	// T0 is cosine's first period in epochs (default: the planned Progress.Epochs). Within a
	// period of Ti epochs, at Tcur epochs into it (fractional per step),
	// lr = MinLR + (base-MinLR) * (1 + cos(pi*Tcur/Ti)) / 2. Without restarts the rate stays
	// at MinLR after T0 epochs. When neither T0 nor Progress.Epochs is known the cosine
	// schedule cannot anneal and returns base.
	T0 int
	// TMult turns on warm restarts (SGDR, Loshchilov & Hutter 2017, PyTorch's
	// CosineAnnealingWarmRestarts) when >= 1 and T0 is set: the rate jumps back to base at the
	// end of each period and the period is multiplied by TMult (1 keeps it fixed). Default 0:
	// no restarts.
	TMult int
	// DecayStart is linear's first epoch of decay: the rate is base until DecayStart epochs,
	// then falls linearly (per step when StepsPerEpoch is known) to MinLR at the planned
	// Progress.Epochs, lr = MinLR + (base-MinLR) * (Epochs-e) / (Epochs-DecayStart), and stays
	// there (the VAT and Mean Teacher papers' "decay linearly to 0 over the last N updates").
	// Default 0: decay from the start. When Progress.Epochs is unknown, or not above
	// DecayStart, the linear schedule returns base.
	DecayStart int
	// MinLR is cosine's and linear's final rate (default 0) and a floor for step, exponential and plateau
	// (default 0: no floor).
	MinLR float64
	// Factor multiplies the rate on a plateau (default 0.1, as PyTorch and Keras).
	Factor float64
	// Patience is the number of consecutive epochs without improvement after which plateau
	// reduces the rate (default 10, as PyTorch and Keras). The reduction happens at the
	// EpochEnd of the Patience-th such epoch, as Keras; PyTorch waits one epoch more.
	Patience int
	// MinDelta is the improvement a metric must exceed to count: improved means
	// metric < best - MinDelta (absolute, as Keras's min_delta; default 0).
	MinDelta float64
	// Cooldown is the number of epochs after a reduction whose lack of improvement is not
	// counted (default 0, as PyTorch and Keras); improvements still update the best value.
	Cooldown int
	// WarmupSteps composes a linear warmup with every schedule: for step s < WarmupSteps the
	// scheduled rate is multiplied by (s+1)/WarmupSteps, so it starts at 1/WarmupSteps of it
	// and reaches it at step WarmupSteps-1 (default 0: no warmup). The underlying schedule is
	// not shifted: it runs from step 0.
	WarmupSteps int
}

// NewSchedule returns the schedule cfg selects, with defaults filled in. It fails on an unknown
// name (the error lists the valid ones) and on out-of-range fields.
func NewSchedule(cfg ScheduleConfig) (Schedule, error) {
	name := strings.ToLower(cfg.Name)
	if name == "" {
		name = ScheduleConstant
	}
	valid := false
	for _, n := range scheduleNames {
		valid = valid || n == name
	}
	if !valid {
		return nil, fmt.Errorf("optim: unknown schedule %q (valid: %s)", cfg.Name, strings.Join(scheduleNames, ", "))
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("optim: schedule %s: %w", name, err)
	}
	c := cfg
	c.Name = name
	c.StepEpochs = int(orDefault(float64(cfg.StepEpochs), 30))
	if name == ScheduleExponential {
		c.Gamma = orDefault(cfg.Gamma, 0.95)
	} else {
		c.Gamma = orDefault(cfg.Gamma, 0.1)
	}
	c.Factor = orDefault(cfg.Factor, 0.1)
	c.Patience = int(orDefault(float64(cfg.Patience), 10))
	return &schedule{cfg: c, plateau: plateauState{best: math.Inf(1), scale: 1}}, nil
}

func (c ScheduleConfig) validate() error {
	for _, f := range []struct {
		field string
		v     float64
	}{{"Gamma", c.Gamma}, {"MinLR", c.MinLR}, {"Factor", c.Factor}, {"MinDelta", c.MinDelta}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("%s is %v, want a finite number >= 0 (0 means the default)", f.field, f.v)
		}
	}
	for _, f := range []struct {
		field string
		v     int
	}{{"StepEpochs", c.StepEpochs}, {"T0", c.T0}, {"TMult", c.TMult}, {"Patience", c.Patience}, {"Cooldown", c.Cooldown}, {"WarmupSteps", c.WarmupSteps}, {"DecayStart", c.DecayStart}} {
		if f.v < 0 {
			return fmt.Errorf("%s is %d, want >= 0 (0 means the default)", f.field, f.v)
		}
	}
	if c.Factor >= 1 {
		return fmt.Errorf("factor is %v, want < 1", c.Factor)
	}
	return nil
}

// schedule implements every ScheduleConfig.Name; cfg has its defaults filled in.
type schedule struct {
	cfg     ScheduleConfig
	plateau plateauState
}

// plateauState is reduce-on-plateau's mutable state.
type plateauState struct {
	best     float64 // best metric so far, +Inf before the first epoch
	bad      int     // consecutive epochs without improvement
	cooldown int     // epochs of cooldown left
	scale    float64 // product of the reductions so far
}

func (s *schedule) LR(base float64, p Progress) float64 {
	c := &s.cfg
	lr := base
	switch c.Name {
	case ScheduleStep:
		lr = base * math.Pow(c.Gamma, float64(p.Epoch/c.StepEpochs))
	case ScheduleExponential:
		lr = base * math.Pow(c.Gamma, p.epochs())
	case ScheduleCosine:
		lr = s.cosine(base, p)
	case SchedulePlateau:
		lr = base * s.plateau.scale
	case ScheduleLinear:
		lr = s.linear(base, p)
	}
	if c.Name != ScheduleCosine && c.Name != ScheduleLinear && c.MinLR > 0 && lr < c.MinLR && lr < base {
		lr = min(c.MinLR, base)
	}
	if c.WarmupSteps > 0 && p.Step < c.WarmupSteps {
		lr *= float64(p.Step+1) / float64(c.WarmupSteps)
	}
	return lr
}

// linear is the constant-then-linear-decay rate (see ScheduleConfig.DecayStart).
func (s *schedule) linear(base float64, p Progress) float64 {
	c := &s.cfg
	end, start := float64(p.Epochs), float64(c.DecayStart)
	if end <= start {
		return base
	}
	e := p.epochs()
	if e <= start {
		return base
	}
	if e >= end {
		return c.MinLR
	}
	return c.MinLR + (base-c.MinLR)*(end-e)/(end-start)
}

// cosine is the SGDR rate (see ScheduleConfig.T0 and TMult).
func (s *schedule) cosine(base float64, p Progress) float64 {
	c := &s.cfg
	t0 := float64(c.T0)
	if c.T0 == 0 {
		t0 = float64(p.Epochs)
	}
	if t0 == 0 {
		return base
	}
	e := p.epochs()
	tcur, ti := min(e, t0), t0
	if c.TMult >= 1 && c.T0 > 0 {
		if c.TMult == 1 {
			tcur = math.Mod(e, t0)
		} else {
			m := float64(c.TMult)
			// Period n starts at T0*(m^n - 1)/(m - 1) and lasts T0*m^n.
			n := math.Floor(math.Log(e/t0*(m-1)+1) / math.Log(m))
			start := t0 * (math.Pow(m, n) - 1) / (m - 1)
			ti = t0 * math.Pow(m, n)
			if e < start { // rounding at a boundary
				ti /= m
				start -= ti
			} else if e >= start+ti {
				start += ti
				ti *= m
			}
			tcur = e - start
		}
	}
	return c.MinLR + (base-c.MinLR)*(1+math.Cos(math.Pi*tcur/ti))/2
}

func (s *schedule) EpochEnd(epoch int, metric float64) {
	if s.cfg.Name != SchedulePlateau {
		return
	}
	st := &s.plateau
	if metric < st.best-s.cfg.MinDelta {
		st.best = metric
		st.bad = 0
	} else {
		st.bad++
	}
	if st.cooldown > 0 {
		st.cooldown--
		st.bad = 0
	}
	if st.bad >= s.cfg.Patience {
		st.scale *= s.cfg.Factor
		st.cooldown = s.cfg.Cooldown
		st.bad = 0
	}
}

func (s *schedule) MarshalState() ([]byte, error) {
	w := newStateWriter("schedule/" + s.cfg.Name)
	st := s.plateau
	w.float64(st.best)
	w.int64(int64(st.bad))
	w.int64(int64(st.cooldown))
	w.float64(st.scale)
	return w.b, nil
}

func (s *schedule) UnmarshalState(b []byte) error {
	r, err := newStateReader(b, "schedule/"+s.cfg.Name)
	if err != nil {
		return fmt.Errorf("optim: schedule %s: restore state: %w", s.cfg.Name, err)
	}
	st := plateauState{best: r.float64(), bad: int(r.int64()), cooldown: int(r.int64()), scale: r.float64()}
	if err := r.finish(); err != nil {
		return fmt.Errorf("optim: schedule %s: restore state: %w", s.cfg.Name, err)
	}
	s.plateau = st
	return nil
}
