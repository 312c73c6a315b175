//go:build amd64 && !purego

package sgemm

import "golang.org/x/sys/cpu"

//go:noescape
func transpose8xKAVX(dst *float32, ldd int, src *float32, lds int, k int)

// hasAVXTranspose reports whether transpose8xKAVX can run (it needs AVX only).
var hasAVXTranspose = cpu.X86.HasAVX

// transpose8xK sets dst[p*ldd+r] = src[r*lds+p] for r < 8, p < k, using AVX for the
// multiple-of-8 part of k. dst and src must be long enough; the caller checks.
func transpose8xK(dst []float32, ldd int, src []float32, lds int, k int) {
	k8 := 0
	if hasAVXTranspose && k >= 8 {
		k8 = k &^ 7
		_ = src[7*lds+k8-1]
		_ = dst[(k8-1)*ldd+7]
		transpose8xKAVX(&dst[0], ldd, &src[0], lds, k8)
	}
	transpose8xKGeneric(dst, ldd, src, lds, k8, k)
}
