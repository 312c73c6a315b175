package stages

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sync/errgroup"

	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/schema"
)

// TransformArtifact is a fitted features.Transform on an artifact edge.
type TransformArtifact struct{ T features.Transform }

// ArtifactKind is "transform".
func (TransformArtifact) ArtifactKind() string { return "transform" }

// fittedTransform adapts a features.Transform to pipeline.FittedTransform (lineage).
type fittedTransform struct{ t features.Transform }

func (f fittedTransform) Kind() string { return f.t.Kind() }
func (f fittedTransform) Apply(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	return f.t.Apply(ctx, mem, rec)
}
func (f fittedTransform) Marshal() ([]byte, error) { return features.Marshal(f.t) }

// applyPorts names the outputs after the inputs' ports: normalize applied to impute.train
// gives normalize.train. A reference without a port names its output after the stage.
func applyPorts(c *pipeline.StageConfig) []pipeline.Port {
	refs := c.Strings("apply")
	if len(refs) == 0 {
		refs = c.Strings("fit")
	}
	seen := map[string]int{}
	ports := make([]pipeline.Port, 0, len(refs)+1)
	for _, r := range refs {
		name := portNameOf(r)
		seen[name]++
		if seen[name] > 1 {
			name = fmt.Sprintf("%s_%d", name, seen[name])
		}
		ports = append(ports, pipeline.Port{Name: name, Kind: pipeline.PortTable, Doc: "the transformed " + r, From: r})
	}
	return append(ports, pipeline.Port{Name: "transform", Kind: pipeline.PortArtifact, Doc: "the fitted transform"})
}

// firstRef returns the (first) reference an input field holds, as written, or "".
func firstRef(c *pipeline.StageConfig, key string) string {
	if r := c.Strings(key); len(r) > 0 {
		return r[0]
	}
	return ""
}

func portNameOf(ref string) string {
	stage, port, ok := strings.Cut(ref, ".")
	if ok {
		return port
	}
	return stage
}

// fitApplyKind builds the spec of a stage that fits a features transform on one table and
// applies it to several.
func fitApplyKind(kind, doc string, fields []pipeline.Field, example string, newFitter func(c *pipeline.StageConfig) (func() features.Fitter, error)) pipeline.KindSpec {
	base := []pipeline.Field{
		{Name: "fit", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Splits: []string{schema.SplitTrain, schema.SplitAll, schema.SplitUnlabeled}, Doc: "The table the statistics are fitted on: the training split. A val or test table is refused: it would leak held-out rows into training."},
		{Name: "apply", Type: pipeline.TypeInputs, Port: pipeline.PortTable, Doc: "The tables to transform with the fitted statistics; each output is named after its input's port. Default: the fit table."},
	}
	return pipeline.KindSpec{
		Kind: kind, Shape: pipeline.ShapeFit, Doc: doc,
		OutputsDoc: "one table per `apply` input (or the fit table when apply is not set), named after its port (" + kind + " applied to `split.val` gives `" + kind + ".val`; " +
			"the stage's name alone means the first), and the fitted `transform` (artifact), which travels in the lineage of every output so a model bundle carries it into prediction.",
		Fields:  append(base, fields...),
		Outputs: applyPorts, DefaultOutput: "", Example: example,
		Restored: restoredFitted(kind),
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			nf, err := newFitter(c)
			if err != nil {
				return nil, err
			}
			return &fitApplyStage{kind: kind, newFitter: nf}, nil
		},
	}
}

type fitApplyStage struct {
	kind      string
	newFitter func() features.Fitter
}

