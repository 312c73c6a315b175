package features

import (
	"fmt"

	"github.com/pipe-ml/pipe/bundle"
)

// Marshal implements Transform.
func (t *normalizeTransform) Marshal() ([]byte, error) { return Marshal(t) }

// Marshal implements Transform.
func (t *imputeTransform) Marshal() ([]byte, error) { return Marshal(t) }

// Marshal implements Transform.
func (t *encodeTransform) Marshal() ([]byte, error) { return Marshal(t) }

// RegisterTransforms registers the decoders of this package's fitted transforms (normalize,
// impute, encode), so that bundles whose preprocessing holds them can be loaded.
func RegisterTransforms(d *bundle.Decoders) error {
	for _, kind := range []string{KindNormalize, KindImpute, KindEncode} {
		if err := d.Register(kind, func(state []byte) (bundle.Transform, error) {
			t, err := Unmarshal(state)
			if err != nil {
				return nil, err
			}
			if t.Kind() != kind {
				return nil, fmt.Errorf("features: the saved state is a %s transform, not %s", t.Kind(), kind)
			}
			return t, nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// Decoders returns a registry with this package's transform decoders: what a program that
// only loads pipe's bundles and predicts needs.
func Decoders() *bundle.Decoders {
	d := bundle.NewDecoders()
	if err := RegisterTransforms(d); err != nil {
		panic(err) // three fixed, distinct kinds into an empty registry
	}
	return d
}
