package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/pipe-ml/pipe/bundle"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pipe-ml/pipe/ensemble"
	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/metrics"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/report"
	"github.com/pipe-ml/pipe/schema"
)

func evaluateKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "evaluate", Shape: pipeline.ShapeSink,
		Doc: "Scores one or more models on one or more tables and owns the test metrics. Writes every metric to the manifest as " +
			"[<model>/][<task>/]<split>_<metric> (the model prefix only with several models, the task prefix only with several heads): accuracy, logloss, f1_macro and auc " +
			"for classes (accuracy and f1_macro only for a `combine` with method = \"vote\": its outputs are 0/1 votes, and a log-loss or AUC of those would mislead); rmse, mae and r2 in the target's units for regression. Prints the bias/variance/mismatch table (train, train_dev, val and test error, each next to " +
			"its chance error: that of always predicting the majority class, or the mean (R² = 0); and the diagnosis they imply: a model that removes less than 10% of the chance error on train, or of the variance for regression, is underfitting), and saves the worst-k rows by loss per task and table, with their `_row` and input features, as Parquet. " +
			"Writes the aggregates the run report draws to evaluation.json (per model, table and head: the confusion matrix, per-class precision/recall/F1, the reliability diagram, ROC and PR curves for two classes, or a sample of predicted against actual and the residuals' histogram; and the bias/variance tables).",
		Fields: []pipeline.Field{
			{Name: "models", Type: pipeline.TypeInputs, Required: true, Port: pipeline.PortArtifact, Doc: "The bundles to score (train, ensemble or combine outputs)."},
			{Name: "tables", Type: pipeline.TypeInputs, Required: true, Port: pipeline.PortTable, Doc: "The tables to score them on; each table's split role names its metrics."},
			{Name: "worst_k", Type: pipeline.TypeInt, Default: int64(20), Min: pipeline.Bound(0), Doc: "Rows with the largest loss saved per task and table (0: none)."},
		},
		Outputs: func(*pipeline.StageConfig) []pipeline.Port { return nil },
		Example: "[stages.eval]\nkind = \"evaluate\"\nmodels = [\"model.model\"]\ntables = [\"normalize.train\", \"normalize.train_dev\", \"normalize.val\", \"normalize.test\"]",
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			return &evaluateStage{k: c.Int("worst_k")}, nil
		},
	}
}

type evaluateStage struct{ k int }

// splitError is one model's error per split, for the bias/variance table.
type splitError map[string]float64

func (s *evaluateStage) Run(ctx context.Context, sc *pipeline.StageContext) error {
	refs := sc.Config.Inputs("models")
	tables, err := sc.Inputs(ctx, "tables")
	if err != nil {
		return err
	}
	dir, err := sc.Dir()
	if err != nil {
		return err
	}
	var bvText strings.Builder
	tableReport := map[string]any{}
	agg := report.Evaluation{FormatVersion: report.EvaluationVersion}
	for ri, ref := range refs {
		a, err := sc.ArtifactOf(ctx, ref)
		if err != nil {
			return err
		}
		p, err := predictorOf(a)
		if err != nil {
			return fmt.Errorf("%s: %w", ref, err)
		}
		prefix := ""
		if len(refs) > 1 {
			prefix = ref.Stage + "/"
		}
		plan := p.InputPlan()
		voted := hardVoteHeads(p)
		for _, tp := range plan.Targets {
			if voted[tp.Head] {
				sc.Note("%s (head %s) combines its members by hard vote: its outputs are 0/1 votes, not probabilities, so logloss and auc are left out of its metrics", ref, tp.Head)
			}
		}
		errs, chance := make([]splitError, len(plan.Targets)), make([]splitError, len(plan.Targets))
		for i := range errs {
			errs[i], chance[i] = splitError{}, splitError{}
		}
		undo := sourceUnits(p)
		for ti, t := range tables {
			td, out, err := scoreTableStream(ctx, sc, p, t, true, "eval_"+t.Name())
			if err != nil {
				return err
			}
			defer td.done()
			data := td.Tensors
			split := t.Split()
			for h, tp := range plan.Targets {
				task := ""
				if len(plan.Targets) > 1 {
					task = tp.Head + "/"
				}
				m := headScores(tp, data, out, h, voted[tp.Head])
				for k, v := range m {
					sc.Metrics.Set(prefix+task+split+"_"+k, v)
				}
				if tp.Task == bundle.TaskRegression {
					errs[h][split] = m["rmse"]
				} else {
					errs[h][split] = 1 - m["accuracy"]
				}
				chance[h][split] = chanceError(tp, data, h)
				entry := aggregates(tp, data, out, h, voted[tp.Head], sc.Rand(uint64(ri), uint64(ti), uint64(h)))
				entry.Model, entry.Table, entry.Split, entry.Metrics = ref.Stage, t.Name(), split, finiteMetrics(m, entry.Metrics)
				if s.k > 0 {
					name := fmt.Sprintf("worst_%s%s_%s.parquet", strings.ReplaceAll(prefix, "/", "_"), split, tp.Head)
					if err := writeWorst(ctx, sc, filepath.Join(dir, name), tp, data, out, h, s.k, plan.Numeric, undo); err != nil {
						return err
					}
					entry.WorstFile = name
				}
				agg.Tables = append(agg.Tables, entry)
			}
		}
		for h, tp := range plan.Targets {
			label := strings.TrimSuffix(prefix, "/")
			if len(plan.Targets) > 1 {
				label = strings.Trim(label+" "+tp.Head, " ")
			}
			unit := "error (1 - accuracy)"
			if tp.Task == bundle.TaskRegression {
				unit = "RMSE"
			}
			text, diag := biasVariance(errs[h], chance[h], unit, tp.Task == bundle.TaskRegression)
			key := label
			if key == "" {
				key = tp.Head
			}
			tableReport[key] = map[string]any{"errors": map[string]float64(errs[h]), "chance": map[string]float64(chance[h]), "diagnosis": diag, "unit": unit}
			agg.BiasVar = append(agg.BiasVar, report.BiasVar{Model: ref.Stage, Head: tp.Head, Unit: unit,
				Errors: finiteMetrics(errs[h], nil), Chance: finiteMetrics(chance[h], nil), Diagnosis: diag})
			if label != "" {
				fmt.Fprintf(&bvText, "%s\n", label)
			}
			bvText.WriteString(text)
		}
	}
	sc.SetInfo("bias_variance", tableReport)
	sc.Log.Info().Msg("bias / variance / mismatch\n" + bvText.String())
	b, err := json.Marshal(agg)
	if err != nil {
		return fmt.Errorf("evaluation aggregates: %w", err)
	}
	return pipeline.WriteFileAtomic(filepath.Join(dir, report.EvaluationFile), b)
}

