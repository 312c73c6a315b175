package train

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// TestLadderDenoisingGradCheck checks the Γ-model's denoising cost's gradients by central
// finite differences: with respect to every corrupted top pre-activation (through z̃'s batch
// norm), every corrupted logit (through u's softmax and batch norm across the rows), every
// combinator parameter a1…a10, and every clean top pre-activation (cleanGrad, through the
// target's batch norm). The combinator is set away from its initial values (where most paths
// have zero gradient).
func TestLadderDenoisingGradCheck(t *testing.T) {
	const rows, k = 5, 4
	rng := rand.New(rand.NewPCG(7, 1))
	clean := make([]float32, rows*k)
	pre := make([]float32, rows*k)
	logits := make([]float32, rows*k)
	for i := range logits {
		clean[i] = float32(rng.NormFloat64() * 2)
		pre[i] = clean[i] + float32(rng.NormFloat64()*0.5)
		logits[i] = pre[i]*1.3 + float32(rng.NormFloat64()*0.5)
	}
	s := newLadderScratch(k, rows)
	s.setClean(clean, rows)
	noise := make([]float32, rows*k)
	for i := range noise {
		noise[i] = float32(rng.NormFloat64() * 0.3)
	}
	comb := newCombinator(k)
	for i := range comb.Value {
		comb.Value[i] = float32(rng.NormFloat64())
	}
	const weight = 1.7
	cost := func() float64 {
		dl := make([]float32, rows*k)
		s.setClean(clean, rows)
		return s.cost(comb, weight, pre, noise, logits, dl, rows)
	}
	dl := make([]float32, rows*k)
	s.cost(comb, weight, pre, noise, logits, dl, rows)
	ga := append([]float32(nil), comb.Grad...)
	dpre := append([]float32(nil), s.dpre[:rows*k]...)
	dclean := append([]float32(nil), s.cleanGrad(rows)...)
	check := func(what string, v []float32, grad []float32) {
		t.Helper()
		worst := 0.0
		for i := range v {
			orig := v[i]
			h := float32(1e-2)
			v[i] = orig + h
			up := cost()
			v[i] = orig - h
			down := cost()
			v[i] = orig
			num := (up - down) / float64(2*h)
			err := math.Abs(num-float64(grad[i])) / max(1e-3, math.Abs(num)+math.Abs(float64(grad[i])))
			worst = max(worst, err)
			if err > 2e-2 {
				t.Errorf("%s %d: analytic %g, numeric %g", what, i, grad[i], num)
			}
		}
		t.Logf("%s: worst relative error %.2g", what, worst)
	}
	check("dC/dpre", pre, dpre)
	check("dC/dlogit", logits, dl)
	check("dC/da", comb.Value, ga)
	check("dC/dclean", clean, dclean)
}

// TestLadderKeepsCleanStatistics runs one ladder step and checks that the model's batch-norm
// running statistics are exactly those one clean pass (no noise, no dropout) of the step's
// combined batch gives: the corrupted pass, which trains the weights, leaves them alone. With
// SeparateBatches the clean pass is over the step's unlabelled rows alone, and so are the
// statistics, for the Γ-model and the full ladder.
func TestLadderKeepsCleanStatistics(t *testing.T) {
	for _, c := range []struct {
		name     string
		spec     nn.Spec
		full     bool
		separate bool
	}{{"top", richSpec(), false, false}, {"top/separate_batches", richSpec(), false, true}, {"full/separate_batches", fullLadderBlobsSpec(), true, true}} {
		t.Run(c.name, func(t *testing.T) {
			lab, unl := semiBlobs()
			cfg := semiConfig(SemiLadder, unl, 1)
			if c.full {
				cfg = fullLadderConfig(unl, 1)
			}
			cfg.Semi.SeparateBatches = c.separate
			step := func(m *nn.Model) *semiRun {
				sr, err := newSemiRun(cfg.Semi, cfg, m, 8)
				if err != nil {
					t.Fatal(err)
				}
				return sr
			}
			b, tg := materialize(lab.Subset([]int{0, 1, 2, 3, 4, 5, 6, 7}))
			m := buildModel(t, c.spec)
			if _, err := step(m).step(b, tg, optim.Progress{Step: 100, StepsPerEpoch: 1}); err != nil {
				t.Fatal(err)
			}
			ref := buildModel(t, c.spec)
			cb, _ := step(ref).combine(b, tg)
			if c.separate {
				cb = rowsOf(cb, c.spec.NumInputs, b.Rows, cb.Rows)
			}
			ref.SetTrainPass(nn.TrainPass{NoNoise: true})
			if _, err := ref.LossStep(cb, true, nn.GradNone, func(int, []float32, []float32, int) float64 { return 0 }); err != nil {
				t.Fatal(err)
			}
			if len(m.Buffers()) == 0 {
				t.Fatal("the spec has no batch norm")
			}
			sameWeights(t, buffersOf(ref), buffersOf(m))
			fresh := buffersOf(buildModel(t, c.spec))
			if sameBits(fresh, buffersOf(m)) {
				t.Error("the ladder step did not update the running statistics")
			}
		})
	}
}

func buffersOf(m *nn.Model) [][]float32 {
	var out [][]float32
	for _, p := range m.Buffers() {
		out = append(out, append([]float32(nil), p.Value...))
	}
	return out
}

func sameBits(a, b [][]float32) bool {
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				return false
			}
		}
	}
	return true
}

// TestLadderTrainsCombinator checks that training moves the combinator away from its
// initial values (ẑ = 0) and that the checkpoint carries it (TestSemiResumeBitIdentical
// checks that a resumed run's weights are the uninterrupted run's).
func TestLadderTrainsCombinator(t *testing.T) {
	lab, unl := semiBlobs()
	val := blobs(2, 60)
	cfg := semiConfig(SemiLadder, unl, 1)
	cfg.EarlyStopping.Disabled = true
	var ck *Checkpoint
	if _, err := Fit(context.Background(), buildModel(t, richSpec()), lab, val, cfg, checkpointAt(1, &ck)); err != nil {
		t.Fatal(err)
	}
	st, err := decodeSemiState(ck.Semi)
	if err != nil {
		t.Fatal(err)
	}
	init := newCombinator(3).Value
	if len(st.Combinator) != len(init) {
		t.Fatalf("checkpoint has %d combinator values, want %d", len(st.Combinator), len(init))
	}
	moved := 0
	for i, v := range st.Combinator {
		if v != init[i] {
			moved++
		}
	}
	if moved < len(init)/2 {
		t.Errorf("only %d of %d combinator values moved from their initial values", moved, len(init))
	}
}
