package elementwise

// BiasReLU adds bias to every row of the rows×len(bias) matrix x (row stride ldx) and applies
// ReLU, in place, with the semantics of Go's builtin max:
//
//	x[i*ldx+j] = max(x[i*ldx+j]+bias[j], 0)
//
// so a NaN stays NaN and a sum of -0 becomes +0.
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
		row[j] = max(v+bias[j], 0)
	}
}

// BiasAdd adds bias to every row of the rows×len(bias) matrix x (row stride ldx), in place:
// x[i*ldx+j] += bias[j].
func BiasAdd(x []float32, rows, ldx int, bias []float32) {
	n := len(bias)
	if rows == 0 || n == 0 {
		return
	}
	_ = x[(rows-1)*ldx+n-1]
	for i := range rows {
		row := x[i*ldx : i*ldx+n]
		done := biasAddVector(row, bias)
		biasAddGeneric(row[done:], bias[done:])
	}
}

func biasAddGeneric(row, bias []float32) {
	bias = bias[:len(row)]
	for j := range row {
		row[j] += bias[j]
	}
}

// ReLUBackward masks the gradient dy by the ReLU output y, in place: dy[i] = 0 where
// y[i] <= 0 (y must be at least as long as dy). Where y is NaN the gradient passes, as in
// PyTorch's threshold_backward.
func ReLUBackward(dy, y []float32) {
	y = y[:len(dy)]
	done := reluBackwardVector(dy, y)
	reluBackwardGeneric(dy[done:], y[done:])
}

func reluBackwardGeneric(dy, y []float32) {
	y = y[:len(dy)]
	for i, yi := range y {
		if yi <= 0 {
			dy[i] = 0
		}
	}
}

// ColumnSum sets dst[j] to the sum of column j of the rows×len(dst) matrix m (row stride ldm),
// adding the rows in order to a sum that starts at +0:
//
//	s := float32(0)
//	for i := range rows { s += m[i*ldm+j] }
//	dst[j] = s
//
// so every column is rounded exactly as that loop rounds it.
func ColumnSum(dst, m []float32, rows, ldm int) {
	n := len(dst)
	if n == 0 {
		return
	}
	if rows == 0 {
		clear(dst)
		return
	}
	_ = m[(rows-1)*ldm+n-1]
	done := columnSumVector(dst, m, rows, ldm)
	columnSumGeneric(dst[done:], m[done:], rows, ldm)
}

func columnSumGeneric(dst, m []float32, rows, ldm int) {
	clear(dst)
	n := len(dst)
	for i := range rows {
		row := m[i*ldm : i*ldm+n]
		for j, v := range row {
			dst[j] += v
		}
	}
}
