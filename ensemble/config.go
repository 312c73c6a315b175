package ensemble

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"

	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// Member is the recipe of one ensemble member: a model spec and its training configuration.
type Member struct {
	// Name labels the member in reports and logs; default "member_<i>" (0-based index).
	Name string
	// Spec is the model. Every member of an ensemble must have the same inputs and heads.
	Spec nn.Spec
	// Train configures nn/train.Fit. Train.Seed is replaced by a seed derived from (Train's
	// seed argument, member index); Train.Workers is replaced by Config.MemberWorkers.
	Train train.Config
}

// Member-error policies of Config.OnMemberError.
const (
	// OnErrorFail makes the first member error cancel the other members and fail Train.
	OnErrorFail = "fail"
	// OnErrorDrop leaves a failed member out of the ensemble (reported); Train fails only when
	// fewer than Config.MinMembers members remain.
	OnErrorDrop = "drop"
)

// Config configures a bagged ensemble. The zero value of every field is its documented
// default; Base (or Specs) must be set.
type Config struct {
	// Members is the number of members; default len(Specs) when Specs is set, else 10 (as
	// scikit-learn's bagging estimators).
	Members int
	// Base is the member recipe perturbed per member by Vary. Exactly one of Base and Specs
	// must be set.
	Base Member
	// Specs are heterogeneous member recipes, used in turn: member i gets Specs[i%len(Specs)]
	// (then Vary, if set, perturbs it too).
	Specs []Member
	// Vary perturbs each member's recipe by seeded draws (default: no perturbation).
	Vary Vary
	// Bootstrap draws each member's training rows with replacement, n draws from the n rows
	// (classic bagging; the rows never drawn are the member's out-of-bag rows). Default false.
	Bootstrap bool
	// Subsample in (0, 1) gives each member round(Subsample·n) distinct rows drawn without
	// replacement (the rest are out of bag). Default 0: unless Bootstrap is set, every member
	// trains on every row. Bootstrap and Subsample exclude each other.
	Subsample float64
	// FeatureFraction in (0, 1) restricts each member to a seeded random subset of
	// max(1, round(FeatureFraction·NumInputs)) numeric input columns (categorical embeddings
	// are always used). Default 0 (or 1): all columns.
	//
	// It is implemented as a mask on the weights that read the inputs (the first dense or
	// residual layer's input rows, or the heads' for a model without one): those rows are
	// zeroed before training and again after every optimizer step, so the member's output
	// does not depend on the unused columns while the training data stays the shared base
	// matrix. Memory cost: none beyond one bool per column; compute cost: the first matrix
	// product still runs over all columns. With EMA weights (Train.EMADecay), the averaged
	// weights used for evaluation during training are slightly leaky; the final weights are
	// masked exactly. Models whose first mixing layer is layer_norm, or a residual block
	// with an identity skip, are rejected (they mix or pass every column through).
	FeatureFraction float64
	// Workers is the number of members trained at the same time; default
	// runtime.GOMAXPROCS(0). Results do not depend on it.
	Workers int
	// MemberWorkers is the GEMM goroutines per member (train.Config.Workers); default 1, as
	// the parallelism comes from training several members at once.
	MemberWorkers int
	// MemoryBudget bounds, in bytes, the sum of the estimated peak memory (EstimateMemberBytes)
	// of the members training at the same time; a member does not start while it would exceed
	// it. A member larger than the whole budget runs alone, with a warning in the Report.
	// Default 0: no bound (only Workers limits concurrency).
	MemoryBudget int64
	// OnMemberError is OnErrorFail (default) or OnErrorDrop.
	OnMemberError string
	// MinMembers is the number of members that must succeed under OnErrorDrop; default 1.
	MinMembers int
}

