package search

import (
	"context"
	"sync"
	"time"
)

// board holds what every trial of a search has reported, for the pruning decisions. A trial
// is judged only against trials with a lower index, and waits until each of them has either
// reported at the epoch in question or finished; so its decisions do not depend on timing.
type board struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever a trial reports or finishes
	trials  []boardTrial
}

type boardTrial struct {
	epochs []int     // reported epochs, increasing
	best   []float64 // best value so far after each report
	done   bool      // reports no more: finished, failed, or told to stop
}

func newBoard(n int) *board {
	return &board{changed: make(chan struct{}), trials: make([]boardTrial, n)}
}

// notify wakes every waiter; the caller holds mu.
func (b *board) notify() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// add records trial i's report of value at epoch (epochs increase; the caller checks).
func (b *board) add(i, epoch int, value float64, maximize bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := &b.trials[i]
	best := value
	if n := len(t.best); n > 0 && !better(value, t.best[n-1], maximize) {
		best = t.best[n-1]
	}
	t.epochs = append(t.epochs, epoch)
	t.best = append(t.best, best)
	b.notify()
}

// finish marks trial i as reporting no more.
func (b *board) finish(i int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.trials[i].done {
		b.trials[i].done = true
		b.notify()
	}
}

// restore gives trial i the history of an earlier run of it, finished.
func (b *board) restore(i int, history []Point, maximize bool) {
	for _, p := range history {
		b.add(i, p.Epoch, p.Value, maximize)
	}
	b.finish(i)
}

// at returns trial i's value at epoch e: its best value so far at its first report at or
// after e. known is false while that is not decided yet (no such report, and not done);
// reached is false when the trial finished without reaching e. The caller holds mu.
func (b *board) at(i, e int) (v float64, reached, known bool) {
	t := &b.trials[i]
	// Reports arrive in epoch order, and a trial is judged at the epoch of its latest
	// report, so the search from the end is short.
	k := len(t.epochs)
	for k > 0 && t.epochs[k-1] >= e {
		k--
	}
	if k < len(t.epochs) {
		return t.best[k], true, true
	}
	return 0, false, t.done
}

// own returns trial i's value at epoch e (it has reported at or after e).
func (b *board) own(i, e int) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, _, _ := b.at(i, e)
	return v
}

// others waits until every trial below i has reported at or after epoch e or finished, and
// returns the values at e of those that reached it, in index order, and how long it waited.
// It returns ctx's error if ctx ends first.
func (b *board) others(ctx context.Context, i, e int) ([]float64, time.Duration, error) {
	var start time.Time
	for {
		b.mu.Lock()
		vals, ok := b.tryOthers(i, e)
		ch := b.changed
		b.mu.Unlock()
		if ok {
			if start.IsZero() {
				return vals, 0, nil
			}
			return vals, time.Since(start), nil
		}
		if start.IsZero() {
			start = time.Now()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, time.Since(start), ctx.Err()
		}
	}
}

func (b *board) tryOthers(i, e int) ([]float64, bool) {
	vals := make([]float64, 0, i)
	for j := range i {
		v, reached, known := b.at(j, e)
		if !known {
			return nil, false
		}
		if reached {
			vals = append(vals, v)
		}
	}
	return vals, true
}
