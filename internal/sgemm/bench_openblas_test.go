//go:build openblas

package sgemm

import (
	"math"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/internal/sgemm/openblasref"
)

// BenchmarkOpenBLAS runs the same shapes through OpenBLAS on one thread, for a side-by-side
// ratio. Select OpenBLAS's kernels with OPENBLAS_CORETYPE (Haswell: AVX2, SkylakeX: AVX-512):
//
//	OPENBLAS_CORETYPE=SkylakeX go test -tags openblas -run '^$' -bench 'Sgemm$|OpenBLAS' -cpu 1 -count 3
func BenchmarkOpenBLAS(b *testing.B) {
	openblasref.SetNumThreads(1)
	b.Logf("OpenBLAS core: %s", openblasref.CoreName())
	for _, s := range mlpShapes {
		b.Run(s.name, func(b *testing.B) {
			a, lda, bm, ldb, c := benchOperands(s)
			b.ReportAllocs()
			for b.Loop() {
				openblasref.Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
			}
			reportGFLOPS(b, s)
		})
	}
	b.Run("mlp_step_all9", func(b *testing.B) { benchMLPStep(b, openblasref.Sgemm) })
}

// BenchmarkVersusOpenBLAS alternates Sgemm and OpenBLAS call by call on each shape, for each
// assembly kernel, so both see the same machine load, and reports both rates and their ratio
// (sgemm/openblas, > 1 means Sgemm is faster), over all calls and over each side's fastest
// call (best-*: the least disturbed by other processes). Use this on a shared machine.
func BenchmarkVersusOpenBLAS(b *testing.B) {
	openblasref.SetNumThreads(1)
	for _, kern := range supportedKernels() {
		if kern == genericKernel {
			continue
		}
		for _, s := range mlpShapes {
			b.Run(kern.name+"/"+s.name, func(b *testing.B) {
				saved := activeKernel
				activeKernel = kern
				defer func() { activeKernel = saved }()
				a, lda, bm, ldb, c := benchOperands(s)
				var ours, theirs time.Duration
				bestOurs, bestTheirs := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
				b.ReportAllocs()
				for b.Loop() {
					t0 := time.Now()
					Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
					t1 := time.Now()
					openblasref.Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
					d0, d1 := t1.Sub(t0), time.Since(t1)
					ours, theirs = ours+d0, theirs+d1
					bestOurs, bestTheirs = min(bestOurs, d0), min(bestTheirs, d1)
				}
				flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
				n := float64(b.N)
				b.ReportMetric(flops*n/ours.Seconds()/1e9, "sgemm-GFLOP/s")
				b.ReportMetric(flops*n/theirs.Seconds()/1e9, "openblas-GFLOP/s")
				b.ReportMetric(theirs.Seconds()/ours.Seconds(), "ratio")
				b.ReportMetric(flops/bestOurs.Seconds()/1e9, "best-sgemm-GFLOP/s")
				b.ReportMetric(flops/bestTheirs.Seconds()/1e9, "best-openblas-GFLOP/s")
				b.ReportMetric(bestTheirs.Seconds()/bestOurs.Seconds(), "best-ratio")
			})
		}
	}
}
