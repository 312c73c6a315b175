package elementwise

// sumChunk bounds the elements summed in float32 lanes before the partial sum moves to
// float64, so that long vectors keep float64-like accuracy.
const sumChunk = 4096

// SumSquares returns Σ x[i]², summed in eight float32 lanes over chunks of 4096 elements whose
// partial sums are added in float64. A NaN or Inf element makes the result NaN or Inf.
func SumSquares(x []float32) float64 {
	var total float64
	for len(x) > 0 {
		c := x[:min(len(x), sumChunk)]
		s, done := sumSquaresVector(c)
		if done == 0 {
			s, done = sumSquaresLanes(c)
		}
		total += float64(s)
		for _, v := range c[done:] {
			total += float64(v) * float64(v)
		}
		x = x[len(c):]
	}
	return total
}

// L2Grad adds c·w[i] to g[i] (g at least as long as w) and returns Σ w[i]², summed like
// SumSquares: the gradient and the value of an L2 penalty in one pass.
func L2Grad(w, g []float32, c float32) float64 {
	g = g[:len(w)]
	var total float64
	for len(w) > 0 {
		n := min(len(w), sumChunk)
		cw, cg := w[:n], g[:n]
		s, done := l2GradVector(cw, cg, c)
		if done == 0 {
			s, done = l2GradLanes(cw, cg, c)
		}
		total += float64(s)
		for i, v := range cw[done:] {
			cg[done+i] += float32(c * v)
			total += float64(v) * float64(v)
		}
		w, g = w[n:], g[n:]
	}
	return total
}

// sumSquaresLanes is sumSquaresAVX in Go, bit for bit: it processes the largest multiple-of-8
// prefix and returns its length.
func sumSquaresLanes(x []float32) (float32, int) {
	var acc [8]float32
	n := len(x) &^ 7
	for i := 0; i < n; i += 8 {
		for j := range acc {
			v := x[i+j]
			acc[j] += float32(v * v)
		}
	}
	return reduceLanes(acc), n
}

// l2GradLanes is l2GradAVX in Go, bit for bit.
func l2GradLanes(w, g []float32, c float32) (float32, int) {
	var acc [8]float32
	n := len(w) &^ 7
	for i := 0; i < n; i += 8 {
		for j := range acc {
			v := w[i+j]
			g[i+j] += float32(c * v)
			acc[j] += float32(v * v)
		}
	}
	return reduceLanes(acc), n
}

// reduceLanes adds eight lanes in the order of the assembly's horizontal reduction.
func reduceLanes(a [8]float32) float32 {
	s0, s1, s2, s3 := a[0]+a[4], a[1]+a[5], a[2]+a[6], a[3]+a[7]
	return (s0 + s1) + (s2 + s3)
}
