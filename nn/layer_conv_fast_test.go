package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pipe-ml/pipe/nn/gemm"
)

// The conv and pool layers have fast paths for common geometries (conv.direct, conv.shift,
// pool.two). These tests check each fast path against the general path of the same layer on
// the same data, with the fast path switched off, and that the fast path is the one taken.

func randomSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// TestConvShiftMatchesGeneralIm2col: for stride-1 same convolutions (odd and even kernels, a
// kernel larger than the plane, non-square planes) im2colShift and col2imShift give exactly
// what the general per-row im2col and col2im give.
func TestConvShiftMatchesGeneralIm2col(t *testing.T) {
	cases := []struct{ c, h, w, k int }{
		{2, 5, 5, 3}, {3, 6, 4, 3}, {1, 7, 7, 5}, {2, 6, 6, 2}, {2, 5, 4, 4}, {1, 3, 2, 5}, {2, 1, 6, 3}, {1, 4, 4, 1},
	}
	for _, tc := range cases {
		cv, err := newConv("c", tc.c, tc.h, tc.w, 2, tc.k, 1, PaddingSame, actLinear, true)
		if err != nil {
			t.Fatal(err)
		}
		if !cv.shift {
			t.Fatalf("%+v: the shift path is not taken", tc)
		}
		rng := rand.New(rand.NewPCG(uint64(tc.k), uint64(tc.h*10+tc.w)))
		x := randomSlice(rng, tc.c*tc.h*tc.w)
		fast, slow := make([]float32, cv.ckk*cv.ld), make([]float32, cv.ckk*cv.ld)
		for i := range fast {
			fast[i], slow[i] = float32(math.NaN()), float32(math.NaN()) // every cell must be written
		}
		cv.im2col(x, fast)
		cv.shift = false
		cv.im2col(x, slow)
		for i := range fast {
			if math.Float32bits(fast[i]) != math.Float32bits(slow[i]) {
				t.Fatalf("%+v: im2col[%d] = %v by shifts, %v by rows", tc, i, fast[i], slow[i])
			}
		}
		dcol := randomSlice(rng, cv.ckk*cv.ld)
		dxFast, dxSlow := make([]float32, len(x)), make([]float32, len(x))
		cv.col2im(slices.Clone(dcol), dxSlow)
		cv.shift = true
		cv.col2im(slices.Clone(dcol), dxFast)
		for i := range dxFast {
			if math.Float32bits(dxFast[i]) != math.Float32bits(dxSlow[i]) {
				t.Fatalf("%+v: col2im[%d] = %v by shifts, %v by rows", tc, i, dxFast[i], dxSlow[i])
			}
		}
	}
}

// convLayers returns the model's conv layers (not those inside residual blocks).
func convLayers(m *Model) []*conv {
	var cs []*conv
	for _, l := range m.layers {
		if cv, ok := l.(*conv); ok {
			cs = append(cs, cv)
		}
	}
	return cs
}

// TestConvDirectMatchesIm2col: a 1×1 stride-1 conv (which uses its input as the GEMM operand,
// without im2col) gives the same output, parameter gradients and input gradient as the same
// layer through im2col. The 1×1 conv is the second layer, so its input gradient is used.
func TestConvDirectMatchesIm2col(t *testing.T) {
	for _, pad := range []string{PaddingValid, PaddingSame} {
		spec := imageSpec(2, 5, 6,
			LayerSpec{Type: LayerConv, Filters: 3, Kernel: 3, Padding: PaddingSame, Activation: "tanh"},
			LayerSpec{Type: LayerConv, Filters: 4, Kernel: 1, Padding: pad, Activation: "relu"},
			LayerSpec{Type: LayerFlatten})
		run := func(direct bool) (out []float32, grads [][]float32) {
			rng := rand.New(rand.NewPCG(3, 4))
			m, err := Build(spec, rng)
			if err != nil {
				t.Fatal(err)
			}
			cs := convLayers(m)
			if len(cs) != 2 || !cs[1].direct || cs[0].direct {
				t.Fatalf("pad %s: want the second conv (only) direct", pad)
			}
			cs[1].direct = direct
			rows := 5
			b := randomBatch(rng, m.Spec(), rows)
			if _, err := m.TrainStep(b, randomTargets(rng, m.Spec(), rows, 0)); err != nil {
				t.Fatal(err)
			}
			for _, p := range m.Params() {
				grads = append(grads, slices.Clone(p.Grad))
			}
			return slices.Clone(m.layerOut[1]), grads
		}
		yd, gd := run(true)
		yi, gi := run(false)
		closeAll := func(what string, a, b []float32) {
			for i := range a {
				if math.Abs(float64(a[i]-b[i])) > 1e-5*(1+math.Abs(float64(b[i]))) {
					t.Fatalf("pad %s: %s[%d] = %v direct, %v by im2col", pad, what, i, a[i], b[i])
				}
			}
		}
		closeAll("output", yd, yi)
		for i := range gd {
			closeAll("grad", gd[i], gi[i])
		}
	}
}

