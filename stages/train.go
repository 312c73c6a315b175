package stages

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"github.com/pipe-ml/pipe/bundle"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
)

func trainKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "train", Shape: pipeline.ShapeTrain,
		Doc: "Trains a neural network (a trunk of layers and one head per target) on a training table, with a validation table for early stopping. " +
			"Defaults follow established practice: ReLU layers with He init, Adam, early stopping on the validation loss that restores the best weights, " +
			"the loss chosen from the target's type (softmax cross-entropy, binary cross-entropy, or MSE on a standardised target), and a model summary in the log. " +
			"A row whose label is missing for one target still trains the other heads. Outputs the `model` bundle (stages/<name>/bundle/) and writes the per-epoch history to history.csv (and, with lr = \"auto\", the LR range test's sweep to lr_range_test.csv: step, lr, smoothed loss).",
		Fields: append(append([]pipeline.Field{
			{Name: "train", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The training table."},
			{Name: "val", Type: pipeline.TypeInput, Port: pipeline.PortTable, Doc: "The validation table, for early stopping and schedules. Without it, a seeded 10% of train is held out."},
			unlabeledField("with semi, their rows join the train table's unlabeled rows in the pool of semi-supervised training."),
			semiField(),
			{Name: "image", Type: pipeline.TypeBoolOrTable, Fields: imageFields(), Doc: "The feature columns are an image: { shape = [channels, height, width] } says that the stage's numeric feature columns, in their order, are its pixels in channel, row, column order (their number must be C·H·W), which the image layers (conv, max_pool, avg_pool, global_avg_pool, flatten, batch_norm over channels, type = \"residual\" with filters) need. true infers the shape from the columns of the built-in image datasets: digits (pixel_<row>_<col>: [1, 8, 8]) and mnist (px0..px783: [1, 28, 28]), or from a lone tensor column's metadata. { column = \"pixels\" } takes an Arrow-native image instead: one fixed_size_list<float32> column (shape from its arrow.fixed_shape_tensor metadata, or given). The bundle records the shape (and the column), and prediction checks them."},
			hogwildField(),
		}, trainFields()...), transferFields()...),
		Outputs: func(*pipeline.StageConfig) []pipeline.Port {
			return []pipeline.Port{{Name: "model", Kind: pipeline.PortArtifact}}
		},
		DefaultOutput: "model",
		Example: "[stages.model]\nkind = \"train\"\ntrain = \"normalize.train\"\nval = \"normalize.val\"\ntarget = \"target\"\n" +
			"layers = [ { dense = 128, dropout = 0.2 }, { dense = 64 } ]\noptimizer = { name = \"adam\", lr = \"auto\" }\nschedule = { name = \"cosine\" }\nepochs = 200\nearly_stopping = { metric = \"val_loss\", patience = 15 }",
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			s, err := newTrainStage(c)
			if err != nil {
				return nil, err // not a nil *trainStage in a non-nil Stage
			}
			return s, nil
		},
	}
}

// newTrainStage builds a train stage from its config: a stage's own, or a search trial's (a
// search stage's base with the trial's parameters, decoded with StageConfig.Nested).
func newTrainStage(c *pipeline.StageConfig) (*trainStage, error) {
	ts, err := parseTrainSpec(c)
	if err != nil {
		return nil, err
	}
	if len(ts.targets) > 1 && c.IsSet("task") {
		return nil, c.Errorf("task", "with several targets, set each one's task in tasks = { <target> = { task = ... } }")
	}
	tr, err := parseTransfer(c)
	if err != nil {
		return nil, err
	}
	if tr.from != "" || tr.fromPath != "" {
		if !c.IsSet("schedule") {
			ts.cfg.Schedule.Name = "cosine" // the practice's default for fine-tuning
		}
	}
	semi, err := parseSemi(c)
	if err != nil {
		return nil, err
	}
	if err := checkLadderLayers(c, c, semi, ts.layers); err != nil {
		return nil, err
	}
	return &trainStage{spec: ts, transfer: tr, layersSet: c.IsSet("layers"), semi: semi}, nil
}

