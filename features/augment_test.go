package features

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func randomBatch(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// TestAugmentDeterministic: the same seed gives the same batch, another seed another batch.
func TestAugmentDeterministic(t *testing.T) {
	augs := []struct {
		name string
		a    Augmenter
	}{
		{"noise", GaussianNoise{Std: 0.1}},
		{"dropout", FeatureDropout{Rate: 0.2}},
		{"shift", ImageShift{Height: 8, Width: 8, MaxShift: 2}},
		{"rotate", ImageRotate{Height: 8, Width: 8, MaxDegrees: 15}},
	}
	rows, cols := 16, 64
	for _, tc := range augs {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.a.Validate(cols); err != nil {
				t.Fatal(err)
			}
			base := randomBatch(rand.New(rand.NewPCG(1, 1)), rows*cols)
			run := func(seed uint64) []float32 {
				x := slices.Clone(base)
				tc.a.Augment(x, rows, cols, rand.New(rand.NewPCG(seed, 0)))
				return x
			}
			a, b, c := run(5), run(5), run(6)
			if !slices.Equal(a, b) {
				t.Error("same seed, different output")
			}
			if slices.Equal(a, c) || slices.Equal(a, base) {
				t.Error("different seed gives the same output, or the batch is unchanged")
			}
		})
	}
}

func TestGaussianNoiseVariance(t *testing.T) {
	n := 200_000
	std := 0.3
	x := make([]float32, n)
	GaussianNoise{Std: std}.Augment(x, n/100, 100, rand.New(rand.NewPCG(2, 2)))
	mean, sd := naiveMeanStd(float32sTo64(x))
	// Standard errors: mean σ/√n ≈ 6.7e-4, sd σ/√(2n) ≈ 4.7e-4; allow 5 of each.
	if math.Abs(mean) > 5*std/math.Sqrt(float64(n)) || math.Abs(sd-std) > 5*std/math.Sqrt(2*float64(n)) {
		t.Fatalf("noise mean %g, std %g; want 0, %g", mean, sd, std)
	}
}

func float32sTo64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

func TestFeatureDropoutRate(t *testing.T) {
	for _, rate := range []float64{0.1, 0.5} {
		n := 100_000
		x := make([]float32, n)
		for i := range x {
			x[i] = 1
		}
		FeatureDropout{Rate: rate}.Augment(x, n/50, 50, rand.New(rand.NewPCG(3, 3)))
		zeros := 0
		for _, v := range x {
			if v == 0 {
				zeros++
			} else if v != 1 {
				t.Fatalf("kept value changed to %g (no rescaling expected)", v)
			}
		}
		sd := math.Sqrt(float64(n) * rate * (1 - rate))
		if math.Abs(float64(zeros)-float64(n)*rate) > 5*sd {
			t.Errorf("rate %g: %d of %d dropped", rate, zeros, n)
		}
	}
}

// TestImageShiftMovesPixel: a one-hot pixel image moves by exactly the drawn (dx, dy), which
// the test redraws from the same seed in the documented order.
func TestImageShiftMovesPixel(t *testing.T) {
	for _, size := range [][2]int{{8, 8}, {28, 28}} {
		h, w := size[0], size[1]
		offset, cols, rows := 3, 3+h*w+2, 40
		s := ImageShift{Height: h, Width: w, MaxShift: 3, Offset: offset}
		if err := s.Validate(cols); err != nil {
			t.Fatal(err)
		}
		x := make([]float32, rows*cols)
		px, py := w/2, h/2
		for r := range rows {
			x[r*cols+offset+py*w+px] = 1
			x[r*cols] = 7 // a column outside the image
		}
		s.Augment(x, rows, cols, rand.New(rand.NewPCG(4, 4)))
		draws := rand.New(rand.NewPCG(4, 4))
		for r := range rows {
			dx := draws.IntN(7) - 3
			dy := draws.IntN(7) - 3
			img := x[r*cols+offset : r*cols+offset+h*w]
			want := (py+dy)*w + px + dx
			for i, v := range img {
				if (i == want) != (v == 1) || (v != 0 && v != 1) {
					t.Fatalf("%dx%d row %d: shift (%d,%d): pixel %d is %g", h, w, r, dx, dy, i, v)
				}
			}
			if x[r*cols] != 7 {
				t.Fatal("a column outside the image changed")
			}
		}
	}
}