// TestMaxPool2MatchesGeneral: the 2×2 stride-2 max pool fast path gives the same outputs,
// winners (first maximum on ties) and input gradients as the general path, on inputs with
// many ties and on odd planes (the last row and column are left out).
func TestMaxPool2MatchesGeneral(t *testing.T) {
	for _, tc := range []struct {
		h, w int
		pad  string
	}{{6, 6, PaddingValid}, {7, 5, PaddingValid}, {8, 4, PaddingSame}} {
		p, err := newPool("p", true, 2, tc.h, tc.w, 2, 2, tc.pad)
		if err != nil {
			t.Fatal(err)
		}
		if !p.two {
			t.Fatalf("%+v: the 2×2 path is not taken", tc)
		}
		rows := 3
		rng := rand.New(rand.NewPCG(5, uint64(tc.h)))
		x := make([]float32, rows*p.inWidth())
		for i := range x {
			x[i] = float32(rng.IntN(3)) // many ties
		}
		dy := randomSlice(rng, rows*p.outWidth())
		run := func(two bool) (y []float32, arg []int32, dx []float32) {
			p.two = two
			p.alloc(rows)
			y = slices.Clone(p.forward(nil, x, rows))
			arg = slices.Clone(p.arg)
			dx = slices.Clone(p.backward(nil, slices.Clone(dy), rows, true))
			return
		}
		yf, af, df := run(true)
		ys, as, ds := run(false)
		if !slices.Equal(yf, ys) || !slices.Equal(af, as) || !slices.Equal(df, ds) {
			t.Fatalf("%+v: the 2×2 path differs from the general one:\ny %v\n  %v\narg %v\n    %v", tc, yf, ys, af, as)
		}
	}
}

// TestConvFlipInputGradMatchesCol2im: for stride-1 same convolutions with an odd kernel
// (3×3 and 5×5, a kernel larger than the plane, non-square planes, F ≠ C) the input gradient
// by the flipped-kernel convolution of dz (flipDX) matches the one by Wᵀ·dz and col2im: the
// second conv's input gradient reaches the first conv's parameter gradients.
func TestConvFlipInputGradMatchesCol2im(t *testing.T) {
	for _, tc := range []struct{ c, h, w, k int }{{2, 6, 5, 3}, {3, 5, 5, 5}, {2, 3, 2, 5}, {1, 7, 4, 3}} {
		spec := imageSpec(tc.c, tc.h, tc.w,
			LayerSpec{Type: LayerConv, Filters: 3, Kernel: 3, Padding: PaddingSame, Activation: "tanh"},
			LayerSpec{Type: LayerConv, Filters: 4, Kernel: tc.k, Padding: PaddingSame, Activation: "relu"},
			LayerSpec{Type: LayerFlatten})
		run := func(flip bool) (grads [][]float32) {
			rng := rand.New(rand.NewPCG(5, 6))
			m, err := Build(spec, rng)
			if err != nil {
				t.Fatal(err)
			}
			cs := convLayers(m)
			if len(cs) != 2 || !cs[1].flipDX {
				t.Fatalf("%+v: the second conv does not take the flipped-kernel path", tc)
			}
			cs[1].flipDX = flip
			rows := 5
			b := randomBatch(rng, m.Spec(), rows)
			if _, err := m.TrainStep(b, randomTargets(rng, m.Spec(), rows, 0)); err != nil {
				t.Fatal(err)
			}
			for _, p := range m.Params() {
				grads = append(grads, slices.Clone(p.Grad))
			}
			return grads
		}
		gf, gc := run(true), run(false)
		for i := range gf {
			for j := range gf[i] {
				if math.Abs(float64(gf[i][j]-gc[i][j])) > 1e-5*(1+math.Abs(float64(gc[i][j]))) {
					t.Fatalf("%+v: grad %d[%d] = %v flipped, %v by col2im", tc, i, j, gf[i][j], gc[i][j])
				}
			}
		}
	}
}

// TestConvSgemmMatchesBackend: convSgemm, which runs a conv's products through
// sgemm.SgemmParallel in one call when the backend is gemm.Asm, gives the same bits as the
// model's gemm.Parallel backend (128-row blocks) on the shapes and transposes a conv uses
// (row counts below, at and past 128, multiples of 8 or not; beta 0 and 1), for 1 to 3
// workers (the last two shapes are split among them).
func TestConvSgemmMatchesBackend(t *testing.T) {
	type shape struct {
		transA, transB bool
		m, n, k        int
		beta           float32
	}
	shapes := []shape{
		{true, true, 200, 32, 288, 0}, {true, true, 196, 32, 288, 0}, {false, true, 288, 32, 196, 1},
		{true, false, 288, 196, 32, 0}, {true, true, 37, 10, 300, 0}, {false, true, 300, 20, 45, 1},
		// Large enough (> 2^20 multiply-adds per goroutine) for SgemmParallel to split it.
		{true, true, 784, 64, 288, 0}, {false, true, 576, 64, 784, 1},
	}
	for _, sh := range shapes {
		rng := rand.New(rand.NewPCG(uint64(sh.m), uint64(sh.k)))
		lda, ldb := sh.k, sh.n
		if sh.transA {
			lda = sh.m
		}
		if sh.transB {
			ldb = sh.k
		}
		a, b := randomSlice(rng, sh.m*sh.k), randomSlice(rng, sh.k*sh.n)
		c0 := randomSlice(rng, sh.m*sh.n)
		for workers := 1; workers <= 3; workers++ {
			back := gemm.Parallel{Backend: gemm.Asm{}, Workers: workers}
			want, got := slices.Clone(c0), slices.Clone(c0)
			back.Sgemm(sh.transA, sh.transB, sh.m, sh.n, sh.k, 1, a, lda, b, ldb, sh.beta, want, sh.n)
			convSgemm(&runCtx{gemm: back}, sh.transA, sh.transB, sh.m, sh.n, sh.k, 1, a, lda, b, ldb, sh.beta, got, sh.n)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%+v, %d workers: C[%d] = %v by convSgemm, %v by the backend", sh, workers, i, got[i], want[i])
				}
			}
		}
	}
}
