package pipeline

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
)

// Everything large that a run holds counts against its memory budget ([pipeline]
// memory_budget): the tables' in-memory batches (Table), a batch read back from a spill file
// while a reader holds it (TableReader), and what stages hold outside tables, which they
// reserve with StageContext.ReserveMemory: a dense copy of a table for training, evaluation
// or prediction, and an ensemble's members' buffers. A stage whose dense copy does not fit
// streams instead (see stages' train, evaluate and predict).

// add counts n bytes that are held whatever the budget says (a spilled batch read back: the
// reader cannot do without it), so that the peak is honest.
func (b *memBudget) add(n int64) {
	cur := b.used.Add(n)
	for {
		p := b.peak.Load()
		if cur <= p || b.peak.CompareAndSwap(p, cur) {
			return
		}
	}
}

// ReserveMemory counts n bytes the stage is about to hold outside tables against the run's
// memory budget. It reports false, reserving nothing, when they would not fit next to what is
// held already: the caller then streams, or waits. Free the bytes with FreeMemory.
func (sc *StageContext) ReserveMemory(n int64) bool {
	if sc.run == nil || sc.run.budget == nil {
		return true
	}
	return sc.run.budget.tryReserve(n)
}

// HoldMemory counts n bytes the stage holds whatever the budget says (data it cannot do
// without and cannot stream), so that the budget's peak is honest and other stages see
// them. It reports whether they fit. Free the bytes with FreeMemory.
func (sc *StageContext) HoldMemory(n int64) bool {
	if sc.run == nil || sc.run.budget == nil {
		return true
	}
	if sc.run.budget.tryReserve(n) {
		return true
	}
	sc.run.budget.add(n)
	return false
}

// FreeMemory returns n bytes reserved with ReserveMemory or held with HoldMemory.
func (sc *StageContext) FreeMemory(n int64) {
	if sc.run != nil && sc.run.budget != nil {
		sc.run.budget.free(n)
	}
}

// MemoryBudget is the run's memory budget in bytes (0: unbounded).
func (sc *StageContext) MemoryBudget() int64 {
	if sc.run == nil || sc.run.budget == nil {
		return 0
	}
	return sc.run.budget.limit
}

// SpillDir is the run's directory for spill files and other scratch data that is removed
// when the run ends.
func (sc *StageContext) SpillDir() string {
	if sc.run == nil {
		return os.TempDir()
	}
	return filepath.Join(sc.run.dir, "spill")
}

// memoryLimitMargin is what the Go runtime may hold beyond the memory budget: models,
// activations, optimizer state, metadata and the garbage collector's slack.
func memoryLimitMargin(budget int64) int64 { return max(512<<20, budget/2) }

var memLimitMu sync.Mutex

// applyMemoryLimit sets the Go runtime's soft memory limit (debug.SetMemoryLimit) to the
// memory budget plus a margin, unless the user set GOMEMLIMIT (getenv looks it up) or the budget
// is unbounded. It returns the limit set (0: none) and a function that restores the
// previous limit at the end of the run.
func applyMemoryLimit(budget int64, getenv func(string) string) (int64, func()) {
	if budget <= 0 || getenv("GOMEMLIMIT") != "" {
		return 0, func() {}
	}
	limit := budget + memoryLimitMargin(budget)
	memLimitMu.Lock()
	prev := debug.SetMemoryLimit(limit)
	memLimitMu.Unlock()
	return limit, func() {
		memLimitMu.Lock()
		debug.SetMemoryLimit(prev)
		memLimitMu.Unlock()
	}
}