// TestRotate90: rotating by 90° counter-clockwise maps dst(x, y) = src(w-1-y, x), checked on a
// random pattern against that index formula, with a nearest-pixel tolerance of 1e-5.
func TestRotate90(t *testing.T) {
	for _, n := range []int{8, 28} {
		src := randomBatch(rand.New(rand.NewPCG(5, 5)), n*n)
		dst := make([]float32, n*n)
		RotateImageTo(dst, src, n, n, 90, 0)
		for y := range n {
			for x := range n {
				if want := src[x*n+(n-1-y)]; math.Abs(float64(dst[y*n+x]-want)) > 1e-5 {
					t.Fatalf("%d×%d: dst(%d,%d) = %g, want src(%d,%d) = %g", n, n, x, y, dst[y*n+x], n-1-y, x, want)
				}
			}
		}
		// Four quarter turns give the image back; 0° is the identity.
		back := slices.Clone(src)
		tmp := make([]float32, n*n)
		for range 4 {
			RotateImageTo(tmp, back, n, n, 90, 0)
			back, tmp = tmp, back
		}
		RotateImageTo(tmp, src, n, n, 0, 0)
		for i := range src {
			if math.Abs(float64(back[i]-src[i])) > 1e-5 || tmp[i] != src[i] {
				t.Fatalf("%d×%d: four quarter turns or 0° changed pixel %d", n, n, i)
			}
		}
	}
}

// TestRotateBilinear: a 45° rotation of a constant image keeps the interior constant (bilinear
// weights sum to 1) and fills the corners from outside with Fill.
func TestRotateBilinear(t *testing.T) {
	n := 8
	src := make([]float32, n*n)
	for i := range src {
		src[i] = 2
	}
	dst := make([]float32, n*n)
	RotateImageTo(dst, src, n, n, 45, -1)
	if c := dst[(n/2)*n+n/2]; math.Abs(float64(c-2)) > 1e-6 {
		t.Errorf("centre %g, want 2", c)
	}
	if c := dst[0]; c != -1 {
		t.Errorf("corner %g, want the fill -1", c)
	}
}

// TestMixupConvex: every mixed row is λ·x_i + (1-λ)·x_j for some other row j with the same λ
// for its soft target, λ in [0, 1]; targets still sum to 1.
func TestMixupConvex(t *testing.T) {
	rows, cols, k := 32, 5, 3
	rng := rand.New(rand.NewPCG(6, 6))
	x0 := randomBatch(rng, rows*cols)
	y0 := make([]float32, rows*k)
	for i := range rows {
		y0[i*k+rng.IntN(k)] = 1
	}
	x, y := slices.Clone(x0), slices.Clone(y0)
	Mixup{Alpha: 0.4}.Mix(x, y, rows, cols, k, rand.New(rand.NewPCG(7, 7)))
	mixed := 0
	for i := range rows {
		found := false
		for j := range rows {
			// Solve λ from the first feature, then check every feature and target.
			den := float64(x0[i*cols] - x0[j*cols])
			lambda := 1.0
			if j != i {
				lambda = float64(x[i*cols]-x0[j*cols]) / den
			}
			if lambda < -1e-4 || lambda > 1+1e-4 {
				continue
			}
			ok := true
			for c := range cols {
				want := lambda*float64(x0[i*cols+c]) + (1-lambda)*float64(x0[j*cols+c])
				ok = ok && math.Abs(float64(x[i*cols+c])-want) < 1e-3
			}
			var sum float64
			for c := range k {
				want := lambda*float64(y0[i*k+c]) + (1-lambda)*float64(y0[j*k+c])
				ok = ok && math.Abs(float64(y[i*k+c])-want) < 1e-3
				sum += float64(y[i*k+c])
			}
			if ok && math.Abs(sum-1) < 1e-5 {
				found = true
				if j != i && lambda < 0.999 {
					mixed++
				}
				break
			}
		}
		if !found {
			t.Fatalf("row %d is not a convex combination of two rows with one λ", i)
		}
	}
	if mixed < rows/2 {
		t.Errorf("only %d of %d rows were mixed", mixed, rows)
	}
	a, b := slices.Clone(x0), slices.Clone(y0)
	Mixup{Alpha: 0.4}.Mix(a, b, rows, cols, k, rand.New(rand.NewPCG(7, 7)))
	if !slices.Equal(a, x) || !slices.Equal(b, y) {
		t.Error("same seed, different mix")
	}
}

