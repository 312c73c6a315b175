package gemm

import "github.com/pipe-ml/pipe/internal/sgemm"

// Asm is pipe's own SGEMM (internal/sgemm): Go assembly with AVX-512 and AVX2+FMA kernels
// chosen at run time, and a pure-Go kernel elsewhere. No cgo. It is the default backend of the
// default build on amd64 CPUs with AVX2.
type Asm struct{}

// Name returns "sgemm-" plus the kernel in use: avx512, avx2 or generic.
func (Asm) Name() string { return "sgemm-" + sgemm.Kernel() }

// Sgemm implements Backend.
func (Asm) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
