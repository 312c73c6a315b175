package stages

import "github.com/pipe-ml/pipe/pipeline"

// Register installs every built-in stage kind into r.
func Register(r *pipeline.Registry) error {
	for _, k := range kinds() {
		if err := r.Register(k); err != nil {
			return err
		}
	}
	return nil
}

func kinds() []pipeline.KindSpec {
	var out []pipeline.KindSpec
	for _, f := range builtins {
		out = append(out, f())
	}
	return out
}

// builtins are the constructors of the built-in kind specs, in the order `pipe docs` lists
// them. The list is explicit: no init() registration.
var builtins = []func() pipeline.KindSpec{
	datasetKind, csvKind, parquetKind, arrowKind,
	splitKind, imputeKind, encodeKind, normalizeKind,
	maskLabelsKind, augmentKind,
	pretrainKind, trainKind, pseudoLabelKind, ensembleKind, combineKind, predictKind, evaluateKind,
	writeKind,
}
