package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// naiveSgemm is the reference triple loop, accumulated in float64.
func naiveSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			old := float64(0)
			if beta != 0 {
				old = float64(beta) * float64(c[i*ldc+j])
			}
			c[i*ldc+j] = float32(float64(alpha)*s + old)
		}
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func backendsUnderTest() []Backend {
	var out []Backend
	for _, b := range Available() {
		out = append(out, b, Parallel{Backend: b, Workers: 3})
	}
	return out
}

func TestSgemmMatchesNaive(t *testing.T) {
	sizes := []struct{ m, n, k int }{{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {64, 31, 65}, {129, 10, 257}, {300, 7, 5}, {70, 400, 33}}
	for _, be := range backendsUnderTest() {
		for _, sz := range sizes {
			for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
				for _, ab := range [][2]float32{{1, 0}, {0.5, 1.5}} {
					name := fmt.Sprintf("%s/%T/m%d_n%d_k%d/tA=%v_tB=%v/alpha%g_beta%g", be.Name(), be, sz.m, sz.n, sz.k, tr[0], tr[1], ab[0], ab[1])
					t.Run(name, func(t *testing.T) {
						rng := rand.New(rand.NewPCG(1, uint64(sz.m*1000+sz.n)))
						m, n, k := sz.m, sz.n, sz.k
						// Strides larger than the logical width check lda/ldb/ldc handling.
						ar, ac := m, k
						if tr[0] {
							ar, ac = k, m
						}
						br, bc := k, n
						if tr[1] {
							br, bc = n, k
						}
						lda, ldb, ldc := ac+2, bc+1, n+3
						a := randSlice(rng, ar*lda)
						b := randSlice(rng, br*ldb)
						c0 := randSlice(rng, m*ldc)
						got := append([]float32(nil), c0...)
						want := append([]float32(nil), c0...)
						be.Sgemm(tr[0], tr[1], m, n, k, ab[0], a, lda, b, ldb, ab[1], got, ldc)
						naiveSgemm(tr[0], tr[1], m, n, k, ab[0], a, lda, b, ldb, ab[1], want, ldc)
						tol := 1e-5 * math.Sqrt(float64(k)) * 4
						for i := 0; i < m; i++ {
							for j := 0; j < ldc; j++ {
								g, w := got[i*ldc+j], want[i*ldc+j]
								if j >= n {
									if g != c0[i*ldc+j] {
										t.Fatalf("padding C[%d,%d] changed: %v -> %v", i, j, c0[i*ldc+j], g)
									}
									continue
								}
								if d := math.Abs(float64(g - w)); d > tol*(1+math.Abs(float64(w))) {
									t.Fatalf("C[%d,%d] = %v, naive %v (diff %g > tol %g)", i, j, g, w, d, tol)
								}
							}
						}
					})
				}
			}
		}
	}
}

func TestBetaZeroIgnoresNaN(t *testing.T) {
	for _, be := range backendsUnderTest() {
		t.Run(be.Name(), func(t *testing.T) {
			a := []float32{1, 2, 3, 4}
			b := []float32{1, 0, 0, 1}
			c := []float32{float32(math.NaN()), float32(math.NaN()), float32(math.NaN()), float32(math.NaN())}
			be.Sgemm(false, false, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2)
			for i, v := range c {
				if v != a[i] {
					t.Fatalf("c = %v, want A·I = %v", c, a)
				}
			}
		})
	}
}

func TestParallelBitIdentical(t *testing.T) {
	for _, be := range Available() {
		t.Run(be.Name(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			m, n, k := 2100, 64, 96 // several row blocks of every backend (OpenBLAS's are 1024)
			a, b := randSlice(rng, m*k), randSlice(rng, k*n)
			c1, c2 := make([]float32, m*n), make([]float32, m*n)
			Parallel{Backend: be, Workers: 1}.Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c1, n)
			Parallel{Backend: be, Workers: 4}.Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c2, n)
			for i := range c1 {
				if c1[i] != c2[i] {
					t.Fatalf("element %d differs: %v vs %v", i, c1[i], c2[i])
				}
			}
		})
	}
}

func BenchmarkSgemm(b *testing.B) {
	for _, be := range Available() {
		for _, sz := range []struct{ m, n, k int }{{128, 256, 784}, {256, 256, 256}} {
			b.Run(fmt.Sprintf("%s/%dx%dx%d", be.Name(), sz.m, sz.n, sz.k), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 2))
				a, bb := randSlice(rng, sz.m*sz.k), randSlice(rng, sz.k*sz.n)
				c := make([]float32, sz.m*sz.n)
				b.ReportAllocs()
				for b.Loop() {
					be.Sgemm(false, false, sz.m, sz.n, sz.k, 1, a, sz.k, bb, sz.n, 0, c, sz.n)
				}
				flop := 2 * float64(sz.m*sz.n*sz.k) * float64(b.N)
				b.ReportMetric(flop/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// TestGonumStaysSerial: the gonum backend runs within the caller's goroutine (no goroutines of
// its own, outside the CPU budget) and allocates nothing, even for products large enough that
// gonum would go parallel.
func TestGonumStaysSerial(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	m, n, k := 256, 256, 128
	a, b, c := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
	allocs := testing.AllocsPerRun(5, func() {
		Gonum{}.Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
	})
	if allocs != 0 {
		t.Errorf("gonum backend allocates %v times per product", allocs)
	}
}
