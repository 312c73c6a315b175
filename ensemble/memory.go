package ensemble

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
	"github.com/pipe-ml/pipe/nn/train"
)

// MemoryRows are the row counts that size a member's memory.
type MemoryRows struct {
	Train int // training rows of the member (its sample)
	Val   int // validation rows (0: the trainer carves train.Config.ValFraction of Train)
	OOB   int // out-of-bag rows the member predicts after training
}

// EstimateMemberBytes estimates the peak bytes one member allocates while it trains: its
// params with their gradients, optimizer state, the trainer's weight snapshots (best epoch,
// last good epoch, EMA), the activation buffers of every layer sized for the largest forward
// pass (a batch or an inference chunk, see nn.Model.InferenceRows), the trainer's gathered batch,
// validation and train-metric copies, the row index arrays, and the member's validation and
// out-of-bag predictions. It builds the model once to count its params. Go runtime overhead
// (GC headroom) is not included.
func EstimateMemberBytes(m Member, rows MemoryRows) (int64, error) {
	model, err := nn.Build(m.Spec, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return 0, fmt.Errorf("ensemble: member %q: %w", m.Name, err)
	}
	return estimateBytes(model, m.Train, rows), nil
}

func estimateBytes(model *nn.Model, cfg train.Config, rows MemoryRows) int64 {
	const f32, word = 4, 8
	spec := model.Spec()
	var params int64
	for _, p := range model.Params() {
		params += int64(len(p.Value))
	}
	var buffers int64
	for _, p := range model.Buffers() {
		buffers += int64(len(p.Value))
	}
	copies := 2 + optimizerSlots(cfg.Optimizer) + 2 // value, grad, optimizer state, best + last-good snapshots
	if cfg.EMADecay > 0 {
		copies++
	}
	total := f32 * (params*int64(copies) + buffers*3)

	batch := cfg.BatchSize
	if batch == 0 {
		batch = 64
	}
	trainRows, valRows := rows.Train, rows.Val
	if valRows == 0 {
		frac := cfg.ValFraction
		if frac == 0 {
			frac = 0.1
		}
		valRows = int(frac*float64(trainRows)) + 1
		trainRows -= valRows
	}
	if g := cfg.BatchGrowth; g.EveryEpochs > 0 {
		batch = max(batch, min(trainRows, g.Max))
		if g.Max == 0 {
			batch = max(batch, trainRows)
		}
	}
	batch = max(1, min(batch, trainRows))
	metricRows := cfg.TrainMetricRows
	if metricRows == 0 {
		metricRows = 2048
	}
	metricRows = min(metricRows, trainRows)
	// The activation buffers (nn.Model.ActivationBytesPerRow) are sized for the largest
	// forward pass: a mini-batch, or an inference chunk (validation, train metrics and
	// out-of-bag predictions run in chunks of at most InferenceRows rows).
	inferRows := min(model.InferenceRows(), max(valRows, metricRows, min(rows.OOB, predictChunk)))
	total += model.ActivationBytesPerRow() * int64(max(batch, inferRows))
	targetWidth, headWidth := 0, 0
	for _, h := range spec.Heads {
		k := h.Classes
		switch h.Kind {
		case nn.HeadBinary:
			k = 2
		case nn.HeadRegression:
			k = max(h.Outputs, 1)
		}
		headWidth += k
		targetWidth += max(h.Outputs, 1)
	}

	inputRow := int64(spec.NumInputs + len(spec.Embeddings) + targetWidth + 1)
	total += f32 * inputRow * int64(batch+valRows+metricRows)
	total += word * int64(2*rows.Train+valRows+rows.OOB) // sample index, epoch permutation, val and OOB indices
	// Validation predictions (the trainer's and the member's) and out-of-bag predictions.
	total += f32 * int64(headWidth) * int64(2*valRows+rows.OOB+metricRows)
	total += f32 * inputRow * int64(min(rows.OOB, predictChunk))
	return total
}

// optimizerSlots is the number of per-param state buffers of an optimizer.
func optimizerSlots(c optim.Config) int64 {
	switch strings.ToLower(c.Name) {
	case optim.NameSGD:
		if c.Momentum > 0 {
			return 1
		}
		return 0
	case optim.NameRMSProp:
		n := int64(1)
		if c.Momentum > 0 {
			n++
		}
		if c.Centered {
			n++
		}
		return n
	case optim.NameAdagrad:
		return 1
	}
	return 2 // adam, adamw
}