type trainStage struct {
	spec      *trainSpec
	transfer  *transferSpec
	layersSet bool
	semi      *train.Semi // nil: supervised (see semi.go)
}

// supervised is a train or ensemble stage's data, planned and materialised.
type supervised struct {
	trainT             *pipeline.Table
	plan               *bundle.InputPlan
	trainData, valData *bundle.Tensors // valData nil without a val table
	done               func()          // frees the tensors (their budget, or their mapped files)
}

// loadSupervised reads the train (and val) inputs, decides features, targets and tasks, and
// materialises both tables, keeping only rows with at least one label. c is the config ts was
// parsed from (errors about its keys point there).
func loadSupervised(ctx context.Context, sc *pipeline.StageContext, ts *trainSpec, c settings) (*supervised, error) {
	return loadSupervisedData(ctx, sc, ts, c, true)
}

// loadSupervisedData is loadSupervised; without inputs it reads the tables' targets only
// (see loadTargets), for a stage that trains and predicts nothing.
func loadSupervisedData(ctx context.Context, sc *pipeline.StageContext, ts *trainSpec, c settings, inputs bool) (*supervised, error) {
	trainT, err := sc.Input(ctx, "train")
	if err != nil {
		return nil, err
	}
	if err := checkBundleable(sc, trainT); err != nil {
		return nil, err
	}
	var valT *pipeline.Table
	if _, ok := sc.Config.Input("val"); ok {
		if valT, err = sc.Input(ctx, "val"); err != nil {
			return nil, err
		}
	}
	if err := trainT.Wait(ctx); err != nil {
		return nil, err
	}
	tasks := map[string]string{}
	for k, v := range ts.tasks {
		tasks[k] = v.Task
	}
	if len(ts.targets) <= 1 && ts.task != "auto" {
		for _, t := range ts.targets {
			tasks[t] = ts.task
		}
		if len(ts.targets) == 0 {
			tasks[""] = ts.task
		}
	}
	plan, err := planInputs(ctx, sc, trainT, ts.features, ts.targets, tasks)
	if err != nil {
		return nil, err
	}
	if t, ok := tasks[""]; ok && len(plan.Targets) == 1 && plan.Targets[0].Task != t {
		// task set without naming the target: re-plan the default target with it.
		tasks[plan.Targets[0].Column] = t
		if plan, err = planInputs(ctx, sc, trainT, ts.features, ts.targets, tasks); err != nil {
			return nil, err
		}
	}
	if unk := ts.unknownTasks(plan); len(unk) > 0 {
		return nil, c.Errorf("tasks", "%v name no target (targets: %v)", unk, targetNames(plan))
	}
	d := &supervised{trainT: trainT, plan: plan}
	if err := warnIDColumns(ctx, sc, trainT, plan.Numeric); err != nil {
		return nil, err
	}
	if err := d.load(ctx, sc, valT, inputs); err != nil {
		return nil, err
	}
	if d.valData != nil {
		labelledOnly(&d.valData.Data)
	}
	if n := labelledOnly(&d.trainData.Data); n > 0 {
		sc.Note("%d training rows have no label for any target (unlabeled) and are skipped", n)
		sc.SetInfo("unlabeled_rows_skipped", n)
	}
	if d.trainData.Data.Len() == 0 {
		d.done()
		return nil, &pipeline.DataError{Stage: sc.Name, Msg: "no training row has a label", Hint: "check the target column and mask_labels' per_class"}
	}
	return d, nil
}

