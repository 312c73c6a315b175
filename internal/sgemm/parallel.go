package sgemm

import "sync"

// minFMAsPerGoroutine is the least work (multiply-adds) worth handing to another goroutine:
// 2^20 multiply-adds take ~10 µs at ~200 GFLOP/s, several times the cost of starting and
// joining a goroutine.
const minFMAsPerGoroutine = 1 << 20

// packCostInFMAs weighs one packed float against one multiply-add when choosing how to
// split the work: packing runs in Go at ~1–2 floats/ns, the kernel at ~100 FMAs/ns.
const packCostInFMAs = 32

// gemmTask is one goroutine's share of a parallel product: rows [i0, i1), columns [j0, j1).
type gemmTask struct {
	kern           *microKernel
	transA, transB bool
	i0, i1, j0, j1 int
	k              int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
	done           *sync.WaitGroup
}

func (t *gemmTask) run() {
	ws := workspacePool.Get().(*workspace)
	gemmBlock(t.kern, ws, t.transA, t.transB, t.i0, t.i1, t.j0, t.j1, t.k, t.alpha, t.a, t.lda, t.b, t.ldb, t.beta, t.c, t.ldc)
	workspacePool.Put(ws)
}

// parallelJob holds the tasks of one SgemmParallel call; it is pooled so that steady-state
// calls allocate nothing.
type parallelJob struct {
	tasks []gemmTask
	wg    sync.WaitGroup
}

var jobPool = sync.Pool{New: func() any { return new(parallelJob) }}

// taskQueue hands tasks to goroutines started by SgemmParallel. Every send is preceded by
// starting exactly one runQueuedTask, so each goroutine receives exactly one task (not
// necessarily its own caller's) and then exits: nothing outlives the calls.
var taskQueue = make(chan *gemmTask, 256)

// runQueuedTask takes no arguments so that the go statement allocates no closure.
func runQueuedTask() {
	t := <-taskQueue
	t.run()
	t.done.Done()
}

// SgemmParallel is Sgemm over up to threads goroutines (the calling one included; threads < 1
// counts as 1). It splits C into a grid of blocks over M and N only, never over K, along
// register-tile boundaries, so the result is bit-identical to Sgemm whatever the thread
// count. Products too small to gain from it (under ~2^20 multiply-adds per goroutine) run on
// the calling goroutine. Steady-state calls allocate nothing: packing buffers and task lists
// are pooled, and started goroutines exit before SgemmParallel returns.
func SgemmParallel(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	kern := activeKernel
	mBlock, nBlock := splitGrid(threads, m, n, k, kern.mr, kern.nr)
	tm, tn := ceilDiv(m, mBlock), ceilDiv(n, nBlock)
	if tm*tn == 1 {
		ws := workspacePool.Get().(*workspace)
		gemmBlock(kern, ws, transA, transB, 0, m, 0, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		workspacePool.Put(ws)
		return
	}

	job := jobPool.Get().(*parallelJob)
	if cap(job.tasks) < tm*tn {
		job.tasks = make([]gemmTask, tm*tn)
	}
	job.tasks = job.tasks[:tm*tn]
	for bi := range tm {
		for bj := range tn {
			job.tasks[bi*tn+bj] = gemmTask{
				kern: kern, transA: transA, transB: transB,
				i0: bi * mBlock, i1: min(m, (bi+1)*mBlock),
				j0: bj * nBlock, j1: min(n, (bj+1)*nBlock),
				k: k, alpha: alpha, beta: beta,
				a: a, b: b, c: c, lda: lda, ldb: ldb, ldc: ldc,
				done: &job.wg,
			}
		}
	}
	job.wg.Add(len(job.tasks) - 1)
	for i := 1; i < len(job.tasks); i++ {
		go runQueuedTask()
		taskQueue <- &job.tasks[i]
	}
	job.tasks[0].run()
	job.wg.Wait()
	clear(job.tasks) // drop references to the caller's matrices before pooling
	jobPool.Put(job)
}

// splitGrid chooses the block sizes (multiples of mr and nr) of the grid SgemmParallel splits C
// into: at most threads blocks, at least minFMAsPerGoroutine multiply-adds per block, and the
// smallest per-goroutine cost, counting both the multiply-adds and the packing of the A rows
// and B columns each goroutine needs. Ties go to fewer blocks.
func splitGrid(threads, m, n, k, mr, nr int) (mBlock, nBlock int) {
	mTiles, nTiles := ceilDiv(m, mr), ceilDiv(n, nr)
	maxBlocks := max(1, min(threads, m*n*k/minFMAsPerGoroutine))
	mBlock, nBlock = mTiles*mr, nTiles*nr
	bestCost := -1
	for tm := 1; tm <= min(maxBlocks, mTiles); tm++ {
		for tn := 1; tm*tn <= maxBlocks && tn <= nTiles; tn++ {
			mb := ceilDiv(mTiles, tm) * mr
			nb := ceilDiv(nTiles, tn) * nr
			cost := (mb*nb + packCostInFMAs*(mb+nb)) * k
			if bestCost < 0 || cost < bestCost {
				bestCost, mBlock, nBlock = cost, mb, nb
			}
		}
	}
	return mBlock, nBlock
}
