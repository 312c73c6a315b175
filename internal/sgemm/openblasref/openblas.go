//go:build openblas && cgo

package openblasref

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import "unsafe"

// Sgemm calls cblas_sgemm with CblasRowMajor; the arguments mean what they do for
// sgemm.Sgemm. The caller guarantees the slices are long enough (OpenBLAS does not check).
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	var ta, tb uint32 = C.CblasNoTrans, C.CblasNoTrans
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

// SetNumThreads sets OpenBLAS's thread count (openblas_set_num_threads).
func SetNumThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// CoreName reports the kernel set OpenBLAS chose (openblas_get_corename), e.g. "SkylakeX".
func CoreName() string { return C.GoString(C.openblas_get_corename()) }