func (s *trainStage) Run(ctx context.Context, sc *pipeline.StageContext) error {
	d, err := loadSupervised(ctx, sc, s.spec, sc.Config)
	if err != nil {
		return err
	}
	defer d.done()
	trainT, plan, trainData, valData := d.trainT, d.plan, d.trainData, d.valData
	src, err := s.transfer.source(ctx, sc)
	if err != nil {
		return err
	}
	if s.spec.inputShape, err = imageShape(sc.Config, plan); err != nil {
		return err
	}
	if src != nil && !s.layersSet && len(src.TransferLayers()) > 0 {
		// No layers of its own: the trunk is the source's (encoder or model) layers (an
		// embeddings encoder has none: the default trunk stays).
		s.spec.layers = src.TransferLayers()
		for _, l := range s.spec.layers {
			if isImageLayer(l) && s.spec.inputShape == nil {
				return sc.Config.Errorf("init_from", "the layers taken from it include %s (%s), which needs an image input: add image = { shape = [channels, height, width] } (or image = true for digits and mnist) to this stage", l.Name, l.Type)
			}
		}
	}
	m, err := s.spec.build(sc.Config, plan, sc.Rand(0))
	if err != nil {
		return err
	}
	var hooks []train.Hook
	if src != nil || len(s.transfer.freeze) > 0 {
		if hooks, err = s.transfer.apply(sc, m, src); err != nil {
			return err
		}
	}
	logSummary(sc, m)
	cfg := s.spec.cfg
	cfg.Seed = sc.Seed(1)
	if cfg.Augment, err = augmenterFor(trainT.Lineage(), plan, s.spec.inputShape); err != nil {
		return err
	}
	if cfg.Augment != nil {
		if cfg.Hogwild.Threads > 0 {
			return sc.Config.Errorf("hogwild", "the train table comes through augmentation (%s), which hogwild cannot take (it draws from the trainer's one random stream): train on the augment stage's input instead, or drop hogwild", augmentStages(trainT.Lineage()))
		}
		sc.Note("training batches are augmented (%s)", augmentStages(trainT.Lineage()))
	}
	cfg.Logger = sc.Log
	if cfg.Hogwild.Threads > 0 {
		sc.Note(train.HogwildNote, cfg.Hogwild.Threads)
	}
	n, release, err := takeCPU(ctx, sc, s.spec.workers)
	if err != nil {
		return err
	}
	defer release()
	cfg.Workers = n
	if err := setupSemi(ctx, sc, s.semi, d, &cfg, s.spec.inputShape); err != nil {
		return err
	}
	epochs := cfg.Epochs
	hooks = append(hooks, train.OnEpochEnd("progress", 100, func(e *train.EpochInfo) error {
		sc.Progress(int64(e.Epoch+1), int64(epochs), "epoch")
		return nil
	}))
	var val train.Dataset
	if valData != nil {
		val = valData.Data
	}
	dir, derr := sc.Dir()
	if derr != nil {
		return derr
	}
	mon := newMonitorLog(sc)
	if s.spec.monitor > 0 {
		hooks = append(hooks, train.Monitor("monitor", s.spec.monitor, 20, mon.record)...)
	}
	freeAct := reserveActivations(sc, m, cfg, trainData.Data.Len(), val)
	res, err := fitWithCheckpoints(ctx, sc, m, trainData.Data, val, cfg, hooks, mon)
	freeAct()
	if merr := mon.write(filepath.Join(dir, "monitor.csv")); merr != nil && err == nil {
		err = merr
	}
	if herr := writeHistory(filepath.Join(dir, "history.csv"), res.History); herr != nil && err == nil {
		err = herr
	}
	if rerr := writeRangeTest(filepath.Join(dir, rangeTestFile), res.RangeTest); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || ctx.Err() != nil {
			if res.Interrupted {
				// Keep what was learned: the best weights so far become the bundle, marked
				// partial in its bundle.json and in the manifest.
				if perr := savePartial(sc, m, plan, trainT, dir, res); perr != nil {
					return errors.Join(err, perr)
				}
			}
			return err
		}
		return fmt.Errorf("training: %w", err)
	}
	if res.CarvedValidation {
		sc.Note("no val table: held out a seeded %d rows (10%%) of train for early stopping", len(res.ValRows))
		sc.SetInfo("carved_validation_rows", len(res.ValRows))
	}
	if res.RangeTest != nil {
		sc.SetInfo("lr_range_test", map[string]any{"best_lr": res.RangeTest.BestLR, "suggested_lr": res.RangeTest.Suggested, "steps": len(res.RangeTest.LRs),
			"diverged": res.RangeTest.Diverged, "file": rangeTestFile})
		sc.Note("LR range test: best %.3g, using %.3g", res.RangeTest.BestLR, res.RangeTest.Suggested)
	}
	sc.SetInfo("epochs", res.Epochs)
	sc.SetInfo("best_epoch", res.BestEpoch+1)
	sc.SetInfo("stopped_early", res.StoppedEarly)
	sc.SetInfo("base_lr", res.BaseLR)
	sc.SetInfo("params", countParams(m))
	// The last epoch's metrics (of the restored best epoch when early stopping).
	if i, restored := keptEpoch(cfg, res); i >= 0 {
		if restored {
			sc.SetInfo("restored_epoch", i+1)
		}
		for k, v := range res.History.Epochs[i] {
			sc.Metrics.Set(metricKey(k), v)
		}
	}
	if res.BatchNormRows > 0 {
		// The saved model's validation metrics are those after the recomputation.
		for k, v := range res.BNValMetrics {
			sc.Metrics.Set(metricKey(k), v)
		}
		sc.SetInfo("recompute_bn", map[string]any{"rows": res.BatchNormRows, "metric": res.Metric, "before": res.ValBeforeBN, "after": res.ValAfterBN})
		sc.Note("batch-norm statistics recomputed over %d training rows: %s %.4g before, %.4g after", res.BatchNormRows, res.Metric, res.ValBeforeBN, res.ValAfterBN)
	}
	b, err := newBundle(sc, m, plan, trainT)
	if err != nil {
		return err
	}
	b.Meta.Metrics = sc.Metrics.Snapshot()
	if err := b.Save(filepath.Join(dir, bundleDir)); err != nil {
		return err
	}
	return sc.SetArtifact("model", b)
}

