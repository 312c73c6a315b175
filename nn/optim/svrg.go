package optim

import (
	"fmt"
	"strings"
)

// NameSVRG selects stochastic variance-reduced gradient (Johnson & Zhang, 2013) around an
// inner optimizer (Config.Inner).
const NameSVRG = "svrg"

// SVRG is stochastic variance-reduced gradient. It keeps a snapshot of the weights, w~, and the
// full gradient over the training set at them, mu~ (Snapshot, every SnapshotEpochs epochs).
// Each step replaces the mini-batch gradient g_B(w) by g_B(w) - g_B(w~) + mu~
// (VarianceReduce), an unbiased estimate of the full gradient whose variance vanishes as w and
// w~ approach the optimum, so that a constant step converges linearly on a strongly convex
// problem where plain SGD stalls at its noise floor. Step hands the corrected gradient to the
// inner optimizer (Config.Inner, sgd by default).
//
// Driving the snapshots and corrections takes a model, so the trainer (nn/train) does it; Step
// alone is the inner optimizer's step. The snapshot, mu~ and the count of per-row gradient
// evaluations are part of the state (MarshalState), so a checkpoint resumes bit-exactly.
//
// An SVRG is not safe for concurrent use.
type SVRG struct {
	inner Optimizer
	every int
	// snap and mu hold w~ and mu~ per param name; has reports that a snapshot was taken.
	snap, mu map[string][]float32
	has      bool
	evals    int64
	// Scratch, reused across steps: the batch gradient at w and the weights w while the
	// snapshot weights are swapped in, per param name.
	gw, w map[string][]float32
	acc   map[string][]float64
}

func newSVRG(cfg Config) (*SVRG, error) {
	inner := cfg
	inner.Name = cfg.Inner
	if inner.Name == "" {
		inner.Name = NameSGD
	}
	inner.Inner, inner.SnapshotEpochs = "", 0
	if strings.EqualFold(inner.Name, NameSVRG) {
		return nil, fmt.Errorf("inner optimizer cannot be svrg itself")
	}
	in, err := New(inner)
	if err != nil {
		return nil, fmt.Errorf("inner: %w", err)
	}
	return &SVRG{inner: in, every: max(cfg.SnapshotEpochs, 1), snap: map[string][]float32{}, mu: map[string][]float32{},
		gw: map[string][]float32{}, w: map[string][]float32{}, acc: map[string][]float64{}}, nil
}

// Name returns "svrg".
func (o *SVRG) Name() string { return NameSVRG }

// Inner returns the optimizer that Step delegates to.
func (o *SVRG) Inner() Optimizer { return o.inner }

// SnapshotDue reports whether a snapshot is due at the start of epoch (0-based): before the
// first step, and every SnapshotEpochs epochs.
func (o *SVRG) SnapshotDue(epoch int) bool { return !o.has || epoch%o.every == 0 }

// GradEvals is the number of per-row gradient evaluations so far: a snapshot costs one per
// training row, a step two per batch row (at w and at w~).
func (o *SVRG) GradEvals() int64 { return o.evals }

// Snapshot sets w~ to the current values of params and mu~ to the row-weighted mean of the
// gradients that batches leaves in Grad: batches computes, batch by batch, the mean gradient
// of a batch of rows into every param's Grad and calls add(rows) after each. The sum is taken
// in float64 in the order of the calls, so a fixed batch order gives a bit-identical mu~.
// Frozen params get no snapshot (VarianceReduce leaves them alone). On error the previous
// snapshot is kept.
func (o *SVRG) Snapshot(params []*Param, batches func(add func(rows int)) error) error {
	for _, p := range params {
		if p.Frozen {
			continue
		}
		a := o.acc[p.Name]
		if len(a) != len(p.Value) {
			a = make([]float64, len(p.Value))
			o.acc[p.Name] = a
		}
		clear(a)
	}
	total := 0
	err := batches(func(rows int) {
		total += rows
		for _, p := range params {
			if p.Frozen {
				continue
			}
			if len(p.Grad) != len(p.Value) {
				panic(fmt.Sprintf("optim: svrg: param %q has %d values but %d gradients", p.Name, len(p.Value), len(p.Grad)))
			}
			a, r := o.acc[p.Name], float64(rows)
			for i, g := range p.Grad {
				a[i] += r * float64(g)
			}
		}
	})
	if err != nil {
		return err
	}
	if total == 0 {
		return fmt.Errorf("optim: svrg: a snapshot over no rows")
	}
	for _, p := range params {
		if p.Frozen {
			continue
		}
		s, m := resize(o.snap, p.Name, len(p.Value)), resize(o.mu, p.Name, len(p.Value))
		copy(s, p.Value)
		for i, a := range o.acc[p.Name] {
			m[i] = float32(a / float64(total))
		}
	}
	o.has = true
	o.evals += int64(total)
	return nil
}