func (s *fitApplyStage) Run(ctx context.Context, sc *pipeline.StageContext) error {
	fitRef, _ := sc.Config.Input("fit")
	fitT, err := sc.Input(ctx, "fit")
	if err != nil {
		return err
	}
	switch split := fitT.Split(); split {
	case schema.SplitVal, schema.SplitTest, schema.SplitTrainDev:
		return &pipeline.DataError{Stage: sc.Name, Msg: fmt.Sprintf("fit = %q is the %s split: fitting statistics on it leaks held-out data into training", fitRef, split),
			Hint: "fit on the train split (e.g. fit = \"split.train\") and list the other tables in apply"}
	case schema.SplitAll:
		sc.Log.Warn().Str("fit", fitRef.String()).Msg("fitting on an unsplit table: its statistics include rows that may later be held out; split first")
	}
	fitter := s.newFitter()
	r := sc.Scan(ctx, fitT)
	for r.Next() {
		if err := fitter.Observe(r.RecordBatch()); err != nil {
			r.Release()
			return &pipeline.DataError{Stage: sc.Name, Msg: err.Error()}
		}
	}
	r.Release()
	if err := r.Err(); err != nil {
		return err
	}
	tr, err := finishWithCPU(ctx, sc, fitter)
	if err != nil {
		return &pipeline.DataError{Stage: sc.Name, Msg: err.Error()}
	}
	leakageOf(sc).addFitted(FittedAudit{Stage: sc.Name, Kind: s.kind, Table: fitRef.String(), Split: fitT.Split()})
	sc.SetInfo("fitted_on", map[string]any{"table": fitRef.String(), "split": fitT.Split(), "rows": fitT.Rows()})
	sc.SetInfo("fitted", tr.Describe())
	if n, ok := tr.(interface{ Notes() []string }); ok {
		for _, msg := range n.Notes() {
			sc.Note("%s", msg)
		}
	}
	state, err := features.Marshal(tr)
	if err != nil {
		return err
	}
	dir, err := sc.Dir()
	if err != nil {
		return err
	}
	if err := pipeline.WriteFileAtomic(filepath.Join(dir, transformFile), state); err != nil {
		return err
	}
	if err := sc.SetArtifact("transform", TransformArtifact{tr}); err != nil {
		return err
	}
	step := pipeline.LineageStep{Stage: sc.Name, Kind: s.kind, FitOn: fitT.Split(), Transform: fittedTransform{tr}}

	ins, err := sc.Inputs(ctx, "apply")
	if err != nil {
		return err
	}
	if len(ins) == 0 {
		ins = []*pipeline.Table{fitT}
	}
	ports := sc.Config.Outputs()
	g, gctx := errgroup.WithContext(ctx)
	for i, in := range ins {
		port := ports[i].Name
		g.Go(func() error {
			outSchema, err := tr.OutputSchema(in.Schema())
			if err != nil {
				return &pipeline.DataError{Stage: sc.Name, Msg: fmt.Sprintf("%s: %v", in.Name(), err)}
			}
			st := step
			st.Input = in.Schema()
			out, err := sc.NewTable(port, outSchema, in.Split(), append(in.Lineage(), st))
			if err != nil {
				return err
			}
			return pipeline.MapTable(gctx, sc, in, out, func(ctx context.Context, sc *pipeline.StageContext, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
				res, err := tr.Apply(ctx, sc.Mem, rec)
				if err != nil && ctx.Err() != nil {
					return nil, context.Cause(ctx) // stopped by the run, not a data problem
				}
				if err != nil {
					return nil, &pipeline.DataError{Stage: sc.Name, Msg: fmt.Sprintf("%s: %v", in.Name(), err)}
				}
				return res, nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for k, v := range tr.Counters() {
		sc.Metrics.Set(k, float64(v))
		if v > 0 && strings.HasPrefix(k, "unknown") {
			sc.Log.Warn().Int64(k, v).Msg("categories not seen in training were mapped to the unknown bucket")
		}
	}
	return nil
}

func normalizeKind() pipeline.KindSpec {
	return fitApplyKind("normalize",
		"Scales numeric feature columns with statistics fitted on the training table only, in one streaming pass: `standard` (mean 0, std 1; Welford), `minmax` ([0, 1]), `robust` (median and IQR) or `log1p`. A constant column maps to 0. Outputs float32 columns.",
		[]pipeline.Field{
			{Name: "method", Type: pipeline.TypeString, Default: "standard", Enum: []string{"standard", "minmax", "robust", "log1p"}, Doc: "The scaling."},
			{Name: "columns", Type: pipeline.TypeStrings, Doc: "The columns to scale. Default: every numeric feature column except encode's index columns (category ids for embeddings, which are never scaled)."},
		},
		"[stages.normalize]\nkind = \"normalize\"\nfit = \"split.train\"\napply = [\"split.train\", \"split.val\", \"split.test\"]\nmethod = \"standard\"",
		func(c *pipeline.StageConfig) (func() features.Fitter, error) {
			opts := features.NormalizeOptions{Method: c.String("method"), Columns: c.Strings("columns")}
			return func() features.Fitter { return features.NewNormalizeFitter(opts) }, nil
		})
}

func imputeKind() pipeline.KindSpec {
	return fitApplyKind("impute",
		"Fills missing values with statistics fitted on the training table: mean, median or a constant for numbers; the most frequent value or a constant for categories. With `indicator`, adds a `<column>_missing` 0/1 feature per column that had nulls in training.",
		[]pipeline.Field{
			{Name: "numeric", Type: pipeline.TypeString, Default: "median", Enum: []string{"mean", "median", "constant"}, Doc: "How numeric nulls are filled."},
			{Name: "categorical", Type: pipeline.TypeString, Default: "most_frequent", Enum: []string{"most_frequent", "constant"}, Doc: "How categorical nulls are filled."},
			{Name: "fill_numeric", Type: pipeline.TypeFloat, Default: 0.0, Doc: "The constant for numeric = \"constant\"."},
			{Name: "fill_categorical", Type: pipeline.TypeString, Default: "missing", Doc: "The constant for categorical = \"constant\"."},
			{Name: "indicator", Type: pipeline.TypeBool, Default: true, Doc: "Add missing-indicator columns."},
		},
		"[stages.impute]\nkind = \"impute\"\nfit = \"split.train\"\napply = [\"split.train\", \"split.val\", \"split.test\"]",
		func(c *pipeline.StageConfig) (func() features.Fitter, error) {
			opts := features.ImputeOptions{Numeric: c.String("numeric"), Categorical: c.String("categorical"),
				NumericFill: c.Float("fill_numeric"), CategoricalFill: c.String("fill_categorical"), Indicator: c.Bool("indicator")}
			return func() features.Fitter { return features.NewImputeFitter(opts) }, nil
		})
}

func encodeKind() pipeline.KindSpec {
	return fitApplyKind("encode",
		"Encodes categorical (string or bool) feature columns with categories fitted on the training table: `onehot` gives one float32 column per category (`<column>=<value>`); `index` gives an int32 column for an embedding layer, where 0 is the unknown bucket. A category first seen after training maps to unknown and is counted in the metrics, never crashed on.",
		[]pipeline.Field{
			{Name: "categorical", Type: pipeline.TypeString, Default: "onehot", Enum: []string{"onehot", "index"}, Doc: "The encoding."},
			{Name: "max_cardinality", Type: pipeline.TypeInt, Default: int64(50), Min: pipeline.Bound(1), Doc: "A one-hot column with more categories is an error that suggests index encoding."},
			{Name: "columns", Type: pipeline.TypeStrings, Doc: "The columns to encode. Default: every string or bool feature column."},
		},
		"[stages.encode]\nkind = \"encode\"\nfit = \"impute.train\"\napply = [\"impute.train\", \"impute.val\", \"impute.test\"]\ncategorical = \"onehot\"",
		func(c *pipeline.StageConfig) (func() features.Fitter, error) {
			opts := features.EncodeOptions{Categorical: c.String("categorical"), MaxCardinality: c.Int("max_cardinality"), Columns: c.Strings("columns")}
			return func() features.Fitter { return features.NewEncodeFitter(opts) }, nil
		})
}
