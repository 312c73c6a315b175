package graphmodel

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"unsafe"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// BuildFunc adds a block to g and returns its output. x is the rows×inWidth float32 input
// matrix (its value is bound by the block). The function creates its learnables as float32
// input nodes in g, each with a unique gorgonia.WithName and an initial value drawn from rng
// only, e.g.
//
//	w := gorgonia.NewMatrix(g, gorgonia.Float32, gorgonia.WithShape(in, 64),
//		gorgonia.WithName("W1"), gorgonia.WithInit(graphmodel.GlorotUniform(rng)))
//
// (gorgonia's own GlorotU, Gaussian, ... seed themselves from the clock: with them the same
// seed does not give the same model). The output must be a float32 rows×k matrix with k not
// depending on rows.
//
// The function is called again for every new batch size (the last batch of an epoch is
// usually smaller), so it must build the same learnables (names and shapes) every time and
// must not keep state between calls; only the first call's initial values are used, later
// calls' learnables are bound to the trained values. Ops with randomness or a train/eval mode
// (gorgonia.Dropout, BatchNorm, random nodes) are rejected: put nn's dropout or batch_norm
// layers around the block instead.
type BuildFunc func(g *gorgonia.ExprGraph, x *gorgonia.Node, rng *rand.Rand) (*gorgonia.Node, error)

// Options configures a gorgonia block. The zero value is usable.
type Options struct {
	// MaxGraphs is the number of compiled graphs kept, one per batch size (the least recently
	// used is dropped). Default 8.
	MaxGraphs int
	// NoDecay reports whether the learnable with the given name (as given to WithName) and
	// shape is exempt from L1/L2 penalties and decoupled weight decay. Default: rank-1
	// learnables (biases, scales) are exempt, matrices and higher ranks are not.
	NoDecay func(name string, shape []int) bool
}

// probeRows is the batch size of the graph built at construction to discover the learnables
// and the output width.
const probeRows = 2

// buildMu serialises graph construction and compilation: gorgonia keeps package-level state
// (shared constant nodes, node pools) that is not safe for concurrent graph building.
var buildMu sync.Mutex

// Register makes the block available to nn specs as {"type": "custom", "custom": name} (see
// nn.RegisterCustom). Call it once per name, before nn.Build or nn.Load of a model that uses
// it.
func Register(name string, build BuildFunc, opts Options) error {
	if build == nil {
		return fmt.Errorf("graphmodel: register %q: nil BuildFunc", name)
	}
	return nn.RegisterCustom(name, Factory(build, opts))
}

// Factory returns an nn.CustomFactory that builds a Block from build; Register uses it. The
// graph decides the output width: a spec's units, when set, is checked against it by nn.
func Factory(build BuildFunc, opts Options) nn.CustomFactory {
	return func(cfg nn.CustomConfig, rng *rand.Rand) (nn.CustomLayer, error) {
		return New(cfg.InWidth, build, opts, rng)
	}
}

// Block is an nn.CustomLayer computed by a gorgonia graph. Its learnables' values live in the
// Value slices of its params: the graph reads them in place (no copy per step), so optimizer
// updates, EMA swaps, checkpoint restores and Load take effect on the next pass. Each pass
// copies x in and y out; Backward copies dL/dy in and the gradients out.
//
// Forward compiles a forward-only program; Backward runs a second program that recomputes the
// forward pass and computes, through gorgonia.Grad, the gradient of Σ(y ⊙ dy) with respect to
// the learnables (and x when needed): a training step costs two forward passes and one
// backward pass. A Block is not safe for concurrent use.
type Block struct {
	in, out int
	build   BuildFunc
	opts    Options
	params  []*optim.Param
	names   []string // learnable names, in params order
	graphs  []*graph // by recency of use, most recent last
	last    *graph   // graph of the last Forward
	y, dx   []float32
}

