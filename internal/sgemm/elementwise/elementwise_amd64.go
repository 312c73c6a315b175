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
func reluBackwardAVX(dy, y *float32, n int)

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

func reluBackwardVector(dy, y []float32) int {
	n := len(dy) &^ 7
	if !useAVX || n == 0 {
		return 0
	}
	_ = y[n-1]
	reluBackwardAVX(&dy[0], &y[0], n)
	return n
}
