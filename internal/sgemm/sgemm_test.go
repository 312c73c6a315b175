package sgemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// gemmCase is one product to check; lda, ldb, ldc pad the strides past the row length.
type gemmCase struct {
	transA, transB bool
	m, n, k        int
	padA, padB     int
	padC           int
	alpha, beta    float32
}

func (g gemmCase) String() string {
	t := func(b bool) string {
		if b {
			return "T"
		}
		return "N"
	}
	return fmt.Sprintf("%s%s/m=%d,n=%d,k=%d/pad=%d,%d,%d/alpha=%g,beta=%g", t(g.transA), t(g.transB), g.m, g.n, g.k, g.padA, g.padB, g.padC, g.alpha, g.beta)
}

// operands holds the stored matrices of a case.
type operands struct {
	a, b, c       []float32
	lda, ldb, ldc int
}

// storedShape returns rows, cols of the stored operand for op(X) of shape r×c.
func storedShape(trans bool, r, c int) (int, int) {
	if trans {
		return c, r
	}
	return r, c
}

// newOperands fills A, B, C with uniform values in [-1, 1); the padding of C past column n
// holds a sentinel so tests can check it is left alone.
func newOperands(g gemmCase, rng *rand.Rand) operands {
	ar, ac := storedShape(g.transA, g.m, g.k)
	br, bc := storedShape(g.transB, g.k, g.n)
	o := operands{lda: ac + g.padA, ldb: bc + g.padB, ldc: g.n + g.padC}
	o.lda, o.ldb, o.ldc = max(o.lda, 1), max(o.ldb, 1), max(o.ldc, 1)
	o.a = randomMatrix(ar, o.lda, rng)
	o.b = randomMatrix(br, o.ldb, rng)
	o.c = randomMatrix(g.m, o.ldc, rng)
	for i := range g.m {
		for j := g.n; j < o.ldc; j++ {
			o.c[i*o.ldc+j] = sentinel
		}
	}
	return o
}

const sentinel = float32(12345.678)

func randomMatrix(rows, ld int, rng *rand.Rand) []float32 {
	s := make([]float32, rows*ld)
	for i := range s {
		s[i] = 2*rng.Float32() - 1
	}
	return s
}

// naiveGemm is the reference: float64 accumulation straight from the definition. It also
// returns, per element, the scale Σ|alpha·a·b| + |beta·c| that bounds the rounding error.
func naiveGemm(g gemmCase, o operands) (want, scale []float64) {
	want = make([]float64, g.m*g.n)
	scale = make([]float64, g.m*g.n)
	at := func(i, p int) float64 {
		if g.transA {
			return float64(o.a[p*o.lda+i])
		}
		return float64(o.a[i*o.lda+p])
	}
	bt := func(p, j int) float64 {
		if g.transB {
			return float64(o.b[j*o.ldb+p])
		}
		return float64(o.b[p*o.ldb+j])
	}
	for i := range g.m {
		for j := range g.n {
			var sum, abs float64
			for p := range g.k {
				x := at(i, p) * bt(p, j)
				sum += x
				abs += math.Abs(x)
			}
			v := float64(g.alpha) * sum
			s := math.Abs(float64(g.alpha)) * abs
			if g.beta != 0 {
				cv := float64(g.beta) * float64(o.c[i*o.ldc+j])
				v += cv
				s += math.Abs(cv)
			}
			want[i*g.n+j] = v
			scale[i*g.n+j] = s
		}
	}
	return want, scale
}

// tolerance is the error allowed relative to the element's scale: float32 summation of k
// products (plus alpha, beta and the K-block merges) errs by at most ~(k+4)·ε32.
func tolerance(k int) float64 { return float64(k+4) * 0x1p-23 }

