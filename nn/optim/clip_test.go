package optim

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestClipGlobalNorm(t *testing.T) {
	// Gradients (3, 4) and (12) with a frozen (100): global norm sqrt(9+16+144) = 13.
	mk := func() []*Param {
		return []*Param{
			{Name: "a", Value: make([]float32, 2), Grad: []float32{3, 4}},
			{Name: "b", Value: make([]float32, 1), Grad: []float32{12}},
			{Name: "frozen", Value: make([]float32, 1), Grad: []float32{100}, Frozen: true},
		}
	}
	tests := []struct {
		name    string
		maxNorm float64
		scale   float64 // expected factor on every non-frozen gradient
	}{
		{"above", 6.5, 0.5},
		{"well above", 1, 1.0 / 13},
		{"below", 20, 1},
		{"equal", 13, 1},
		{"disabled", 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := mk()
			if got := ClipGlobalNorm(ps, tc.maxNorm); math.Abs(got-13) > 1e-12 {
				t.Errorf("returned norm %v, want 13", got)
			}
			want := []float64{3 * tc.scale, 4 * tc.scale, 12 * tc.scale}
			got := []float32{ps[0].Grad[0], ps[0].Grad[1], ps[1].Grad[0]}
			for i := range want {
				if math.Abs(float64(got[i])-want[i]) > 1e-6 {
					t.Errorf("grads %v, want %v", got, want)
				}
			}
			if ps[2].Grad[0] != 100 {
				t.Error("frozen gradient changed")
			}
			if tc.maxNorm > 0 && tc.maxNorm < 13 {
				if n := GradNorm(ps); math.Abs(n-tc.maxNorm) > 1e-6*tc.maxNorm {
					t.Errorf("norm after clipping %v, want %v", n, tc.maxNorm)
				}
			}
		})
	}
	t.Run("random direction preserved", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 5))
		ps := testParams(rng)
		fillGrads(rng, ps, nil)
		before := cloneParams(ps)
		norm := ClipGlobalNorm(ps, 0.1)
		if n := GradNorm(ps); math.Abs(n-0.1) > 1e-6 {
			t.Errorf("norm after %v, want 0.1", n)
		}
		// Every non-frozen gradient is the old one times 0.1/norm: cosine similarity 1.
		for i, p := range ps {
			for j, g := range p.Grad {
				want := float64(before[i].Grad[j])
				if !p.Frozen {
					want *= 0.1 / norm
				}
				if math.Abs(float64(g)-want) > 1e-6*math.Max(1e-3, math.Abs(want)) {
					t.Fatalf("%s[%d] = %v, want %v", p.Name, j, g, want)
				}
			}
		}
	})
	t.Run("non-finite left alone", func(t *testing.T) {
		ps := []*Param{{Name: "a", Value: make([]float32, 2), Grad: []float32{float32(math.Inf(1)), 1}}}
		if n := ClipGlobalNorm(ps, 1); !math.IsInf(n, 1) || ps[0].Grad[1] != 1 {
			t.Errorf("norm %v, grads %v", n, ps[0].Grad)
		}
	})
}

func TestClipValue(t *testing.T) {
	ps := []*Param{
		{Name: "a", Value: make([]float32, 4), Grad: []float32{-3, 0.5, 2, -0.25}},
		{Name: "frozen", Value: make([]float32, 1), Grad: []float32{9}, Frozen: true},
	}
	// Norm before: sqrt(9 + 0.25 + 4 + 0.0625) = sqrt(13.3125).
	if n := ClipValue(ps, 1); math.Abs(n-math.Sqrt(13.3125)) > 1e-12 {
		t.Errorf("returned norm %v", n)
	}
	want := []float32{-1, 0.5, 1, -0.25}
	for i, g := range ps[0].Grad {
		if g != want[i] {
			t.Fatalf("clipped grads %v, want %v", ps[0].Grad, want)
		}
	}
	if ps[1].Grad[0] != 9 {
		t.Error("frozen gradient clipped")
	}
}