// hardVoteHeads returns the heads that a predictor combines by hard vote (ensemble.Vote).
// Their outputs are one-hot votes, not probabilities.
func hardVoteHeads(p bundle.Predictor) map[string]bool {
	eb, ok := p.(*bundle.EnsembleBundle)
	if !ok {
		return nil
	}
	out := map[string]bool{}
	for head, c := range eb.Meta.Combiners {
		if c == ensemble.CombinerVote {
			out[head] = true
		}
	}
	return out
}

// headScores computes one head's metrics on a table. For hard votes (0/1 outputs) it leaves
// out the metrics that need probabilities: the log-loss of a wrong vote is that of a
// probability of 0 (clipped to 1e-15, 34.5 nats), and the AUC of 0/1 scores is that of a
// single threshold; both would read as if the ensemble were badly calibrated or ranked.
func headScores(tp bundle.TargetPlan, data *bundle.Tensors, out nn.Outputs, h int, hardVotes bool) map[string]float64 {
	m := map[string]float64{}
	w := out.Width[h]
	rows := len(data.RowIDs)
	if tp.Task == bundle.TaskRegression {
		y := data.Raw[h]
		pred := make([]float32, rows)
		for i := 0; i < rows; i++ {
			pred[i] = float32(float64(out.Heads[h][i*w])*tp.Std + tp.Mean)
		}
		m["rmse"] = metrics.RMSE(y, pred)
		m["mae"] = metrics.MAE(y, pred)
		m["r2"] = metrics.R2(y, pred)
		return m
	}
	labels := data.Data.Targets[h].Labels
	probs := out.Heads[h]
	k := w
	m["accuracy"] = metrics.Accuracy(labels, probs, k)
	m["f1_macro"] = metrics.F1Macro(labels, probs, k)
	if hardVotes {
		return m
	}
	m["logloss"] = metrics.LogLoss(labels, probs, k)
	if auc := metrics.ROCAUC(labels, probs, k); !math.IsNaN(auc) {
		m["auc"] = auc
	}
	return m
}

