package sgemm

// microKernel computes one mr×nr tile of C from mr rows of op(A) and a packed B micro-panel
// (see pack.go):
//
//	C[i*ldc+j] = alpha*Σ_p A(i,p)*b[p*nr+j] + beta*C[i*ldc+j]   (i < mr, j < nr, p < k)
//
// with beta == 0 meaning C is overwritten without being read. Two variants read A in place,
// so A is never packed except for the last, partial strip of rows:
//
//   - t: A(i,p) = a[p*lda+i], a transposed A, or a packed micro-panel with lda = mr;
//   - n: A(i,p) = a[i*lda+p], a row-major A.
//
// The driver guarantees every slice is long enough for the tile.
type microKernel struct {
	name string
	mr   int // rows of the register tile
	nr   int // columns of the register tile
	t    kernelFunc
	n    kernelFunc

	// Optional narrow kernel for the last column strip of C when it is at most narrowNR
	// wide: mr×narrowNR tile, B packed narrowNR wide, C accessed only in its first cols
	// columns. narrowNR == 0 means none.
	narrowNR int
	narrowT  narrowKernelFunc
	narrowN  narrowKernelFunc
}

type kernelFunc func(k int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32)

type narrowKernelFunc func(k int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32, cols int)

// Register-tile size of the pure-Go kernel.
const (
	genericMR = 4
	genericNR = 4
)

// genericKernel is the portable pure-Go micro-kernel, a 4×4 tile accumulated in locals.
var genericKernel = &microKernel{name: "generic", mr: genericMR, nr: genericNR, t: kernel4x4GenericT, n: kernel4x4GenericN}

// activeKernel is the kernel Sgemm uses; tests overwrite it to exercise every kernel the CPU
// supports.
var activeKernel = bestKernel()

// Kernel reports the micro-kernel in use: "avx512", "avx2" or "generic".
func Kernel() string { return activeKernel.name }

// kernel4x4GenericT is the pure-Go micro-kernel for A(i,p) = a[p*lda+i]. It runs over k
// twice, two rows at a time: 8 accumulators plus 6 operands fit the 16 float registers of
// amd64 without spilling, which a 16-accumulator loop does not.
func kernel4x4GenericT(k int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32) {
	var acc [genericMR][genericNR]float32
	for i := 0; i < genericMR; i += 2 {
		var c00, c01, c02, c03, c10, c11, c12, c13 float32
		for p := range k {
			ap := a[p*lda+i : p*lda+i+2 : p*lda+i+2]
			bp := b[p*4 : p*4+4 : p*4+4]
			a0, a1 := ap[0], ap[1]
			b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
			c00, c01, c02, c03 = c00+a0*b0, c01+a0*b1, c02+a0*b2, c03+a0*b3
			c10, c11, c12, c13 = c10+a1*b0, c11+a1*b1, c12+a1*b2, c13+a1*b3
		}
		acc[i] = [genericNR]float32{c00, c01, c02, c03}
		acc[i+1] = [genericNR]float32{c10, c11, c12, c13}
	}
	storeGenericTile(&acc, c, ldc, alpha, beta)
}

// kernel4x4GenericN is the pure-Go micro-kernel for A(i,p) = a[i*lda+p], two rows per pass
// like kernel4x4GenericT.
func kernel4x4GenericN(k int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32) {
	var acc [genericMR][genericNR]float32
	for i := 0; i < genericMR; i += 2 {
		var c00, c01, c02, c03, c10, c11, c12, c13 float32
		r0, r1 := a[i*lda:i*lda+k], a[(i+1)*lda:(i+1)*lda+k]
		for p := range k {
			bp := b[p*4 : p*4+4 : p*4+4]
			a0, a1 := r0[p], r1[p]
			b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
			c00, c01, c02, c03 = c00+a0*b0, c01+a0*b1, c02+a0*b2, c03+a0*b3
			c10, c11, c12, c13 = c10+a1*b0, c11+a1*b1, c12+a1*b2, c13+a1*b3
		}
		acc[i] = [genericNR]float32{c00, c01, c02, c03}
		acc[i+1] = [genericNR]float32{c10, c11, c12, c13}
	}
	storeGenericTile(&acc, c, ldc, alpha, beta)
}

func storeGenericTile(acc *[genericMR][genericNR]float32, c []float32, ldc int, alpha, beta float32) {
	for i := range genericMR {
		row := c[i*ldc : i*ldc+genericNR]
		if beta == 0 {
			for j := range row {
				row[j] = alpha * acc[i][j]
			}
			continue
		}
		for j := range row {
			row[j] = alpha*acc[i][j] + beta*row[j]
		}
	}
}
