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

//go:noescape
func copyRowsAVX(dst *float32, src *float32, lds int, k int, w8 int)

// copyRows sets dst[p*w+c] = src[p*lds+c] for p < k, c < w: k rows of w floats into a
// contiguous panel. With AVX and w a multiple of 8 it moves 8 floats at a time without a
// call per row (packB's NN panels, kc rows of nr floats each).
func copyRows(dst []float32, src []float32, lds int, k int, w int) {
	if k == 0 || w == 0 {
		return
	}
	if hasAVXTranspose && w%8 == 0 {
		_ = src[(k-1)*lds+w-1]
		_ = dst[k*w-1]
		copyRowsAVX(&dst[0], &src[0], lds, k, w/8)
		return
	}
	copyRowsGeneric(dst, src, lds, k, w)
}