// graph is the block's graph and programs for one batch size.
type graph struct {
	rows      int
	g         *gorgonia.ExprGraph
	x, y, dy  *gorgonia.Node
	learn     []*gorgonia.Node // in Block.params order
	bound     []*float32       // first element of the Value slice each learnable is bound to
	grads     gorgonia.Nodes   // d(Σ y⊙dy)/d learn..., then d/dx
	xbuf, dyb []float32        // backing arrays of x and dy
	fwd       gorgonia.VM      // computes y
	bwd       gorgonia.VM      // computes grads (all of them)
	bwdNoDX   gorgonia.VM      // computes grads[:len(learn)]
}

// New builds a Block for inWidth input columns, drawing its initial weights from rng (through
// the initialisers the BuildFunc passes to its learnables).
func New(inWidth int, build BuildFunc, opts Options, rng *rand.Rand) (*Block, error) {
	if inWidth < 1 {
		return nil, fmt.Errorf("graphmodel: input width %d, want >= 1", inWidth)
	}
	if build == nil {
		return nil, fmt.Errorf("graphmodel: nil BuildFunc")
	}
	if opts.MaxGraphs <= 0 {
		opts.MaxGraphs = 8
	}
	if opts.NoDecay == nil {
		opts.NoDecay = func(_ string, shape []int) bool { return len(shape) <= 1 }
	}
	b := &Block{in: inWidth, build: build, opts: opts}
	gr, err := b.newGraph(probeRows, rng, true)
	if err != nil {
		return nil, err
	}
	b.remember(gr)
	return b, nil
}

// OutWidth implements nn.CustomLayer.
func (b *Block) OutWidth() int { return b.out }

// Params implements nn.CustomLayer: one param per learnable, named as in the graph, in the
// order the BuildFunc created them.
func (b *Block) Params() []*optim.Param { return b.params }

// newGraph builds (under buildMu) the graph for a batch size. With first set it discovers the
// learnables and creates the params from their initial values; otherwise it checks that the
// learnables match and binds them to the params' values.
func (b *Block) newGraph(rows int, rng *rand.Rand, first bool) (gr *graph, err error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			gr, err = nil, fmt.Errorf("graphmodel: building the graph for %d rows panicked: %v", rows, r)
		}
	}()
	g := gorgonia.NewGraph()
	gr = &graph{rows: rows, g: g, xbuf: make([]float32, rows*b.in)}
	gr.x = gorgonia.NewMatrix(g, gorgonia.Float32, gorgonia.WithShape(rows, b.in), gorgonia.WithName("x"))
	y, err := b.build(g, gr.x, rng)
	if err != nil {
		return nil, fmt.Errorf("graphmodel: build graph for %d rows: %w", rows, err)
	}
	if err := b.checkOutput(y, rows, first); err != nil {
		return nil, err
	}
	gr.y = y
	if err := checkOps(g); err != nil {
		return nil, err
	}
	learn, err := b.learnables(g, gr.x, rows, first)
	if err != nil {
		return nil, err
	}
	gr.learn = learn
	gr.dyb = make([]float32, rows*b.out)
	gr.dy = gorgonia.NewMatrix(g, gorgonia.Float32, gorgonia.WithShape(rows, b.out), gorgonia.WithName("dy"))
	prod, err := gorgonia.HadamardProd(y, gr.dy)
	if err != nil {
		return nil, fmt.Errorf("graphmodel: y ⊙ dy: %w", err)
	}
	cost, err := gorgonia.Sum(prod)
	if err != nil {
		return nil, fmt.Errorf("graphmodel: Σ y ⊙ dy: %w", err)
	}
	wrt := append(append([]*gorgonia.Node(nil), learn...), gr.x)
	if gr.grads, err = gorgonia.Grad(cost, wrt...); err != nil {
		return nil, fmt.Errorf("graphmodel: differentiate the block (every learnable must influence the output through differentiable ops): %w", err)
	}
	if err := gorgonia.Let(gr.x, tensor.New(tensor.WithBacking(gr.xbuf), tensor.WithShape(rows, b.in))); err != nil {
		return nil, fmt.Errorf("graphmodel: bind x: %w", err)
	}
	if err := gorgonia.Let(gr.dy, tensor.New(tensor.WithBacking(gr.dyb), tensor.WithShape(rows, b.out))); err != nil {
		return nil, fmt.Errorf("graphmodel: bind dy: %w", err)
	}
	gr.bound = make([]*float32, len(learn))
	if err := b.bindParams(gr); err != nil {
		return nil, err
	}
	return gr, nil
}