// Vary perturbs each member's recipe. Each field is drawn from its own PCG stream derived from
// (seed, member index, field), so adding a field to Vary does not change the other draws. The
// zero value of a field leaves that setting as the recipe has it.
type Vary struct {
	// Dropout is drawn uniformly in [Min, Max] and set as the Dropout of every dense and
	// residual layer and the Rate of every dropout layer. Must lie in [0, 1).
	Dropout Range
	// LR is drawn log-uniformly in [Min, Max] (Min > 0) and set as Train.Optimizer.LR.
	LR Range
	// L2 is drawn log-uniformly in [Min, Max] (Min > 0) and set as Spec.L2.
	L2 Range
	// BatchSize is drawn uniformly from the list and set as Train.BatchSize.
	BatchSize []int
	// Optimizer is drawn uniformly from the list of optimizer names and set as
	// Train.Optimizer.Name.
	Optimizer []string
	// Activation is drawn uniformly from the list and set as the Activation of every residual
	// layer and of every dense layer that has a non-linear activation.
	Activation []string
}

// Range is a closed interval [Min, Max]; the zero Range means "not varied", Min == Max a
// constant. Whether it is sampled uniformly or log-uniformly is documented on each Vary field.
type Range struct {
	Min, Max float64
}

func (r Range) set() bool { return r.Min != 0 || r.Max != 0 }

func (r Range) check(field string, lo, hi float64, log bool) error {
	switch {
	case !r.set():
		return nil
	case math.IsNaN(r.Min) || math.IsNaN(r.Max) || r.Min > r.Max:
		return fmt.Errorf("ensemble: vary.%s = [%g, %g]: want min <= max", field, r.Min, r.Max)
	case r.Min < lo || r.Max > hi || (r.Max == hi && !math.IsInf(hi, 1)):
		return fmt.Errorf("ensemble: vary.%s = [%g, %g] outside [%g, %g)", field, r.Min, r.Max, lo, hi)
	case log && r.Min <= 0:
		return fmt.Errorf("ensemble: vary.%s = [%g, %g] is log-uniform: min must be > 0", field, r.Min, r.Max)
	}
	return nil
}

func (r Range) uniform(rng *rand.Rand) float64 { return r.Min + (r.Max-r.Min)*rng.Float64() }

func (r Range) logUniform(rng *rand.Rand) float64 {
	lo, hi := math.Log(r.Min), math.Log(r.Max)
	return math.Exp(lo + (hi-lo)*rng.Float64())
}

// Options are the run-time hooks of Train (none changes the result).
type Options struct {
	// Logger receives per-member progress (default: the zero logger, which discards). Each
	// member's trainer logs through it with a "member" field.
	Logger zerolog.Logger
	// Hooks, when set, returns extra training hooks for member i (progress bars, monitoring).
	// A hook error is that member's error.
	Hooks func(member int) []train.Hook
	// OnMemberDone, when set, is called once per member when it finishes (successfully or
	// not), from the member's goroutine (from Train's for a member whose model did not build).
	OnMemberDone func(MemberReport)
	// Memory, when set, is the run's memory budget: each member's estimated bytes are
	// reserved in it while the member trains (see MemoryAccount).
	Memory MemoryAccount

	// Checkpoint, Finished and Restore make an interrupted Train resumable: record what
	// Checkpoint and Finished are given (by member index, never by completion order), and
	// give it back through Restore to a later Train with the same arguments. That Train does
	// not train the finished members again and continues the interrupted ones from their
	// checkpoints, and its ensemble and Report (timings and peaks aside) are bit-identical to
	// those of an uninterrupted Train. The three are called from the members' goroutines,
	// several at a time: they must be safe for concurrent use. Default nil: nothing is
	// recorded or restored.

	// Checkpoint is called at the end of member i's epochs, after the other epoch hooks,
	// with the complete state to continue its training from: every epoch's, except where
	// taking it would cost more than 1/train.CheckpointGap of the training
	// (train.OnCheckpoint). An error is the member's error.
	Checkpoint func(member int, c *train.Checkpoint) error
	// Finished is called once member i has finished training, with its final weights, its
	// training summary and its validation and out-of-bag predictions (which a Train that
	// restores the member then takes as they are). An error is the member's error.
	Finished func(member int, m *FinishedMember) error
	// Restore is called before member i trains. It returns what an earlier Train recorded of
	// it: the member's FinishedMember (it is then not trained: its weights and summary are
	// taken from the record), or else its latest checkpoint (training continues from it), or
	// neither. A record or checkpoint that does not fit the member's recipe (another spec or
	// optimizer, another tensor layout, a damaged state) is set aside with a warning in the
	// Report and the member trains from the start: a resume is never wrong. An error is the
	// member's error.
	Restore func(member int) (*FinishedMember, *train.Checkpoint, error)

	// Members, when not empty, makes Train train only these members (by index), recording
	// them through Checkpoint and Finished as usual, and return a nil ensemble with the
	// Report of those members: the part of an ensemble that an engine runs on another
	// machine (see pipeline.PartedStage). A later Train with every member and Restore then
	// takes them from their records. An index outside [0, Members) is an error.
	Members []int

	// RecordsOnly says that base and val hold their rows' targets but not their inputs (an
	// engine that trained every member apart then builds the ensemble from their records,
	// without reading the tables' inputs): every member must come from its record (Restore)
	// with its predictions of these rows. When one does not, Train builds nothing and returns
	// an error wrapping ErrInputsNeeded: call it again with the inputs. Default false.
	RecordsOnly bool
}