// budget admits members while the sum of their estimated bytes stays within a limit, and
// counts how many run at once (for the report and the tests).
type budget struct {
	limit int64 // 0: unbounded
	sem   *semaphore.Weighted

	mu        sync.Mutex
	running   int
	bytes     int64
	peakCount int
	peakBytes int64
}

func newBudget(limit int64) *budget {
	b := &budget{limit: limit}
	if limit > 0 {
		b.sem = semaphore.NewWeighted(limit)
	}
	return b
}

// charge is what a member of est bytes takes from the budget: all of it when est exceeds it
// (the member then runs alone).
func (b *budget) charge(est int64) int64 {
	if b.limit == 0 {
		return 0
	}
	return min(max(est, 1), b.limit)
}

// acquire blocks until est bytes fit the budget or ctx is done.
func (b *budget) acquire(ctx context.Context, est int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.sem != nil {
		if err := b.sem.Acquire(ctx, b.charge(est)); err != nil {
			return err
		}
	}
	b.mu.Lock()
	b.running++
	b.bytes += est
	b.peakCount = max(b.peakCount, b.running)
	b.peakBytes = max(b.peakBytes, b.bytes)
	b.mu.Unlock()
	return nil
}

func (b *budget) release(est int64) {
	b.mu.Lock()
	b.running--
	b.bytes -= est
	b.mu.Unlock()
	if b.sem != nil {
		b.sem.Release(b.charge(est))
	}
}

func (b *budget) peaks() (int, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peakCount, b.peakBytes
}

// MemoryAccount is a memory budget shared with the rest of a run (pipeline.StageContext's
// ReserveMemory and FreeMemory): the members' estimated bytes are reserved in it too, so that
// the run's budget counts the members' buffers next to its tables and dense copies.
type MemoryAccount interface {
	ReserveMemory(n int64) bool
	FreeMemory(n int64)
}

// runAccount reserves members' bytes in a MemoryAccount. A member whose bytes do not fit waits
// for a running member to finish; when none runs it starts anyway, unreserved, and alone (a run
// whose tables fill its budget still trains, one member at a time), and that is reported.
type runAccount struct {
	acct    MemoryAccount
	mu      sync.Mutex
	running int // members between reserve and free, reserved or not
	alone   bool
	changed chan struct{}
}

func newRunAccount(a MemoryAccount) *runAccount {
	return &runAccount{acct: a, changed: make(chan struct{})}
}

// reserve blocks until est bytes are reserved (true), or no member runs and this one goes
// unreserved and alone (false), or ctx is done. Unless it fails, call free after.
func (r *runAccount) reserve(ctx context.Context, est int64) (bool, error) {
	if r == nil || r.acct == nil {
		return false, nil
	}
	for {
		r.mu.Lock()
		if !r.alone && r.acct.ReserveMemory(est) {
			r.running++
			r.mu.Unlock()
			return true, nil
		}
		if r.running == 0 {
			r.running++
			r.alone = true
			r.mu.Unlock()
			return false, nil
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return false, context.Cause(ctx)
		case <-ch:
		}
	}
}

// free ends what reserve began.
func (r *runAccount) free(est int64, reserved bool) {
	if r == nil || r.acct == nil {
		return
	}
	r.mu.Lock()
	if reserved {
		r.acct.FreeMemory(est)
	} else {
		r.alone = false
	}
	r.running--
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// memberThreads splits workers CPU tokens between members members trained at once, each
// given at least memberWorkers GEMM threads: when there are fewer members than tokens, the
// spare tokens become GEMM threads of the members (member k of the runnable ones, in index
// order, gets one of the remainder when k < workers mod members). The split changes the speed
// only: gemm.Parallel's results do not depend on its thread count.
func memberThreads(workers, memberWorkers, members int) []int {
	out := make([]int, members)
	for k := range out {
		out[k] = memberWorkers
		if members < workers {
			n := workers / members
			if k < workers%members {
				n++
			}
			out[k] = max(memberWorkers, n)
		}
	}
	return out
}