// keptEpoch returns the epoch (0-based) whose weights a finished Fit with cfg left in the
// model, so whose History entry is what the model does: the last epoch's, or the best one's
// when early stopping restored it (restored; not with EMA, whose average is kept). -1 when no
// epoch ran.
func keptEpoch(cfg train.Config, res train.Result) (epoch int, restored bool) {
	i := len(res.History.Epochs) - 1
	if i < 0 {
		return -1, false
	}
	if !cfg.EarlyStopping.Disabled && cfg.EMADecay == 0 {
		return min(res.BestEpoch, i), true
	}
	return i, false
}

// reserveActivations counts the activation buffers m holds while it trains (see
// train.ActivationBytes) against the run's memory budget, recorded in the stage's info as
// activation_bytes, and returns the function that frees them. Training cannot do without
// them: when they do not fit next to what the run holds, the stage says so and trains anyway.
func reserveActivations(sc *pipeline.StageContext, m *nn.Model, cfg train.Config, trainRows int, val train.Dataset) func() {
	n := train.ActivationBytes(m, cfg, trainRows, val.Len())
	sc.SetInfo("activation_bytes", n)
	if !sc.ReserveMemory(n) {
		sc.Note("the model's activation buffers (%d MiB) do not fit the memory budget (%d MiB) next to what the run holds: it trains anyway (lower batch_size, or raise memory_budget)", n>>20, sc.MemoryBudget()>>20)
		return func() {}
	}
	return func() { sc.FreeMemory(n) }
}

// fitWithCheckpoints trains m as train.Fit does, saving the stage's checkpoint (train.ckpt:
// the trainer's state and the monitoring samples) at every epoch's end, and continuing from
// the one an interrupted run of the stage left, if any (see checkpoints).
func fitWithCheckpoints(ctx context.Context, sc *pipeline.StageContext, m *nn.Model, trainSet, val train.Dataset, cfg train.Config, hooks []train.Hook, mon *monitorLog) (train.Result, error) {
	cp := newCheckpoints(sc)
	var resumed *trainStageCheckpoint
	if b := cp.load(ctx, trainCheckpointName); b != nil {
		var t trainStageCheckpoint
		if err := t.decode(b); err != nil {
			cp.setAside(trainCheckpointName, err)
		} else {
			resumed = &t
		}
	}
	hooks = append(hooks, cp.epochHook(ctx, trainCheckpointName, func(ck *train.Checkpoint) func() ([]byte, error) {
		st := mon.state()
		return (&trainStageCheckpoint{Train: ck, Monitor: st}).encode
	}))
	if resumed != nil {
		cfg.Resume = resumed.Train
		mon.restore(resumed.Monitor)
		cp.continuing(resumed.Train.Epoch)
	}
	res, err := train.Fit(ctx, m, trainSet, val, cfg, hooks...)
	if resumed != nil {
		if errors.Is(err, train.ErrCheckpoint) {
			// Fit refused it before changing the model: train from the start.
			cp.setAside(trainCheckpointName, err)
			mon.restore(monitorState{})
			cfg.Resume = nil
			res, err = train.Fit(ctx, m, trainSet, val, cfg, hooks...)
		} else {
			sc.Note("resumed from the checkpoint of epoch %d", resumed.Train.Epoch)
			sc.SetInfo("resumed_from_epoch", resumed.Train.Epoch)
		}
	}
	if err != nil {
		cp.flush(ctx)
	}
	return res, err
}

