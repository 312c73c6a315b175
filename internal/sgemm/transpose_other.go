//go:build !amd64 || purego

package sgemm

// transpose8xK sets dst[p*ldd+r] = src[r*lds+p] for r < 8, p < k.
func transpose8xK(dst []float32, ldd int, src []float32, lds int, k int) {
	transpose8xKGeneric(dst, ldd, src, lds, 0, k)
}
