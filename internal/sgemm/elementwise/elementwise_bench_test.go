package elementwise

import (
	"math/rand/v2"
	"testing"
)

// mlpParams is the parameter count of the 784→256→128→10 MLP.
const mlpParams = 784*256 + 256 + 256*128 + 128 + 128*10 + 10

func benchImpl(b *testing.B, name string, f func(b *testing.B)) {
	saved := useAVX
	defer func() { useAVX = saved }()
	for _, on := range []bool{saved, false} {
		useAVX = on
		impl := "go"
		if on {
			impl = "avx"
		}
		b.Run(name+"/"+impl, f)
	}
}

func BenchmarkAdamUpdate(b *testing.B) {
	benchImpl(b, "mlp_params", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		w, g := randomSlice(mlpParams, -1, 1, rng), randomSlice(mlpParams, -1, 1, rng)
		m, v := randomSlice(mlpParams, -0.1, 0.1, rng), randomSlice(mlpParams, 0.001, 0.01, rng)
		c := AdamScalars{Beta1: 0.9, Beta2: 0.999, OneMinusBeta1: 0.1, OneMinusBeta2: 0.001, Eps: 1e-8, StepSize: 1e-3, InvSqrtBC2: 1}
		b.ReportAllocs()
		for b.Loop() {
			AdamUpdate(w, g, m, v, c)
		}
		sec := b.Elapsed().Seconds()
		b.ReportMetric(float64(mlpParams)*float64(b.N)/sec, "samples/s")
		b.ReportMetric(7*4*float64(mlpParams)*float64(b.N)/sec/1e9, "GB/s") // 4 loads + 3 stores
	})
}

func BenchmarkBiasReLU(b *testing.B) {
	benchImpl(b, "128x256", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(3, 4))
		x, bias := randomSlice(128*256, -1, 1, rng), randomSlice(256, -0.5, 0.5, rng)
		b.ReportAllocs()
		for b.Loop() {
			BiasReLU(x, 128, 256, bias)
		}
		b.ReportMetric(2*4*128*256*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
}

func BenchmarkReLUBackward(b *testing.B) {
	benchImpl(b, "128x256", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(5, 6))
		dy, y := randomSlice(128*256, -1, 1, rng), randomSlice(128*256, -1, 1, rng)
		b.ReportAllocs()
		for b.Loop() {
			ReLUBackward(dy, y)
		}
		b.ReportMetric(3*4*128*256*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
}

func BenchmarkBiasAdd(b *testing.B) {
	benchImpl(b, "128x256", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(3, 5))
		x, bias := randomSlice(128*256, -1, 1, rng), randomSlice(256, -0.5, 0.5, rng)
		b.ReportAllocs()
		for b.Loop() {
			BiasAdd(x, 128, 256, bias)
		}
		b.ReportMetric(2*4*128*256*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
}

func BenchmarkColumnSum(b *testing.B) {
	benchImpl(b, "128x256", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(7, 8))
		m, dst := randomSlice(128*256, -1, 1, rng), make([]float32, 256)
		b.ReportAllocs()
		for b.Loop() {
			ColumnSum(dst, m, 128, 256)
		}
		b.ReportMetric(4*128*256*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
}

func BenchmarkSGDUpdate(b *testing.B) {
	benchImpl(b, "mlp_params", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(9, 10))
		w, g := randomSlice(mlpParams, -1, 1, rng), randomSlice(mlpParams, -1, 1, rng)
		b.ReportAllocs()
		for b.Loop() {
			SGDUpdate(w, g, 1e-6, 0)
		}
		sec := b.Elapsed().Seconds()
		b.ReportMetric(float64(mlpParams)*float64(b.N)/sec, "samples/s")
		b.ReportMetric(3*4*float64(mlpParams)*float64(b.N)/sec/1e9, "GB/s") // 2 loads + 1 store
	})
}

func BenchmarkSGDMomentum(b *testing.B) {
	benchImpl(b, "mlp_params", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(11, 12))
		w, g, buf := randomSlice(mlpParams, -1, 1, rng), randomSlice(mlpParams, -1, 1, rng), randomSlice(mlpParams, -1, 1, rng)
		b.ReportAllocs()
		for b.Loop() {
			SGDMomentum(w, g, buf, 1e-6, 0, 0.9, false)
		}
		sec := b.Elapsed().Seconds()
		b.ReportMetric(float64(mlpParams)*float64(b.N)/sec, "samples/s")
		b.ReportMetric(5*4*float64(mlpParams)*float64(b.N)/sec/1e9, "GB/s") // 3 loads + 2 stores
	})
}
