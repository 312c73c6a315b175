package bundle

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Transform is a saved preprocessing step: a fitted transform that a bundle replays on raw
// rows at prediction time, exactly as it ran on the training table. The engine's lineage steps
// (pipeline.FittedTransform) have the same method set.
type Transform interface {
	// Kind names the transform; Decoders finds the function that rebuilds it by this name.
	Kind() string
	// Apply transforms one batch. It does not retain or release rec; the caller releases the
	// result. It is safe for concurrent use.
	Apply(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error)
	// Marshal returns the transform's versioned, self-describing saved form.
	Marshal() ([]byte, error)
}

// Counting is implemented by transforms that count what they met while applying (unseen
// categories, for example: "unknown_by_column/job" → 3). Predict reports the counts.
type Counting interface {
	Counters() map[string]int64
}

// DecodeFunc rebuilds a transform from the bytes its Marshal returned.
type DecodeFunc func(state []byte) (Transform, error)

// Decoders is the registry of the functions that rebuild saved transforms, by kind. It is an
// explicit value, filled once (features.RegisterTransforms fills pipe's own; a program adds
// the transforms of its own stage kinds) and then read concurrently.
type Decoders struct {
	m map[string]DecodeFunc
}

// NewDecoders returns an empty registry.
func NewDecoders() *Decoders { return &Decoders{m: map[string]DecodeFunc{}} }

// Register adds the decoder of a transform kind. An empty kind, a nil function or a kind
// registered twice is an error.
func (d *Decoders) Register(kind string, fn DecodeFunc) error {
	switch {
	case kind == "":
		return fmt.Errorf("bundle: register decoder: empty transform kind")
	case fn == nil:
		return fmt.Errorf("bundle: register decoder %q: nil function", kind)
	}
	if _, dup := d.m[kind]; dup {
		return fmt.Errorf("bundle: register decoder: transform kind %q is already registered", kind)
	}
	d.m[kind] = fn
	return nil
}

// Kinds lists the registered kinds, sorted.
func (d *Decoders) Kinds() []string {
	out := make([]string, 0, len(d.m))
	for k := range d.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Decode rebuilds a transform of the given kind. An unregistered kind is an error that says
// which program can read it.
func (d *Decoders) Decode(kind string, state []byte) (Transform, error) {
	fn, ok := d.m[kind]
	if !ok {
		return nil, fmt.Errorf("no decoder for transform kind %q (this program knows: %s); a bundle with a custom transform is read by the program that registered its kind (bundle.Decoders.Register)",
			kind, strings.Join(d.Kinds(), ", "))
	}
	t, err := fn(state)
	if err != nil {
		return nil, err
	}
	if t.Kind() != kind {
		return nil, fmt.Errorf("the decoder of %q returned a transform of kind %q", kind, t.Kind())
	}
	return t, nil
}