// chanceError is the error of the best constant guess on a table, the level of a model that
// learned nothing: for classes, 1 − the share of the most frequent label (always predicting
// the majority class); for regression, the RMSE of predicting the table's mean (its standard
// deviation: R² = 0). Rows without a label are left out; NaN when none has one.
func chanceError(tp bundle.TargetPlan, data *bundle.Tensors, h int) float64 {
	if tp.Task == bundle.TaskRegression {
		var sum, n float64
		for _, y := range data.Raw[h] {
			if y == y {
				sum += float64(y)
				n++
			}
		}
		if n == 0 {
			return math.NaN()
		}
		mean, ss := sum/n, 0.0
		for _, y := range data.Raw[h] {
			if y == y {
				ss += (float64(y) - mean) * (float64(y) - mean)
			}
		}
		return math.Sqrt(ss / n)
	}
	counts := map[int32]int{}
	n, most := 0, 0
	for _, l := range data.Data.Targets[h].Labels {
		if l < 0 {
			continue
		}
		n++
		counts[l]++
		most = max(most, counts[l])
	}
	if n == 0 {
		return math.NaN()
	}
	return 1 - float64(most)/float64(n)
}

// chanceSkill is the share of the chance error a model removes: 1 − error/chance for classes,
// R² = 1 − (RMSE/σ)² for regression. Below it, a result is read as chance level.
const chanceSkill = 0.1

// atChance reports whether err is no better than chance (see chanceSkill); never when the
// chance error is 0 or unknown (a table with one class, or no labels).
func atChance(err, chance float64, regression bool) bool {
	if !(chance > 0) || math.IsNaN(err) {
		return false
	}
	r := err / chance
	if regression {
		r *= r
	}
	return 1-r < chanceSkill
}

// biasVariance formats the table of errors per split, next to the chance error of each split,
// and the diagnosis they imply. A train error at chance level (the model removes less than
// 10% of the error of the best constant guess: the majority class, or the mean with R² ≈ 0)
// is underfitting whatever the gaps. Otherwise the gaps are read as Ng's recipe: train error
// is avoidable bias (taking the Bayes error as ~0), train_dev - train is variance, val -
// train_dev is data mismatch, test - val is overfitting to the validation set. A gap counts
// when it exceeds max(0.01, 10% of the val error) (for RMSE: 10% of the val RMSE).
func biasVariance(e, chance splitError, unit string, regression bool) (string, []string) {
	var b strings.Builder
	order := []string{schema.SplitTrain, schema.SplitTrainDev, schema.SplitVal, schema.SplitTest}
	constant := "majority class"
	if regression {
		constant = "mean (R² = 0)"
	}
	w := max(10, len(unit))
	fmt.Fprintf(&b, "  %-10s %-*s %s\n", "split", w, unit, "chance: "+constant)
	for _, s := range order {
		if v, ok := e[s]; ok {
			fmt.Fprintf(&b, "  %-10s %-*.4f %.4f\n", s, w, v, chance[s])
		}
	}
	ref := e[schema.SplitVal]
	if _, ok := e[schema.SplitVal]; !ok {
		ref = e[schema.SplitTest]
	}
	tol := math.Max(0.01, 0.1*ref)
	if regression {
		tol = 0.1 * ref
	}
	var diag []string
	train, hasTrain := e[schema.SplitTrain]
	dev, hasDev := e[schema.SplitTrainDev]
	val, hasVal := e[schema.SplitVal]
	test, hasTest := e[schema.SplitTest]
	heldOut := "" // the split judged against chance when train is not scored
	if hasVal {
		heldOut = schema.SplitVal
	} else if hasTest {
		heldOut = schema.SplitTest
	}
	what := "error"
	if regression {
		what = "RMSE"
	}
	switch {
	case hasTrain && atChance(train, chance[schema.SplitTrain], regression):
		diag = append(diag, fmt.Sprintf("underfit (chance level): train %s %.4f is no better than %.4f, that of always predicting the %s; "+
			"the model learned nothing: check that the features carry the target, then try a higher learning rate, more epochs or a larger model", what, train, chance[schema.SplitTrain], constant))
	case !hasTrain && heldOut != "" && atChance(e[heldOut], chance[heldOut], regression):
		diag = append(diag, fmt.Sprintf("chance level: %s %s %.4f is no better than %.4f, that of always predicting the %s; "+
			"score the train table too to tell underfitting from overfitting", heldOut, what, e[heldOut], chance[heldOut], constant))
	case hasTrain && !regression && train > tol && train > 0.05:
		diag = append(diag, fmt.Sprintf("high bias (underfit): train error %.4f; try a larger model, longer training or less regularisation", train))
	}
	if hasTrain && hasDev && dev-train > tol {
		diag = append(diag, fmt.Sprintf("high variance (overfit): train_dev − train = %.4f; try more data, regularisation or early stopping", dev-train))
	} else if hasTrain && !hasDev && hasVal && val-train > tol {
		diag = append(diag, fmt.Sprintf("variance or mismatch: val − train = %.4f (add train_dev to the split to tell them apart)", val-train))
	}
	if hasDev && hasVal && val-dev > tol {
		diag = append(diag, fmt.Sprintf("data mismatch: val − train_dev = %.4f; the val distribution differs from train", val-dev))
	}
	if hasVal && hasTest && test-val > tol {
		diag = append(diag, fmt.Sprintf("overfit to val: test − val = %.4f; the choices tuned on val do not transfer", test-val))
	}
	if len(diag) == 0 {
		diag = append(diag, "no gap above the tolerance: bias, variance and mismatch are all small")
	}
	for _, d := range diag {
		fmt.Fprintf(&b, "  → %s\n", d)
	}
	return b.String(), diag
}

