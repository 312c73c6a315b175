package stages

import (
	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/pipeline"
)

// Register installs every built-in stage kind into r, with what the stage store needs to read
// their outputs back: the decoder of pipe's lineage transforms (normalize, impute, encode and
// augment) and the loaders of their artifacts (see UseDecoders).
func Register(r *pipeline.Registry) error {
	for _, k := range kinds() {
		if err := r.Register(k); err != nil {
			return err
		}
	}
	d := bundle.NewDecoders()
	if err := features.RegisterTransforms(d); err != nil {
		return err
	}
	return UseDecoders(r, d)
}

// UseDecoders sets the stage store's transform decoder and artifact loaders of r to read
// transforms with d (to which it adds augment's, when d lacks it): a program whose stage kinds
// record their own transforms calls it with decoders that know them (cli.Command does, with
// Command.Transforms).
func UseDecoders(r *pipeline.Registry, d *bundle.Decoders) error {
	if err := RegisterTransforms(d); err != nil {
		return err
	}
	r.SetTransformDecoder(lineageDecoder(d))
	for kind, load := range artifactLoaders(d) {
		r.SetArtifactLoader(kind, load)
	}
	return nil
}

// RegisterTransforms adds the decoder of the stages' own lineage transform (augment's spec)
// to d, unless d has one for it already.
func RegisterTransforms(d *bundle.Decoders) error {
	for _, k := range d.Kinds() {
		if k == augmentKindName {
			return nil
		}
	}
	return d.Register(augmentKindName, func(state []byte) (bundle.Transform, error) {
		return decodeAugmentSpec(state)
	})
}

// lineageDecoder reads a lineage transform back as the stages record it: features' transforms
// wrapped as the fit stages wrap them, augment's spec as itself.
func lineageDecoder(d *bundle.Decoders) pipeline.TransformDecoder {
	return func(kind string, state []byte) (pipeline.FittedTransform, error) {
		t, err := d.Decode(kind, state)
		if err != nil {
			return nil, err
		}
		if ft, ok := t.(features.Transform); ok {
			return fittedTransform{ft}, nil
		}
		return t, nil
	}
}

func kinds() []pipeline.KindSpec {
	var out []pipeline.KindSpec
	for _, f := range builtins {
		k := f()
		// Every built-in kind's outputs depend only on what its cache key holds, and its
		// artifacts and lineage transforms are read back by the loaders and the decoder that
		// Register installs.
		k.Cacheable = true
		out = append(out, k)
	}
	return out
}

// builtins are the constructors of the built-in kind specs, in the order `pipe docs` lists
// them. The list is explicit: no init() registration.
var builtins = []func() pipeline.KindSpec{
	datasetKind, csvKind, parquetKind, arrowKind,
	splitKind, imputeKind, encodeKind, normalizeKind,
	maskLabelsKind, augmentKind,
	pretrainKind, trainKind, pseudoLabelKind, ensembleKind, combineKind, searchKind, predictKind, evaluateKind,
	writeKind,
}