func (b *Block) checkOutput(y *gorgonia.Node, rows int, first bool) error {
	switch {
	case y == nil:
		return fmt.Errorf("graphmodel: the BuildFunc returned a nil output node")
	case y.Dtype() != tensor.Float32:
		return fmt.Errorf("graphmodel: the output is %v, want float32 (build the block in gorgonia.Float32; x is float32)", y.Dtype())
	case y.Dims() != 2 || y.Shape()[0] != rows:
		return fmt.Errorf("graphmodel: the output has shape %v for %d input rows, want (%d, k): a matrix with one row per input row (use gorgonia.Reshape)", y.Shape(), rows, rows)
	}
	k := y.Shape()[1]
	if first {
		if k < 1 {
			return fmt.Errorf("graphmodel: the output has %d columns", k)
		}
		b.out = k
	} else if k != b.out {
		return fmt.Errorf("graphmodel: the output has %d columns for %d rows but %d for %d rows: the width must not depend on the batch size", k, rows, b.out, probeRows)
	}
	return nil
}

// checkOps rejects ops whose result would differ between the forward program and the
// recomputed forward pass of the backward program.
func checkOps(g *gorgonia.ExprGraph) error {
	for _, n := range g.AllNodes() {
		op := n.Op()
		if op == nil {
			continue
		}
		_, trainMode := op.(gorgonia.TrainModeOp)
		typ := strings.ToLower(fmt.Sprintf("%T", op))
		if trainMode || strings.Contains(typ, "random") || strings.Contains(typ, "dropout") {
			return fmt.Errorf("graphmodel: node %q uses op %v, which is random or has a train/eval mode; a gorgonia block must be deterministic (its backward pass recomputes the forward pass): use nn's dropout, gaussian_noise or batch_norm layers around the block instead", n.Name(), op)
		}
	}
	return nil
}

// learnables returns the input nodes of g other than x, in creation order, creating the
// params (first) or checking them against the params.
func (b *Block) learnables(g *gorgonia.ExprGraph, x *gorgonia.Node, rows int, first bool) ([]*gorgonia.Node, error) {
	var learn []*gorgonia.Node
	seen := map[string]bool{}
	for _, n := range g.Inputs() {
		if n == x {
			continue
		}
		name := n.Name()
		switch {
		case name == "" || strings.HasPrefix(name, "%!s(<nil>)"): // gorgonia's placeholder for an unnamed input
			return nil, fmt.Errorf("graphmodel: a learnable of shape %v has no name (gorgonia calls it %q): create it with gorgonia.WithName", n.Shape(), name)
		case seen[name]:
			return nil, fmt.Errorf("graphmodel: two learnables are named %q: names must be unique", name)
		case n.Dtype() != tensor.Float32:
			return nil, fmt.Errorf("graphmodel: learnable %q is %v, want float32", name, n.Dtype())
		case n.IsScalar():
			return nil, fmt.Errorf("graphmodel: learnable %q is a scalar: make it a vector of length 1 (gorgonia.NewVector with WithShape(1))", name)
		}
		seen[name] = true
		learn = append(learn, n)
	}
	if first {
		for _, n := range learn {
			v := n.Value()
			if v == nil {
				return nil, fmt.Errorf("graphmodel: learnable %q has no initial value: create it with gorgonia.WithInit(graphmodel.GlorotUniform(rng)) or gorgonia.WithValue", n.Name())
			}
			data, ok := v.Data().([]float32)
			if !ok {
				return nil, fmt.Errorf("graphmodel: learnable %q holds %T, want []float32", n.Name(), v.Data())
			}
			shape := []int(n.Shape().Clone())
			if len(shape) == 0 {
				shape = []int{1}
			}
			p := &optim.Param{Name: n.Name(), Shape: shape, Value: append([]float32(nil), data...), Grad: make([]float32, len(data)),
				NoDecay: b.opts.NoDecay(n.Name(), shape)}
			b.params = append(b.params, p)
			b.names = append(b.names, n.Name())
		}
		return learn, nil
	}
	if len(learn) != len(b.names) {
		return nil, fmt.Errorf("graphmodel: the graph for %d rows has %d learnables, the first build had %d: the BuildFunc must create the same learnables for every batch size", rows, len(learn), len(b.names))
	}
	byName := map[string]*gorgonia.Node{}
	for _, n := range learn {
		byName[n.Name()] = n
	}
	ordered := make([]*gorgonia.Node, len(b.names))
	for i, name := range b.names {
		n := byName[name]
		if n == nil {
			return nil, fmt.Errorf("graphmodel: the graph for %d rows has no learnable %q: the BuildFunc must create the same learnables for every batch size", rows, name)
		}
		if n.Shape().TotalSize() != b.params[i].Size() {
			return nil, fmt.Errorf("graphmodel: learnable %q has shape %v for %d rows but %v at the first build", name, n.Shape(), rows, b.params[i].Shape)
		}
		ordered[i] = n
	}
	return ordered, nil
}

