package nn

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkActivation times each activation's forward and backward pass over a 64×512
// block of pre-activations drawn from N(0, 2) (a dense layer's typical range), and reports
// elements per second (forward + backward of one element counts once).
func BenchmarkActivation(b *testing.B) {
	const n = 64 * 512
	rng := rand.New(rand.NewPCG(1, 2))
	z := make([]float32, n)
	for i := range z {
		z[i] = float32(rng.NormFloat64() * 2)
	}
	y := make([]float32, n)
	d := make([]float32, n)
	for _, a := range []activation{actReLU, actLeakyReLU, actGELU, actELU, actTanh, actSigmoid} {
		b.Run(a.String(), func(b *testing.B) {
			for b.Loop() {
				a.applyTo(y, z)
				for i := range d {
					d[i] = 1
				}
				a.backwardInPlace(d, y, z)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Melem/s")
		})
	}
}
