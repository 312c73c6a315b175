package stages

import (
	"context"
	"fmt"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/pipe-ml/pipe/bundle"
	"math"
	"path/filepath"
	"strings"

	"github.com/pipe-ml/pipe/internal/arrowutil"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/pretrain"
)

func pseudoLabelKind() pipeline.KindSpec {
	fields := []pipeline.Field{
		{Name: "model", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortArtifact, Doc: "The model to start from (a train stage's output): its architecture, weights and inputs."},
		{Name: "train", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The training table: rows with a target are labelled, rows with a null target are the unlabeled pool."},
		{Name: "val", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The labelled validation table (early stopping in every round)."},
		unlabeledField("their rows join the train table's unlabeled rows in the pool that is pseudo-labelled."),
		{Name: "threshold", Type: pipeline.TypeFloat, Default: 0.95, Min: pipeline.Bound(0.5), Max: pipeline.Bound(1), Doc: "A row is pseudo-labelled when its top class probability reaches this."},
		{Name: "top_share", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(1), Doc: "Instead of threshold: the most confident share of the rows predicted as each class."},
		{Name: "weight", Type: pipeline.TypeFloat, Default: 1.0, Min: pipeline.Bound(0), Doc: "Sample weight of a pseudo-labelled row (labelled rows weigh 1)."},
		{Name: "confidence_weight", Type: pipeline.TypeBool, Default: false, Doc: "Multiply weight by the row's top class probability."},
		{Name: "rounds", Type: pipeline.TypeInt, Default: int64(3), Min: pipeline.Bound(1), Doc: "Rounds of labelling and training; pseudo-labels are recomputed every round."},
		{Name: "restart", Type: pipeline.TypeBool, Default: false, Doc: "Train every round from the `model` input's weights instead of continuing from the previous round's (the pseudo-labels still come from the previous round's model): the student does not inherit the teacher's fit to its own mistakes."},
		{Name: "views", Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), Doc: "Pseudo-labels average the predictions of the clean row and of this many copies augmented as the train table's augment stage says (test-time augmentation; 0: clean rows only, and no effect without augmentation)."},
		{Name: "ensemble_decay", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(0.99), Doc: "Pseudo-labels come from an exponential moving average, with this decay, of the probabilities predicted in every round so far (temporal ensembling over rounds, bias-corrected); 0: the current round's prediction only."},
		{Name: "anneal", Type: pipeline.TypeBool, Default: false, Doc: "The rounds share one cosine learning-rate schedule, from the optimizer's rate at the start of round 1 to 0 at the end of the last round, instead of each round running `schedule` from the start: the last rounds refine with small steps."},
		{Name: "keep_best", Type: pipeline.TypeBool, Default: false, Doc: "Output the weights of the best validation accuracy over the starting model and the rounds (ties: the later) instead of the last round's; the manifest's `best_round` says which."},
	}
	for _, f := range trainFields() {
		switch f.Name {
		case "epochs", "batch_size", "optimizer", "schedule", "early_stopping", "clip", "ema", "workers":
			fields = append(fields, f)
		}
	}
	return pipeline.KindSpec{
		Kind: "pseudo_label", Shape: pipeline.ShapeTrain,
		Doc: "Self-training (Lee 2013): the model labels the unlabeled rows it is confident about, and training continues from its weights (or, with `restart`, starts again from the input model's) on the labelled plus the pseudo-labelled rows (marked by their weight), for several rounds. The train table's augmentation applies to the pseudo-labelled rows too. " +
			"The manifest records per round the rows added, their mean confidence and, when mask_labels kept the true labels in `_hidden_<target>`, the accuracy of those pseudo-labels (an evaluation only: hidden labels are never trained on). Outputs a `model` bundle; pseudo_labels.csv in the stage directory lists the last round's pseudo-labelled rows (table, _row, label, confidence, weight).",
		Fields: fields,
		Outputs: func(*pipeline.StageConfig) []pipeline.Port {
			return []pipeline.Port{{Name: "model", Kind: pipeline.PortArtifact}}
		},
		DefaultOutput: "model",
		Example:       "[stages.pseudo]\nkind = \"pseudo_label\"\nmodel = \"finetuned.model\"\ntrain = \"scale.train\"\nval = \"scale.val\"\nthreshold = 0.95\nrounds = 3",
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			ts, err := parseTrainSpec(c)
			if err != nil {
				return nil, err
			}
			opts := pretrain.PseudoLabelOptions{Threshold: c.Float("threshold"), TopShare: c.Float("top_share"), Weight: c.Float("weight"), ConfidenceWeight: c.Bool("confidence_weight"),
				Restart: c.Bool("restart"), Views: c.Int("views"), EnsembleDecay: c.Float("ensemble_decay"), KeepBest: c.Bool("keep_best"), Anneal: c.Bool("anneal")}
			return &pseudoStage{ts: ts, opts: opts, rounds: c.Int("rounds")}, nil
		},
	}
}

type pseudoStage struct {
	ts     *trainSpec
	opts   pretrain.PseudoLabelOptions
	rounds int
}

