package cli

// gemmName names the matrix-product backend for the manifest.
func gemmName() string { return "" }
