// Package gemm is pipe's single entry point for dense single-precision matrix multiplication
// (SGEMM, row-major): C = alpha·op(A)·op(B) + beta·C.
//
// A Backend is selected once per process with SetDefault (Default returns the pure-Go gonum
// backend unless a faster one was registered). Backends:
//
//   - "gonum": gonum.org/v1/gonum/blas/gonum. Pure Go, always available. Note: it starts
//     goroutines inside each call for large products (its own parallelism, outside pipe's CPU
//     budget), and it skips work for zero entries of A, so its speed on sparse or zero data is
//     not representative of dense data.
//   - "openblas" (build tag openblas, cgo, links -lopenblas): calls cblas_sgemm directly.
//     openblas_set_num_threads(1) is called at init: parallelism comes from pipe's own worker
//     budget, so results are deterministic and independent of the machine's core count.
//
// All backends use the same row-major convention as BLAS: lda, ldb and ldc are the row strides
// (number of columns of the stored matrix, before transposition).
package gemm
