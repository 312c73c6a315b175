package sgemm

import (
	"math/rand/v2"
	"testing"
)

// FuzzSgemm checks random shapes, transposes, stride padding and alpha/beta against the
// float64 reference with the best kernel and with the generic one.
func FuzzSgemm(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint8(1), uint8(0), uint64(1))
	f.Add(uint8(17), uint8(33), uint8(7), uint8(3), uint64(2))
	f.Add(uint8(128), uint8(10), uint8(128), uint8(2), uint64(3))
	f.Add(uint8(9), uint8(40), uint8(255), uint8(0x1f), uint64(4))
	f.Fuzz(func(t *testing.T, m, n, k, flags uint8, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, uint64(flags)))
		abs := alphaBetas()
		ab := abs[rng.IntN(len(abs))]
		g := gemmCase{
			transA: flags&1 != 0, transB: flags&2 != 0,
			m: int(m), n: int(n), k: int(k),
			padA: int(flags>>2) & 3, padB: int(flags>>4) & 3, padC: int(flags>>6) & 3,
			alpha: ab[0], beta: ab[1],
		}
		kerns := supportedKernels()
		for _, kern := range []*microKernel{kerns[0], genericKernel} {
			withKernel(t, kern, func(t *testing.T) {
				o := newOperands(g, rand.New(rand.NewPCG(seed, 7)))
				want, scale := naiveGemm(g, o)
				Sgemm(g.transA, g.transB, g.m, g.n, g.k, g.alpha, o.a, o.lda, o.b, o.ldb, g.beta, o.c, o.ldc)
				checkResult(t, g, o.c, o.ldc, want, scale)
			})
		}
	})
}
