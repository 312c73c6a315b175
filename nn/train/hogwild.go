package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// Hogwild configures lock-free asynchronous SGD (Recht et al., 2011): Threads goroutines each
// take mini-batches of the epoch's shuffled rows and update one shared set of weights without
// locks. On a wide, sparse input most of a step's gradient is zero and the threads rarely touch
// the same weights, so they scale without coordination.
//
// It is the one place where results depend on scheduling: which weights a step reads depends on
// which updates of the other threads have landed, so a run is not reproducible bit for bit
// (Fit logs a warning; the train stage says so in its manifest). Everything else (data order,
// initial weights, evaluation) stays seeded.
//
// Every access to the shared weights is an atomic 32-bit load or store of the float's bits
// (sync/atomic), so that the run is free of data races in Go's memory model and under the race
// detector; an update is a load, a subtraction and a store, not a compare-and-swap, so a
// concurrent update of the same element may be lost, as in Hogwild. Each thread computes its
// gradients on its own copy of the model, refreshed from the shared weights before each step.
//
// Restrictions (Config errors): plain sgd (weight_decay allowed, no momentum: its buffer
// would be shared state), no EMA, no Augment or TargetNoise (they draw from the trainer's one
// random stream), and a model without batch normalisation (its running statistics are
// shared state updated by every step). Step hooks do not run (there is no single model state
// between steps); epoch hooks, evaluation, early stopping and checkpoints run between epochs,
// when the threads have stopped. Clipping applies to each thread's gradient.
type Hogwild struct {
	// Threads is the number of goroutines; 0 (the default) trains synchronously. Each thread
	// runs its matrix products on one core (Config.Workers is not used).
	Threads int
}

// streamHogwild seeds the noise streams of the threads' model copies (stream streamHogwild+i).
const streamHogwild = 100

// HogwildNote is what the train stage writes in its manifest, and Fit in its log, about a
// Hogwild run.
const HogwildNote = "hogwild: %d threads update shared weights without locks: this run is not reproducible bit for bit (the data order and initial weights are)"

// Check says what in c cannot work with Hogwild (nil when Threads is 0). Fit checks it; a
// caller that builds a Config from user settings may check earlier, to name the setting.
func (h Hogwild) Check(c Config) error {
	if h.Threads < 0 {
		return fmt.Errorf("train: hogwild threads %d < 0", h.Threads)
	}
	if h.Threads == 0 {
		return nil
	}
	var bad []string
	if name := strings.ToLower(c.Optimizer.Name); name != optim.NameSGD {
		if name == "" {
			name = optim.NameAdam + " (the default)"
		}
		bad = append(bad, fmt.Sprintf("optimizer %s (hogwild updates the shared weights by plain sgd: set the optimizer to sgd)", name))
	}
	if c.Optimizer.Momentum != 0 {
		bad = append(bad, "momentum (its buffer would be shared state: set momentum to 0)")
	}
	if c.EMADecay > 0 {
		bad = append(bad, "EMA (an average of weights that change under it: turn EMA off)")
	}
	if c.Augment != nil {
		bad = append(bad, "augmentation (it draws from the trainer's one random stream)")
	}
	if c.TargetNoise > 0 {
		bad = append(bad, "target noise (it draws from the trainer's one random stream)")
	}
	if c.Semi != nil {
		bad = append(bad, "semi-supervised training (its unlabeled batches and teacher are the trainer's state)")
	}
	if len(bad) > 0 {
		return fmt.Errorf("train: hogwild cannot be used with %s", strings.Join(bad, "; "))
	}
	return nil
}

// hogwild is the state of a Hogwild Fit: the shared weights (the model's params) seen as
// uint32 words, and one model copy and batch buffers per thread.
type hogwild struct {
	shared  []*optim.Param
	words   [][]uint32
	threads []hogwildThread
	// inputRows is the index in shared of the first layer's weight matrix when its rows are
	// the model's inputs (a dense first layer on the numeric inputs, no embeddings), else -1.
	// Its rows of inputs that are zero throughout a batch neither change the forward pass
	// (they multiply zeros) nor get a gradient, so a thread reads and updates only the rows
	// of the batch's non-zero inputs: on a wide, sparse input most rows are skipped.
	inputRows int
}

type hogwildThread struct {
	m      *nn.Model
	buf    *batchBuffers
	active []int  // the batch's non-zero input columns (inputRows)
	seen   []bool // scratch of activeColumns
}

