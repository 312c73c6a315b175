package train

import (
	"errors"
	"sort"

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