// checkResult compares got (stored with stride ldc) against the reference and checks that
// the padding past column n still holds the sentinel.
func checkResult(t *testing.T, g gemmCase, got []float32, ldc int, want, scale []float64) {
	t.Helper()
	tol := tolerance(g.k)
	bad := 0
	for i := range g.m {
		for j := range g.n {
			w, s := want[i*g.n+j], scale[i*g.n+j]
			v := float64(got[i*ldc+j])
			if math.IsNaN(v) || math.Abs(v-w) > tol*s+1e-30 {
				if bad < 5 {
					t.Errorf("C[%d,%d] = %v, want %v (scale %v, tol %v)", i, j, v, w, s, tol*s)
				}
				bad++
			}
		}
		for j := g.n; j < ldc; j++ {
			if got[i*ldc+j] != sentinel {
				t.Fatalf("C[%d,%d] in the stride padding was overwritten: %v", i, j, got[i*ldc+j])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d elements wrong", bad, g.m*g.n)
	}
}

// withKernel runs f with kern forced as the active kernel.
func withKernel(t *testing.T, kern *microKernel, f func(t *testing.T)) {
	t.Helper()
	saved := activeKernel
	activeKernel = kern
	defer func() { activeKernel = saved }()
	f(t)
}

// edgeSizes are the dimensions around register-tile and block boundaries.
func edgeSizes() []int {
	if raceEnabled {
		return []int{0, 1, 7, 16, 17, 33}
	}
	return []int{0, 1, 7, 15, 16, 17, 31, 33}
}

func alphaBetas() [][2]float32 {
	return [][2]float32{{1, 0}, {1, 1}, {0.5, -2}, {-1.5, 0}, {0, 0.25}}
}

// testCases builds the table: edge sizes crossed with every transpose, random shapes up to
// past the K, M and N block sizes, random stride padding, alpha/beta variants.
func testCases(rng *rand.Rand) []gemmCase {
	var cases []gemmCase
	sizes := edgeSizes()
	abs := alphaBetas()
	for _, tr := range [4][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		for _, m := range sizes {
			for _, n := range sizes {
				k := sizes[rng.IntN(len(sizes))]
				ab := abs[rng.IntN(len(abs))]
				cases = append(cases, gemmCase{tr[0], tr[1], m, n, k, rng.IntN(3), rng.IntN(3), rng.IntN(3), ab[0], ab[1]})
			}
		}
		big := [][3]int{{255, 257, 33}, {17, 33, 257}, {40, 70, 513}, {200, 9, 300}}
		if raceEnabled {
			big = [][3]int{{65, 33, 257}, {200, 9, 100}}
		}
		for _, s := range big {
			for _, ab := range abs {
				cases = append(cases, gemmCase{tr[0], tr[1], s[0], s[1], s[2], rng.IntN(5), rng.IntN(5), rng.IntN(5), ab[0], ab[1]})
			}
		}
	}
	return cases
}

func TestSgemmMatchesNaiveReference(t *testing.T) {
	for _, kern := range supportedKernels() {
		t.Run(kern.name, func(t *testing.T) {
			withKernel(t, kern, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(1, 2))
				for _, g := range testCases(rng) {
					t.Run(g.String(), func(t *testing.T) {
						o := newOperands(g, rng)
						want, scale := naiveGemm(g, o)
						a0, b0 := slices.Clone(o.a), slices.Clone(o.b)
						Sgemm(g.transA, g.transB, g.m, g.n, g.k, g.alpha, o.a, o.lda, o.b, o.ldb, g.beta, o.c, o.ldc)
						checkResult(t, g, o.c, o.ldc, want, scale)
						if !slices.Equal(a0, o.a) || !slices.Equal(b0, o.b) {
							t.Fatal("Sgemm modified A or B")
						}
					})
				}
			})
		})
	}
}

func gonumTrans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

