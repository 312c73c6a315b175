//go:build openblas && cgo

package gemm

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
void openblas_set_num_threads(int num_threads);
*/
import "C"

import "unsafe"

// builtinDefault is OpenBLAS under the openblas build tag: the user asked for it. It runs
// single-threaded; parallelism comes from pipe's own CPU budget.
func builtinDefault() Backend {
	C.openblas_set_num_threads(1)
	return OpenBLAS{}
}

func builtinBackends() []Backend { return []Backend{Gonum{}, Asm{}, OpenBLAS{}} }

// OpenBLAS calls cblas_sgemm from libopenblas (build tag openblas). It is single-threaded:
// openblas_set_num_threads(1) is called when the package is initialised.
type OpenBLAS struct{}

// Name returns "openblas".
func (OpenBLAS) Name() string { return "openblas" }

// RowBlock implements RowBlocker: each cblas_sgemm call costs several microseconds of set-up
// and packing, so Parallel splits only products of more than 1024 rows (one call for every
// product of a training step with up to 1024-wide layers).
func (OpenBLAS) RowBlock() int { return 1024 }

// Sgemm implements Backend.
func (OpenBLAS) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleTo(c, m, n, ldc, beta)
		return
	}
	ta, tb := C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans), C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans)
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda), (*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}