// newHogwild prepares the threads. The model must have no buffers (batch normalisation).
func (r *run) newHogwild() (*hogwild, error) {
	if bufs := r.m.Buffers(); len(bufs) > 0 {
		return nil, fmt.Errorf("train: hogwild cannot train a model with batch normalisation (%s keeps running statistics that every step would update): remove batch_norm or hogwild", layerName(bufs[0].Name))
	}
	h := &hogwild{shared: r.m.Params(), inputRows: -1}
	for _, p := range h.shared {
		h.words = append(h.words, float32Words(p.Value))
	}
	spec := r.m.Spec()
	// A weight penalty on the matrix would give every row a gradient (and a loss term).
	if len(spec.Layers) > 0 && spec.Layers[0].Type == nn.LayerDense && spec.Layers[0].Tie == "" && len(spec.Embeddings) == 0 && len(spec.InputShape) == 0 &&
		spec.L1 == 0 && spec.L2 == 0 && spec.Layers[0].L1 == 0 && spec.Layers[0].L2 == 0 && len(spec.ParamDiffPenalties) == 0 &&
		len(h.shared) > 0 && len(h.shared[0].Shape) == 2 && h.shared[0].Shape[0] == spec.NumInputs {
		h.inputRows = 0
	}
	maxBS := r.cfg.MaxBatchSize(r.train.Len())
	for i := 0; i < r.cfg.Hogwild.Threads; i++ {
		m, err := nn.Build(r.m.Spec(), rand.New(rand.NewPCG(r.cfg.Seed, streamHogwild+uint64(i))))
		if err != nil {
			return nil, fmt.Errorf("train: hogwild: copy the model for thread %d: %w", i, err)
		}
		for _, hs := range r.m.Heads() {
			if w := r.m.ClassWeights(hs.Name); w != nil {
				if err := m.SetClassWeights(hs.Name, w); err != nil {
					return nil, err
				}
			}
		}
		m.SetWorkers(1)
		m.SetNoiseSource(rand.NewPCG(r.cfg.Seed, streamHogwild+uint64(i)))
		h.threads = append(h.threads, hogwildThread{m: m, buf: newBatchBuffers(r.train, maxBS), seen: make([]bool, r.train.NumInputs)})
	}
	r.cfg.Logger.Warn().Int("threads", r.cfg.Hogwild.Threads).Msgf(HogwildNote, r.cfg.Hogwild.Threads)
	return h, nil
}

// float32Words views v as the uint32 words of its floats' bits, for sync/atomic.
func float32Words(v []float32) []uint32 {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(&v[0])), len(v))
}

func loadFloat(w *uint32) float32     { return math.Float32frombits(atomic.LoadUint32(w)) }
func storeFloat(w *uint32, v float32) { atomic.StoreUint32(w, math.Float32bits(v)) }

// hogwildEpoch runs one epoch of the shuffled rows r.perm in batches of bs, taken in turn by
// the threads, and adds the batch losses to the epoch's sums.
func (r *run) hogwildEpoch(ctx context.Context, bs, stepsPerEpoch int, lossSum *float64, lossRows *int, headSums []float64) error {
	h := r.hogwild
	n := r.train.Len()
	var next atomic.Int64
	type sums struct {
		loss  float64
		rows  int
		heads []float64
		err   error
	}
	out := make([]sums, len(h.threads))
	var wg sync.WaitGroup
	for ti := range h.threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &out[ti]
			s.heads = make([]float64, len(headSums))
			s.err = r.hogwildThread(ctx, &h.threads[ti], &next, bs, stepsPerEpoch, n, s.heads, &s.loss, &s.rows)
		}()
	}
	wg.Wait()
	r.step += min(int(next.Load()), stepsPerEpoch)
	for _, s := range out {
		if s.err != nil {
			for _, p := range h.shared {
				if !allFinite(p.Value) {
					_ = restore(r.m, r.lastGood)
					return fmt.Errorf("%w; the shared weights were non-finite: those of the last completed epoch were restored", s.err)
				}
			}
			return s.err
		}
	}
	for _, s := range out {
		*lossSum += s.loss
		*lossRows += s.rows
		for i, v := range s.heads {
			headSums[i] += v
		}
	}
	return nil
}

