package nn

import "fmt"

// GradMode says what a LossStep does with the gradients already in the params' Grad.
type GradMode int

const (
	// GradOverwrite replaces them with this pass's gradient, as TrainStep does.
	GradOverwrite GradMode = iota
	// GradAccumulate adds this pass's gradient to them (a loss summed over several passes:
	// the consistency term of a perturbed pass on top of a TrainStep).
	GradAccumulate
	// GradDiscard leaves them as they were: the pass is run for its input gradient only
	// (SetKeepInputGrad), as in the power iteration of virtual adversarial training.
	GradDiscard
	// GradNone runs no backward pass at all: the params' Grad and InputGrad are untouched,
	// and fn's dlogits are ignored (a teacher's or target pass that only needs the outputs).
	GradNone
)

// OutputLoss is a loss a caller computes on the heads' logits of one forward pass. It is
// called once per head with that head's logits (rows×width: the softmax head's pre-softmax
// scores, the binary head's single logit, the regression head's values), must add
// dL/dlogits into dlogits (same shape) and returns the loss; it must not keep either slice.
// A head it has no loss for is left alone (return 0).
type OutputLoss func(head int, logits, dlogits []float32, rows int) float64

// LossStep runs a forward pass (training mode when train: dropout, noise and batch-norm batch
// statistics, drawing from the noise source; else eval mode), evaluates fn on the heads'
// logits and backpropagates it: the params' Grad is then set as mode says, and InputGrad
// holds dL/dX when SetKeepInputGrad is on. It returns the total of fn. Weight, activity and
// difference penalties are not included (TrainStep adds them once per step). Each of several
// calls with GradAccumulate costs one copy of the gradients.
func (m *Model) LossStep(b Batch, train bool, mode GradMode, fn OutputLoss) (float64, error) {
	if err := m.checkBatch(b); err != nil {
		return 0, err
	}
	m.forward(b, train)
	if err := m.customErr(); err != nil {
		return 0, err
	}
	return m.lossBackward(b, mode, fn)
}

// LossBackward is the second half of LossStep on the last forward pass of m (b must be the
// batch that pass ran on, unchanged since): it evaluates fn on the heads' logits of that pass
// and backpropagates as mode says. A Twin that ran a pass earlier in a step backpropagates
// it this way once the gradient it needs is known.
func (m *Model) LossBackward(b Batch, mode GradMode, fn OutputLoss) (float64, error) {
	if err := m.checkBatch(b); err != nil {
		return 0, err
	}
	if b.Rows > m.rows {
		return 0, fmt.Errorf("nn: LossBackward on %d rows, the last forward pass had at most %d", b.Rows, m.rows)
	}
	return m.lossBackward(b, mode, fn)
}

func (m *Model) lossBackward(b Batch, mode GradMode, fn OutputLoss) (float64, error) {
	var total float64
	for i, h := range m.heads {
		dz := h.dz[:b.Rows*h.k]
		clear(dz)
		total += fn(i, h.logits(b.Rows), dz, b.Rows)
	}
	if mode == GradNone {
		return total, nil
	}
	if mode != GradOverwrite {
		m.saveGrads()
	}
	m.backward(b)
	if err := m.customErr(); err != nil {
		return 0, err
	}
	switch mode {
	case GradAccumulate:
		m.addSavedGrads()
	case GradDiscard:
		m.restoreGrads()
	}
	return total, nil
}

// TrainStepWith is TrainStep with an extra loss on the same pass: after the heads' target
// losses have set dL/dlogits, fn adds its own (see OutputLoss), and one backward pass
// propagates the sum. Loss.Total includes fn's total; Loss.Heads are the target losses only.
// An entropy-minimisation or consistency term on the student's pass is such an extra loss.
func (m *Model) TrainStepWith(b Batch, t Targets, fn OutputLoss) (Loss, error) {
	if err := m.checkBatch(b); err != nil {
		return Loss{}, err
	}
	m.forward(b, true)
	if err := m.customErr(); err != nil {
		return Loss{}, err
	}
	loss, err := m.losses(t, b.Rows, true)
	if err != nil {
		return Loss{}, err
	}
	if fn != nil {
		for i, h := range m.heads {
			loss.Total += fn(i, h.logits(b.Rows), h.dz[:b.Rows*h.k], b.Rows)
		}
	}
	m.backward(b)
	if err := m.customErr(); err != nil {
		return Loss{}, err
	}
	loss.Penalty = m.penalties(b.Rows, true)
	loss.Total += loss.Penalty
	return loss, nil
}

// saveGrads copies the non-frozen params' gradients aside.
func (m *Model) saveGrads() {
	if len(m.gradSave) != len(m.params) {
		m.gradSave = make([][]float32, len(m.params))
	}
	for i, p := range m.params {
		if p.Frozen {
			continue
		}
		m.gradSave[i] = append(m.gradSave[i][:0], p.Grad...)
	}
}

func (m *Model) addSavedGrads() {
	for i, p := range m.params {
		if p.Frozen {
			continue
		}
		for j, v := range m.gradSave[i] {
			p.Grad[j] += v
		}
	}
}

func (m *Model) restoreGrads() {
	for i, p := range m.params {
		if !p.Frozen {
			copy(p.Grad, m.gradSave[i])
		}
	}
}
