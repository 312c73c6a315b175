package sgemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// TestSgemmParallelBitIdentical checks that every thread count gives exactly Sgemm's bits,
// for every kernel, on shapes large enough to be split (and with edge tiles).
func TestSgemmParallelBitIdentical(t *testing.T) {
	shapes := [][3]int{{128, 784, 256}, {131, 263, 70}, {300, 45, 97}, {9, 1000, 150}}
	if raceEnabled {
		shapes = [][3]int{{131, 263, 70}, {9, 1000, 150}}
	}
	for _, kern := range supportedKernels() {
		for _, tr := range [4][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			for _, s := range shapes {
				g := gemmCase{tr[0], tr[1], s[0], s[1], s[2], 1, 2, 3, 0.5, 1.5}
				t.Run(kern.name+"/"+g.String(), func(t *testing.T) {
					withKernel(t, kern, func(t *testing.T) {
						o := newOperands(g, rand.New(rand.NewPCG(uint64(s[0]), uint64(s[1]))))
						want := slices.Clone(o.c)
						Sgemm(g.transA, g.transB, g.m, g.n, g.k, g.alpha, o.a, o.lda, o.b, o.ldb, g.beta, want, o.ldc)
						for _, threads := range []int{1, 2, 3, 8} {
							got := slices.Clone(o.c)
							SgemmParallel(threads, g.transA, g.transB, g.m, g.n, g.k, g.alpha, o.a, o.lda, o.b, o.ldb, g.beta, got, o.ldc)
							for i := range got {
								if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
									t.Fatalf("threads=%d: C[%d] = %v, Sgemm gives %v", threads, i, got[i], want[i])
								}
							}
						}
					})
				})
			}
		}
	}
}

// TestSplitGrid checks the partition SgemmParallel uses: tile-aligned blocks that cover C,
// no more blocks than threads, a single block for small products, and a split for large ones.
func TestSplitGrid(t *testing.T) {
	cases := []struct {
		threads, m, n, k, mr, nr int
		wantSplit                bool
	}{
		{8, 16, 16, 16, 8, 32, false},       // 4096 FMAs: never worth a goroutine
		{2, 128, 10, 128, 8, 32, false},     // 164K FMAs: below minFMAsPerGoroutine
		{1, 1024, 1024, 1024, 8, 32, false}, // one thread asked for
		{2, 128, 256, 784, 8, 32, true},
		{3, 128, 784, 256, 8, 32, true},
		{8, 1024, 1024, 1024, 6, 16, true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("threads=%d/%dx%dx%d", tc.threads, tc.m, tc.n, tc.k), func(t *testing.T) {
			mb, nb := splitGrid(tc.threads, tc.m, tc.n, tc.k, tc.mr, tc.nr)
			if mb%tc.mr != 0 || nb%tc.nr != 0 || mb <= 0 || nb <= 0 {
				t.Fatalf("blocks %d×%d are not whole register tiles (%d×%d)", mb, nb, tc.mr, tc.nr)
			}
			blocks := ceilDiv(tc.m, mb) * ceilDiv(tc.n, nb)
			if blocks > tc.threads {
				t.Fatalf("%d blocks for %d threads", blocks, tc.threads)
			}
			if (blocks > 1) != tc.wantSplit {
				t.Fatalf("%d blocks (%d×%d), want split=%v", blocks, mb, nb, tc.wantSplit)
			}
			if blocks > 1 && tc.m*tc.n*tc.k/blocks < minFMAsPerGoroutine {
				t.Fatalf("%d blocks leave under %d FMAs each", blocks, minFMAsPerGoroutine)
			}
		})
	}
}

// TestSgemmAllocatesNothing checks the steady state of Sgemm and SgemmParallel (pooled
// packing buffers and task lists; no closures for the goroutines).
func TestSgemmAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	s := benchShape{"", false, true, 128, 784, 256}
	a, lda, b, ldb, c := benchOperands(s)
	for _, threads := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			allocs := testing.AllocsPerRun(20, func() {
				SgemmParallel(threads, s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, b, ldb, 0, c, s.n)
			})
			if allocs > 0 {
				t.Fatalf("%v allocations per call, want 0", allocs)
			}
		})
	}
}

// TestSgemmParallelConcurrentCallers runs several SgemmParallel calls at once (they share the
// task queue) and checks each result against Sgemm bit for bit, and that no goroutine
// outlives the calls.
func TestSgemmParallelConcurrentCallers(t *testing.T) {
	defer goleak.VerifyNone(t)
	const callers = 4
	g := gemmCase{false, true, 96, 200, 120, 0, 0, 0, 1, 0}
	var want [callers][]float32
	var ops [callers]operands
	for i := range callers {
		ops[i] = newOperands(g, rand.New(rand.NewPCG(uint64(i), 99)))
		want[i] = slices.Clone(ops[i].c)
		o := ops[i]
		Sgemm(g.transA, g.transB, g.m, g.n, g.k, g.alpha, o.a, o.lda, o.b, o.ldb, g.beta, want[i], o.ldc)
	}
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := ops[i]
			SgemmParallel(3, g.transA, g.transB, g.m, g.n, g.k, g.alpha, o.a, o.lda, o.b, o.ldb, g.beta, o.c, o.ldc)
		}()
	}
	wg.Wait()
	for i := range callers {
		for j := range want[i] {
			if math.Float32bits(ops[i].c[j]) != math.Float32bits(want[i][j]) {
				t.Fatalf("caller %d: C[%d] = %v, want %v", i, j, ops[i].c[j], want[i][j])
			}
		}
	}
}
