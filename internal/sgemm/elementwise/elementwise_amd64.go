//go:build amd64 && !purego

package elementwise

import "golang.org/x/sys/cpu"

// useAVX selects the assembly loops; tests turn it off to check the Go fallback.
var useAVX = cpu.X86.HasAVX

//go:noescape
func adamUpdateAVX(w, grad, m, v *float32, n int, c *AdamScalars)

//go:noescape
func biasReLUAVX(row, bias *float32, n int)

//go:noescape
func biasAddAVX(row, bias *float32, n int)

//go:noescape
func reluBackwardAVX(dy, y *float32, n int)

//go:noescape
func columnSumAVX(dst, m *float32, rows, n, ldm int)

//go:noescape
func sgdAVX(w, grad *float32, n int, lr float32)

//go:noescape
func sgdL2AVX(w, grad *float32, n int, lr, l2 float32)

//go:noescape
func sgdMomentumAVX(w, grad, buf *float32, n int, lr, l2, mu float32)

//go:noescape
func sgdNesterovAVX(w, grad, buf *float32, n int, lr, l2, mu float32)

// The *Vector functions process the largest multiple-of-8 prefix with AVX and return its
// length; the caller finishes the rest in Go. Slices are already resliced to equal lengths.

func adamUpdateVector(w, g, m, v []float32, c *AdamScalars) int {
	n := len(w) &^ 7
	if !useAVX || n == 0 {
		return 0
	}
	adamUpdateAVX(&w[0], &g[0], &m[0], &v[0], n, c)
	return n
}

func biasReLUVector(row, bias []float32) int {
	n := len(row) &^ 7
	if !useAVX || n == 0 {
		return 0
	}
	_ = bias[n-1]
	biasReLUAVX(&row[0], &bias[0], n)
	return n
}

func biasAddVector(row, bias []float32) int {
	n := len(row) &^ 7
	if !useAVX || n == 0 {
		return 0
	}
	_ = bias[n-1]
	biasAddAVX(&row[0], &bias[0], n)
	return n
}

func reluBackwardVector(dy, y []float32) int {
	n := len(dy) &^ 7
	if !useAVX || n == 0 {
		return 0
	}
	_ = y[n-1]
	reluBackwardAVX(&dy[0], &y[0], n)
	return n
}

// columnSumVector sums the first len(dst)&^7 columns; the caller has checked that m holds
// rows rows of stride ldm covering len(dst) columns.
func columnSumVector(dst, m []float32, rows, ldm int) int {
	n := len(dst) &^ 7
	if !useAVX || n == 0 {
		return 0
	}
	columnSumAVX(&dst[0], &m[0], rows, n, ldm)
	return n
}

func sgdVector(w, g []float32, lr, l2 float32) int {
	n := len(w) &^ 7
	if !useAVX || n == 0 {
		return 0
	}
	if l2 == 0 {
		sgdAVX(&w[0], &g[0], n, lr)
	} else {
		sgdL2AVX(&w[0], &g[0], n, lr, l2)
	}
	return n
}

func sgdMomentumVector(w, g, buf []float32, lr, l2, mu float32, nesterov bool) int {
	n := len(w) &^ 7
	if !useAVX || n == 0 {
		return 0
	}
	if nesterov {
		sgdNesterovAVX(&w[0], &g[0], &buf[0], n, lr, l2, mu)
	} else {
		sgdMomentumAVX(&w[0], &g[0], &buf[0], n, lr, l2, mu)
	}
	return n
}

//go:noescape
func sumSquaresAVX(x *float32, n int) float32

//go:noescape
func l2GradAVX(w, grad *float32, n int, c float32) float32

func sumSquaresVector(x []float32) (float32, int) {
	n := len(x) &^ 7
	if !useAVX || n == 0 {
		return 0, 0
	}
	return sumSquaresAVX(&x[0], n), n
}

func l2GradVector(w, g []float32, c float32) (float32, int) {
	n := len(w) &^ 7
	if !useAVX || n == 0 {
		return 0, 0
	}
	return l2GradAVX(&w[0], &g[0], n, c), n
}

//go:noescape
func prefetchAVX(p *float32, n int)

// Prefetch asks the CPU to start loading x into its caches, without waiting: a hint for data
// that will be read soon (the rows of the next mini-batch, while this one computes). It never
// faults and has no effect on results.
func Prefetch(x []float32) {
	if len(x) > 0 {
		prefetchAVX(&x[0], len(x))
	}
}