func (s *pseudoStage) Run(ctx context.Context, sc *pipeline.StageContext) error {
	a, err := sc.Artifact(ctx, "model")
	if err != nil {
		return err
	}
	src, ok := a.(*bundle.Bundle)
	if !ok {
		return fmt.Errorf("model: a %s is not a single model bundle", a.ArtifactKind())
	}
	// Train a copy: the upstream bundle is shared with other stages.
	m, err := nn.Build(src.Model.Spec(), sc.Rand(0))
	if err != nil {
		return err
	}
	if _, err := m.InitFrom(src.Model); err != nil {
		return err
	}
	trainT, err := sc.Input(ctx, "train")
	if err != nil {
		return err
	}
	valT, err := sc.Input(ctx, "val")
	if err != nil {
		return err
	}
	plan := &src.Meta.Plan
	// The train and val tables' dense copies are reserved in the memory budget, or read
	// through file mappings when they do not fit (loadTensors); the unlabeled tables are read
	// whole and held, and join the train table's rows.
	extra, nExtra, err := readUnlabeled(ctx, sc, plan, func(t *pipeline.Table) (func(arrow.RecordBatch) (arrow.RecordBatch, error), error) {
		return preprocessor(ctx, sc, src, t), nil
	})
	if err != nil {
		return err
	}
	freeExtra := holdUnlabeled(sc, plan, extra)
	defer freeExtra()
	allT, err := loadTensors(ctx, sc, plan, trainT, true, preprocessor(ctx, sc, src, trainT), "train")
	if err != nil {
		return err
	}
	defer func() { allT.done() }()
	all := allT.Tensors
	valD, err := loadTensors(ctx, sc, plan, valT, true, preprocessor(ctx, sc, src, valT), "val")
	if err != nil {
		return err
	}
	defer valD.done()
	val := valD.Tensors
	head := 0
	for i, t := range plan.Targets {
		if t.Labels != nil {
			head = i
			break
		}
	}
	s.opts.Head = plan.Targets[head].Head
	labels := all.Data.Targets[head].Labels
	var lab, unl []int
	for i, l := range labels {
		if l >= 0 {
			lab = append(lab, i)
		} else {
			unl = append(unl, i)
		}
	}
	hidden, err := hiddenLabels(ctx, sc, trainT, plan.Targets[head], unl)
	if err != nil {
		return err
	}
	// Where each pool row comes from, for pseudo_labels.csv.
	source := make([]string, len(unl))
	rowID := make([]int64, len(unl))
	for i, r := range unl {
		source[i], rowID[i] = trainT.Name(), rowIDOf(all, r)
	}
	// Extra unlabeled tables join the pool, preprocessed as the model's inputs were.
	first := all.Data.Len()
	extraRows := make([]int, len(extra))
	for k, e := range extra {
		extraRows[k] = e.Data.Len()
	}
	if err := appendUnlabeled(sc, allT, extra, freeExtra); err != nil {
		return err
	}
	for k, e := range extra {
		for i := first; i < first+extraRows[k]; i++ {
			unl = append(unl, i)
			source = append(source, e.name)
			rowID = append(rowID, rowIDOf(e.Tensors, i-first))
			if hidden != nil {
				hidden = append(hidden, -1) // no true label to evaluate against
			}
		}
		first += extraRows[k]
	}
	if len(unl) == 0 {
		return &pipeline.DataError{Stage: sc.Name, Msg: "the train table has no unlabeled rows (null target) to pseudo-label", Hint: "use mask_labels, feed a table with unlabeled rows, or add tables of them with unlabeled = [...]"}
	}
	tc := s.ts.cfg
	tc.Seed = sc.Seed(1)
	tc.Logger = sc.Log
	if tc.Augment, err = augmenterFor(trainT.Lineage(), plan, nil); err != nil {
		return err
	}
	if s.opts.Views > 0 && tc.Augment == nil {
		return &pipeline.DataError{Stage: sc.Name, Msg: fmt.Sprintf("views = %d, but the train table has no augmentation to draw the views from", s.opts.Views),
			Hint: "feed train from an augment stage, or remove views"}
	}
	n, release, err := takeCPU(ctx, sc, s.ts.workers)
	if err != nil {
		return err
	}
	defer release()
	tc.Workers = n
	cp := newCheckpoints(sc)
	run := selfTrainCheckpoints(ctx, cp, func(round int) { sc.Progress(int64(round), int64(s.rounds), "rounds") })
	rep, err := pretrain.SelfTrainWith(ctx, m, all.Data.Subset(lab), all.Data.Subset(unl), val.Data, tc, s.opts, s.rounds, hidden, run)
	if err != nil {
		cp.flush(ctx)
		return err
	}
	if rep.ResumedRounds > 0 || rep.ResumedEpochs > 0 {
		if rep.ResumedEpochs > 0 {
			sc.Note("resumed an earlier, interrupted run after %d finished rounds, round %d from the checkpoint of its epoch %d", rep.ResumedRounds, rep.ResumedRounds+1, rep.ResumedEpochs)
		} else {
			sc.Note("resumed an earlier, interrupted run after %d finished rounds", rep.ResumedRounds)
		}
		sc.SetInfo("resumed_from_round", rep.ResumedRounds)
		sc.SetInfo("resumed_from_epoch", rep.ResumedEpochs)
	}
	sc.Metrics.Set("initial/val_accuracy", rep.InitialValAccuracy)
	var rounds []map[string]any
	for _, r := range rep.Rounds {
		p := fmt.Sprintf("round_%d/", r.Round)
		sc.Metrics.Set(p+"added_rows", float64(r.Added))
		sc.Metrics.Set(p+"val_accuracy", r.ValAccuracy)
		info := map[string]any{"round": r.Round, "added": r.Added, "val_accuracy": r.ValAccuracy, "epochs": r.Epochs, "seconds": r.Seconds}
		// NaN (no hidden labels, or no row added) has no JSON form: the key is left out.
		if !math.IsNaN(r.PseudoAccuracy) {
			sc.Metrics.Set(p+"pseudo_label_accuracy", r.PseudoAccuracy)
			info["pseudo_accuracy"] = r.PseudoAccuracy
		}
		if r.MeanConfidence > 0 { // NaN without added rows; 0 in a state saved before it was recorded
			sc.Metrics.Set(p+"mean_confidence", r.MeanConfidence)
			info["mean_confidence"] = r.MeanConfidence
		}
		rounds = append(rounds, info)
	}
	sc.SetInfo("rounds", rounds)
	sc.SetInfo("unlabeled_rows", len(unl))
	if nExtra > 0 {
		sc.SetInfo("unlabeled_table_rows", nExtra)
	}
	sc.SetInfo("labelled_rows", len(lab))
	sc.SetInfo("best_round", rep.BestRound)
	if rep.BestRound == 0 {
		sc.Metrics.Set("val_accuracy", rep.InitialValAccuracy)
	} else {
		sc.Metrics.Set("val_accuracy", rep.Rounds[rep.BestRound-1].ValAccuracy)
	}
	if err := writePseudoLabels(sc, rep.Last, source, rowID, plan.Targets[head].Labels); err != nil {
		return err
	}
	b := &bundle.Bundle{Model: m, Pre: src.Pre, Meta: src.Meta}
	b.Meta.Stage = sc.Name
	b.Meta.Metrics = sc.Metrics.Snapshot()
	dir, err := sc.Dir()
	if err != nil {
		return err
	}
	if err := b.Save(filepath.Join(dir, bundleDir)); err != nil {
		return err
	}
	return sc.SetArtifact("model", b)
}

