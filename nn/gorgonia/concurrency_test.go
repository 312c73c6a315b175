package graphmodel

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/pipe-ml/pipe/nn"
)

// TestBlockConcurrentModels trains independent models with gorgonia blocks in parallel, as
// bagged ensembles do, and checks each ends bit-identical to the same model trained alone (run
// under -race, this also catches shared state inside gorgonia that the block does not guard).
func TestBlockConcurrentModels(t *testing.T) {
	const workers = 3
	steps := 6
	if raceEnabled {
		steps = 3
	}
	spec := nn.Spec{NumInputs: 4, Layers: []nn.LayerSpec{{Type: nn.LayerCustom, Custom: "gg_test_gated"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}
	trainOne := func(seed uint64) (*nn.Model, error) {
		m, err := nn.Build(spec, rand.New(rand.NewPCG(seed, 0)))
		if err != nil {
			return nil, err
		}
		rng := rand.New(rand.NewPCG(seed, 1))
		for s := 0; s < steps; s++ {
			b, tg := randomInputs(rng, 8+s%3, 4, 3)
			if _, err := m.TrainStep(b, tg); err != nil {
				return nil, err
			}
			for _, p := range m.Params() {
				for i := range p.Value {
					p.Value[i] -= 0.1 * p.Grad[i]
				}
			}
		}
		return m, nil
	}
	parallel := make([]*nn.Model, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parallel[w], errs[w] = trainOne(uint64(w + 1))
		}()
	}
	wg.Wait()
	for w := range workers {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		alone, err := trainOne(uint64(w + 1))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range alone.Params() {
			q := parallel[w].Param(p.Name)
			for i := range p.Value {
				if math.Float32bits(p.Value[i]) != math.Float32bits(q.Value[i]) {
					t.Fatalf("worker %d: %s[%d] = %v trained in parallel, %v alone", w, p.Name, i, q.Value[i], p.Value[i])
				}
			}
		}
	}
}
