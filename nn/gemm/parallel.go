package gemm

import "sync"

// Parallel splits the rows of C into blocks of RowBlock rows and multiplies them with Backend on
// up to Workers goroutines. The blocks depend only on m, never on Workers, so the result is
// bit-identical for any Workers (OpenBLAS, for one, rounds differently for different block
// shapes, so splitting by Workers would not be). Products with m <= RowBlock are one call.
// Workers <= 1 runs the blocks in order on the calling goroutine.
type Parallel struct {
	Backend Backend
	Workers int
}

// RowBlock is the number of C rows per block in Parallel, unless the backend asks for another
// (see RowBlocker).
const RowBlock = 128

// RowBlocker is implemented by backends that want another row block than RowBlock in
// Parallel: a backend whose per-call overhead is large (OpenBLAS) is faster with fewer, larger
// calls. The block must depend on nothing but the backend, so that results stay bit-identical
// for any Workers.
type RowBlocker interface {
	RowBlock() int
}

// rowBlock returns the row block Parallel uses with b.
func rowBlock(b Backend) int {
	if rb, ok := b.(RowBlocker); ok && rb.RowBlock() > 0 {
		return rb.RowBlock()
	}
	return RowBlock
}

// Name returns the wrapped backend's name.
func (p Parallel) Name() string { return p.Backend.Name() }

// Sgemm implements Backend.
func (p Parallel) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	rb := rowBlock(p.Backend)
	if m <= rb {
		p.Backend.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	nblk := (m + rb - 1) / rb
	w := min(p.Workers, nblk)
	if w <= 1 {
		for i := 0; i < nblk; i++ {
			p.block(i, rb, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		}
		return
	}
	p.parallel(w, nblk, rb, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// block multiplies row block i of C.
func (p Parallel) block(i, rb int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	lo := i * rb
	rows := min(rb, m-lo)
	// Row block of op(A): rows of A when not transposed, columns when transposed.
	var ablk []float32
	if transA {
		ablk = a[lo:]
	} else {
		ablk = a[lo*lda:]
	}
	p.Backend.Sgemm(transA, transB, rows, n, k, alpha, ablk, lda, b, ldb, beta, c[lo*ldc:], ldc)
}

func (p Parallel) parallel(w, nblk, rb int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	var wg sync.WaitGroup
	for g := 0; g < w; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < nblk; i += w {
				p.block(i, rb, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
			}
		}()
	}
	wg.Wait()
}
