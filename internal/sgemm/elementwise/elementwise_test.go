package elementwise

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

var lengths = []int{0, 1, 7, 8, 9, 31, 64, 100}

// implementations runs f with the assembly loops on (when the CPU has them) and off.
func implementations(t *testing.T, f func(t *testing.T)) {
	saved := useAVX
	defer func() { useAVX = saved }()
	for _, on := range []bool{saved, false} {
		useAVX = on
		t.Run(fmt.Sprintf("avx=%v", on), f)
	}
}

func randomSlice(n int, lo, hi float32, rng *rand.Rand) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = lo + (hi-lo)*rng.Float32()
	}
	return s
}

func TestAdamUpdate(t *testing.T) {
	scalars := []AdamScalars{
		{Beta1: 0.9, Beta2: 0.999, OneMinusBeta1: 0.1, OneMinusBeta2: 0.001, Eps: 1e-8, StepSize: 1e-3 / 0.1, InvSqrtBC2: 1 / float32(math.Sqrt(0.001))},
		{Beta1: 0.8, Beta2: 0.99, OneMinusBeta1: 0.2, OneMinusBeta2: 0.01, Eps: 1e-6, Decay: 1e-4, L2: 0.01, StepSize: 3e-3, InvSqrtBC2: 1.5},
	}
	implementations(t, func(t *testing.T) {
		for si, c := range scalars {
			for _, n := range lengths {
				t.Run(fmt.Sprintf("scalars=%d/n=%d", si, n), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(n), uint64(si)))
					w, g := randomSlice(n, -1, 1, rng), randomSlice(n, -1, 1, rng)
					m, v := randomSlice(n, -0.1, 0.1, rng), randomSlice(n, 0, 0.01, rng)
					w0, g0, m0, v0 := slices.Clone(w), slices.Clone(g), slices.Clone(m), slices.Clone(v)
					AdamUpdate(w, g, m, v, c)
					if !slices.Equal(g, g0) {
						t.Fatal("AdamUpdate modified the gradient")
					}
					// Reference in float64 straight from the formula.
					for i := range n {
						gi := float64(g0[i]) + float64(c.L2)*float64(w0[i])
						mi := float64(c.Beta1)*float64(m0[i]) + float64(c.OneMinusBeta1)*gi
						vi := float64(c.Beta2)*float64(v0[i]) + float64(c.OneMinusBeta2)*gi*gi
						wi := float64(w0[i]) - float64(w0[i])*float64(c.Decay) - float64(c.StepSize)*mi/(math.Sqrt(vi)*float64(c.InvSqrtBC2)+float64(c.Eps))
						for _, chk := range []struct {
							name      string
							got, want float64
						}{{"m", float64(m[i]), mi}, {"v", float64(v[i]), vi}, {"w", float64(w[i]), wi}} {
							if math.Abs(chk.got-chk.want) > 1e-5*math.Max(1, math.Abs(chk.want)) {
								t.Fatalf("%s[%d] = %v, want %v", chk.name, i, chk.got, chk.want)
							}
						}
					}
				})
			}
		}
	})
}

// TestAdamUpdateBitIdentical checks that the assembly and Go loops agree bit for bit, so a
// model trains identically on every machine.
func TestAdamUpdateBitIdentical(t *testing.T) {
	saved := useAVX
	defer func() { useAVX = saved }()
	rng := rand.New(rand.NewPCG(5, 6))
	n := 1003
	c := AdamScalars{Beta1: 0.9, Beta2: 0.999, OneMinusBeta1: 0.1, OneMinusBeta2: 0.001, Eps: 1e-8, Decay: 1e-4, L2: 1e-3, StepSize: 1e-3, InvSqrtBC2: 30}
	w, g := randomSlice(n, -1, 1, rng), randomSlice(n, -1, 1, rng)
	m, v := randomSlice(n, -0.1, 0.1, rng), randomSlice(n, 0, 0.01, rng)
	var results [2][3][]float32
	for k, on := range []bool{saved, false} {
		useAVX = on
		wk, mk, vk := slices.Clone(w), slices.Clone(m), slices.Clone(v)
		for range 3 {
			AdamUpdate(wk, g, mk, vk, c)
		}
		results[k] = [3][]float32{wk, mk, vk}
	}
	for j, name := range []string{"w", "m", "v"} {
		for i := range n {
			if math.Float32bits(results[0][j][i]) != math.Float32bits(results[1][j][i]) {
				t.Fatalf("%s[%d]: vector %v, Go %v", name, i, results[0][j][i], results[1][j][i])
			}
		}
	}
}

func TestBiasReLU(t *testing.T) {
	nan := float32(math.NaN())
	implementations(t, func(t *testing.T) {
		for _, n := range lengths {
			for _, rows := range []int{0, 1, 3} {
				t.Run(fmt.Sprintf("rows=%d/n=%d", rows, n), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(n), uint64(rows)))
					ldx := n + 2
					x := randomSlice(rows*ldx, -1, 1, rng)
					if len(x) > 3 {
						x[0], x[1], x[2] = nan, float32(math.Copysign(0, -1)), -0.5
					}
					bias := randomSlice(n, -0.5, 0.5, rng)
					if n > 1 {
						bias[1] = 0
					}
					x0 := slices.Clone(x)
					BiasReLU(x, rows, ldx, bias)
					for i := range rows {
						for j := range ldx {
							got, orig := x[i*ldx+j], x0[i*ldx+j]
							if j >= n {
								if math.Float32bits(got) != math.Float32bits(orig) {
									t.Fatalf("x[%d,%d] in the stride padding changed", i, j)
								}
								continue
							}
							s := orig + bias[j]
							switch {
							case s != s:
								if got == got {
									t.Fatalf("x[%d,%d] = %v, want NaN", i, j, got)
								}
							case s < 0:
								if got != 0 {
									t.Fatalf("x[%d,%d] = %v, want 0 (sum %v)", i, j, got, s)
								}
							case math.Float32bits(got) != math.Float32bits(s):
								t.Fatalf("x[%d,%d] = %v, want %v", i, j, got, s)
							}
						}
					}
				})
			}
		}
	})
}

func TestReLUBackward(t *testing.T) {
	nan := float32(math.NaN())
	implementations(t, func(t *testing.T) {
		for _, n := range lengths {
			t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(n), 9))
				y := randomSlice(n, -1, 1, rng)
				specials := []float32{nan, 0, float32(math.Copysign(0, -1)), 1e-30}
				for i := 0; i < n && i < len(specials); i++ {
					y[i] = specials[i]
				}
				dy := randomSlice(n, -1, 1, rng)
				dy0 := slices.Clone(dy)
				ReLUBackward(dy, y)
				for i := range n {
					want := dy0[i]
					if !(y[i] > 0) {
						want = 0
					}
					if math.Float32bits(dy[i]) != math.Float32bits(want) {
						t.Fatalf("dy[%d] = %v, want %v (y = %v)", i, dy[i], want, y[i])
					}
				}
			})
		}
	})
}
