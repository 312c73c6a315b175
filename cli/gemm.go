package cli

import "github.com/pipe-ml/pipe/nn/gemm"

// gemmName names the matrix-product backend for the manifest.
func gemmName() string { return gemm.Default().Name() }