func TestSgemmMatchesGonum(t *testing.T) {
	shapes := [][3]int{{1, 1, 1}, {7, 15, 31}, {17, 16, 33}, {64, 100, 300}, {128, 10, 128}, {33, 257, 17}}
	rng := rand.New(rand.NewPCG(11, 12))
	for range 3 {
		shapes = append(shapes, [3]int{1 + rng.IntN(150), 1 + rng.IntN(150), 1 + rng.IntN(300)})
	}
	for _, kern := range supportedKernels() {
		for _, tr := range [4][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			for _, s := range shapes {
				g := gemmCase{tr[0], tr[1], s[0], s[1], s[2], 3, 1, 2, 0.75, -0.5}
				t.Run(kern.name+"/"+g.String(), func(t *testing.T) {
					withKernel(t, kern, func(t *testing.T) {
						o := newOperands(g, rand.New(rand.NewPCG(uint64(s[0]), uint64(s[2]))))
						_, scale := naiveGemm(g, o)
						ref := slices.Clone(o.c)
						gonum.Implementation{}.Sgemm(gonumTrans(g.transA), gonumTrans(g.transB), g.m, g.n, g.k, g.alpha, o.a, o.lda, o.b, o.ldb, g.beta, ref, o.ldc)
						Sgemm(g.transA, g.transB, g.m, g.n, g.k, g.alpha, o.a, o.lda, o.b, o.ldb, g.beta, o.c, o.ldc)
						// Both sides round in float32, so allow twice the single-sided bound.
						tol := 2 * tolerance(g.k)
						for i := range g.m {
							for j := range g.n {
								got, want := float64(o.c[i*o.ldc+j]), float64(ref[i*o.ldc+j])
								if math.Abs(got-want) > tol*scale[i*g.n+j]+1e-30 {
									t.Fatalf("C[%d,%d] = %v, gonum %v", i, j, got, want)
								}
							}
						}
					})
				})
			}
		}
	}
}

// TestSgemmBetaZeroIgnoresNaN checks that beta == 0 overwrites C without reading it, and that
// alpha == 0 reads neither A nor B (both hold NaN there).
func TestSgemmBetaZeroIgnoresNaN(t *testing.T) {
	nan := float32(math.NaN())
	for _, kern := range supportedKernels() {
		t.Run(kern.name, func(t *testing.T) {
			withKernel(t, kern, func(t *testing.T) {
				for _, s := range [][3]int{{1, 1, 1}, {8, 32, 5}, {13, 37, 9}, {70, 50, 300}} {
					g := gemmCase{m: s[0], n: s[1], k: s[2], alpha: 2, beta: 0}
					o := newOperands(g, rand.New(rand.NewPCG(7, uint64(s[1]))))
					want, scale := naiveGemm(g, o)
					for i := range o.c {
						o.c[i] = nan
					}
					Sgemm(false, false, g.m, g.n, g.k, g.alpha, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc)
					checkResult(t, g, o.c, o.ldc, want, scale)

					// alpha == 0: C = beta*C, A and B (all NaN) untouched.
					for i := range o.a {
						o.a[i] = nan
					}
					for i := range o.b {
						o.b[i] = nan
					}
					before := slices.Clone(o.c)
					Sgemm(false, false, g.m, g.n, g.k, 0, o.a, o.lda, o.b, o.ldb, -3, o.c, o.ldc)
					for i := range o.c {
						if want := -3 * before[i]; o.c[i] != want {
							t.Fatalf("alpha=0: C[%d] = %v, want -3*%v = %v", i, o.c[i], before[i], want)
						}
					}
				}
			})
		})
	}
}