// ErrInputsNeeded is wrapped by the error of a Train with Options.RecordsOnly of which a
// member has no usable record with its predictions, so it would read the tables' inputs.
var ErrInputsNeeded = errors.New("no usable record with its predictions: the member needs the tables' inputs")

func (c Config) withDefaults() (Config, error) {
	if c.Members == 0 {
		c.Members = 10
		if len(c.Specs) > 0 {
			c.Members = len(c.Specs)
		}
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.MemberWorkers == 0 {
		c.MemberWorkers = 1
	}
	if c.OnMemberError == "" {
		c.OnMemberError = OnErrorFail
	}
	c.OnMemberError = strings.ToLower(c.OnMemberError)
	if c.MinMembers == 0 {
		c.MinMembers = 1
	}
	baseSet := c.Base.Spec.NumInputs != 0 || len(c.Base.Spec.Heads) > 0 || len(c.Base.Spec.Layers) > 0 || len(c.Base.Spec.Embeddings) > 0
	switch {
	case c.Members < 1:
		return c, fmt.Errorf("ensemble: members = %d, want >= 1", c.Members)
	case baseSet && len(c.Specs) > 0:
		return c, fmt.Errorf("ensemble: both a base member and %d member specs are set; use one", len(c.Specs))
	case !baseSet && len(c.Specs) == 0:
		return c, fmt.Errorf("ensemble: no member recipe: set Base (perturbed by Vary) or Specs")
	case c.Bootstrap && c.Subsample != 0:
		return c, fmt.Errorf("ensemble: bootstrap and subsample = %g both set; choose one sampling scheme", c.Subsample)
	case !(c.Subsample >= 0 && c.Subsample < 1):
		return c, fmt.Errorf("ensemble: subsample = %g, want a fraction in (0, 1) (0: every row)", c.Subsample)
	case !(c.FeatureFraction >= 0 && c.FeatureFraction <= 1):
		return c, fmt.Errorf("ensemble: feature_fraction = %g, want a fraction in (0, 1] (0: every column)", c.FeatureFraction)
	case c.Workers < 1 || c.MemberWorkers < 1:
		return c, fmt.Errorf("ensemble: workers = %d and member workers = %d must be >= 1", c.Workers, c.MemberWorkers)
	case c.MemoryBudget < 0:
		return c, fmt.Errorf("ensemble: memory budget %d bytes < 0 (0: unbounded)", c.MemoryBudget)
	case c.OnMemberError != OnErrorFail && c.OnMemberError != OnErrorDrop:
		return c, fmt.Errorf("ensemble: on_member_error = %q, want %q or %q", c.OnMemberError, OnErrorFail, OnErrorDrop)
	case c.MinMembers < 1 || c.MinMembers > c.Members:
		return c, fmt.Errorf("ensemble: min_members = %d, want 1..members (%d)", c.MinMembers, c.Members)
	}
	if c.FeatureFraction == 1 {
		c.FeatureFraction = 0
	}
	for i, m := range append([]Member{c.Base}, c.Specs...) {
		if m.Train.Resume != nil {
			return c, fmt.Errorf("ensemble: member recipe %d sets train.Resume: a checkpoint belongs to one model and cannot seed a bag", i)
		}
	}
	v := c.Vary
	for _, err := range []error{
		v.Dropout.check("dropout", 0, 1, false),
		v.LR.check("lr", 0, math.Inf(1), true),
		v.L2.check("l2", 0, math.Inf(1), true),
	} {
		if err != nil {
			return c, err
		}
	}
	for _, b := range v.BatchSize {
		if b < 1 {
			return c, fmt.Errorf("ensemble: vary.batch_size has %d: batch sizes must be >= 1", b)
		}
	}
	for _, a := range v.Activation {
		if a == "" || a == "linear" {
			return c, fmt.Errorf("ensemble: vary.activation has %q: want a non-linear activation (relu, gelu, tanh, ...)", a)
		}
	}
	return c, nil
}

// Seed streams of a member: PCG(seed, member<<8 | stream).
const (
	streamBuild    = 1
	streamSample   = 2
	streamFeatures = 3
	streamTrain    = 4
	streamVary     = 16 // + field index
)

func memberRand(seed uint64, member, stream int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(member)<<8|uint64(stream)))
}