// hiddenLabels reads _hidden_<target> (mask_labels) for the unlabeled rows, as class ids of
// the target (-1 where absent); nil when the table has no such column.
func hiddenLabels(ctx context.Context, sc *pipeline.StageContext, t *pipeline.Table, tp bundle.TargetPlan, unl []int) ([]int32, error) {
	col := HiddenPrefix + tp.Column
	idx := t.Schema().FieldIndices(col)
	if idx == nil {
		return nil, nil
	}
	enc := map[string]int32{}
	for i, l := range tp.Labels {
		enc[l] = int32(i)
	}
	var all []int32
	r := t.Scan(ctx)
	defer r.Release()
	for r.Next() {
		vals, valid := arrowutil.Strings(r.RecordBatch().Column(idx[0]))
		for i, v := range vals {
			l, ok := enc[v]
			if !valid[i] || !ok {
				l = -1
			}
			all = append(all, l)
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	out := make([]int32, len(unl))
	for i, row := range unl {
		out[i] = all[row]
	}
	return out, nil
}

// rowIDOf returns the _row id of row i of t (i+1 when the table had none).
func rowIDOf(t *bundle.Tensors, i int) int64 {
	if i < len(t.RowIDs) {
		return t.RowIDs[i]
	}
	return int64(i) + 1
}

// writePseudoLabels writes the last round's pseudo-labels to pseudo_labels.csv in the stage
// directory: which table and row each came from, the class, its probability and the weight
// it was trained with. The file is written whole or not at all.
func writePseudoLabels(sc *pipeline.StageContext, last pretrain.PseudoLabels, source []string, rowID []int64, classes []string) error {
	dir, err := sc.Dir()
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("table,_row,label,confidence,weight\n")
	for i, p := range last.Picked {
		label := fmt.Sprint(last.Labels[i])
		if int(last.Labels[i]) < len(classes) {
			label = classes[last.Labels[i]]
		}
		fmt.Fprintf(&b, "%s,%d,%s,%g,%g\n", csvField(source[p]), rowID[p], csvField(label), last.Confidence[i], last.Weights[i])
	}
	return pipeline.WriteFileAtomic(filepath.Join(dir, "pseudo_labels.csv"), []byte(b.String()))
}

// csvField quotes s for CSV when it needs it.
func csvField(s string) string {
	if strings.ContainsAny(s, ",\"\n\r") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}