// hogwildThread takes batches until the epoch's are all taken: it reads the shared weights
// into its model copy, computes the batch gradient there and applies the sgd update to the
// shared weights, element by element, skipping zero gradients (where the update would store
// the value it read, when no weight decay applies).
func (r *run) hogwildThread(ctx context.Context, th *hogwildThread, next *atomic.Int64, bs, stepsPerEpoch, n int, heads []float64, lossSum *float64, lossRows *int) error {
	h := r.hogwild
	cfg := r.cfg
	local := th.m.Params()
	for {
		k := int(next.Add(1) - 1)
		if k >= stepsPerEpoch {
			return nil
		}
		step := r.step + k
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("train: stopped at epoch %d, step %d: %w", r.epoch, step, err)
		}
		b, t := th.buf.gather(r.train, r.perm[k*bs:min((k+1)*bs, n)])
		if h.inputRows >= 0 {
			th.active = activeColumns(th.active[:0], th.seen, b.X, b.Rows)
		}
		for i, p := range local {
			words := h.words[i]
			if i == h.inputRows {
				width := p.Shape[1]
				for _, c := range th.active {
					for j := c * width; j < (c+1)*width; j++ {
						p.Value[j] = loadFloat(&words[j])
					}
				}
				continue
			}
			for j := range p.Value {
				p.Value[j] = loadFloat(&words[j])
			}
		}
		loss, err := th.m.TrainStep(b, t)
		if err != nil {
			return fmt.Errorf("train: epoch %d, step %d: %w", r.epoch, step, err)
		}
		if cfg.ClipValue > 0 {
			optim.ClipValue(local, cfg.ClipValue)
		}
		norm := 0.0
		if cfg.ClipNorm > 0 {
			norm = optim.ClipGlobalNorm(local, cfg.ClipNorm)
		} else {
			norm = optim.GradNorm(local)
		}
		if !finite(loss.Total) || !finite(norm) {
			return fmt.Errorf("train: epoch %d, step %d (hogwild): non-finite loss %g or gradient norm %g; the shared weights may have taken other threads' updates since (lower the learning rate or set ClipNorm)", r.epoch, step, loss.Total, norm)
		}
		lr := r.sched.LR(r.baseLR, optim.Progress{Step: step, Epoch: r.epoch, StepsPerEpoch: stepsPerEpoch, Epochs: cfg.Epochs})
		for i, p := range local {
			shared := h.shared[i]
			if shared.Frozen {
				continue
			}
			plr := lr
			if shared.LRScale != 0 {
				plr *= float64(shared.LRScale)
			}
			wd := float32(cfg.Optimizer.WeightDecay)
			if shared.NoDecay {
				wd = 0
			}
			if i == h.inputRows && wd == 0 {
				width := p.Shape[1]
				for _, c := range th.active {
					hogwildSGD(h.words[i][c*width:(c+1)*width], p.Grad[c*width:(c+1)*width], float32(plr), 0)
				}
				continue
			}
			hogwildSGD(h.words[i], p.Grad, float32(plr), wd)
		}
		*lossSum += loss.Total * float64(b.Rows)
		*lossRows += b.Rows
		for i, v := range loss.Heads {
			heads[i] += v * float64(b.Rows)
		}
	}
}

// hogwildSGD applies w -= lr*(g + wd*w) to the shared words, by atomic loads and stores.
// Elements whose gradient is zero are skipped when wd is zero.
func hogwildSGD(words []uint32, grad []float32, lr, wd float32) {
	for j, g := range grad {
		if g == 0 && wd == 0 {
			continue
		}
		w := &words[j]
		v := loadFloat(w)
		// The explicit conversion rounds the product before the subtraction (no fused
		// multiply-add), as the synchronous sgd kernel does.
		storeFloat(w, v-float32(lr*(g+float32(wd*v))))
	}
}

// activeColumns appends to dst, in increasing order, the columns of the rows×width matrix x
// (width = len(x)/rows) that hold a non-zero value in some row; seen is scratch of width
// flags, all false, which it leaves all false.
func activeColumns(dst []int, seen []bool, x []float32, rows int) []int {
	if rows == 0 {
		return dst
	}
	width := len(x) / rows
	start := len(dst)
	for r := 0; r < rows; r++ {
		for c, v := range x[r*width : (r+1)*width] {
			if v != 0 && !seen[c] {
				seen[c] = true
				dst = append(dst, c)
			}
		}
	}
	for _, c := range dst[start:] {
		seen[c] = false
	}
	slices.Sort(dst[start:])
	return dst
}