// TestSampleBetaMoments: Beta(a, a) has mean 1/2 and variance 1/(4(2a+1)).
func TestSampleBetaMoments(t *testing.T) {
	for _, a := range []float64{0.2, 1, 4} {
		rng := rand.New(rand.NewPCG(8, 8))
		n := 100_000
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = sampleBeta(rng, a)
		}
		mean, sd := naiveMeanStd(xs)
		wantVar := 1 / (4 * (2*a + 1))
		if math.Abs(mean-0.5) > 0.01 || math.Abs(sd*sd-wantVar) > 0.05*wantVar {
			t.Errorf("Beta(%g,%g): mean %g var %g, want 0.5, %g", a, a, mean, sd*sd, wantVar)
		}
	}
}

func TestAugmentValidate(t *testing.T) {
	tests := []struct {
		name string
		a    Augmenter
		cols int
	}{
		{"negative std", GaussianNoise{Std: -1}, 4},
		{"rate 1", FeatureDropout{Rate: 1}, 4},
		{"image too big", ImageShift{Height: 8, Width: 8, MaxShift: 1}, 63},
		{"no size", ImageRotate{MaxDegrees: 10}, 64},
		{"offset", ImageRotate{Height: 8, Width: 8, Offset: 1}, 64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.a.Validate(tc.cols); err == nil {
				t.Fatal("no error")
			}
		})
	}
	if (Mixup{Alpha: -1}).Validate() == nil {
		t.Error("negative mixup alpha accepted")
	}
}

// TestMixupDrawToReplaysMix: DrawTo makes the draws documented for Mix (rng.Perm, then one
// Beta λ per row), and MixRowsTo with them reproduces Mix; a NaN source value stays NaN.
func TestMixupDrawToReplaysMix(t *testing.T) {
	rows, cols, k := 9, 4, 3
	rng := rand.New(rand.NewPCG(2, 3))
	x0 := randomBatch(rng, rows*cols)
	y0 := randomBatch(rng, rows*k)
	x0[5*cols+1] = float32(math.NaN())
	mix := Mixup{Alpha: 0.3}
	x, y := slices.Clone(x0), slices.Clone(y0)
	mix.Mix(x, y, rows, cols, k, rand.New(rand.NewPCG(7, 7)))

	// Reference draws, written out: rng.Perm, then λ_i in row order.
	ref := rand.New(rand.NewPCG(7, 7))
	perm := ref.Perm(rows)
	lambda := make([]float64, rows)
	for i := range lambda {
		lambda[i] = sampleBeta(ref, mix.Alpha)
	}
	partner, gotLambda := make([]int, rows), make([]float64, rows)
	mix.DrawTo(partner, gotLambda, rand.New(rand.NewPCG(7, 7)))
	if !slices.Equal(partner, perm) || !slices.Equal(gotLambda, lambda) {
		t.Fatalf("DrawTo drew partners %v λ %v, want %v %v", partner, gotLambda, perm, lambda)
	}
	for _, tc := range []struct {
		name      string
		src, got  []float32
		cols      int
		nanSource int // row whose own value is NaN, -1 for none
	}{{"features", x0, x, cols, 5}, {"targets", y0, y, k, -1}} {
		t.Run(tc.name, func(t *testing.T) {
			viaRows := make([]float32, len(tc.src))
			MixRowsTo(viaRows, tc.src, tc.cols, partner, lambda)
			for i := range rows {
				for c := range tc.cols {
					a, b := float64(tc.src[i*tc.cols+c]), float64(tc.src[perm[i]*tc.cols+c])
					want := lambda[i]*a + (1-lambda[i])*b
					got, rowsGot := float64(tc.got[i*tc.cols+c]), float64(viaRows[i*tc.cols+c])
					if math.IsNaN(want) {
						if !math.IsNaN(got) || !math.IsNaN(rowsGot) {
							t.Fatalf("row %d col %d: a NaN source gave %v (Mix) and %v (MixRowsTo)", i, c, got, rowsGot)
						}
						continue
					}
					if math.Abs(got-want) > 1e-5 || got != rowsGot {
						t.Fatalf("row %d col %d: Mix %v, MixRowsTo %v, want %v", i, c, got, rowsGot, want)
					}
				}
			}
		})
	}
	// Alpha 0 draws nothing and leaves every row as it is.
	src := rand.NewPCG(1, 1)
	Mixup{}.DrawTo(partner, gotLambda, rand.New(src))
	if after := src.Uint64(); after != rand.NewPCG(1, 1).Uint64() {
		t.Error("alpha 0 drew from the rng")
	}
	for i := range partner {
		if partner[i] != i || gotLambda[i] != 1 {
			t.Fatalf("alpha 0: row %d paired with %d, λ %v", i, partner[i], gotLambda[i])
		}
	}
}

