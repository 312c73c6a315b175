//go:build amd64 && !purego

package sgemm

import "golang.org/x/sys/cpu"

// Register-tile sizes of the assembly kernels.
const (
	avx512MR = 8
	avx512NR = 32
	// avx512NarrowNR is the width of the narrow AVX-512 kernel used for a last column strip
	// of at most 16 columns.
	avx512NarrowNR = 16
	avx2MR         = 6
	avx2NR         = 16
)

//go:noescape
func kernel8x32AVX512T(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernel8x32AVX512N(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernel8x16AVX512T(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32, mask uint64)

//go:noescape
func kernel8x16AVX512N(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32, mask uint64)

//go:noescape
func kernel6x16AVX2T(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernel6x16AVX2N(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)

var (
	avx512Kernel = &microKernel{name: "avx512", mr: avx512MR, nr: avx512NR,
		t: func(k int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32) {
			kernel8x32AVX512T(k, &a[0], lda, &b[0], &c[0], ldc, alpha, beta)
		},
		n: func(k int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32) {
			kernel8x32AVX512N(k, &a[0], lda, &b[0], &c[0], ldc, alpha, beta)
		},
		narrowNR: avx512NarrowNR,
		narrowT: func(k int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32, cols int) {
			kernel8x16AVX512T(k, &a[0], lda, &b[0], &c[0], ldc, alpha, beta, 1<<cols-1)
		},
		narrowN: func(k int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32, cols int) {
			kernel8x16AVX512N(k, &a[0], lda, &b[0], &c[0], ldc, alpha, beta, 1<<cols-1)
		},
	}
	avx2Kernel = &microKernel{name: "avx2", mr: avx2MR, nr: avx2NR,
		t: func(k int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32) {
			kernel6x16AVX2T(k, &a[0], lda, &b[0], &c[0], ldc, alpha, beta)
		},
		n: func(k int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32) {
			kernel6x16AVX2N(k, &a[0], lda, &b[0], &c[0], ldc, alpha, beta)
		},
	}
)

// supportedKernels lists the kernels this CPU can run, fastest first.
func supportedKernels() []*microKernel {
	var ks []*microKernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512Kernel)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernel)
	}
	return append(ks, genericKernel)
}

func bestKernel() *microKernel { return supportedKernels()[0] }