// recipe returns member i's effective recipe: the base or cycled spec with Vary applied, a
// derived training seed and the member worker count. Spec slices are copied, never shared
// with cfg.
func (c Config) recipe(i int, seed uint64) Member {
	var m Member
	if len(c.Specs) > 0 {
		m = c.Specs[i%len(c.Specs)]
	} else {
		m = c.Base
	}
	if m.Name == "" {
		m.Name = fmt.Sprintf("member_%d", i)
	}
	m.Spec.Layers = append([]nn.LayerSpec(nil), m.Spec.Layers...)
	m.Spec.Heads = append([]nn.HeadSpec(nil), m.Spec.Heads...)
	m.Spec.Embeddings = append([]nn.EmbeddingSpec(nil), m.Spec.Embeddings...)
	v := c.Vary
	if v.Dropout.set() {
		d := v.Dropout.uniform(memberRand(seed, i, streamVary+0))
		for j := range m.Spec.Layers {
			switch l := &m.Spec.Layers[j]; l.Type {
			case nn.LayerDense, nn.LayerResidual:
				l.Dropout = d
			case nn.LayerDropout:
				l.Rate = d
			}
		}
	}
	if v.LR.set() {
		m.Train.Optimizer.LR = v.LR.logUniform(memberRand(seed, i, streamVary+1))
	}
	if v.L2.set() {
		m.Spec.L2 = v.L2.logUniform(memberRand(seed, i, streamVary+2))
	}
	if len(v.BatchSize) > 0 {
		m.Train.BatchSize = v.BatchSize[memberRand(seed, i, streamVary+3).IntN(len(v.BatchSize))]
	}
	if len(v.Optimizer) > 0 {
		m.Train.Optimizer.Name = v.Optimizer[memberRand(seed, i, streamVary+4).IntN(len(v.Optimizer))]
	}
	if len(v.Activation) > 0 {
		a := v.Activation[memberRand(seed, i, streamVary+5).IntN(len(v.Activation))]
		for j := range m.Spec.Layers {
			l := &m.Spec.Layers[j]
			if l.Type == nn.LayerResidual || (l.Type == nn.LayerDense && l.Activation != "" && l.Activation != "linear") {
				l.Activation = a
			}
		}
	}
	m.Train.Seed = memberRand(seed, i, streamTrain).Uint64()
	m.Train.Workers = c.MemberWorkers
	return m
}
