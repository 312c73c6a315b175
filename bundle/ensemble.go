package bundle

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pipe-ml/pipe/ensemble"
	"github.com/pipe-ml/pipe/nn"
)

// EnsembleBundle is a bundle of several members with shared inputs and preprocessing,
// combined per head by a named combiner. It is self-contained: the members' weights are
// copied into it.
type EnsembleBundle struct {
	Bundle // the shared plan and preprocessing; Model is nil
	Ens    *ensemble.Ensemble
}

// ArtifactKind is "ensemble".
func (e *EnsembleBundle) ArtifactKind() string { return "ensemble" }

// Forward combines the members' outputs with the bundle's combiners.
func (e *EnsembleBundle) Forward(b nn.Batch) (nn.Outputs, error) {
	return e.Ens.PredictHeads(b, e.Meta.Combiners)
}

// Clone implements Predictor.
func (e *EnsembleBundle) Clone() (Predictor, error) {
	ens, err := CloneEnsemble(e.Ens)
	if err != nil {
		return nil, err
	}
	c := *e
	c.Ens = ens
	return &c, nil
}

// Base implements Predictor.
func (e *EnsembleBundle) Base() *Bundle { return &e.Bundle }

// WithCombiner returns a copy that uses method for every head; it shares the members.
func (e *EnsembleBundle) WithCombiner(method string) *EnsembleBundle {
	c := *e
	c.Meta.Combiners = map[string]string{}
	for _, h := range e.Ens.Heads() {
		c.Meta.Combiners[h.Name] = method
	}
	c.Dir = ""
	return &c
}

// Save writes the bundle: the preprocessing chain, the members under ensemble/, then
// bundle.json (kind "ensemble") with every file's checksum, last.
func (e *EnsembleBundle) Save(dir string) error {
	if err := e.begin(dir); err != nil {
		return err
	}
	e.Meta.Kind = "ensemble"
	e.Meta.EnsembleDir = "ensemble"
	e.Meta.ModelDir = ""
	e.Meta.CreatedAt = time.Now().UTC()
	if err := e.Ens.Save(filepath.Join(dir, e.Meta.EnsembleDir)); err != nil {
		return fmt.Errorf("save ensemble bundle: %w", err)
	}
	return e.finish(dir)
}

func loadEnsemble(b *Bundle) (*EnsembleBundle, error) {
	ens, err := ensemble.Load(filepath.Join(b.Dir, b.Meta.EnsembleDir))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", b.Dir, err)
	}
	for head, name := range b.Meta.Combiners {
		if _, err := ens.Combiner(head, name); err != nil {
			return nil, fmt.Errorf("bundle %s: head %s: %w", b.Dir, head, err)
		}
	}
	return &EnsembleBundle{Bundle: *b, Ens: ens}, nil
}

// CloneEnsemble returns a copy of e with copied member weights and fresh combiners of the
// same specs.
func CloneEnsemble(e *ensemble.Ensemble) (*ensemble.Ensemble, error) {
	var models []*nn.Model
	for _, m := range e.Models() {
		c, err := CloneModel(m)
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

// SamePlan reports whether two bundles take the same inputs, targets and preprocessing, so
// that their members can be combined.
func SamePlan(a, b *Bundle) error {
	ja, _ := json.Marshal(a.Meta.Plan)
	jb, _ := json.Marshal(b.Meta.Plan)
	if string(ja) != string(jb) {
		return fmt.Errorf("their inputs or targets differ")
	}
	if len(a.Meta.Preprocessing) != len(b.Meta.Preprocessing) {
		return fmt.Errorf("their preprocessing chains differ")
	}
	for i := range a.Meta.Preprocessing {
		if a.Meta.Preprocessing[i].Stage != b.Meta.Preprocessing[i].Stage || a.Meta.Preprocessing[i].Kind != b.Meta.Preprocessing[i].Kind {
			return fmt.Errorf("their preprocessing chains differ (%s vs %s)", a.Meta.Preprocessing[i].Stage, b.Meta.Preprocessing[i].Stage)
		}
	}
	return nil
}

// NewEnsemble assembles the bundle of an ensemble trained on a table with the given chain of
// steps, as New does for one model.
func NewEnsemble(stage string, ens *ensemble.Ensemble, plan *InputPlan, steps []Step, trainSchema *arrow.Schema) (*EnsembleBundle, error) {
	b, err := New(stage, nil, plan, steps, trainSchema)
	if err != nil {
		return nil, err
	}
	b.Meta.Kind, b.Meta.ModelDir = "ensemble", ""
	return &EnsembleBundle{Bundle: *b, Ens: ens}, nil
}