// bindParams binds every learnable of gr to its param's current Value slice (when it is not
// already bound to it).
func (b *Block) bindParams(gr *graph) error {
	for i, p := range b.params {
		ptr := unsafe.SliceData(p.Value)
		if gr.bound[i] == ptr {
			continue
		}
		n := gr.learn[i]
		if err := gorgonia.Let(n, tensor.New(tensor.WithBacking(p.Value), tensor.WithShape(n.Shape()...))); err != nil {
			return fmt.Errorf("graphmodel: bind learnable %q: %w", b.names[i], err)
		}
		gr.bound[i] = ptr
	}
	return nil
}

// graphFor returns the graph for rows, building it on first use.
func (b *Block) graphFor(rows int) (*graph, error) {
	for i := len(b.graphs) - 1; i >= 0; i-- {
		if gr := b.graphs[i]; gr.rows == rows {
			b.remember(gr)
			return gr, nil
		}
	}
	// The initial values of a rebuilt graph are discarded (bindParams replaces them).
	gr, err := b.newGraph(rows, rand.New(rand.NewPCG(0, 0)), false)
	if err != nil {
		return nil, err
	}
	b.remember(gr)
	return gr, nil
}

// remember moves gr to the most recent position, dropping the least recently used graph when
// the cache is full.
func (b *Block) remember(gr *graph) {
	for i, o := range b.graphs {
		if o == gr {
			b.graphs = append(b.graphs[:i], b.graphs[i+1:]...)
			break
		}
	}
	b.graphs = append(b.graphs, gr)
	if len(b.graphs) > b.opts.MaxGraphs {
		old := b.graphs[0]
		b.graphs = b.graphs[1:]
		old.close()
	}
}

func (gr *graph) close() {
	for _, m := range []gorgonia.VM{gr.fwd, gr.bwd, gr.bwdNoDX} {
		if m != nil {
			_ = m.Close()
		}
	}
}

// compile returns a tape machine computing outputs from the inputs they depend on.
func compile(g *gorgonia.ExprGraph, outputs gorgonia.Nodes) (m gorgonia.VM, err error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("graphmodel: compiling the graph panicked: %v", r)
		}
	}()
	inputs := g.ExactSubgraphRoots(outputs...).Inputs()
	prog, locs, err := gorgonia.CompileFunction(g, inputs, outputs)
	if err != nil {
		return nil, fmt.Errorf("graphmodel: compile: %w", err)
	}
	return gorgonia.NewTapeMachine(g, gorgonia.WithPrecompiled(prog, locs)), nil
}

