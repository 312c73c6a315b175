//go:build !openblas

package nn

// rowIndependentGEMM: pipe's own GEMM computes each output row the same way whatever the
// number of rows in the product, so a batch predicted in chunks is bit-identical to the whole.
const rowIndependentGEMM = true
