package nn

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"

	"github.com/pipe-ml/pipe/nn/optim"
)

// CustomLayer is a trunk block written outside nn (for example a gorgonia expression graph, see
// nn/gorgonia). A model holds it like any built-in layer: its params are trained by the same
// optimizers, schedules, clipping, EMA and early stopping, saved and loaded by name, frozen by
// Freeze and penalised by L1/L2. All matrices are row-major float32, rows×width.
//
// A CustomLayer is used by one model from one goroutine; it need not be safe for concurrent
// use.
type CustomLayer interface {
	// OutWidth is the number of output columns; it must not change after construction.
	OutWidth() int
	// Params are the block's trainable tensors, in a stable order, with names local to the
	// block ("W1", "b1": non-empty and unique). Build prefixes each name with the layer name
	// and "/" ("gated_1/W1"), so the block must not rename them afterwards. Params is called
	// once, at Build; the block must keep using these same *optim.Param, reading Value when it
	// computes (optimizers update Value in place) and writing Grad in Backward.
	Params() []*optim.Param
	// Forward computes the output of x (rows×inWidth; the block must not modify or retain it
	// past the next Backward). train is false for evaluation and prediction. The returned slice
	// (rows×OutWidth) may be an internal buffer that stays valid until the next Forward; nn
	// does not modify it.
	Forward(x []float32, rows int, train bool) ([]float32, error)
	// Backward receives dL/dy (rows×OutWidth) for the rows of the last Forward with train set;
	// it may overwrite dy. It must overwrite (not add to) the Grad of every param that is not
	// Frozen, leave Frozen params' Grad untouched and, when needDX, return dL/dx (rows×inWidth,
	// an internal buffer valid until the next Backward); else it may return nil.
	Backward(dy []float32, rows int, needDX bool) ([]float32, error)
}

// CustomConfig is what a CustomFactory is given to build one layer.
type CustomConfig struct {
	// Layer is the layer's name in the model ("custom_1" unless the spec names it).
	Layer string
	// Block is the registered name (LayerSpec.Custom).
	Block string
	// InWidth is the number of input columns.
	InWidth int
	// Units is LayerSpec.Units: 0 when the spec leaves the width to the block; otherwise the
	// block's OutWidth must equal it.
	Units int
}

// CustomFactory builds a new, independent instance of a registered block, drawing its initial
// weights from rng only (so that the same seed gives the same model).
type CustomFactory func(cfg CustomConfig, rng *rand.Rand) (CustomLayer, error)

// customRegistry holds the blocks registered with RegisterCustom.
var customRegistry = struct {
	sync.RWMutex
	factories map[string]CustomFactory
}{factories: map[string]CustomFactory{}}

// RegisterCustom makes a block available to specs as {"type": "custom", "custom": name}. Call it
// before Build or Load of a model that uses the block, typically from an init function of the
// package that defines it (Load reports an unregistered block by name). It fails when name is
// empty, factory is nil or name is already registered. It is safe for concurrent use.
func RegisterCustom(name string, factory CustomFactory) error {
	if name == "" {
		return fmt.Errorf("nn: register custom block: empty name")
	}
	if factory == nil {
		return fmt.Errorf("nn: register custom block %q: nil factory", name)
	}
	customRegistry.Lock()
	defer customRegistry.Unlock()
	if _, dup := customRegistry.factories[name]; dup {
		return fmt.Errorf("nn: register custom block %q: a block of that name is already registered (register each block once, e.g. in an init function)", name)
	}
	customRegistry.factories[name] = factory
	return nil
}

