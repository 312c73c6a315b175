package optim

import "fmt"

// EMA keeps an exponential (Polyak) moving average of the values of the non-frozen params, for
// evaluation and for saving an averaged model.
//
// The average is bias-corrected: after t updates with values x_1..x_t it is
//
//	avg_t = sum_i d^(t-i) x_i * (1-d) / (1 - d^t)
//
// the weighted mean of the values seen, which does not depend on the initial weights (a
// warm-started average, initialised to the weights, would be dominated by them for the first
// ~1/(1-d) steps, i.e. ~1000 steps at the default decay). It is kept directly, through the
// equivalent recursion avg_t = avg_(t-1) + (1-d)/(1-d^t) * (x_t - avg_(t-1)), so Swap exchanges
// plain buffers. Before the first Update the average is the values at NewEMA.
//
// The average is keyed by Param.Name; each param counts its own updates (t), so a param first
// seen (or unfrozen) later starts its own average. An EMA is not safe for concurrent use.
type EMA struct {
	decay  float64
	byName map[string]*emaParam
}

type emaParam struct {
	updates int64
	// powDecay is d^updates, kept as a running product (bit-exact through Marshal).
	powDecay float64
	avg      []float32
}

// NewEMA starts averaging the non-frozen params with the given decay (default 0.999 when 0, as
// TensorFlow's ExponentialMovingAverage examples). A decay outside [0, 1) has no meaning and
// makes NewEMA panic: validate configuration first with CheckEMADecay.
func NewEMA(params []*Param, decay float64) *EMA {
	if err := CheckEMADecay(decay); err != nil {
		panic(err)
	}
	if decay == 0 {
		decay = 0.999
	}
	e := &EMA{decay: decay, byName: make(map[string]*emaParam)}
	for _, p := range params {
		if !p.Frozen {
			e.param(p)
		}
	}
	return e
}

// CheckEMADecay reports whether decay is acceptable to NewEMA: in [0, 1), 0 meaning 0.999.
func CheckEMADecay(decay float64) error {
	if !(decay >= 0 && decay < 1) {
		return fmt.Errorf("optim: EMA decay is %v, want a value in [0, 1) (0 means 0.999)", decay)
	}
	return nil
}

// Decay is the decay in use.
func (e *EMA) Decay() float64 { return e.decay }

func (e *EMA) param(p *Param) *emaParam {
	s, ok := e.byName[p.Name]
	if !ok {
		s = &emaParam{powDecay: 1, avg: append([]float32(nil), p.Value...)}
		e.byName[p.Name] = s
	}
	if len(s.avg) != len(p.Value) {
		panic(fmt.Sprintf("optim: EMA: param %q has %d values, its average has %d", p.Name, len(p.Value), len(s.avg)))
	}
	return s
}

// Update folds the current values of the non-frozen params into the average. It must not be
// called between the two Swaps of an evaluation (it would average the averaged values). It does
// not allocate for params already seen; it panics if a param's size changed under its name.
func (e *EMA) Update(params []*Param) {
	for _, p := range params {
		if p.Frozen {
			continue
		}
		s := e.param(p)
		s.updates++
		s.powDecay *= e.decay
		rate := float32((1 - e.decay) / (1 - s.powDecay))
		avg := s.avg[:len(p.Value)]
		for i, x := range p.Value {
			avg[i] += rate * (x - avg[i])
		}
	}
}

// Swap exchanges the live values of the non-frozen params with the averaged ones; calling it
// twice restores both bit for bit. Use it around evaluation or saving of the averaged model.
func (e *EMA) Swap(params []*Param) {
	for _, p := range params {
		if p.Frozen {
			continue
		}
		s := e.param(p)
		avg := s.avg[:len(p.Value)]
		for i := range p.Value {
			p.Value[i], avg[i] = avg[i], p.Value[i]
		}
	}
}

// MarshalState saves the averages and update counts bit-exactly.
func (e *EMA) MarshalState() ([]byte, error) {
	w := newStateWriter("ema")
	w.float64(e.decay)
	w.uint64(uint64(len(e.byName)))
	for _, name := range sortedKeys(e.byName) {
		s := e.byName[name]
		w.string(name)
		w.int64(s.updates)
		w.float64(s.powDecay)
		w.float32s(s.avg)
	}
	return w.b, nil
}

// UnmarshalState replaces the state with one saved by MarshalState, decay included.
func (e *EMA) UnmarshalState(b []byte) error {
	r, err := newStateReader(b, "ema")
	if err != nil {
		return fmt.Errorf("optim: EMA: restore state: %w", err)
	}
	decay := r.float64()
	n := r.length(8)
	byName := make(map[string]*emaParam, n)
	for i := 0; i < n && r.err == nil; i++ {
		name := r.string()
		byName[name] = &emaParam{updates: r.int64(), powDecay: r.float64(), avg: r.float32s()}
	}
	if err := r.finish(); err != nil {
		return fmt.Errorf("optim: EMA: restore state: %w", err)
	}
	e.decay, e.byName = decay, byName
	return nil
}
