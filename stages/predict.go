package stages

import (
	"context"
	"github.com/pipe-ml/pipe/bundle"

	"github.com/pipe-ml/pipe/pipeline"
)

func predictKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "predict", Shape: pipeline.ShapeApply,
		Doc: "Applies a model bundle (or an ensemble) to a table: the preprocessing the table lacks, then the network. The output has `_row` and, per target, " +
			"`<target>_pred` (the class, or the value in the target's units) and `<target>_prob_<class>` for each class.",
		Fields: []pipeline.Field{
			{Name: "model", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortArtifact, Doc: "The bundle: a train stage's model output, or an ensemble or combine output."},
			{Name: "input", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The table to score: raw (as the source read it) or already preprocessed by the same stages."},
		},
		Example: "[stages.scores]\nkind = \"predict\"\nmodel = \"model.model\"\ninput = \"split.test\"",
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			return pipeline.StageFunc(runPredict), nil
		},
	}
}

func runPredict(ctx context.Context, sc *pipeline.StageContext) error {
	a, err := sc.Artifact(ctx, "model")
	if err != nil {
		return err
	}
	p, err := predictorOf(a)
	if err != nil {
		return err
	}
	in, err := sc.Input(ctx, "input")
	if err != nil {
		return err
	}
	data, out, err := scoreTableStream(ctx, sc, p, in, false, "predict")
	if err != nil {
		return err
	}
	defer data.done()
	plan := p.InputPlan()
	s := bundle.PredictionSchema(plan, nil)
	t, err := sc.NewTable("out", s, in.Split(), nil)
	if err != nil {
		return err
	}
	rows := len(data.RowIDs)
	for start := 0; start < rows; start += 16384 {
		end := min(start+16384, rows)
		rec, err := bundle.PredictionBatch(sc.Mem, plan, t.Schema(), data.RowIDs, nil, out, start, end)
		if err != nil {
			return err
		}
		err = t.Append(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return nil
}
