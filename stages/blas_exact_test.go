//go:build !openblas

package stages

// rowIndependentGEMM: pipe's own GEMM gives each row the same result whatever the rows
// around it, so metrics computed over differently chunked predictions are bit-identical.
const rowIndependentGEMM = true
