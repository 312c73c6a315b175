//go:build openblas

package stages

// rowIndependentGEMM: OpenBLAS blocks a product by its size (AVX-512 kernels do), so metrics
// over differently chunked predictions agree within float rounding, not bit for bit.
const rowIndependentGEMM = false
