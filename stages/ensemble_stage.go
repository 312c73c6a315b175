package stages

import (
	"context"
	"errors"
	"fmt"
	"github.com/pipe-ml/pipe/bundle"
	"math"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/ensemble"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
)

func ensembleKind() pipeline.KindSpec {
	shared := []pipeline.Field{}
	for _, f := range trainFields() {
		if memberExcluded[f.Name] && f.Name != "workers" {
			shared = append(shared, f)
		}
	}
	return pipeline.KindSpec{
		Kind: "ensemble", Shape: pipeline.ShapeTrain,
		Doc: "Trains a bagged ensemble: N members, each a `train` spec, on bootstrap samples (index arrays over one shared in-memory table, never copies), concurrently within the run's CPU budget and a memory budget; CPU tokens members do not use (fewer members than tokens, or members that have finished once none waits to start) become GEMM threads of the members training. " +
			"Each member's seed comes from (run seed, stage, member index), so the result is bit-identical whatever the number of workers. Members can be homogeneous (`member`), heterogeneous (`specs`, used in turn), " +
			"and perturbed per member (`vary`). Reports every member's validation metric, every combiner's (mean, vote or median, weighted fitted on val), the gain over the best member, the diversity (mean pairwise disagreement) and the out-of-bag score. " +
			"Outputs the `ensemble` bundle (combined by mean); a `combine` stage picks another combiner.",
		Fields: append([]pipeline.Field{
			{Name: "train", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The training table (an `augment` stage's output augments every member's training batches)."},
			{Name: "val", Type: pipeline.TypeInput, Port: pipeline.PortTable, Doc: "The validation table: members' early stopping, combiner scores and weights."},
			{Name: "members", Type: pipeline.TypeInt, Default: int64(8), Min: pipeline.Bound(1), Doc: "The number of members."},
			memberTable("member", "The members' train settings: { layers = [...], epochs = 30, optimizer = {...} }."),
			{Name: "specs", Type: pipeline.TypeList, Elem: ptr(memberTable("", "One member's train settings.")), Doc: "Heterogeneous members: a list of member tables, used in turn (member i gets specs[i % len])."},
			{Name: "vary", Type: pipeline.TypeTable, Fields: varyFields(), Doc: "Per-member perturbations, drawn from the member's own seed: { dropout = [0.0, 0.3] (uniform), lr = [3e-4, 3e-3] (log-uniform), l2 = [1e-5, 1e-3] (log-uniform), batch_size = [32, 64, 128], optimizer = [\"adam\", \"sgd\"], activation = [\"relu\", \"gelu\"] }."},
			{Name: "bootstrap", Type: pipeline.TypeBool, Default: true, Doc: "Sample each member's rows with replacement (n draws); the rows never drawn are its out-of-bag rows."},
			{Name: "subsample", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(1), Doc: "Instead of bootstrap: a share of distinct rows per member (set bootstrap = false)."},
			{Name: "feature_fraction", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(1), Doc: "A random share of the input columns per member (0: all)."},
			{Name: "workers", Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), KeyExempt: true, Doc: "Members trained at the same time, taken from the run's CPU budget. 0: as many as the budget has free. Results do not depend on it."},
			{Name: "memory_budget", Type: pipeline.TypeSize, Default: int64(0), Doc: "A member does not start while the estimated memory of the running members would exceed this (e.g. \"4GiB\"). 0: no bound."},
			{Name: "on_member_error", Type: pipeline.TypeString, Default: "fail", Enum: []string{"fail", "drop"}, Doc: "fail: a member's error fails the stage. drop: the member is left out, logged and recorded; the run ends degraded."},
			{Name: "min_members", Type: pipeline.TypeInt, Default: int64(1), Min: pipeline.Bound(1), Doc: "With drop: the stage fails when fewer members remain."},
			unlabeledField("with semi, their rows join the train table's unlabeled rows in the pool that every member's semi-supervised training draws from."),
			withDoc(semiField(), "Semi-supervised members: every member trains as a train stage with this semi table would, on its own sample of the labelled rows (bootstrap, subsample) "+
				"plus unlabeled_batch rows a step from one pool that all members share (the train table's rows, the masked ones included, and the unlabeled tables), drawn from the member's own seed. "+
				"The members' layers must suit the method (the ladder's noise and, for the full ladder, one weight per level). See the train stage's semi for the methods and keys. Default: off."),
		}, shared...),
		Outputs: func(*pipeline.StageConfig) []pipeline.Port {
			return []pipeline.Port{{Name: "ensemble", Kind: pipeline.PortArtifact}}
		},
		DefaultOutput: "ensemble",
		OutputsDoc: "`ensemble` (artifact): the members, combined by mean. The stage directory also holds each member's per-epoch history, " +
			"members/member_NN/history.csv, and the manifest's info.members gives each member's epochs_run, best_epoch and stopped_early, to see where early stopping cut members short.",
		Example: "[stages.members]\nkind = \"ensemble\"\ntrain = \"scale.train\"\nval = \"scale.val\"\nmembers = 8\n" +
			"member = { layers = [ { dense = 256 }, { dense = 128 } ], epochs = 30 }\nvary = { dropout = [0.0, 0.3], lr = [3e-4, 3e-3] }",
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			s, err := newEnsembleStage(c)
			if err != nil {
				return nil, err // not a nil *ensembleStage in a non-nil Stage
			}
			return s, nil
		},
	}
}

