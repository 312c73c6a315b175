//go:build openblas

package nn

// rowIndependentGEMM: OpenBLAS blocks a product by its size (and by the CPU's kernels: AVX-512
// ones do), so a row's result can differ in the last bits with the number of rows: a batch
// predicted in chunks matches the whole within float32 rounding, not bit for bit.
const rowIndependentGEMM = false