// CustomBlocks returns the names of the registered custom blocks, sorted.
func CustomBlocks() []string {
	customRegistry.RLock()
	defer customRegistry.RUnlock()
	names := make([]string, 0, len(customRegistry.factories))
	for n := range customRegistry.factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// lookupCustom returns the factory of a registered block or an error naming it.
func lookupCustom(name string) (CustomFactory, error) {
	customRegistry.RLock()
	f := customRegistry.factories[name]
	customRegistry.RUnlock()
	if f != nil {
		return f, nil
	}
	known := "none"
	if names := CustomBlocks(); len(names) > 0 {
		known = strings.Join(names, ", ")
	}
	return nil, fmt.Errorf("custom block %q is not registered in this program (registered: %s): import the package that registers it, or call its Register function (e.g. nn/gorgonia's graphmodel.Register) before Build or Load", name, known)
}

// validateCustom checks the fields of a custom layer spec.
func (l *LayerSpec) validateCustom() error {
	if l.Custom == "" {
		return fmt.Errorf("custom layer needs \"custom\": the name of a registered block")
	}
	if l.Activation != "" || l.Init != "" || l.NoBias || l.Norm != "" {
		return fmt.Errorf("custom layer %q: activation, init, no_bias and norm do not apply (the block defines its own; add an activation layer after it instead)", l.Custom)
	}
	if l.Units < 0 {
		return fmt.Errorf("custom layer %q: units %d < 0", l.Custom, l.Units)
	}
	_, err := lookupCustom(l.Custom)
	return err
}

// customLayer adapts a CustomLayer to the layer interface. Errors of Forward and Backward
// cannot travel through layer's signatures: the adapter keeps the first one, hands the next
// layers a zero output of the right size, and the Model method that ran the pass returns it
// (see Model.customErr).
type customLayer struct {
	lname  string
	block  string
	in     int
	out    int
	impl   CustomLayer
	ps     []*optim.Param
	err    error
	zeroY  []float32 // stand-in output after a failed Forward
	zeroDX []float32 // stand-in dL/dx after a failed Backward
}

func newCustomLayer(ls LayerSpec, in int, rng *rand.Rand) (*customLayer, error) {
	f, err := lookupCustom(ls.Custom)
	if err != nil {
		return nil, fmt.Errorf("nn: layer %q: %w", ls.Name, err)
	}
	impl, err := f(CustomConfig{Layer: ls.Name, Block: ls.Custom, InWidth: in, Units: ls.Units}, rng)
	if err != nil {
		return nil, fmt.Errorf("nn: layer %q: custom block %q: %w", ls.Name, ls.Custom, err)
	}
	if impl == nil {
		return nil, fmt.Errorf("nn: layer %q: custom block %q: factory returned nil", ls.Name, ls.Custom)
	}
	out := impl.OutWidth()
	if out < 1 {
		return nil, fmt.Errorf("nn: layer %q: custom block %q has output width %d, want >= 1", ls.Name, ls.Custom, out)
	}
	if ls.Units > 0 && out != ls.Units {
		return nil, fmt.Errorf("nn: layer %q: custom block %q has output width %d but the spec says units = %d", ls.Name, ls.Custom, out, ls.Units)
	}
	c := &customLayer{lname: ls.Name, block: ls.Custom, in: in, out: out, impl: impl}
	seen := map[string]bool{}
	for i, p := range impl.Params() {
		switch {
		case p == nil:
			return nil, fmt.Errorf("nn: layer %q: custom block %q: param %d is nil", ls.Name, ls.Custom, i)
		case p.Name == "":
			return nil, fmt.Errorf("nn: layer %q: custom block %q: param %d has no name", ls.Name, ls.Custom, i)
		case seen[p.Name]:
			return nil, fmt.Errorf("nn: layer %q: custom block %q: duplicate param name %q", ls.Name, ls.Custom, p.Name)
		case len(p.Grad) != len(p.Value) || len(p.Value) != shapeSize(p.Shape):
			return nil, fmt.Errorf("nn: layer %q: custom block %q: param %q has %d values, %d gradients and shape %v; they must agree", ls.Name, ls.Custom, p.Name, len(p.Value), len(p.Grad), p.Shape)
		}
		seen[p.Name] = true
		p.Name = ls.Name + "/" + p.Name
		c.ps = append(c.ps, p)
	}
	return c, nil
}

func shapeSize(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func (c *customLayer) name() string            { return c.lname }
func (c *customLayer) kind() string            { return LayerCustom }
func (c *customLayer) inWidth() int            { return c.in }
func (c *customLayer) outWidth() int           { return c.out }
func (c *customLayer) params() []*optim.Param  { return c.ps }
func (c *customLayer) buffers() []*optim.Param { return nil }
func (c *customLayer) alloc(int)               {}

func (c *customLayer) forward(rc *runCtx, x []float32, rows int) []float32 {
	if c.err == nil {
		y, err := c.impl.Forward(x[:rows*c.in], rows, rc.train)
		switch {
		case err != nil:
			c.err = fmt.Errorf("nn: layer %q (custom block %q): forward: %w", c.lname, c.block, err)
		case len(y) < rows*c.out:
			c.err = fmt.Errorf("nn: layer %q (custom block %q): forward returned %d values for %d rows × %d outputs", c.lname, c.block, len(y), rows, c.out)
		default:
			return y[:rows*c.out]
		}
	}
	c.zeroY = grow(c.zeroY, rows*c.out)
	clear(c.zeroY)
	return c.zeroY
}

func (c *customLayer) backward(_ *runCtx, dy []float32, rows int, needDX bool) []float32 {
	if c.err == nil {
		dx, err := c.impl.Backward(dy[:rows*c.out], rows, needDX)
		switch {
		case err != nil:
			c.err = fmt.Errorf("nn: layer %q (custom block %q): backward: %w", c.lname, c.block, err)
		case !needDX:
			return nil
		case len(dx) < rows*c.in:
			c.err = fmt.Errorf("nn: layer %q (custom block %q): backward returned %d input gradients for %d rows × %d inputs", c.lname, c.block, len(dx), rows, c.in)
		default:
			return dx[:rows*c.in]
		}
	}
	if !needDX {
		return nil
	}
	c.zeroDX = grow(c.zeroDX, rows*c.in)
	clear(c.zeroDX)
	return c.zeroDX
}

// customErr returns the errors the custom layers kept during the last pass (nil when there
// were none) and clears them.
func (m *Model) customErr() error {
	var errs []error
	for _, l := range m.layers {
		if c, ok := l.(*customLayer); ok && c.err != nil {
			errs = append(errs, c.err)
			c.err = nil
		}
	}
	return errors.Join(errs...)
}