type ensembleStage struct {
	cfg   ensemble.Config
	bases []*trainSpec
	// baseCfgs are the member tables of bases, in order: their image keys resolve against
	// the plan when the stage runs.
	baseCfgs []settings
	shared   *trainSpec // target, features, tasks
	workers  int
	semi     *train.Semi // nil: supervised members (see semi.go)
}

// newEnsembleStage builds an ensemble stage from its config: a stage's own, or a search
// trial's (see newTrainStage).
func newEnsembleStage(c *pipeline.StageConfig) (*ensembleStage, error) {
	s := &ensembleStage{workers: c.Int("workers")}
	if c.Table("member") != nil && c.List("specs") != nil {
		return nil, c.Errorf("specs", "set member or specs, not both")
	}
	tables := []map[string]any{c.Table("member")}
	prefixes := []string{"member"}
	if l := c.List("specs"); l != nil {
		if len(l) == 0 {
			return nil, c.Errorf("specs", "is empty: give at least one member table, or use member")
		}
		tables, prefixes = nil, nil
		for i, x := range l {
			m, _ := x.(map[string]any) // a table: the spec checked it
			tables = append(tables, m)
			prefixes = append(prefixes, fmt.Sprintf("specs[%d]", i))
		}
	}
	for i, m := range tables {
		if m == nil {
			m = map[string]any{}
		}
		ms := newMemberSettings(c, prefixes[i], m)
		ts, err := parseTrainSpec(ms)
		if err != nil {
			return nil, err
		}
		s.bases = append(s.bases, ts)
		s.baseCfgs = append(s.baseCfgs, ms)
	}
	shared, err := parseTrainSpec(c)
	if err != nil {
		return nil, err
	}
	s.shared = shared
	if s.semi, err = parseSemi(c); err != nil {
		return nil, err
	}
	for i, b := range s.bases {
		if err := checkLadderLayers(s.baseCfgs[i], c, s.semi, b.layers); err != nil {
			return nil, err
		}
	}
	s.cfg = ensemble.Config{Members: c.Int("members"), Bootstrap: c.Bool("bootstrap"), Subsample: c.Float("subsample"),
		FeatureFraction: c.Float("feature_fraction"), MemoryBudget: c.Int64("memory_budget"), OnMemberError: c.String("on_member_error"),
		MinMembers: c.Int("min_members"), MemberWorkers: 1}
	if s.cfg.Subsample > 0 {
		s.cfg.Bootstrap = false
	}
	if v := c.Table("vary"); v != nil {
		vary, key, err := parseVary(v)
		if err != nil {
			return nil, c.Errorf("vary."+key, "%v", err)
		}
		s.cfg.Vary = vary
	}
	return s, nil
}

func ptr[T any](v T) *T { return &v }

// varyFields are the keys of vary: ranges [min, max] and lists to draw from.
func varyFields() []pipeline.Field {
	rng := func(name string, min float64, minExcl bool, max *float64, doc string) pipeline.Field {
		return pipeline.Field{Name: name, Type: pipeline.TypeList, Len: 2, Doc: doc,
			Elem: &pipeline.Field{Type: pipeline.TypeFloat, Min: pipeline.Bound(min), MinExclusive: minExcl, Max: max, MaxExclusive: max != nil}}
	}
	return []pipeline.Field{
		rng("dropout", 0, false, pipeline.Bound(1), "[min, max], drawn uniformly: the dropout of every dense and residual layer and the rate of every dropout layer."),
		rng("lr", 0, true, nil, "[min, max], drawn log-uniformly: the learning rate."),
		rng("l2", 0, true, nil, "[min, max], drawn log-uniformly: the L2 penalty."),
		{Name: "batch_size", Type: pipeline.TypeList, Elem: &pipeline.Field{Type: pipeline.TypeInt, Min: pipeline.Bound(1)}, Doc: "Batch sizes, one drawn uniformly."},
		{Name: "optimizer", Type: pipeline.TypeStrings, Enum: optimizers, Doc: "Optimizer names, one drawn uniformly."},
		{Name: "activation", Type: pipeline.TypeStrings, Enum: activations, Doc: "Activations, one drawn uniformly: of every residual layer and every dense layer with a non-linear activation."},
	}
}