// VarianceReduce replaces the gradient g_B(w) that every param holds in Grad by
// g_B(w) - g_B(w~) + mu~. gradAt must compute the gradient of the same batch (of rows rows)
// into Grad at the weights then in Value, which VarianceReduce sets to w~ for the call and
// restores afterwards (also on error). Each element is computed in float32 as
// (g - gs) + mu. It panics without a snapshot (a broken invariant of the trainer).
func (o *SVRG) VarianceReduce(params []*Param, rows int, gradAt func() error) error {
	if !o.has {
		panic("optim: svrg: VarianceReduce before the first Snapshot")
	}
	live := params[:0:0]
	for _, p := range params {
		if p.Frozen {
			continue
		}
		if len(o.snap[p.Name]) != len(p.Value) {
			panic(fmt.Sprintf("optim: svrg: param %q has %d values, its snapshot %d", p.Name, len(p.Value), len(o.snap[p.Name])))
		}
		live = append(live, p)
		copy(resize(o.gw, p.Name, len(p.Grad)), p.Grad)
		copy(resize(o.w, p.Name, len(p.Value)), p.Value)
		copy(p.Value, o.snap[p.Name])
	}
	err := gradAt()
	for _, p := range live {
		copy(p.Value, o.w[p.Name])
	}
	if err != nil {
		return err
	}
	for _, p := range live {
		gw, mu := o.gw[p.Name], o.mu[p.Name]
		for i, gs := range p.Grad {
			p.Grad[i] = (gw[i] - gs) + mu[i]
		}
	}
	o.evals += 2 * int64(rows)
	return nil
}

// Step implements Optimizer: the inner optimizer's step on the (corrected) gradients.
func (o *SVRG) Step(params []*Param, lr float64) { o.inner.Step(params, lr) }

// MarshalState implements Optimizer: the inner optimizer's state, the snapshot w~, mu~ and
// the gradient-evaluation count.
func (o *SVRG) MarshalState() ([]byte, error) {
	in, err := o.inner.MarshalState()
	if err != nil {
		return nil, err
	}
	w := newStateWriter(NameSVRG)
	w.string(o.inner.Name())
	w.string(string(in))
	w.int64(o.evals)
	has := uint64(0)
	if o.has {
		has = 1
	}
	w.uint64(has)
	w.uint64(uint64(len(o.snap)))
	for _, name := range sortedKeys(o.snap) {
		w.string(name)
		w.float32s(o.snap[name])
		w.float32s(o.mu[name])
	}
	return w.b, nil
}

// UnmarshalState implements Optimizer. It fails when the state was saved with another inner
// optimizer.
func (o *SVRG) UnmarshalState(b []byte) error {
	r, err := newStateReader(b, NameSVRG)
	if err != nil {
		return fmt.Errorf("optim: svrg: restore state: %w", err)
	}
	innerName := r.string()
	in := r.string()
	evals := r.int64()
	has := r.uint64() == 1
	n := r.length(8)
	snap, mu := make(map[string][]float32, n), make(map[string][]float32, n)
	for i := 0; i < n && r.err == nil; i++ {
		name := r.string()
		snap[name] = r.float32s()
		mu[name] = r.float32s()
		if r.err == nil && len(snap[name]) != len(mu[name]) {
			return fmt.Errorf("optim: svrg: restore state: param %q has a snapshot of %d values and a mean gradient of %d", name, len(snap[name]), len(mu[name]))
		}
	}
	if err := r.finish(); err != nil {
		return fmt.Errorf("optim: svrg: restore state: %w", err)
	}
	if innerName != o.inner.Name() {
		return fmt.Errorf("optim: svrg: restore state: inner optimizer %q, the config selects %q", innerName, o.inner.Name())
	}
	if err := o.inner.UnmarshalState([]byte(in)); err != nil {
		return fmt.Errorf("optim: svrg: restore state: %w", err)
	}
	o.snap, o.mu, o.has, o.evals = snap, mu, has, evals
	return nil
}

// resize returns m[name] with length n, allocating it when it is missing or of another length.
func resize[T any](m map[string][]T, name string, n int) []T {
	s := m[name]
	if len(s) != n {
		s = make([]T, n)
		m[name] = s
	}
	return s
}
