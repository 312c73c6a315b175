package stages

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/pipeline"
)

// This file adapts package bundle (plans, tensorize, bundles, predictors) to the engine: it
// reads pipeline tables through bundle's readers and turns bundle's column errors into data
// errors of the stage.

// dataErr turns a *bundle.ColumnError into a *pipeline.DataError of the stage; other errors
// pass through.
func dataErr(sc *pipeline.StageContext, err error) error {
	var ce *bundle.ColumnError
	if errors.As(err, &ce) {
		return &pipeline.DataError{Stage: sc.Name, File: ce.Table, Row: ce.Row, Column: ce.Column, Msg: ce.Msg, Hint: ce.Hint}
	}
	return err
}

// planInputs decides the features and targets from the training table's schema and content.
// tasks overrides the task of target columns.
func planInputs(ctx context.Context, sc *pipeline.StageContext, t *pipeline.Table, features, targets []string, tasks map[string]string) (*bundle.InputPlan, error) {
	r := t.Scan(ctx)
	defer r.Release()
	plan, err := bundle.Plan(r, bundle.PlanOptions{Table: t.Name(), Features: features, Targets: targets, Tasks: tasks})
	return plan, dataErr(sc, err)
}

// planFeatures plans the inputs only (unsupervised stages): every target column is left out.
func planFeatures(ctx context.Context, sc *pipeline.StageContext, t *pipeline.Table, features []string) (*bundle.InputPlan, error) {
	r := t.Scan(ctx)
	defer r.Release()
	plan, err := bundle.Plan(r, bundle.PlanOptions{Table: t.Name(), Features: features, Unsupervised: true})
	return plan, dataErr(sc, err)
}

// materialize reads a table into dense tensors (with its targets when withTargets). pre, when
// not nil, transforms each batch first (the rest of a bundle's preprocessing chain). Rows
// read count in the stage's rows_in.
func materialize(ctx context.Context, sc *pipeline.StageContext, p *bundle.InputPlan, t *pipeline.Table, withTargets bool, pre func(arrow.RecordBatch) (arrow.RecordBatch, error)) (*bundle.Tensors, error) {
	r := sc.Scan(ctx, t)
	defer r.Release()
	out, err := p.Tensorize(r, bundle.TensorizeOptions{Table: t.Name(), Targets: withTargets, Pre: pre, Rows: int(t.Rows())})
	if err != nil && ctx.Err() != nil {
		return nil, context.Cause(ctx) // stopped by the run, not a data problem
	}
	return out, dataErr(sc, err)
}

// bundleSteps turns a table's lineage into the steps a bundle is built from.
func bundleSteps(lineage []pipeline.LineageStep) []bundle.Step {
	out := make([]bundle.Step, len(lineage))
	for i, st := range lineage {
		out[i] = bundle.Step{Stage: st.Stage, Kind: st.Kind, TrainOnly: st.TrainOnly, Input: st.Input}
		if st.Transform != nil {
			out[i].Transform = st.Transform
		}
	}
	return out
}

// checkBundleable refuses, before any training, a training table whose chain a bundle could
// not replay.
func checkBundleable(sc *pipeline.StageContext, t *pipeline.Table) error {
	if err := bundle.CheckSteps(bundleSteps(t.Lineage())); err != nil {
		return &pipeline.DataError{Stage: sc.Name, File: t.Name(), Msg: err.Error()}
	}
	return nil
}

// newBundle assembles the bundle of a model trained on a table with the given lineage.
func newBundle(sc *pipeline.StageContext, m *nn.Model, plan *bundle.InputPlan, t *pipeline.Table) (*bundle.Bundle, error) {
	b, err := bundle.New(sc.Name, m, plan, bundleSteps(t.Lineage()), t.Schema())
	if err != nil {
		return nil, &pipeline.DataError{Stage: sc.Name, File: t.Name(), Msg: err.Error()}
	}
	return b, nil
}

// predictorOf returns a private copy of the predictor an artifact input holds: a published
// artifact is shared by every stage that reads it, and a model keeps its activation buffers.
func predictorOf(a pipeline.Artifact) (bundle.Predictor, error) {
	p, ok := a.(bundle.Predictor)
	if !ok {
		return nil, fmt.Errorf("the model input is a %s, not a model bundle", a.ArtifactKind())
	}
	return p.Clone()
}

// alreadyApplied counts the leading preprocessing steps of p that a table's lineage already
// has (a table such as normalize.test was produced by the same fitted stages), so that they are
// not applied twice.
func alreadyApplied(p bundle.Predictor, lineage []pipeline.LineageStep) int {
	steps := p.PreSteps()
	n := 0
	for n < len(steps) && n < len(lineage) && steps[n].Stage == lineage[n].Stage && steps[n].Kind == lineage[n].Kind {
		n++
	}
	return n
}

// preprocessor returns the part of p's chain that table t lacks, as a batch function.
func preprocessor(ctx context.Context, sc *pipeline.StageContext, p bundle.Predictor, t *pipeline.Table) func(arrow.RecordBatch) (arrow.RecordBatch, error) {
	from := alreadyApplied(p, t.Lineage())
	return func(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		out, err := p.PreprocessFrom(ctx, sc.Mem, rec, from)
		if err != nil && ctx.Err() != nil {
			return nil, context.Cause(ctx) // stopped by the run, not a data problem
		}
		if err != nil {
			return nil, &pipeline.DataError{Stage: sc.Name, File: t.Name(), Msg: err.Error()}
		}
		return out, nil
	}
}
