package train

import (
	"errors"
	"math"
	"sort"
	"time"

	"github.com/pipe-ml/pipe/nn"
)

// ErrStop returned by a hook ends training normally after the current step or epoch (the
// early-stopping restore still applies).
var ErrStop = errors.New("train: stop requested by hook")

// StepInfo describes one optimizer step (passed to OnStep hooks after the update).
type StepInfo struct {
	Epoch     int // 0-based
	Step      int // global step, 0-based
	BatchSize int // the epoch's batch size
	Rows      int // rows in this batch (the last batch of an epoch may be smaller)
	LR        float64
	Loss      nn.Loss
	// GradNorm is the global gradient norm before clipping.
	GradNorm float64
	Model    *nn.Model
}

// EpochInfo describes a finished epoch (passed to OnEpochEnd hooks).
type EpochInfo struct {
	Epoch   int // 0-based
	Metrics map[string]float64
	Model   *nn.Model
	// Checkpoint captures the complete training state at the end of this epoch; Fit with
	// Config.Resume set to it continues bit-identically. It includes what the hooks that ran
	// before it changed (the params' frozen flags and learning-rate multipliers): call it from
	// a hook that runs after every hook that changes the model (priority math.MaxInt).
	Checkpoint func() (*Checkpoint, error)
}

// Hook is a named callback run at a fixed point of training. Hooks of the same kind run in
// ascending Priority, ties broken by Name. An error stops training (ErrStop: normally).
type Hook struct {
	Name     string
	Priority int
	step     func(*StepInfo) error
	epoch    func(*EpochInfo) error
}

// OnStep returns a hook run after every optimizer step.
func OnStep(name string, priority int, fn func(*StepInfo) error) Hook {
	return Hook{Name: name, Priority: priority, step: fn}
}

// OnEpochEnd returns a hook run after every epoch's evaluation and early-stopping update.
func OnEpochEnd(name string, priority int, fn func(*EpochInfo) error) Hook {
	return Hook{Name: name, Priority: priority, epoch: fn}
}

// CheckpointGap is the least time between two checkpoints an OnCheckpoint hook takes of a
// model of more than checkpointSmall values, as a multiple of what taking the last one cost:
// at most about 1/CheckpointGap of the training time goes to them.
const CheckpointGap = 50

// checkpointSmall is the number of param values up to which OnCheckpoint takes every epoch's
// checkpoint: copying a model that small and its optimizer's state takes well under a
// millisecond, and which epoch is checkpointed then does not depend on timing.
const checkpointSmall = 100_000

// OnCheckpoint returns an epoch-end hook that runs after every other hook (priority
// math.MaxInt, so that what they changed is in the checkpoint) and passes the epoch's
// checkpoint, or the error of taking it, to fn. For a model of up to checkpointSmall param
// values that is every epoch's. For a larger one it skips an epoch end that comes less than
// CheckpointGap times the last checkpoint's cost after it was taken: with epochs of one step
// on a large model, copying the weights and the optimizer's state every epoch would cost as
// much as the training. A Fit resumed from any checkpoint continues bit-identically, so which
// epochs are skipped changes no result. Use one hook per Fit.
func OnCheckpoint(name string, fn func(*Checkpoint, error) error) Hook {
	var last time.Time
	var cost time.Duration
	small := false
	return OnEpochEnd(name, math.MaxInt, func(e *EpochInfo) error {
		if last.IsZero() { // the first epoch: size the model
			n := 0
			for _, p := range e.Model.Params() {
				n += len(p.Value)
			}
			small = n <= checkpointSmall
		}
		start := time.Now()
		if !small && !checkpointDue(last, cost, start) {
			return nil
		}
		c, err := e.Checkpoint()
		last = time.Now()
		cost = last.Sub(start)
		return fn(c, err)
	})
}

// checkpointDue reports whether a checkpoint of a large model is taken at now when the last
// one was taken at last (zero: never) and cost cost.
func checkpointDue(last time.Time, cost time.Duration, now time.Time) bool {
	return last.IsZero() || now.Sub(last) >= CheckpointGap*cost
}

func sortHooks(hs []Hook) (step, epoch []Hook) {
	sorted := append([]Hook(nil), hs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Priority != sorted[j].Priority {
			return sorted[i].Priority < sorted[j].Priority
		}
		return sorted[i].Name < sorted[j].Name
	})
	for _, h := range sorted {
		if h.step != nil {
			step = append(step, h)
		}
		if h.epoch != nil {
			epoch = append(epoch, h)
		}
	}
	return step, epoch
}
