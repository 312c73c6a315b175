package sgemm

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkMicroKernel times each kernel alone on cache-resident packed panels (kc = 256):
// the ceiling the blocked driver can approach.
func BenchmarkMicroKernel(b *testing.B) {
	const k = 256
	for _, kern := range supportedKernels() {
		b.Run(kern.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			a := make([]float32, k*kern.mr)
			bp := make([]float32, k*kern.nr)
			for i := range a {
				a[i] = 0.5 + rng.Float32()
			}
			for i := range bp {
				bp[i] = 0.5 + rng.Float32()
			}
			c := make([]float32, kern.mr*kern.nr)
			b.ReportAllocs()
			for b.Loop() {
				kern.t(k, a, kern.mr, bp, c, kern.nr, 1, 0)
			}
			b.ReportMetric(2*float64(k*kern.mr*kern.nr)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
