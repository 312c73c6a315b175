package sgemm

import (
	"fmt"
	"strings"
	"sync"
)

// Cache blocking (GotoBLAS/BLIS loop order jc → pc → ic → jr → ir).
//
// Only B is packed. The kc×nr micro-panel of packed B is reused by every strip of A in the
// ic block, so it should stay in L1: with the AVX-512 kernel (nr = 32) a kc of 256 makes it
// 32 KiB, inside the 48 KiB L1D of Zen 4/5 next to the 8 KiB strip of A (8 rows × kc) being
// streamed. A is read in place by the kernels (row-major or transposed variant), so the MLP's
// small-M products pay no packing for it; the mc×kc block of A it touches (≤ 192×256×4 =
// 192 KiB) stays in the 1 MiB L2 across the jr loop. The packed kc×nc panel of B (≤
// 256×4096×4 = 4 MiB) lives in L2/L3. Each dimension is split into equal blocks no larger
// than the maximum (K = 784 runs as 4 blocks of 196, not 256+256+256+16) and mc, nc are
// rounded up to whole register tiles.
const (
	maxKC = 256
	maxMC = 192
	maxNC = 4096
)

// Largest register tile of any kernel, for the edge-tile scratch buffer.
const (
	maxMR = 8
	maxNR = 32
)

// workspace holds one goroutine's packing buffers.
type workspace struct {
	a    []float32              // the last, partial strip of A rows, packed zero-padded (mr×kc)
	b    []float32              // the packed kc×nc panel of B
	tile [maxMR * maxNR]float32 // scratch register tile for edge tiles
}

var workspacePool = sync.Pool{New: func() any { return new(workspace) }}

// grow returns s resized to n elements, reallocating only when its capacity is too small.
func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices, like cblas_sgemm with
// CblasRowMajor, with op(X) = X or Xᵀ. A is m×k (k×m when transA), B is k×n (n×k when
// transB), C is m×n; lda, ldb and ldc are the row strides. beta == 0 means C is overwritten
// (NaNs in C are ignored); alpha == 0 or k == 0 scales C by beta without reading A or B.
//
// Sgemm allocates nothing in the steady state: packing buffers come from a pool. It panics,
// as BLAS implementations do, if a dimension is negative, a stride is smaller than its row
// length, or a slice is too short for the shape it describes.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	ws := workspacePool.Get().(*workspace)
	gemmBlock(activeKernel, ws, transA, transB, 0, m, 0, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	workspacePool.Put(ws)
}

// checkArgs panics with an explanatory message when the arguments do not describe valid
// matrices. It is the only bounds check the assembly kernels rely on.
func checkArgs(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("sgemm: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	aRows, aCols := m, k
	if transA {
		aRows, aCols = k, m
	}
	bRows, bCols := k, n
	if transB {
		bRows, bCols = n, k
	}
	checkMatrix("A", aRows, aCols, a, lda)
	checkMatrix("B", bRows, bCols, b, ldb)
	checkMatrix("C", m, n, c, ldc)
}

func checkMatrix(name string, rows, cols int, s []float32, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("sgemm: ld%s=%d is less than the %d columns of stored %s", strings.ToLower(name), ld, cols, name))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(s) < need {
		panic(fmt.Sprintf("sgemm: %s has %d elements, a %d×%d matrix with stride %d needs %d", name, len(s), rows, cols, ld, need))
	}
}

