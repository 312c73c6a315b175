package gemm

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Gonum is the pure-Go backend (gonum.org/v1/gonum/blas/gonum), the fallback where pipe's
// assembly kernels do not run. gonum starts goroutines (up to GOMAXPROCS) for any product of 4
// or more 64×64 blocks of C, outside the run's CPU budget and allocating on every call; Gonum
// therefore calls it on tiles of C of at most 64×192, which gonum runs serially without
// allocating. Parallelism comes from gemm.Parallel and the caller's budget instead. gonum sums
// over k in the same order whatever the tile, so the result does not depend on the tiling.
// gonum skips zero entries of A.
type Gonum struct{}

// Tile of C that gonum runs serially (fewer than its minParBlock = 4 blocks of 64×64).
const gonumTileRows, gonumTileCols = 64, 192

// Name returns "gonum".
func (Gonum) Name() string { return "gonum" }

// Sgemm implements Backend.
func (Gonum) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleTo(c, m, n, ldc, beta)
		return
	}
	impl := gonum.Implementation{}
	ta, tb := blasTrans(transA), blasTrans(transB)
	for i0 := 0; i0 < m; i0 += gonumTileRows {
		rows := min(gonumTileRows, m-i0)
		var ablk []float32
		if transA {
			ablk = a[i0:] // columns i0.. of the stored k×m A
		} else {
			ablk = a[i0*lda:] // rows i0.. of A
		}
		for j0 := 0; j0 < n; j0 += gonumTileCols {
			cols := min(gonumTileCols, n-j0)
			var bblk []float32
			if transB {
				bblk = b[j0*ldb:] // rows j0.. of the stored n×k B
			} else {
				bblk = b[j0:] // columns j0.. of B
			}
			impl.Sgemm(ta, tb, rows, cols, k, alpha, ablk, lda, bblk, ldb, beta, c[i0*ldc+j0:], ldc)
		}
	}
}

func blasTrans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// scaleTo sets C = beta·C (C = 0 when beta is 0).
func scaleTo(c []float32, m, n, ldc int, beta float32) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}
