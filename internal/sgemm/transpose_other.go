//go:build !amd64 || purego

package sgemm

// transpose8xK sets dst[p*ldd+r] = src[r*lds+p] for r < 8, p < k.
func transpose8xK(dst []float32, ldd int, src []float32, lds int, k int) {
	transpose8xKGeneric(dst, ldd, src, lds, 0, k)
}

// copyRows sets dst[p*w+c] = src[p*lds+c] for p < k, c < w.
func copyRows(dst []float32, src []float32, lds int, k int, w int) {
	copyRowsGeneric(dst, src, lds, k, w)
}