// savePartial writes the best-so-far weights of an interrupted training as the stage's bundle,
// marked partial.
func savePartial(sc *pipeline.StageContext, m *nn.Model, plan *bundle.InputPlan, trainT *pipeline.Table, dir string, res train.Result) error {
	b, err := newBundle(sc, m, plan, trainT)
	if err != nil {
		return err
	}
	b.Meta.Partial = true
	if err := b.Save(filepath.Join(dir, bundleDir)); err != nil {
		return err
	}
	sc.SetInfo("partial", true)
	sc.SetInfo("epochs", res.Epochs)
	sc.SetInfo("best_epoch", res.BestEpoch+1)
	sc.Note("interrupted after %d epochs: the best weights so far (epoch %d, %s %.4g) are saved as a partial bundle in %s",
		res.Epochs, res.BestEpoch+1, res.Metric, res.BestMetric, filepath.Join(dir, bundleDir))
	return nil
}

func targetNames(p *bundle.InputPlan) []string {
	var out []string
	for _, t := range p.Targets {
		out = append(out, t.Column)
	}
	return out
}

// writeHistory writes the per-epoch metrics table.
func writeHistory(path string, h train.History) error {
	if len(h.Epochs) == 0 {
		return nil
	}
	keys := map[string]bool{}
	for _, e := range h.Epochs {
		for k := range e {
			keys[k] = true
		}
	}
	cols := make([]string, 0, len(keys))
	for k := range keys {
		cols = append(cols, k)
	}
	sort.Strings(cols)
	return pipeline.WriteAtomic(path, func(f *os.File) error {
		w := csv.NewWriter(f)
		if err := w.Write(append([]string{"epoch"}, cols...)); err != nil {
			return err
		}
		for i, e := range h.Epochs {
			row := []string{strconv.Itoa(i + 1)}
			for _, k := range cols {
				v, ok := e[k]
				if !ok || math.IsNaN(v) {
					row = append(row, "")
				} else {
					row = append(row, strconv.FormatFloat(v, 'g', 8, 64))
				}
			}
			if err := w.Write(row); err != nil {
				return err
			}
		}
		w.Flush()
		return w.Error()
	})
}

// rangeTestFile is the LR range test's sweep in the stage directory (lr = "auto").
const rangeTestFile = "lr_range_test.csv"

// writeRangeTest writes the LR range test's sweep (nil: nothing): one row per step with its
// learning rate and smoothed loss (empty when not finite: the sweep diverged).
func writeRangeTest(path string, rt *optim.RangeTestResult) error {
	if rt == nil || len(rt.LRs) == 0 {
		return nil
	}
	return pipeline.WriteAtomic(path, func(f *os.File) error {
		w := csv.NewWriter(f)
		w.Write([]string{"step", "lr", "loss"})
		for i, lr := range rt.LRs {
			loss := ""
			if i < len(rt.Losses) && !math.IsNaN(rt.Losses[i]) && !math.IsInf(rt.Losses[i], 0) {
				loss = strconv.FormatFloat(rt.Losses[i], 'g', 8, 64)
			}
			w.Write([]string{strconv.Itoa(i + 1), strconv.FormatFloat(lr, 'g', 8, 64), loss})
		}
		w.Flush()
		return w.Error()
	})
}