// TestImageAugmentMovesEveryChannel: on a [3, H, W] image, every channel of a row moves by the
// same draw: the shift's one-hot pixel lands at the same place in each plane, and the rotation
// turns each plane as RotateImageTo does with the redrawn angle (tolerance 1e-6).
func TestImageAugmentMovesEveryChannel(t *testing.T) {
	const h, w, ch, rows = 8, 8, 3, 30
	cols := 1 + ch*h*w
	x := make([]float32, rows*cols)
	for r := range rows {
		for c := range ch {
			x[r*cols+1+c*h*w+4*w+4] = float32(c + 1)
		}
	}
	s := ImageShift{Height: h, Width: w, Channels: ch, MaxShift: 2, Offset: 1}
	if err := s.Validate(cols); err != nil {
		t.Fatal(err)
	}
	s.Augment(x, rows, cols, rand.New(rand.NewPCG(2, 2)))
	draws := rand.New(rand.NewPCG(2, 2))
	for r := range rows {
		dx, dy := draws.IntN(5)-2, draws.IntN(5)-2
		want := (4+dy)*w + 4 + dx
		for c := range ch {
			plane := x[r*cols+1+c*h*w : r*cols+1+(c+1)*h*w]
			for i, v := range plane {
				if (i == want) != (v == float32(c+1)) {
					t.Fatalf("row %d channel %d: shift (%d,%d): pixel %d is %g", r, c, dx, dy, i, v)
				}
			}
		}
	}
	src := randomBatch(rand.New(rand.NewPCG(3, 3)), rows*cols)
	y := slices.Clone(src)
	rot := ImageRotate{Height: h, Width: w, Channels: ch, MaxDegrees: 20, Offset: 1}
	rot.Augment(y, rows, cols, rand.New(rand.NewPCG(5, 5)))
	draws = rand.New(rand.NewPCG(5, 5))
	want := make([]float32, h*w)
	for r := range rows {
		deg := (2*draws.Float64() - 1) * 20
		for c := range ch {
			start := r*cols + 1 + c*h*w
			RotateImageTo(want, src[start:start+h*w], h, w, deg, 0)
			for i, v := range y[start : start+h*w] {
				if math.Abs(float64(v-want[i])) > 1e-6 {
					t.Fatalf("row %d channel %d: pixel %d is %g, want %g", r, c, i, v, want[i])
				}
			}
		}
	}
	if err := (ImageShift{Height: h, Width: w, Channels: ch, MaxShift: 1}).Validate(ch*h*w - 1); err == nil {
		t.Error("a 3-channel image in too few columns: no error")
	}
}