// parseVary reads a vary table that varyFields checked; it returns the key of a problem.
func parseVary(v map[string]any) (ensemble.Vary, string, error) {
	var out ensemble.Vary
	rng := func(key string) (ensemble.Range, error) {
		l, _ := v[key].([]any)
		if l == nil {
			return ensemble.Range{}, nil
		}
		lo, _ := l[0].(float64)
		hi, _ := l[1].(float64)
		if lo > hi {
			return ensemble.Range{}, fmt.Errorf("[%v, %v]: min is above max", lo, hi)
		}
		return ensemble.Range{Min: lo, Max: hi}, nil
	}
	var err error
	if out.Dropout, err = rng("dropout"); err != nil {
		return out, "dropout", err
	}
	if out.LR, err = rng("lr"); err != nil {
		return out, "lr", err
	}
	if out.L2, err = rng("l2"); err != nil {
		return out, "l2", err
	}
	if l, ok := v["batch_size"].([]any); ok {
		if len(l) == 0 {
			return out, "batch_size", fmt.Errorf("is empty: list the batch sizes to draw from")
		}
		for _, e := range l {
			n, _ := e.(int64)
			out.BatchSize = append(out.BatchSize, int(n))
		}
	}
	out.Optimizer, _ = v["optimizer"].([]string)
	out.Activation, _ = v["activation"].([]string)
	for _, k := range []string{"optimizer", "activation"} {
		if l, ok := v[k].([]string); ok && len(l) == 0 {
			return out, k, fmt.Errorf("is empty: list the names to draw from")
		}
	}
	return out, "", nil
}

func (s *ensembleStage) Run(ctx context.Context, sc *pipeline.StageContext) error {
	return s.run(ctx, sc, nil)
}

// Parts makes the ensemble a pipeline.PartedStage: a part is a member, which an engine that
// spreads the run trains on its own (RunPart); Run then takes every member from its record.
func (s *ensembleStage) Parts() int {
	switch {
	case s.cfg.Members > 0:
		return s.cfg.Members
	case len(s.bases) > 1:
		return len(s.bases)
	}
	return 10 // ensemble.Config's default
}

// RunPart trains member i alone and saves its record (memberDoneName) as the stage's
// checkpoint. With on_member_error = "drop", a member that fails is not an error here: Run
// trains it again, and drops it as a run of the whole stage would.
func (s *ensembleStage) RunPart(ctx context.Context, sc *pipeline.StageContext, i int) error {
	err := s.run(ctx, sc, []int{i})
	if err != nil && ctx.Err() == nil && strings.EqualFold(s.cfg.OnMemberError, ensemble.OnErrorDrop) {
		sc.Log.Warn().Err(err).Int("member", i).Msg("member failed: on_member_error = drop, the stage drops it")
		return nil
	}
	return err
}

// run trains the ensemble, or only the given members (then it records them and ends). When
// every member has its record with its predictions (an engine trained them apart), the
// ensemble is built from the records without reading the tables' inputs, only their targets
// (for the combiners' weights and scores and the out-of-bag scores): the same ensemble, the
// same report.
func (s *ensembleStage) run(ctx context.Context, sc *pipeline.StageContext, only []int) error {
	cp := newCheckpoints(sc)
	if only == nil {
		if recs := recordedMembers(ctx, cp, s.Parts()); recs != nil {
			err := s.train(ctx, sc, cp, nil, recs)
			if !errors.Is(err, ensemble.ErrInputsNeeded) {
				return err
			}
			sc.Log.Warn().Err(err).Msg("a member's record does not fit the stage's rows: the tables' inputs are read after all")
		}
	}
	return s.train(ctx, sc, cp, only, nil)
}

// recordedMembers returns the records of the n members (memberDoneName), by member, when
// every one is stored, can be read and holds the member's predictions; otherwise nil.
func recordedMembers(ctx context.Context, cp *checkpoints, n int) []*ensemble.FinishedMember {
	recs := make([]*ensemble.FinishedMember, n)
	for i := range n {
		b := cp.load(ctx, memberDoneName(i))
		if b == nil {
			return nil
		}
		f := new(ensemble.FinishedMember)
		if err := f.UnmarshalBinary(b); err != nil || !f.HasOutputs {
			return nil
		}
		recs[i] = f
	}
	return recs
}

