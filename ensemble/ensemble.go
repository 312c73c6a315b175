package ensemble

import (
	"context"
	"fmt"
	"slices"

	"github.com/sourcegraph/conc/pool"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/metrics"
	"github.com/pipe-ml/pipe/nn/train"
)

// Ensemble is a set of trained member models with the same inputs and heads, and, per head,
// the combiners that can merge their outputs. It is not safe for concurrent use (its members
// are nn.Models, which own their buffers).
type Ensemble struct {
	models    []*nn.Model
	names     []string
	heads     []nn.HeadSpec
	combiners []map[string]Combiner // per head, by name
	workers   int
}

// New assembles an ensemble from trained models (e.g. loaded from a bundle). names label the
// members (nil: "member_<i>"). Every model must have the same numeric inputs, embeddings and
// heads (names, kinds, widths). Each head gets Mean, plus Vote for classification heads or
// Median for regression heads; add fitted Weighted combiners with SetCombiner. The models are
// retained, not copied.
func New(models []*nn.Model, names []string) (*Ensemble, error) {
	if len(models) == 0 {
		return nil, fmt.Errorf("ensemble: no member models")
	}
	if names != nil && len(names) != len(models) {
		return nil, fmt.Errorf("ensemble: %d names for %d models", len(names), len(models))
	}
	e := &Ensemble{models: slices.Clone(models), workers: 1, heads: models[0].Heads()}
	ref := models[0].Spec()
	for i, m := range models {
		name := fmt.Sprintf("member_%d", i)
		if names != nil {
			name = names[i]
		}
		e.names = append(e.names, name)
		if err := sameInterface(ref, m.Spec()); err != nil {
			return nil, fmt.Errorf("ensemble: member %d (%s) differs from member 0: %w", i, name, err)
		}
	}
	for _, h := range e.heads {
		cs := map[string]Combiner{CombinerMean: Mean{}}
		if isClassification(h) {
			cs[CombinerVote] = Vote{}
		} else {
			cs[CombinerMedian] = Median{}
		}
		e.combiners = append(e.combiners, cs)
	}
	return e, nil
}

// sameInterface checks that two specs take the same inputs and produce the same heads.
func sameInterface(a, b nn.Spec) error {
	if a.NumInputs != b.NumInputs {
		return fmt.Errorf("%d numeric inputs, want %d", b.NumInputs, a.NumInputs)
	}
	if len(a.Embeddings) != len(b.Embeddings) {
		return fmt.Errorf("%d embeddings, want %d", len(b.Embeddings), len(a.Embeddings))
	}
	for i := range a.Embeddings {
		if a.Embeddings[i].Cardinality != b.Embeddings[i].Cardinality {
			return fmt.Errorf("embedding %d has cardinality %d, want %d", i, b.Embeddings[i].Cardinality, a.Embeddings[i].Cardinality)
		}
	}
	if len(a.Heads) != len(b.Heads) {
		return fmt.Errorf("%d heads, want %d", len(b.Heads), len(a.Heads))
	}
	for i, h := range a.Heads {
		g := b.Heads[i]
		if g.Name != h.Name || g.Kind != h.Kind || headWidth(g) != headWidth(h) {
			return fmt.Errorf("head %d is %s %q of width %d, want %s %q of width %d", i, g.Kind, g.Name, headWidth(g), h.Kind, h.Name, headWidth(h))
		}
	}
	return nil
}

func isClassification(h nn.HeadSpec) bool { return h.Kind == nn.HeadSoftmax || h.Kind == nn.HeadBinary }

// headWidth is the width of a head's output in nn.Outputs.
func headWidth(h nn.HeadSpec) int {
	switch h.Kind {
	case nn.HeadSoftmax:
		return h.Classes
	case nn.HeadBinary:
		return 2
	}
	return max(h.Outputs, 1)
}

// Models returns the member models (the ensemble's own; do not train them further).
func (e *Ensemble) Models() []*nn.Model { return slices.Clone(e.models) }

// Names returns the member names.
func (e *Ensemble) Names() []string { return slices.Clone(e.names) }

// Heads returns the head specs shared by the members.
func (e *Ensemble) Heads() []nn.HeadSpec { return slices.Clone(e.heads) }

// SetWorkers sets how many members predict at the same time (default 1). Results do not
// depend on it.
func (e *Ensemble) SetWorkers(n int) { e.workers = max(n, 1) }

// SetCombiner adds (or replaces, by name) a combiner of the named head. A Weighted combiner
// must have one weight per member.
func (e *Ensemble) SetCombiner(head string, c Combiner) error {
	h, err := e.headIndex(head)
	if err != nil {
		return err
	}
	if w, ok := c.(Weighted); ok && len(w.weights) != len(e.models) {
		return fmt.Errorf("ensemble: head %q: weighted combiner has %d weights for %d members", head, len(w.weights), len(e.models))
	}
	if c.Name() == CombinerVote && !isClassification(e.heads[h]) {
		return fmt.Errorf("ensemble: head %q is a regression head: vote needs class probabilities", head)
	}
	e.combiners[h][c.Name()] = c
	return nil
}

// Combiner returns the named combiner of the named head.
func (e *Ensemble) Combiner(head, name string) (Combiner, error) {
	h, err := e.headIndex(head)
	if err != nil {
		return nil, err
	}
	c, ok := e.combiners[h][name]
	if !ok {
		return nil, fmt.Errorf("ensemble: head %q has no %q combiner (has %v)", head, name, e.CombinerNames(head))
	}
	return c, nil
}

