package nn

import (
	"fmt"
	"math/rand/v2"
)

// Twin returns a model of m's spec whose params and buffers share m's values (the same
// slices: an optimizer step on m, or a batch-norm running statistic a twin's pass updates,
// is seen by both), with its own gradients and activations, m's GEMM backend and workers,
// its noise source and its class weights. A twin keeps one pass's activations while m runs
// another: the ladder's clean pass waits in a twin for the gradient the corrupted pass of m
// computes, instead of being run again. Pass the previous twin as t to reuse its buffers:
// Twin aliases the values afresh each call, so it stays right after something replaces a
// param's Value slice (an EMA teacher's swap, a checkpoint restore).
func (m *Model) Twin(t *Model) (*Model, error) {
	if t == nil || len(t.params) != len(m.params) || len(t.buffers) != len(m.buffers) {
		var err error
		if t, err = Build(m.spec, rand.New(rand.NewPCG(0, 0))); err != nil {
			return nil, fmt.Errorf("nn: twin: %w", err)
		}
	}
	for i, p := range m.params {
		q := t.params[i]
		if q.Name != p.Name || len(q.Value) != len(p.Value) {
			return nil, fmt.Errorf("nn: twin: param %d is %s, want %s", i, q.Name, p.Name)
		}
		q.Value, q.Frozen = p.Value, p.Frozen
	}
	for i, p := range m.buffers {
		t.buffers[i].Value = p.Value
	}
	t.rc.gemm, t.workers = m.rc.gemm, m.workers
	t.SetNoiseSource(m.pcg)
	for i, h := range m.heads {
		t.heads[i].classWeights = h.classWeights
	}
	return t, nil
}

// AddGrads adds the gradients of t (a Twin of m) into m's: the loss of a pass run in the
// twin joins the step's.
func (m *Model) AddGrads(t *Model) {
	for i, p := range m.params {
		if p.Frozen {
			continue
		}
		g := t.params[i].Grad
		for j := range p.Grad {
			p.Grad[j] += g[j]
		}
	}
}