// train trains the ensemble, or only the given members. With recs (every member's record,
// see recordedMembers) it reads the tables' targets only and takes every member from recs
// (letting go of each record once taken): a member whose record does not fit is an error
// wrapping ensemble.ErrInputsNeeded.
func (s *ensembleStage) train(ctx context.Context, sc *pipeline.StageContext, cp *checkpoints, only []int, recs []*ensemble.FinishedMember) error {
	d, err := loadSupervisedData(ctx, sc, s.shared, sc.Config, recs == nil)
	if err != nil {
		return err
	}
	defer d.done()
	trainT, plan, trainData, valData := d.trainT, d.plan, d.trainData, d.valData
	cfg := s.cfg
	if err := s.members(&cfg, plan, trainT.Lineage(), sc.Log); err != nil {
		return err
	}
	if s.semi != nil && recs == nil { // without records, the inputs were loaded
		var tc train.Config
		if err := setupSemi(ctx, sc, s.semi, d, &tc, s.bases[0].inputShape); err != nil {
			return err
		}
		cfg.Base.Train.Semi = tc.Semi // a read-only pool that every member shares
		for i := range cfg.Specs {
			sem := tc.Semi
			if sem.Augment != nil && i > 0 { // the unlabelled rows' augmentation for this spec's image shape
				aug, _, err := unlabeledAugmenter(trainT.Lineage(), plan, s.bases[i].inputShape)
				if err != nil {
					return err
				}
				c := *sem
				c.Augment = aug
				sem = &c
			}
			cfg.Specs[i].Train.Semi = sem
		}
	}
	if aug := augmentStages(trainT.Lineage()); aug != "" && only == nil {
		sc.Note("training batches of every member are augmented (%s)", aug)
	}
	n, release, err := takeCPU(ctx, sc, s.workers)
	if err != nil {
		return err
	}
	defer release()
	cfg.Workers = n
	members := cfg.Members
	if members == 0 {
		members = s.Parts()
	}
	var done atomic.Int64
	opts := ensemble.Options{Logger: sc.Log, Members: only, Memory: sc, OnMemberDone: func(r ensemble.MemberReport) {
		sc.Progress(done.Add(1), int64(members), "members")
	}}
	if only != nil {
		opts.OnMemberDone = func(r ensemble.MemberReport) {
			switch {
			case r.Restored: // an earlier attempt finished it: nothing was left to train
				sc.SetInfo("resumed_from_epoch", r.Epochs)
				sc.SetInfo("restored", true)
			case r.ResumedFrom > 0:
				sc.SetInfo("resumed_from_epoch", r.ResumedFrom)
			}
			sc.SetInfo("epochs", r.Epochs)
		}
	}
	memberCheckpoints(ctx, cp, &opts)
	if recs != nil {
		opts.RecordsOnly = true
		opts.Restore = func(i int) (*ensemble.FinishedMember, *train.Checkpoint, error) {
			if i >= len(recs) {
				return nil, nil, nil // no record: Train says it needs the inputs
			}
			f := recs[i] // only member i's goroutine reads or writes recs[i]
			recs[i] = nil
			return f, nil, nil
		}
	}
	var val = trainData.Data
	val.Index = []int{}
	if valData != nil {
		val = valData.Data
	}
	if only == nil {
		free := holdMemberOutputs(sc, cfg, members, trainData.Data.Len(), val.Len())
		defer free()
	}
	ens, rep, err := ensemble.Train(ctx, cfg, trainData.Data, val, sc.Seed(0), opts)
	if err != nil {
		cp.flush(ctx)
		return err
	}
	if only != nil {
		return nil
	}
	s.report(sc, rep, plan)
	dir, err := sc.Dir()
	if err != nil {
		return err
	}
	if err := writeMemberHistories(dir, rep); err != nil {
		return err
	}
	eb, err := bundle.NewEnsemble(sc.Name, ens, plan, bundleSteps(trainT.Lineage()), trainT.Schema())
	if err != nil {
		return &pipeline.DataError{Stage: sc.Name, File: trainT.Name(), Msg: err.Error()}
	}
	eb = eb.WithCombiner(ensemble.CombinerMean)
	if err := eb.Save(filepath.Join(dir, bundleDir)); err != nil {
		return err
	}
	return sc.SetArtifact("ensemble", eb)
}