// CombinerNames lists the combiners of the named head, sorted.
func (e *Ensemble) CombinerNames(head string) []string {
	h, err := e.headIndex(head)
	if err != nil {
		return nil
	}
	var out []string
	for name := range e.combiners[h] {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// CombinerSpecs returns the serialisable combiners of every head, by head name, sorted by
// combiner name.
func (e *Ensemble) CombinerSpecs() map[string][]CombinerSpec {
	out := map[string][]CombinerSpec{}
	for h, hs := range e.heads {
		for _, name := range e.CombinerNames(hs.Name) {
			out[hs.Name] = append(out[hs.Name], e.combiners[h][name].Spec())
		}
	}
	return out
}

func (e *Ensemble) headIndex(name string) (int, error) {
	for i, h := range e.heads {
		if h.Name == name {
			return i, nil
		}
	}
	names := make([]string, len(e.heads))
	for i, h := range e.heads {
		names[i] = h.Name
	}
	return 0, fmt.Errorf("ensemble: no head named %q (heads: %v)", name, names)
}

// MemberOutputs runs every member on b (eval mode) and returns their outputs in member order.
// Members predict concurrently, up to SetWorkers at a time.
func (e *Ensemble) MemberOutputs(b nn.Batch) ([]nn.Outputs, error) {
	outs := make([]nn.Outputs, len(e.models))
	p := pool.New().WithErrors().WithMaxGoroutines(e.workers)
	for i, m := range e.models {
		p.Go(func() error {
			o, err := m.Predict(b)
			if err != nil {
				return fmt.Errorf("ensemble: member %d (%s): %w", i, e.names[i], err)
			}
			outs[i] = o
			return nil
		})
	}
	if err := p.Wait(); err != nil {
		return nil, err
	}
	return outs, nil
}

// Predict returns the ensemble's outputs for b, every head combined with the named combiner
// ("" means "mean"; see PredictHeads to choose per head). The result is freshly allocated, in
// nn.Outputs' layout.
func (e *Ensemble) Predict(b nn.Batch, combiner string) (nn.Outputs, error) {
	if combiner == "" {
		combiner = CombinerMean
	}
	cs := make([]Combiner, len(e.heads))
	for h, hs := range e.heads {
		c, err := e.Combiner(hs.Name, combiner)
		if err != nil {
			return nn.Outputs{}, err
		}
		cs[h] = c
	}
	outs, err := e.MemberOutputs(b)
	if err != nil {
		return nn.Outputs{}, err
	}
	return e.combine(outs, b.Rows, cs), nil
}

// PredictHeads is Predict with a combiner chosen per head: combiners maps a head name to a
// combiner name; heads not in the map use "mean". An unknown head name is an error.
func (e *Ensemble) PredictHeads(b nn.Batch, combiners map[string]string) (nn.Outputs, error) {
	for name := range combiners {
		if _, err := e.headIndex(name); err != nil {
			return nn.Outputs{}, err
		}
	}
	cs := make([]Combiner, len(e.heads))
	for h, hs := range e.heads {
		name := combiners[hs.Name]
		if name == "" {
			name = CombinerMean
		}
		c, err := e.Combiner(hs.Name, name)
		if err != nil {
			return nn.Outputs{}, err
		}
		cs[h] = c
	}
	outs, err := e.MemberOutputs(b)
	if err != nil {
		return nn.Outputs{}, err
	}
	return e.combine(outs, b.Rows, cs), nil
}

// combine merges member outputs head by head with cs[h].
func (e *Ensemble) combine(outs []nn.Outputs, rows int, cs []Combiner) nn.Outputs {
	res := nn.Outputs{Heads: make([][]float32, len(e.heads)), Width: make([]int, len(e.heads))}
	for h := range e.heads {
		k := outs[0].Width[h]
		per := make([][]float32, len(outs))
		for m, o := range outs {
			per[m] = o.Heads[h]
		}
		res.Heads[h] = cs[h].Combine(per, rows, k)
		res.Width[h] = k
	}
	return res
}

// Diversity returns, per head, the mean over member pairs of the fraction of rows of d on
// which the two members predict different classes (argmax, ties to the lowest class). It is
// NaN for regression heads and for an ensemble of one member.
func (e *Ensemble) Diversity(d train.Dataset) ([]float64, error) {
	outs, err := e.predictDataset(context.Background(), d)
	if err != nil {
		return nil, err
	}
	return diversity(e.heads, outs, d.Len()), nil
}

func diversity(heads []nn.HeadSpec, outs []nn.Outputs, rows int) []float64 {
	res := make([]float64, len(heads))
	for h, hs := range heads {
		res[h] = nan()
		if !isClassification(hs) || len(outs) < 2 || rows == 0 {
			continue
		}
		k := headWidth(hs)
		preds := make([][]int32, len(outs))
		for m, o := range outs {
			preds[m] = metrics.ArgMax(o.Heads[h], k, nil)
		}
		var sum float64
		pairs := 0
		for a := range preds {
			for b := a + 1; b < len(preds); b++ {
				diff := 0
				for r := range preds[a] {
					if preds[a][r] != preds[b][r] {
						diff++
					}
				}
				sum += float64(diff) / float64(rows)
				pairs++
			}
		}
		res[h] = sum / float64(pairs)
	}
	return res
}

// predictDataset returns every member's outputs on the rows of d, gathered in chunks.
func (e *Ensemble) predictDataset(ctx context.Context, d train.Dataset) ([]nn.Outputs, error) {
	outs := make([]nn.Outputs, len(e.models))
	p := pool.New().WithErrors().WithMaxGoroutines(e.workers)
	for i, m := range e.models {
		p.Go(func() error {
			o, err := predictRows(ctx, m, d, nil)
			if err != nil {
				return fmt.Errorf("ensemble: member %d (%s): %w", i, e.names[i], err)
			}
			outs[i] = o
			return nil
		})
	}
	if err := p.Wait(); err != nil {
		return nil, err
	}
	return outs, nil
}
