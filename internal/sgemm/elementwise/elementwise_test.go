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
	negZero := float32(math.Copysign(0, -1))
	implementations(t, func(t *testing.T) {
		for _, n := range lengths {
			for _, rows := range []int{0, 1, 3} {
				t.Run(fmt.Sprintf("rows=%d/n=%d", rows, n), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(n), uint64(rows)))
					ldx := n + 2
					x := randomSlice(rows*ldx, -1, 1, rng)
					if len(x) > 3 {
						x[0], x[1], x[2] = nan, negZero, -0.5
					}
					bias := randomSlice(n, -0.5, 0.5, rng)
					if n > 1 {
						bias[1] = negZero // -0 + -0 = -0, which ReLU must turn into +0
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
							case s <= 0: // Go's max(s, 0) is +0 for s = -0
								if math.Float32bits(got) != 0 {
									t.Fatalf("x[%d,%d] = %v (bits %#x), want +0 (sum %v)", i, j, got, math.Float32bits(got), s)
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

func TestBiasAdd(t *testing.T) {
	implementations(t, func(t *testing.T) {
		for _, n := range lengths {
			for _, rows := range []int{0, 1, 3} {
				t.Run(fmt.Sprintf("rows=%d/n=%d", rows, n), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(n), uint64(rows)+10))
					ldx := n + 3
					x := randomSlice(rows*ldx, -1, 1, rng)
					bias := randomSlice(n, -0.5, 0.5, rng)
					x0 := slices.Clone(x)
					BiasAdd(x, rows, ldx, bias)
					for i := range rows {
						for j := range ldx {
							want := x0[i*ldx+j]
							if j < n {
								want += bias[j]
							}
							if got := x[i*ldx+j]; math.Float32bits(got) != math.Float32bits(want) {
								t.Fatalf("x[%d,%d] = %v, want %v", i, j, got, want)
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
					if y[i] <= 0 { // false for NaN: the gradient passes, as in PyTorch
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

func TestColumnSum(t *testing.T) {
	implementations(t, func(t *testing.T) {
		for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 65, 100, 136} {
			for _, rows := range []int{0, 1, 2, 5, 128} {
				t.Run(fmt.Sprintf("rows=%d/n=%d", rows, n), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(n), uint64(rows)+20))
					ldm := n + 5
					m := randomSlice(rows*ldm, -1, 1, rng)
					if len(m) > 0 {
						m[0] = float32(math.Copysign(0, -1)) // 0 + -0 is +0 in the reference too
					}
					m0 := slices.Clone(m)
					dst := randomSlice(n, 5, 6, rng) // garbage the call must overwrite
					ColumnSum(dst, m, rows, ldm)
					if !slices.Equal(m, m0) {
						t.Fatal("ColumnSum modified its input")
					}
					for j := range n {
						want := float32(0)
						for i := range rows {
							want += m0[i*ldm+j]
						}
						if math.Float32bits(dst[j]) != math.Float32bits(want) {
							t.Fatalf("dst[%d] = %v, want %v", j, dst[j], want)
						}
						var exact float64
						for i := range rows {
							exact += float64(m0[i*ldm+j])
						}
						if math.Abs(float64(dst[j])-exact) > 1e-5*float64(max(rows, 1)) {
							t.Fatalf("dst[%d] = %v, float64 sum %v", j, dst[j], exact)
						}
					}
				})
			}
		}
	})
}

func TestSGDUpdate(t *testing.T) {
	implementations(t, func(t *testing.T) {
		for _, l2 := range []float32{0, 0.01} {
			for _, n := range lengths {
				t.Run(fmt.Sprintf("l2=%v/n=%d", l2, n), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(n), 30))
					const lr = 0.05
					w, g := randomSlice(n, -1, 1, rng), randomSlice(n, -1, 1, rng)
					w0, g0 := slices.Clone(w), slices.Clone(g)
					SGDUpdate(w, g, lr, l2)
					if !slices.Equal(g, g0) {
						t.Fatal("SGDUpdate modified the gradient")
					}
					for i := range n {
						want := float64(w0[i]) - lr*(float64(g0[i])+float64(l2)*float64(w0[i]))
						if math.Abs(float64(w[i])-want) > 1e-6 {
							t.Fatalf("w[%d] = %v, want %v", i, w[i], want)
						}
					}
				})
			}
		}
	})
}

func TestSGDMomentum(t *testing.T) {
	implementations(t, func(t *testing.T) {
		for _, nesterov := range []bool{false, true} {
			for _, l2 := range []float32{0, 0.01} {
				for _, n := range lengths {
					t.Run(fmt.Sprintf("nesterov=%v/l2=%v/n=%d", nesterov, l2, n), func(t *testing.T) {
						rng := rand.New(rand.NewPCG(uint64(n), 40))
						const lr, mu = 0.05, 0.9
						w, g, buf := randomSlice(n, -1, 1, rng), randomSlice(n, -1, 1, rng), randomSlice(n, -1, 1, rng)
						w0, g0, buf0 := slices.Clone(w), slices.Clone(g), slices.Clone(buf)
						SGDMomentum(w, g, buf, lr, l2, mu, nesterov)
						if !slices.Equal(g, g0) {
							t.Fatal("SGDMomentum modified the gradient")
						}
						for i := range n {
							gi := float64(g0[i]) + float64(l2)*float64(w0[i])
							b := mu*float64(buf0[i]) + gi
							d := b
							if nesterov {
								d = gi + mu*b
							}
							want := float64(w0[i]) - lr*d
							if math.Abs(float64(buf[i])-b) > 1e-6 || math.Abs(float64(w[i])-want) > 1e-6 {
								t.Fatalf("i=%d: w %v buf %v, want %v %v", i, w[i], buf[i], want, b)
							}
						}
					})
				}
			}
		}
	})
}

// TestBitIdentical runs every kernel with the assembly loops and with the Go loops on the same
// inputs (with NaN, ±0 and ±Inf among them) and checks that the results agree bit for bit, so a
// model trains identically on every machine and build.
func TestBitIdentical(t *testing.T) {
	const rows, n = 5, 133 // n%64 and n%8 non-zero: every loop and tail runs
	specials := []float32{float32(math.NaN()), 0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), 1e-40}
	input := func(seed uint64, size int) []float32 {
		s := randomSlice(size, -1, 1, rand.New(rand.NewPCG(seed, 77)))
		for i, v := range specials {
			if i*7 < size {
				s[i*7] = v
			}
		}
		return s
	}
	kernels := []struct {
		name string
		run  func() [][]float32
	}{
		{"BiasReLU", func() [][]float32 {
			x := input(1, rows*n)
			BiasReLU(x, rows, n, input(2, n))
			return [][]float32{x}
		}},
		{"BiasAdd", func() [][]float32 {
			x := input(1, rows*n)
			BiasAdd(x, rows, n, input(2, n))
			return [][]float32{x}
		}},
		{"ReLUBackward", func() [][]float32 {
			dy := input(3, rows*n)
			ReLUBackward(dy, input(4, rows*n))
			return [][]float32{dy}
		}},
		{"ColumnSum", func() [][]float32 {
			dst := make([]float32, n)
			ColumnSum(dst, input(5, rows*n), rows, n)
			return [][]float32{dst}
		}},
		{"SGDUpdate", func() [][]float32 {
			w, w2 := input(6, n), input(6, n)
			SGDUpdate(w, input(7, n), 0.1, 0)
			SGDUpdate(w2, input(7, n), 0.1, 1e-3)
			return [][]float32{w, w2}
		}},
		{"SGDMomentum", func() [][]float32 {
			var out [][]float32
			for _, nesterov := range []bool{false, true} {
				w, buf := input(8, n), input(9, n)
				for range 3 {
					SGDMomentum(w, input(10, n), buf, 0.1, 1e-3, 0.9, nesterov)
				}
				out = append(out, w, buf)
			}
			return out
		}},
		{"AdamUpdate", func() [][]float32 {
			w, m, v := input(11, n), input(12, n), input(13, n)
			for i := range v {
				v[i] = float32(math.Abs(float64(v[i])))
			}
			c := AdamScalars{Beta1: 0.9, Beta2: 0.999, OneMinusBeta1: 0.1, OneMinusBeta2: 0.001, Eps: 1e-8, Decay: 1e-4, L2: 1e-3, StepSize: 1e-3, InvSqrtBC2: 30}
			AdamUpdate(w, input(14, n), m, v, c)
			return [][]float32{w, m, v}
		}},
		{"SumSquares", func() [][]float32 {
			return [][]float32{{float32(SumSquares(input(15, n))), float32(SumSquares(input(16, 9000)[1:]))}}
		}},
		{"L2Grad", func() [][]float32 {
			w, g := input(17, 9000), input(18, 9000)
			s := L2Grad(w[3:], g[3:], 2e-3)
			return [][]float32{g, {float32(s)}}
		}},
	}
	saved := useAVX
	defer func() { useAVX = saved }()
	if !saved {
		t.Skip("no assembly loops on this machine or build")
	}
	for _, k := range kernels {
		t.Run(k.name, func(t *testing.T) {
			useAVX = true
			vec := k.run()
			useAVX = false
			ref := k.run()
			for o := range ref {
				for i := range ref[o] {
					a, b := vec[o][i], ref[o][i]
					if math.Float32bits(a) != math.Float32bits(b) && !(a != a && b != b) {
						t.Fatalf("output %d [%d]: assembly %v (%#x), Go %v (%#x)", o, i, a, math.Float32bits(a), b, math.Float32bits(b))
					}
				}
			}
		})
	}
}

// TestSumSquares compares SumSquares and L2Grad with a float64 reference, on lengths that
// exercise the lanes, the tails and several chunks.
func TestSumSquares(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 64, 4095, 4096, 4097, 20001} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(n), 3))
			w, g := randomSlice(n, -1, 1, rng), randomSlice(n, -1, 1, rng)
			var want float64
			wantG := make([]float64, n)
			const c = 3e-3
			for i, v := range w {
				want += float64(v) * float64(v)
				wantG[i] = float64(g[i]) + c*float64(v)
			}
			if got := SumSquares(w); math.Abs(got-want) > 1e-5*want+1e-12 {
				t.Errorf("SumSquares = %v, want %v", got, want)
			}
			if got := L2Grad(w, g, c); math.Abs(got-want) > 1e-5*want+1e-12 {
				t.Errorf("L2Grad sum = %v, want %v", got, want)
			}
			for i := range g {
				if math.Abs(float64(g[i])-wantG[i]) > 1e-6 {
					t.Fatalf("L2Grad g[%d] = %v, want %v", i, g[i], wantG[i])
				}
			}
		})
	}
	if s := SumSquares([]float32{1, float32(math.NaN()), 2}); !math.IsNaN(s) {
		t.Errorf("SumSquares with a NaN = %v", s)
	}
	x := make([]float32, 24)
	x[17] = float32(math.Inf(-1))
	if s := SumSquares(x); !math.IsInf(s, 1) {
		t.Errorf("SumSquares with an -Inf = %v", s)
	}
}