// scaleC sets C = beta*C; beta == 0 overwrites C with zeros.
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := range m {
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

// ceilDiv returns ⌈a/b⌉ for a ≥ 0, b > 0.
func ceilDiv(a, b int) int { return (a + b - 1) / b }

// roundUp returns the smallest multiple of b that is ≥ a.
func roundUp(a, b int) int { return ceilDiv(a, b) * b }

// blockSize splits length into equal blocks of at most maxBlock, rounded up to a multiple of
// unit.
func blockSize(length, maxBlock, unit int) int {
	nb := ceilDiv(length, maxBlock)
	return roundUp(ceilDiv(length, nb), unit)
}

// gemmBlock computes rows [i0, i1) and columns [j0, j1) of C = alpha*op(A)*op(B) + beta*C
// with kern. i0 and j0 must be multiples of kern.mr and kern.nr, so that every register
// tile sits at the same place whatever the partition: this is what makes SgemmParallel
// bit-identical to Sgemm. K is never split across calls.
func gemmBlock(kern *microKernel, ws *workspace, transA, transB bool, i0, i1, j0, j1, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	mr, nr := kern.mr, kern.nr
	kc := blockSize(k, maxKC, 1)
	mc := blockSize(i1-i0, maxMC, mr)
	nc := blockSize(j1-j0, maxNC, nr)
	ws.a = grow(ws.a, mr*kc)
	ws.b = grow(ws.b, nc*kc)
	tile := ws.tile[:mr*nr]

	for jc := j0; jc < j1; jc += nc {
		ncur := min(nc, j1-jc)
		for pc := 0; pc < k; pc += kc {
			kcur := min(kc, k-pc)
			betaCur := beta
			if pc > 0 {
				betaCur = 1
			}
			packB(ws.b, b, ldb, transB, pc, jc, kcur, ncur, nr, kern.narrowNR)
			for ic := i0; ic < i1; ic += mc {
				mcur := min(mc, i1-ic)
				fullRows := mcur - mcur%mr
				if fullRows < mcur {
					// Only the last strip of C can be partial; pack it zero-padded once.
					packA(ws.a, a, lda, transA, ic+fullRows, pc, mcur-fullRows, kcur, mr)
				}
				for jr := 0; jr < ncur; jr += nr {
					cols := min(nr, ncur-jr)
					narrow := cols <= kern.narrowNR
					width := nr
					if narrow {
						width = kern.narrowNR
					}
					bp := ws.b[jr*kcur : jr*kcur+width*kcur]
					for ir := 0; ir < mcur; ir += mr {
						// Full strips of A are read in place, the partial one from ws.a.
						transposed, ap, ldap := true, ws.a[:mr*kcur], mr
						switch {
						case ir == fullRows:
						case transA:
							ap, ldap = a[pc*lda+ic+ir:], lda
						default:
							transposed, ap, ldap = false, a[(ic+ir)*lda+pc:], lda
						}
						off := (ic+ir)*ldc + jc + jr
						rows := min(mr, mcur-ir)
						switch {
						case narrow:
							fn := kern.narrowN
							if transposed {
								fn = kern.narrowT
							}
							if rows == mr {
								fn(kcur, ap, ldap, bp, c[off:], ldc, alpha, betaCur, cols)
								continue
							}
							fn(kcur, ap, ldap, bp, tile, width, 1, 0, width)
							mergeTile(rows, cols, alpha, tile, width, betaCur, c[off:], ldc)
						default:
							fn := kern.n
							if transposed {
								fn = kern.t
							}
							if rows == mr && cols == nr {
								fn(kcur, ap, ldap, bp, c[off:], ldc, alpha, betaCur)
								continue
							}
							fn(kcur, ap, ldap, bp, tile, nr, 1, 0)
							mergeTile(rows, cols, alpha, tile, nr, betaCur, c[off:], ldc)
						}
					}
				}
			}
		}
	}
}

// mergeTile sets C = alpha*T + beta*C over a rows×cols edge tile; beta == 0 overwrites C.
func mergeTile(rows, cols int, alpha float32, t []float32, ldt int, beta float32, c []float32, ldc int) {
	for i := range rows {
		src := t[i*ldt : i*ldt+cols]
		dst := c[i*ldc : i*ldc+cols]
		if beta == 0 {
			for j, v := range src {
				dst[j] = alpha * v
			}
			continue
		}
		for j, v := range src {
			dst[j] = alpha*v + beta*dst[j]
		}
	}
}