// memberOutputBytes estimates what an ensemble keeps of its members until it is built, past
// each member's own reservation (which ends when the member does): every member's validation
// and out-of-bag predictions (float32 per output), and the out-of-bag aggregate over the
// training rows (float64 sums per output, and two ints a row).
func memberOutputBytes(cfg ensemble.Config, members, rows, valRows int) int64 {
	recipes := cfg.Specs
	if len(recipes) == 0 {
		recipes = []ensemble.Member{cfg.Base}
	}
	oob := 0
	switch {
	case cfg.Bootstrap:
		oob = int(math.Ceil(float64(rows) * math.Pow(1-1/float64(rows), float64(rows))))
	case cfg.Subsample > 0:
		oob = rows - min(max(int(math.Round(cfg.Subsample*float64(rows))), 1), rows)
	}
	var total int64
	maxWidth := 0
	for i := range members {
		width := 0
		for _, h := range recipes[i%len(recipes)].Spec.Heads {
			switch h.Kind {
			case nn.HeadBinary:
				width += 2
			case nn.HeadRegression:
				width += max(h.Outputs, 1)
			default:
				width += h.Classes
			}
		}
		maxWidth = max(maxWidth, width)
		total += 4 * int64(width) * int64(valRows+oob)
	}
	if oob > 0 {
		total += int64(rows) * (8*int64(maxWidth) + 16)
	}
	return total
}

// holdMemberOutputs counts memberOutputBytes in the run's memory budget for the stage's
// duration, whatever the budget says (the ensemble cannot be built without them): the budget's
// peak includes them, other stages see them, and when they do not fit the stage says so. The
// manifest's info records them (member_output_bytes).
func holdMemberOutputs(sc *pipeline.StageContext, cfg ensemble.Config, members, rows, valRows int) func() {
	n := memberOutputBytes(cfg, members, rows, valRows)
	if n <= 0 {
		return func() {}
	}
	sc.SetInfo("member_output_bytes", n)
	if !sc.HoldMemory(n) {
		sc.Note("the members' validation and out-of-bag predictions (%d MiB, kept until the ensemble is built) do not fit the memory budget (%d MiB) next to what the run holds: they are held anyway, counted in the budget", n>>20, sc.MemoryBudget()>>20)
	}
	return func() { sc.FreeMemory(n) }
}

// members sets cfg's members (Base, or Specs) from the stage's member tables for a plan: the
// part of a run that a search trial with an ensemble base repeats. A member table's image key
// resolves against the plan (as a train stage's), and the augmentation of the training
// table's lineage is built for each member table's image; members built from one table share
// that function (it keeps no state of its own), each Fit draws from its own seeded stream.
func (s *ensembleStage) members(cfg *ensemble.Config, plan *bundle.InputPlan, lineage []pipeline.LineageStep, log zerolog.Logger) error {
	for i, b := range s.bases {
		b.tasks = s.shared.tasks
		shape, err := imageShape(s.baseCfgs[i], plan)
		if err != nil {
			return err
		}
		b.inputShape = shape
		augment, err := augmenterFor(lineage, plan, shape)
		if err != nil {
			return err
		}
		spec, err := b.modelSpec(plan)
		if err != nil {
			return err
		}
		tc := b.cfg
		tc.Logger = log
		tc.Augment = augment
		m := ensemble.Member{Name: "", Spec: spec, Train: tc}
		if len(s.bases) == 1 {
			cfg.Base = m
		} else {
			m.Name = fmt.Sprintf("spec_%d", i)
			cfg.Specs = append(cfg.Specs, m)
		}
	}
	return nil
}

// memberCheckpointName and memberDoneName are the checkpoints of member i: the trainer's
// checkpoint of its last epoch, and the record of the finished member.
func memberCheckpointName(i int) string { return fmt.Sprintf("member_%02d.ckpt", i) }
func memberDoneName(i int) string       { return fmt.Sprintf("member_%02d.done", i) }

// memberCheckpoints makes opts save every member's epoch checkpoints and its record once it
// finished, by member index, and give them back to a later run of the stage: finished members
// are not trained again and interrupted ones continue from their last checkpoint (see
// checkpoints).
func memberCheckpoints(ctx context.Context, cp *checkpoints, opts *ensemble.Options) {
	opts.Checkpoint = func(i int, c *train.Checkpoint) error {
		cp.save(ctx, memberCheckpointName(i), c.MarshalBinary)
		return nil
	}
	opts.Finished = func(i int, f *ensemble.FinishedMember) error {
		cp.forget(memberCheckpointName(i))
		cp.saveNow(ctx, memberDoneName(i), f.MarshalBinary)
		return nil
	}
	opts.Restore = func(i int) (*ensemble.FinishedMember, *train.Checkpoint, error) {
		if b := cp.load(ctx, memberDoneName(i)); b != nil {
			var f ensemble.FinishedMember
			err := f.UnmarshalBinary(b)
			if err == nil {
				return &f, nil, nil
			}
			cp.setAside(memberDoneName(i), err)
		}
		name := memberCheckpointName(i)
		return nil, cp.decodeCheckpoint(name, cp.load(ctx, name)), nil
	}
}

