package nn

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestHeadNoise checks HeadSpec.Noise: a training pass adds the noise HeadNoise reports to
// the logits (scaled by γ, in normalised units, with the head's batch norm), an eval pass
// and a NoNoise pass add none, and a regression head refuses it.
func TestHeadNoise(t *testing.T) {
	for _, bn := range []bool{false, true} {
		spec := Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}},
			Heads: []HeadSpec{{Kind: HeadSoftmax, Classes: 3, BatchNorm: bn, Noise: 0.7}}}
		rng := rand.New(rand.NewPCG(8, 9))
		m, err := Build(spec, rng)
		if err != nil {
			t.Fatal(err)
		}
		if bn {
			for i := range m.Param("head_out/bn/gamma").Value {
				m.Param("head_out/bn/gamma").Value[i] = 1.5 + float32(i)
			}
		}
		rows := 64
		b := randomBatch(rng, m.Spec(), rows)
		logitsOf := func(train bool, pass TrainPass) (logits, pre, noise []float32) {
			m.SetTrainPass(pass)
			defer m.SetTrainPass(TrainPass{})
			if _, err := m.LossStep(b, train, GradNone, func(_ int, l, _ []float32, n int) float64 {
				logits = append([]float32(nil), l[:n*3]...)
				return 0
			}); err != nil {
				t.Fatal(err)
			}
			pre = append([]float32(nil), m.HeadPre(0, rows)...)
			if n := m.HeadNoise(0, rows); n != nil {
				noise = append([]float32(nil), n...)
			}
			return logits, pre, noise
		}
		clean, _, none := logitsOf(true, TrainPass{NoNoise: true, KeepRunningStats: true})
		if none != nil {
			t.Fatalf("batch_norm=%v: a NoNoise pass reports noise", bn)
		}
		noisy, pre, noise := logitsOf(true, TrainPass{KeepRunningStats: true})
		if noise == nil {
			t.Fatalf("batch_norm=%v: a training pass reports no noise", bn)
		}
		var ss float64
		for i, v := range noise {
			ss += float64(v) * float64(v)
			scale := 1.0
			if bn {
				scale = 1.5 + float64(i%3)
			}
			if d := float64(noisy[i]) - float64(clean[i]) - scale*float64(v); math.Abs(d) > 1e-5 {
				t.Fatalf("batch_norm=%v: logit %d moved by %g, want %g", bn, i, noisy[i]-clean[i], scale*float64(v))
			}
		}
		if sd := math.Sqrt(ss / float64(len(noise))); math.Abs(sd-0.7) > 0.15 {
			t.Errorf("batch_norm=%v: the noise's stddev is %.3f, want 0.7", bn, sd)
		}
		if !bn {
			for i := range pre {
				if pre[i] != clean[i] {
					t.Fatalf("HeadPre %d is %g, the clean logit %g", i, pre[i], clean[i])
				}
			}
		}
		eval, _, none := logitsOf(false, TrainPass{})
		if none != nil {
			t.Fatalf("batch_norm=%v: an eval pass reports noise", bn)
		}
		if !bn {
			for i := range eval {
				if eval[i] != clean[i] {
					t.Fatalf("eval logit %d is %g, the noiseless train pass's %g", i, eval[i], clean[i])
				}
			}
		}
	}
	bad := Spec{NumInputs: 4, Heads: []HeadSpec{{Kind: HeadRegression, Noise: 0.3}}}
	if _, err := Build(bad, rand.New(rand.NewPCG(1, 1))); err == nil || !strings.Contains(err.Error(), "drop noise from this head") {
		t.Fatalf("noise on a regression head: %v", err)
	}
}

// TestHeadGradient checks SetHeadGradient against central differences: with g set, the
// gradient of TrainStep is that of its loss plus Σ g·HeadPre, with and without the head's
// batch norm and noise (their draws held fixed).
func TestHeadGradient(t *testing.T) {
	for _, hs := range []HeadSpec{{Kind: HeadSoftmax, Classes: 3}, {Kind: HeadSoftmax, Classes: 3, BatchNorm: true, Noise: 0.4}} {
		spec := Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Units: 5, Activation: "tanh"}}, Heads: []HeadSpec{hs}}
		rng := rand.New(rand.NewPCG(3, 7))
		m, err := Build(spec, rng)
		if err != nil {
			t.Fatal(err)
		}
		rows := 8
		b := randomBatch(rng, m.Spec(), rows)
		tg := randomTargets(rng, m.Spec(), rows, 0)
		g := make([]float32, rows*3)
		for i := range g {
			g[i] = float32(rng.NormFloat64())
		}
		state, _ := m.NoiseSource().MarshalBinary()
		loss := func() float64 {
			_ = m.NoiseSource().UnmarshalBinary(state)
			m.SetTrainPass(TrainPass{KeepRunningStats: true})
			defer m.SetTrainPass(TrainPass{})
			l, err := m.TrainStep(b, tg)
			if err != nil {
				t.Fatal(err)
			}
			total := l.Total
			for i, v := range m.HeadPre(0, rows) {
				total += float64(g[i]) * float64(v)
			}
			return total
		}
		m.SetHeadGradient(0, g)
		loss()
		m.SetHeadGradient(0, nil)
		var grads [][]float32
		for _, p := range m.Params() {
			grads = append(grads, append([]float32(nil), p.Grad...))
		}
		for pi, p := range m.Params() {
			grad := grads[pi]
			for i := range p.Value {
				num := centralDiff(p.Value, i, 1e-2, loss)
				if d := math.Abs(num - float64(grad[i])); d > 2e-2*max(math.Abs(num), 1e-1) {
					t.Errorf("%+v: %s[%d]: analytic %g, numeric %g", hs, p.Name, i, grad[i], num)
				}
			}
		}
	}
}
