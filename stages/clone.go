package stages

import (
	"fmt"
	"math/rand/v2"

	"github.com/pipe-ml/pipe/ensemble"
	"github.com/pipe-ml/pipe/nn"
)

// A published artifact is shared by every stage that reads it, and an nn.Model keeps its
// activation buffers inside, so two stages must not run one model at the same time. Stages
// that run a predictor take a private copy first (the weights are copied; the fitted
// preprocessing transforms are safe for concurrent use and shared).

func cloneModel(m *nn.Model) (*nn.Model, error) {
	c, err := nn.Build(m.Spec(), rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return nil, err
	}
	if _, err := c.InitFrom(m); err != nil {
		return nil, err
	}
	for _, h := range m.Heads() {
		if w := m.ClassWeights(h.Name); w != nil {
			if err := c.SetClassWeights(h.Name, w); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// clonePredictor returns a copy of p that the caller may run (and, for ensembles, give new
// combiners) without affecting other stages.
func clonePredictor(p Predictor) (Predictor, error) {
	switch x := p.(type) {
	case *Bundle:
		m, err := cloneModel(x.Model)
		if err != nil {
			return nil, err
		}
		c := *x
		c.Model = m
		return &c, nil
	case *EnsembleBundle:
		ens, err := cloneEnsemble(x.Ens)
		if err != nil {
			return nil, err
		}
		c := *x
		c.Ens = ens
		return &c, nil
	}
	return nil, fmt.Errorf("cannot copy a %T", p)
}

func cloneEnsemble(e *ensemble.Ensemble) (*ensemble.Ensemble, error) {
	var models []*nn.Model
	for _, m := range e.Models() {
		c, err := cloneModel(m)
		if err != nil {
			return nil, err
		}
		models = append(models, c)
	}
	out, err := ensemble.New(models, e.Names())
	if err != nil {
		return nil, err
	}
	for head, specs := range e.CombinerSpecs() {
		for _, s := range specs {
			c, err := ensemble.NewCombiner(s)
			if err != nil {
				return nil, err
			}
			if err := out.SetCombiner(head, c); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