// memberHistoryFile is where a member's per-epoch history goes in the stage directory.
func memberHistoryFile(index int) string {
	return filepath.Join("members", fmt.Sprintf("member_%02d", index), "history.csv")
}

// writeMemberHistories writes every member's per-epoch history (the train stage's
// history.csv format), dropped members' included, to memberHistoryFile.
func writeMemberHistories(dir string, rep ensemble.Report) error {
	for _, m := range rep.Members {
		if err := writeHistory(filepath.Join(dir, memberHistoryFile(m.Index)), m.History); err != nil {
			return fmt.Errorf("member %d: history: %w", m.Index, err)
		}
	}
	return nil
}

// report puts the ensemble's report into the manifest and the log.
func (s *ensembleStage) report(sc *pipeline.StageContext, rep ensemble.Report, plan *bundle.InputPlan) {
	multi := len(plan.Targets) > 1
	// The val metric shown beside each member: the combiners' metric of the first head.
	memberKey := ""
	if len(rep.Combiners) > 0 {
		c := rep.Combiners[0]
		memberKey = c.Metric
		if multi {
			memberKey = c.Head + "/" + c.Metric
		}
		sc.SetInfo("val_metric", memberKey)
	}
	members := make([]map[string]any, 0, len(rep.Members))
	ran, stopped := 0, 0
	minEpochs, maxEpochs := -1, 0
	restored, resumed := 0, []string(nil)
	for _, m := range rep.Members {
		prefix := fmt.Sprintf("member_%02d/", m.Index)
		info := map[string]any{"member": m.Index, "epochs_run": m.Epochs, "stopped_early": m.StoppedEarly}
		if m.Name != "" {
			info["name"] = m.Name
		}
		if m.Epochs > 0 {
			info["best_epoch"] = m.BestEpoch + 1 // 1-based, as the train stage's best_epoch
			ran++
			if minEpochs < 0 || m.Epochs < minEpochs {
				minEpochs = m.Epochs
			}
			maxEpochs = max(maxEpochs, m.Epochs)
		}
		if m.StoppedEarly {
			stopped++
		}
		if v, ok := m.Val[memberKey]; ok && !m.Dropped && !math.IsNaN(v) && !math.IsInf(v, 0) {
			info["val_metric"] = v
		}
		if len(m.History.Epochs) > 0 {
			info["history"] = filepath.ToSlash(memberHistoryFile(m.Index))
		}
		if m.Dropped {
			info["dropped"] = true
		}
		if m.Restored {
			info["restored"] = true
			restored++
		}
		if m.ResumedFrom > 0 {
			info["resumed_from_epoch"] = m.ResumedFrom
			resumed = append(resumed, fmt.Sprintf("member %d from epoch %d", m.Index, m.ResumedFrom))
		}
		members = append(members, info)
		if m.Dropped {
			sc.Degrade("member %d dropped: %v", m.Index, m.Err)
			continue
		}
		for k, v := range m.Val {
			sc.Metrics.Set(prefix+valKey(k), v)
		}
	}
	sc.SetInfo("members", members)
	if restored > 0 {
		sc.Note("%d finished members taken from their records (not trained again here): trained by an earlier, interrupted run, or apart by the engine that spread the run", restored)
		sc.SetInfo("restored_members", restored)
	}
	if len(resumed) > 0 {
		sc.Note("resumed from the checkpoints of %s", strings.Join(resumed, ", "))
	}
	if ran > 0 {
		sc.Log.Info().Msgf("members ran %d to %d epochs, %d of %d stopped early (per member: info.members in the manifest, members/member_NN/history.csv)",
			minEpochs, maxEpochs, stopped, len(rep.Members))
	}
	var lines []string
	var combiners []map[string]any
	for _, c := range rep.Combiners {
		if !math.IsNaN(c.Score) && !math.IsInf(c.Score, 0) {
			combiners = append(combiners, map[string]any{"combiner": c.Combiner, "head": c.Head, "metric": c.Metric, "score": c.Score,
				"best_member": c.BestMember, "best_member_score": c.BestMemberScore, "gain": c.Gain})
		}
		task := ""
		if multi {
			task = c.Head + "/"
		}
		sc.Metrics.Set(c.Combiner+"/"+task+"val_"+c.Metric, c.Score)
		sc.Metrics.Set(c.Combiner+"/"+task+"gain_over_best_member", c.Gain)
		lines = append(lines, fmt.Sprintf("  %-9s %s val %s %.4f (best member %.4f, gain %+.4f)", c.Combiner, c.Head, c.Metric, c.Score, c.BestMemberScore, c.Gain))
	}
	if len(combiners) > 0 {
		sc.SetInfo("combiners", combiners)
	}
	var diversity []map[string]any
	for h, d := range rep.Diversity {
		task := ""
		if multi {
			task = plan.Targets[h].Head + "/"
		}
		sc.Metrics.Set(task+"val_diversity", d)
		if !math.IsNaN(d) {
			diversity = append(diversity, map[string]any{"head": plan.Targets[h].Head, "value": d})
		}
	}
	if len(diversity) > 0 {
		sc.SetInfo("diversity", diversity)
	}
	if rep.OOB != nil {
		for _, h := range rep.OOB.Heads {
			task := ""
			if multi {
				task = h.Name + "/"
			}
			sc.Metrics.Set(task+"oob_"+h.Metric, h.Score)
		}
		sc.SetInfo("oob_rows", len(rep.OOB.Rows))
		sc.SetInfo("never_oob_rows", rep.OOB.NeverOOB)
	}
	sc.Metrics.Set("members_kept", float64(rep.Kept))
	sc.SetInfo("peak_concurrent_members", rep.PeakConcurrent)
	sc.SetInfo("peak_estimated_bytes", rep.PeakEstimatedBytes)
	sc.SetInfo("train_seconds", rep.Seconds) // ensemble.Train alone: members, OOB predictions and combiner fits
	for _, w := range rep.Warnings {
		sc.Note("%s", w)
	}
	if len(lines) > 0 {
		sc.Log.Info().Msg("ensemble on val\n" + strings.Join(lines, "\n"))
	}
}