// run executes m from the start, turning a panic inside gorgonia into an error.
func run(m gorgonia.VM) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("graphmodel: gorgonia panicked: %v", r)
		}
	}()
	m.Reset()
	return m.RunAll()
}

// Forward implements nn.CustomLayer. The returned slice is the block's buffer, valid until
// the next Forward.
func (b *Block) Forward(x []float32, rows int, _ bool) ([]float32, error) {
	if rows < 1 || len(x) < rows*b.in {
		return nil, fmt.Errorf("graphmodel: forward: %d values for %d rows × %d inputs", len(x), rows, b.in)
	}
	gr, err := b.graphFor(rows)
	if err != nil {
		return nil, err
	}
	if err := b.bindParams(gr); err != nil {
		return nil, err
	}
	if gr.fwd == nil {
		if gr.fwd, err = compile(gr.g, gorgonia.Nodes{gr.y}); err != nil {
			return nil, err
		}
	}
	copy(gr.xbuf, x[:rows*b.in])
	b.last = nil
	if err := run(gr.fwd); err != nil {
		return nil, fmt.Errorf("graphmodel: forward (%d rows): %w", rows, err)
	}
	yv, err := float32Data(gr.y)
	if err != nil {
		return nil, err
	}
	b.y = grow(b.y, rows*b.out)
	copy(b.y, yv)
	b.last = gr
	return b.y, nil
}

// Backward implements nn.CustomLayer: it overwrites the Grad of every param that is not
// Frozen and returns dL/dx (the block's buffer, valid until the next Backward) when needDX.
func (b *Block) Backward(dy []float32, rows int, needDX bool) ([]float32, error) {
	gr := b.last
	if gr == nil || gr.rows != rows {
		return nil, fmt.Errorf("graphmodel: backward for %d rows without a successful forward pass of that batch", rows)
	}
	if len(dy) < rows*b.out {
		return nil, fmt.Errorf("graphmodel: backward: %d output gradients for %d rows × %d outputs", len(dy), rows, b.out)
	}
	if err := b.bindParams(gr); err != nil {
		return nil, err
	}
	if !needDX && len(gr.learn) == 0 {
		return nil, nil // nothing to differentiate
	}
	var err error
	m := &gr.bwdNoDX
	outputs := gr.grads[:len(gr.learn)]
	if needDX {
		m, outputs = &gr.bwd, gr.grads
	}
	if *m == nil {
		if *m, err = compile(gr.g, outputs); err != nil {
			return nil, err
		}
	}
	copy(gr.dyb, dy[:rows*b.out])
	if err := run(*m); err != nil {
		return nil, fmt.Errorf("graphmodel: backward (%d rows): %w", rows, err)
	}
	for i, p := range b.params {
		if p.Frozen {
			continue
		}
		gv, err := float32Data(gr.grads[i])
		if err != nil {
			return nil, err
		}
		if len(gv) != len(p.Grad) {
			return nil, fmt.Errorf("graphmodel: gradient of %q has %d values, want %d", b.names[i], len(gv), len(p.Grad))
		}
		copy(p.Grad, gv)
	}
	if !needDX {
		return nil, nil
	}
	dxv, err := float32Data(gr.grads[len(gr.learn)])
	if err != nil {
		return nil, err
	}
	b.dx = grow(b.dx, rows*b.in)
	copy(b.dx, dxv)
	return b.dx, nil
}

// float32Data returns the float32 values a node holds after a run.
func float32Data(n *gorgonia.Node) ([]float32, error) {
	v := n.Value()
	if v == nil {
		return nil, fmt.Errorf("graphmodel: node %q has no value after the run", n.Name())
	}
	data, ok := v.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("graphmodel: node %q holds %T, want []float32", n.Name(), v.Data())
	}
	return data, nil
}

// grow returns s with length n, reusing its storage when large enough.
func grow(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float32, n)
}
