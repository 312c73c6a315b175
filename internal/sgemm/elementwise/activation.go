package elementwise

// BiasReLU adds bias to every row of the rows×len(bias) matrix x (row stride ldx) and applies
// ReLU, in place: x[i*ldx+j] = max(x[i*ldx+j]+bias[j], 0). A NaN stays NaN.
func BiasReLU(x []float32, rows, ldx int, bias []float32) {
	n := len(bias)
	if rows == 0 || n == 0 {
		return
	}
	_ = x[(rows-1)*ldx+n-1]
	for i := range rows {
		row := x[i*ldx : i*ldx+n]
		done := biasReLUVector(row, bias)
		biasReLUGeneric(row[done:], bias[done:])
	}
}

func biasReLUGeneric(row, bias []float32) {
	bias = bias[:len(row)]
	for j, v := range row {
		s := v + bias[j]
		if s < 0 {
			s = 0
		}
		row[j] = s
	}
}

// ReLUBackward masks the gradient dy by the ReLU output y, in place: dy[i] = 0 where
// y[i] <= 0 (y must be at least as long as dy).
func ReLUBackward(dy, y []float32) {
	y = y[:len(dy)]
	done := reluBackwardVector(dy, y)
	reluBackwardGeneric(dy[done:], y[done:])
}

func reluBackwardGeneric(dy, y []float32) {
	y = y[:len(dy)]
	for i, yi := range y {
		if !(yi > 0) {
			dy[i] = 0
		}
	}
}