// valKey turns a train.History key ("accuracy", "parity/logloss") into "val_accuracy",
// "parity/val_logloss".
func valKey(k string) string {
	task, name := "", k
	if i := strings.LastIndex(k, "/"); i >= 0 {
		task, name = k[:i+1], k[i+1:]
	}
	if strings.HasPrefix(name, "val_") {
		return task + name
	}
	return task + "val_" + name
}

func combineKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "combine", Shape: pipeline.ShapeTrain,
		Doc: "Combines an ensemble, or bundles trained elsewhere (other train stages on the same table), into one bundle with one method: `mean` averages probabilities (or values), " +
			"`vote` is the majority of predicted classes (ties broken by summed probability, then by the lowest class; its outputs are 0/1 votes, not probabilities, so evaluate reports no logloss or auc for it), `median` is for regression, and `weighted` fits non-negative weights summing to 1 on the val table " +
			"(by log-loss for classes, MSE for regression). The bundle is self-contained: the members are copied into it.",
		Fields: []pipeline.Field{
			{Name: "ensemble", Type: pipeline.TypeInput, Port: pipeline.PortArtifact, Doc: "An ensemble stage's output."},
			{Name: "models", Type: pipeline.TypeInputs, Port: pipeline.PortArtifact, Doc: "Or: bundles to combine (train stages' models), all trained on the same table."},
			{Name: "method", Type: pipeline.TypeString, Default: "mean", Enum: []string{"mean", "vote", "median", "weighted"}, Doc: "The combiner."},
			{Name: "val", Type: pipeline.TypeInput, Port: pipeline.PortTable, Doc: "The table the weighted combiner fits its weights on (required for weighted)."},
		},
		Outputs: func(*pipeline.StageConfig) []pipeline.Port {
			return []pipeline.Port{{Name: "model", Kind: pipeline.PortArtifact}}
		},
		DefaultOutput: "model",
		Example:       "[stages.vote]\nkind = \"combine\"\nensemble = \"members.ensemble\"\nmethod = \"vote\"",
		New: func(c *pipeline.StageConfig) (pipeline.Stage, error) {
			_, hasEns := c.Input("ensemble")
			hasModels := len(c.Inputs("models")) > 0
			switch {
			case hasEns == hasModels && !c.IsSet("ensemble") && !c.IsSet("models"):
				return nil, c.Errorf("ensemble", "set ensemble (an ensemble stage's output) or models (bundles to combine)")
			case c.IsSet("ensemble") && c.IsSet("models"):
				return nil, c.Errorf("models", "set ensemble or models, not both")
			case c.String("method") == "weighted" && !c.IsSet("val"):
				return nil, c.Errorf("val", "the weighted combiner fits its weights on a val table: set val")
			}
			return pipeline.StageFunc(runCombine), nil
		},
	}
}