// metricKey turns a History key into the manifest's [<task>/]<split>_<metric> form: "loss" →
// "train_loss", "val_accuracy" stays, "parity/accuracy" → "parity/train_accuracy".
func metricKey(k string) string {
	task, name := "", k
	if i := strings.LastIndex(k, "/"); i >= 0 {
		task, name = k[:i+1], k[i+1:]
	}
	if !strings.HasPrefix(name, "val_") && !strings.HasPrefix(name, "train_") {
		name = "train_" + name
	}
	return task + name
}

func countParams(m *nn.Model) int { return m.Summary().Total }

// logSummary logs the model summary (every layer, its output shape, parameters and share of
// the total) and, once, its warning, which also goes to the manifest's info.summary_warning.
func logSummary(sc *pipeline.StageContext, m *nn.Model) {
	s := m.Summary()
	sc.Log.Info().Int("params", s.Total).Msg("model summary\n" + s.Table())
	for _, w := range s.Warnings {
		sc.Log.Warn().Msg(w)
		sc.SetInfo("summary_warning", w)
	}
	rows := make([]map[string]any, 0, len(s.Rows))
	for _, r := range s.Rows {
		rows = append(rows, map[string]any{"layer": r.Layer, "kind": r.Kind, "output": r.Output, "params": r.Params, "share": r.Share})
	}
	sc.SetInfo("summary", rows)
}

// Summary describes a predictor: its inputs, targets and the model summary table.
func Summary(p bundle.Predictor) string {
	var b strings.Builder
	plan := p.InputPlan()
	fmt.Fprintf(&b, "inputs: %d numeric, %d categorical (embeddings)\n", len(plan.Numeric), len(plan.Categorical))
	for _, t := range plan.Targets {
		switch t.Task {
		case bundle.TaskRegression:
			fmt.Fprintf(&b, "target %s: regression (head %s)\n", t.Column, t.Head)
		default:
			fmt.Fprintf(&b, "target %s: %s, %d classes (head %s)\n", t.Column, t.Task, len(t.Labels), t.Head)
		}
	}
	for _, s := range p.PreSteps() {
		fmt.Fprintf(&b, "preprocessing: %s (fitted by stage %s)\n", s.Kind, s.Stage)
	}
	if bd, ok := p.(*bundle.Bundle); ok {
		b.WriteString(modelSummary(bd.Model))
	}
	return b.String()
}

func modelSummary(m *nn.Model) string { return m.Summary().String() }

func augmentStages(l []pipeline.LineageStep) string {
	var names []string
	for _, st := range l {
		if _, ok := st.Transform.(*AugmentSpec); ok {
			names = append(names, st.Stage)
		}
	}
	return strings.Join(names, ", ")
}

// writeSeries writes per-epoch series (equal lengths, or shorter ones padded) as history.csv.
func writeSeries(path string, series map[string][]float64) error {
	var h train.History
	for k, s := range series {
		for i, v := range s {
			for len(h.Epochs) <= i {
				h.Epochs = append(h.Epochs, map[string]float64{})
			}
			h.Epochs[i][k] = v
		}
	}
	return writeHistory(path, h)
}

// labelledOnly narrows d to the rows that have a label for at least one target (unlabeled
// rows teach a supervised model nothing, and would cost a full pass each epoch). It returns
// how many rows it left out.
func labelledOnly(d *train.Dataset) int {
	n := d.Len()
	labelled := func(i int) bool {
		row := i
		if d.Index != nil {
			row = d.Index[i]
		}
		for _, t := range d.Targets {
			if t.Labels != nil && t.Labels[row] >= 0 {
				return true
			}
			if t.Labels == nil && t.Values != nil && !math.IsNaN(float64(t.Values[row*max(t.Outputs, 1)])) {
				return true
			}
		}
		return false
	}
	kept := 0
	for i := 0; i < n; i++ {
		if labelled(i) {
			kept++
		}
	}
	if kept == n {
		return 0 // no index of every row (8 bytes a row) when all are labelled
	}
	keep := make([]int, 0, kept)
	for i := 0; i < n; i++ {
		if labelled(i) {
			keep = append(keep, i)
		}
	}
	*d = d.Subset(keep)
	return n - kept
}
