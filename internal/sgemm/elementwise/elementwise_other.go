//go:build !amd64 || purego

package elementwise

// useAVX is false off amd64; every function runs its pure-Go loop.
var useAVX = false

func adamUpdateVector(w, g, m, v []float32, c *AdamScalars) int { return 0 }

func biasReLUVector(row, bias []float32) int { return 0 }

func biasAddVector(row, bias []float32) int { return 0 }

func reluBackwardVector(dy, y []float32) int { return 0 }

func columnSumVector(dst, m []float32, rows, ldm int) int { return 0 }

func sgdVector(w, g []float32, lr, l2 float32) int { return 0 }

func sgdMomentumVector(w, g, buf []float32, lr, l2, mu float32, nesterov bool) int { return 0 }

func sumSquaresVector(x []float32) (float32, int) { return 0, 0 }

func l2GradVector(w, g []float32, c float32) (float32, int) { return 0, 0 }

// Prefetch is a no-op off amd64 (see the amd64 version).
func Prefetch(x []float32) {}

// useAVX2 is false off amd64 (GELU's assembly needs it).
var useAVX2 = false

func geluVector(y, z []float32) int { return 0 }

func geluBackwardVector(d, z []float32) int { return 0 }

func unaryVector(op int, y, z []float32) int { return 0 }