func runCombine(ctx context.Context, sc *pipeline.StageContext) error {
	method := sc.Config.String("method")
	var eb *bundle.EnsembleBundle
	if ref, ok := sc.Config.Input("ensemble"); ok {
		a, err := sc.ArtifactOf(ctx, ref)
		if err != nil {
			return err
		}
		e, ok := a.(*bundle.EnsembleBundle)
		if !ok {
			return fmt.Errorf("ensemble input %s is a %s, not an ensemble", ref, a.ArtifactKind())
		}
		c, err := e.Clone() // this stage sets its own combiner
		if err != nil {
			return err
		}
		eb = c.(*bundle.EnsembleBundle)
	} else {
		var models []*nn.Model
		var names []string
		var first *bundle.Bundle
		for _, ref := range sc.Config.Inputs("models") {
			a, err := sc.ArtifactOf(ctx, ref)
			if err != nil {
				return err
			}
			b, ok := a.(*bundle.Bundle)
			if !ok {
				return fmt.Errorf("models: %s is a %s, not a model bundle", ref, a.ArtifactKind())
			}
			if first == nil {
				first = b
			} else if err := bundle.SamePlan(first, b); err != nil {
				return fmt.Errorf("models: %s and %s cannot be combined: %v; train them on the same table", sc.Config.Inputs("models")[0], ref, err)
			}
			m, err := bundle.CloneModel(b.Model)
			if err != nil {
				return err
			}
			models = append(models, m)
			names = append(names, ref.Stage)
		}
		ens, err := ensemble.New(models, names)
		if err != nil {
			return err
		}
		eb = &bundle.EnsembleBundle{Bundle: bundle.Bundle{Meta: first.Meta, Pre: first.Pre}, Ens: ens}
		eb.Meta.Stage = sc.Name
	}
	if method == ensemble.CombinerWeighted {
		if err := fitWeighted(ctx, sc, eb); err != nil {
			return err
		}
	}
	for _, h := range eb.Ens.Heads() {
		if _, err := eb.Ens.Combiner(h.Name, method); err != nil {
			return fmt.Errorf("method %q for head %s: %w", method, h.Name, err)
		}
	}
	out := eb.WithCombiner(method)
	out.Meta.Stage = sc.Name
	dir, err := sc.Dir()
	if err != nil {
		return err
	}
	if err := out.Save(filepath.Join(dir, bundleDir)); err != nil {
		return err
	}
	return sc.SetArtifact("model", out)
}

// fitWeighted fits the weighted combiner of every head on the val table.
func fitWeighted(ctx context.Context, sc *pipeline.StageContext, eb *bundle.EnsembleBundle) error {
	t, err := sc.Input(ctx, "val")
	if err != nil {
		return err
	}
	data, err := materialize(ctx, sc, eb.InputPlan(), t, true, preprocessor(ctx, sc, eb, t))
	if err != nil {
		return err
	}
	rows := len(data.RowIDs)
	b := nn.Batch{Rows: rows, X: data.Data.X, Cat: data.Data.Cat}
	outs, err := eb.Ens.MemberOutputs(b)
	if err != nil {
		return err
	}
	for h, hs := range eb.Ens.Heads() {
		per := make([][]float32, len(outs))
		for m, o := range outs {
			per[m] = o.Heads[h]
		}
		k := outs[0].Width[h]
		var w ensemble.Weighted
		var fit ensemble.WeightFit
		if hs.Kind == nn.HeadRegression {
			w, fit, err = ensemble.FitWeightsMSE(per, rows, k, data.Data.Targets[h].Values, ensemble.WeightFitOptions{})
		} else {
			w, fit, err = ensemble.FitWeightsLogLoss(per, rows, k, data.Data.Targets[h].Labels, ensemble.WeightFitOptions{})
		}
		if err != nil {
			return fmt.Errorf("head %s: weighted combiner: %w", hs.Name, err)
		}
		if err := eb.Ens.SetCombiner(hs.Name, w); err != nil {
			return err
		}
		sc.SetInfo("weights/"+hs.Name, w.Weights())
		sc.SetInfo("weight_fit/"+hs.Name, map[string]any{"loss": fit.Loss, "gap": fit.Gap, "iterations": fit.Iterations, "converged": fit.Converged, "rows": fit.Rows})
	}
	return nil
}
