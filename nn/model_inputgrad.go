package nn

// SetKeepInputGrad makes every backward pass (TrainStep, LossStep) also compute the gradient
// of the loss with respect to the batch's numeric inputs, dL/dX, which InputGrad returns.
// It costs one more matrix product in the first layer (the backward pass stops there
// otherwise). Default off. The gradient with respect to embedding inputs is not kept (their
// inputs are indices).
func (m *Model) SetKeepInputGrad(on bool) { m.keepDX = on }

// InputGrad returns dL/dX of the last backward pass, rows×NumInputs row-major, as X was laid
// out, or nil when SetKeepInputGrad is off or no backward pass has run with it. The slice is
// the model's own and is overwritten by the next backward pass: copy it to keep it. In
// training mode the gradient is taken with the pass's dropout and noise draws held fixed.
func (m *Model) InputGrad(rows int) []float32 {
	if !m.keepDX || len(m.dx) < rows*m.numInputs {
		return nil
	}
	return m.dx[:rows*m.numInputs]
}

// keepInputGrad stores the numeric columns of the trunk's input gradient d (rows×trunkIn).
func (m *Model) keepInputGrad(d []float32, rows int) {
	n := m.numInputs
	m.dx = grow(m.dx, max(len(m.dx), rows*n))
	if m.trunkIn == n {
		copy(m.dx[:rows*n], d[:rows*n])
		return
	}
	for r := 0; r < rows; r++ {
		copy(m.dx[r*n:(r+1)*n], d[r*m.trunkIn:r*m.trunkIn+n])
	}
}
