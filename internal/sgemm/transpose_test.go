package sgemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestTranspose8xK checks the (AVX on amd64) 8-row transpose used to pack Bᵀ against the
// definition, for k around multiples of 8 and padded strides; the destination padding must
// stay untouched.
func TestTranspose8xK(t *testing.T) {
	for _, k := range []int{0, 1, 7, 8, 9, 16, 23, 64} {
		for _, ldd := range []int{8, 11, 32} {
			t.Run(fmt.Sprintf("k=%d/ldd=%d", k, ldd), func(t *testing.T) {
				testTranspose8xK(t, transpose8xK, k, ldd)
			})
			t.Run(fmt.Sprintf("generic/k=%d/ldd=%d", k, ldd), func(t *testing.T) {
				generic := func(dst []float32, ldd int, src []float32, lds int, k int) {
					transpose8xKGeneric(dst, ldd, src, lds, 0, k)
				}
				testTranspose8xK(t, generic, k, ldd)
			})
		}
	}
}

func testTranspose8xK(t *testing.T, transpose func(dst []float32, ldd int, src []float32, lds int, k int), k, ldd int) {
	rng := rand.New(rand.NewPCG(uint64(k), uint64(ldd)))
	lds := k + 3
	src := randomMatrix(8, lds, rng)
	dst := make([]float32, max(k, 1)*ldd)
	for i := range dst {
		dst[i] = sentinel
	}
	transpose(dst, ldd, src, lds, k)
	for p := range k {
		for r := range ldd {
			got := dst[p*ldd+r]
			want := sentinel
			if r < 8 {
				want = src[r*lds+p]
			}
			if got != want {
				t.Fatalf("dst[%d,%d] = %v, want %v", p, r, got, want)
			}
		}
	}
}

// TestTranspose checks Transpose against the definition for row counts around multiples of
// 8 and padded strides; the padding of dst must stay untouched.
func TestTranspose(t *testing.T) {
	for _, rows := range []int{0, 1, 7, 8, 13, 16, 196} {
		for _, cols := range []int{1, 5, 8, 32} {
			rng := rand.New(rand.NewPCG(uint64(rows), uint64(cols)))
			lds, ldd := cols+2, rows+3
			src := randomMatrix(max(rows, 1), lds, rng)
			dst := make([]float32, cols*ldd)
			for i := range dst {
				dst[i] = sentinel
			}
			Transpose(dst, ldd, src, lds, rows, cols)
			for j := range cols {
				for i := range ldd {
					want := sentinel
					if i < rows {
						want = src[i*lds+j]
					}
					if got := dst[j*ldd+i]; got != want {
						t.Fatalf("rows=%d cols=%d: dst[%d,%d] = %v, want %v", rows, cols, j, i, got, want)
					}
				}
			}
		}
	}
}

// TestCopyRows checks the (AVX on amd64) row copy that packs NN panels of B against the
// definition, for widths of one to five 8-float chunks (4 takes the unrolled loop), odd
// widths (the generic path) and strided sources; nothing past the k×w block is written.
func TestCopyRows(t *testing.T) {
	for _, w := range []int{1, 7, 8, 16, 24, 32, 40} {
		for _, k := range []int{0, 1, 2, 5, 64} {
			t.Run(fmt.Sprintf("w=%d/k=%d", w, k), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(w), uint64(k)))
				lds := w + 5
				src := randomMatrix(max(k, 1), lds, rng)
				dst := make([]float32, k*w+8)
				for i := range dst {
					dst[i] = sentinel
				}
				copyRows(dst, src, lds, k, w)
				for i, got := range dst {
					want := sentinel
					if p, c := i/w, i%w; i < k*w {
						want = src[p*lds+c]
					}
					if got != want {
						t.Fatalf("dst[%d] = %v, want %v", i, got, want)
					}
				}
			})
		}
	}
}