// worstFixed are the worst-k file's first columns; the numeric inputs follow them.
var worstFixed = []string{"_row", "loss", "target", "predicted", "p_target"}

// writeWorst saves the k rows with the largest loss for one head: their _row, loss, target,
// predicted value or class and the probability of the target class, then every numeric input
// in its source units (see sourceUnits; an input named like one of the first columns gets the
// suffix " (input)"), so that the report can show the rows, and draw them when they are images.
func writeWorst(ctx context.Context, sc *pipeline.StageContext, path string, tp bundle.TargetPlan, data *bundle.Tensors, out nn.Outputs, h, k int, inputs []string, undo map[string]func(float64) float64) error {
	rows := len(data.RowIDs)
	w := out.Width[h]
	loss := make([]float64, rows)
	for i := 0; i < rows; i++ {
		if tp.Task == bundle.TaskRegression {
			y := float64(data.Raw[h][i])
			p := float64(out.Heads[h][i*w])*tp.Std + tp.Mean
			loss[i] = (y - p) * (y - p)
		} else {
			l := data.Data.Targets[h].Labels[i]
			if l < 0 {
				loss[i] = math.Inf(-1)
				continue
			}
			loss[i] = -math.Log(math.Max(float64(out.Heads[h][i*w+int(l)]), 1e-15))
		}
	}
	idx := make([]int, rows)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return loss[idx[a]] > loss[idx[b]] })
	if k > rows {
		k = rows
	}
	idx = idx[:k]
	// target and p_target are null for a row without a label, p_target for regression: the
	// fields say so (a non-nullable Parquet column would store them as "" and 0).
	fields := []arrow.Field{{Name: "_row", Type: arrow.PrimitiveTypes.Int64}, {Name: "loss", Type: arrow.PrimitiveTypes.Float64},
		{Name: "target", Type: arrow.BinaryTypes.String, Nullable: true}, {Name: "predicted", Type: arrow.BinaryTypes.String},
		{Name: "p_target", Type: arrow.PrimitiveTypes.Float64, Nullable: true}}
	feats := worstFeatures(data, idx, inputs, undo)
	for j := range feats {
		name := inputs[j]
		if slices.Contains(worstFixed, name) {
			name += " (input)"
		}
		fields = append(fields, arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float64})
	}
	s := arrow.NewSchema(fields, nil)
	bld := array.NewRecordBuilder(sc.Mem, s)
	defer bld.Release()
	for r, i := range idx {
		bld.Field(0).(*array.Int64Builder).Append(data.RowIDs[i])
		bld.Field(1).(*array.Float64Builder).Append(loss[i])
		for j, col := range feats {
			bld.Field(len(worstFixed) + j).(*array.Float64Builder).Append(col[r])
		}
		if tp.Task == bundle.TaskRegression {
			bld.Field(2).(*array.StringBuilder).Append(fmt.Sprint(data.Raw[h][i]))
			bld.Field(3).(*array.StringBuilder).Append(fmt.Sprint(float64(out.Heads[h][i*w])*tp.Std + tp.Mean))
			bld.Field(4).(*array.Float64Builder).AppendNull()
			continue
		}
		l := data.Data.Targets[h].Labels[i]
		if l < 0 {
			bld.Field(2).(*array.StringBuilder).AppendNull()
			bld.Field(4).(*array.Float64Builder).AppendNull()
		} else {
			bld.Field(2).(*array.StringBuilder).Append(tp.Labels[l])
			bld.Field(4).(*array.Float64Builder).Append(float64(out.Heads[h][i*w+int(l)]))
		}
		bld.Field(3).(*array.StringBuilder).Append(tp.Labels[bundle.Argmax(out.Heads[h][i*w:i*w+len(tp.Labels)])])
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()
	wr, err := tableio.NewWriter(path, s, sc.Mem)
	if err != nil {
		return err
	}
	if err := wr.Write(rec); err != nil {
		wr.Abort()
		return err
	}
	return wr.Close()
}
