package stages

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/pipe-ml/pipe/ensemble"
	"github.com/pipe-ml/pipe/nn"
)

// EnsembleBundle is a bundle of several members with shared inputs and preprocessing, combined
// per head by a named combiner. It is self-contained: the members' weights are copied into it.
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

// withCombiner returns a copy using method for every head.
func (e *EnsembleBundle) withCombiner(method string) *EnsembleBundle {
	c := *e
	c.Meta.Combiners = map[string]string{}
	for _, h := range e.Ens.Heads() {
		c.Meta.Combiners[h.Name] = method
	}
	c.Dir = ""
	return &c
}

// Save writes the bundle: bundle.json (kind "ensemble"), the preprocessing chain and the
// members under ensemble/. bundle.json is written last.
func (e *EnsembleBundle) Save(dir string) error {
	if err := e.savePre(dir); err != nil {
		return err
	}
	e.Meta.Kind = "ensemble"
	e.Meta.EnsembleDir = "ensemble"
	e.Meta.ModelDir = ""
	e.Meta.CreatedAt = time.Now().UTC()
	if err := e.Ens.Save(filepath.Join(dir, e.Meta.EnsembleDir)); err != nil {
		return fmt.Errorf("save ensemble bundle: %w", err)
	}
	if err := e.saveMeta(dir); err != nil {
		return err
	}
	e.Dir = dir
	return nil
}

func loadEnsembleBundle(b *Bundle) (*EnsembleBundle, error) {
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

// samePlan reports whether two bundles take the same inputs, targets and preprocessing.
func samePlan(a, b *Bundle) error {
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