// TestMicroKernels calls every variant of each kernel directly (wide t and n, and the narrow
// masked ones with 1…narrowNR live columns), with A padded past its rows/columns, for every
// k-loop remainder and every beta path, against a float64 reference. C outside the live
// columns must be left alone.
func TestMicroKernels(t *testing.T) {
	for _, kern := range supportedKernels() {
		type variant struct {
			name       string
			transposed bool
			width      int // B micro-panel width
			cols       int // live columns of C
			fn         kernelFunc
		}
		variants := []variant{{"t", true, kern.nr, kern.nr, kern.t}, {"n", false, kern.nr, kern.nr, kern.n}}
		for cols := 1; cols <= kern.narrowNR; cols += 5 {
			for _, tr := range []bool{true, false} {
				nf := kern.narrowN
				if tr {
					nf = kern.narrowT
				}
				fn := func(k int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32) {
					nf(k, a, lda, b, c, ldc, alpha, beta, cols)
				}
				variants = append(variants, variant{fmt.Sprintf("narrow-t=%v-cols=%d", tr, cols), tr, kern.narrowNR, cols, fn})
			}
		}
		for _, v := range variants {
			for _, k := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 64} {
				for _, beta := range []float32{0, 1, -0.5} {
					t.Run(fmt.Sprintf("%s/%s/k=%d/beta=%g", kern.name, v.name, k, beta), func(t *testing.T) {
						testMicroKernel(t, kern.mr, v.width, v.cols, v.transposed, v.fn, k, beta)
					})
				}
			}
		}
	}
}

func testMicroKernel(t *testing.T, mr, nr, cols int, transposed bool, fn kernelFunc, k int, beta float32) {
	rng := rand.New(rand.NewPCG(uint64(k), 3))
	ldc := nr + 3
	lda := mr + 5
	aAt := func(i, p int) int { return p*lda + i }
	if !transposed {
		lda = k + 3
		aAt = func(i, p int) int { return i*lda + p }
	}
	a := randomMatrix(max(k, mr), lda, rng) // large enough for either layout
	b := randomMatrix(max(k, 1), nr, rng)   // kernels take &b[0] even when k == 0
	c := randomMatrix(mr, ldc, rng)
	c0 := slices.Clone(c)
	const alpha = 1.25
	fn(k, a, lda, b, c, ldc, alpha, beta)
	for i := range mr {
		for j := range ldc {
			if j >= cols {
				if c[i*ldc+j] != c0[i*ldc+j] {
					t.Fatalf("C[%d,%d] outside the live columns changed", i, j)
				}
				continue
			}
			var sum, abs float64
			for p := range k {
				x := float64(a[aAt(i, p)]) * float64(b[p*nr+j])
				sum += x
				abs += math.Abs(x)
			}
			want, s := alpha*sum, alpha*abs
			if beta != 0 {
				want += float64(beta) * float64(c0[i*ldc+j])
				s += math.Abs(float64(beta) * float64(c0[i*ldc+j]))
			}
			if got := float64(c[i*ldc+j]); math.Abs(got-want) > tolerance(k)*s+1e-30 {
				t.Fatalf("C[%d,%d] = %v, want %v", i, j, got, want)
			}
		}
	}
}

func TestSgemmPanicsOnBadArguments(t *testing.T) {
	a := make([]float32, 12)
	cases := []struct {
		name string
		call func()
		want string
	}{
		{"negative m", func() { Sgemm(false, false, -1, 2, 2, 1, a, 2, a, 2, 0, a, 2) }, "negative dimension"},
		{"lda too small", func() { Sgemm(false, false, 2, 2, 3, 1, a, 2, a, 2, 0, a, 2) }, "lda=2"},
		{"ldb too small for transB", func() { Sgemm(false, true, 2, 2, 3, 1, a, 3, a, 2, 0, a, 2) }, "ldb=2"},
		{"A too short", func() { Sgemm(false, false, 4, 2, 4, 1, a, 4, a, 2, 0, a, 2) }, "A has 12 elements"},
		{"C too short", func() { Sgemm(false, false, 2, 7, 1, 1, a, 1, a, 7, 0, a, 7) }, "C has 12 elements"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if !strings.Contains(msg, tc.want) {
					t.Fatalf("panic %q, want one containing %q", r, tc.want)
				}
			}()
			tc.call()
		})
	}
}
