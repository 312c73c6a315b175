package features

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/schema"
)

// Fitter consumes the training table batch by batch, in one streaming pass.
// A Fitter is used by one goroutine at a time. After Observe returns an error the Fitter's
// state is undefined: discard it.
type Fitter interface {
	// Observe reads one batch. It does not retain or release rec.
	Observe(rec arrow.RecordBatch) error
	// Finish returns the fitted transform. Fitting on zero rows is an error that says so.
	Finish() (Transform, error)
}

// Transform is a fitted transform. It is safe for concurrent use by several goroutines.
type Transform interface {
	Kind() string // "normalize", "impute", "encode"
	OutputSchema(in *arrow.Schema) (*arrow.Schema, error)
	// Apply transforms one batch. It does not retain or release rec; the caller owns the
	// returned batch and must Release it. Columns it does not change are shared (retained).
	Apply(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error)
	// Describe returns what was fitted, for the manifest's leakage audit and reports
	// (e.g. per column: mean, std, n rows seen).
	Describe() map[string]any
	// Counters returns counts accumulated by Apply, e.g. {"unknown_categories": 3, "unknown_by_column/job": 3}.
	Counters() map[string]int64
	// Marshal returns the transform's versioned JSON form (the package function Marshal), so
	// that a model bundle can save it and replay it at prediction time: a Transform is a
	// bundle.Transform.
	Marshal() ([]byte, error)
}

// Transform kinds.
const (
	KindNormalize = "normalize"
	KindImpute    = "impute"
	KindEncode    = "encode"
)

// Serialised form of a fitted transform.
const (
	// FormatName identifies pipe's transform JSON.
	FormatName = "pipe.features.transform"
	// FormatVersion is the version that Marshal writes and the newest that Unmarshal reads.
	FormatVersion = 1
)

type envelope struct {
	Format  string          `json:"format"`
	Version int             `json:"version"`
	Kind    string          `json:"kind"`
	State   json.RawMessage `json:"state"`
}

// stateful is implemented by this package's transforms: state returns a JSON-encodable value
// from which the matching unmarshal function rebuilds the transform.
type stateful interface {
	state() any
}

// Marshal returns a fitted transform's versioned JSON form, so that it can travel in a model
// bundle and be applied at prediction time. Counters are not part of it.
func Marshal(t Transform) ([]byte, error) {
	s, ok := t.(stateful)
	if !ok {
		return nil, fmt.Errorf("features: marshal: transform %T (kind %q) is not one of this package's transforms", t, t.Kind())
	}
	st, err := json.Marshal(s.state())
	if err != nil {
		return nil, fmt.Errorf("features: marshal %s: %w", t.Kind(), err)
	}
	return json.Marshal(envelope{Format: FormatName, Version: FormatVersion, Kind: t.Kind(), State: st})
}

// Unmarshal rebuilds a transform from the output of Marshal. It fails clearly on another
// format, an unknown kind or a format version newer than FormatVersion.
func Unmarshal(b []byte) (Transform, error) {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("features: unmarshal transform: not valid JSON: %w", err)
	}
	if env.Format != FormatName {
		return nil, fmt.Errorf("features: unmarshal transform: format %q, want %q", env.Format, FormatName)
	}
	if env.Version > FormatVersion || env.Version < 1 {
		return nil, fmt.Errorf("features: unmarshal transform: format version %d is not supported: this build reads versions 1..%d; upgrade pipe to read it", env.Version, FormatVersion)
	}
	var (
		t   Transform
		err error
	)
	switch env.Kind {
	case KindNormalize:
		t, err = unmarshalNormalize(env.State)
	case KindImpute:
		t, err = unmarshalImpute(env.State)
	case KindEncode:
		t, err = unmarshalEncode(env.State)
	default:
		return nil, fmt.Errorf("features: unmarshal transform: unknown kind %q (known: %s, %s, %s)", env.Kind, KindNormalize, KindImpute, KindEncode)
	}
	if err != nil {
		return nil, fmt.Errorf("features: unmarshal %s: %w", env.Kind, err)
	}
	return t, nil
}

// selectColumns resolves the columns a fitter works on. With names empty it selects every
// feature column whose type is accepted; otherwise each name must be an accepted feature column.
func selectColumns(s *arrow.Schema, names []string, kind string, accept func(arrow.DataType) bool, what string) ([]string, error) {
	if len(names) == 0 {
		var out []string
		for _, f := range s.Fields() {
			if schema.IsFeature(f) && accept(f.Type) {
				out = append(out, f.Name)
			}
			if err := refuseTensor(kind, f, names); err != nil {
				return nil, err
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s: the table has no %s feature columns (columns: %s); remove the stage or list the columns to use", kind, what, columnList(columnNames(s)))
		}
		return out, nil
	}
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if seen[name] {
			return nil, fmt.Errorf("%s: column %q is listed twice", kind, name)
		}
		seen[name] = true
		i, err := fieldByName(s, name, kind)
		if err != nil {
			return nil, err
		}
		f := s.Field(i)
		if !schema.IsFeature(f) {
			return nil, fmt.Errorf("%s: column %q has role %q; only feature columns are transformed", kind, name, schema.Role(f))
		}
		if err := refuseTensor(kind, f, names); err != nil {
			return nil, err
		}
		if !accept(f.Type) {
			return nil, fmt.Errorf("%s: column %q has type %s, not a %s type", kind, name, f.Type, what)
		}
	}
	return append([]string(nil), names...), nil
}

// checkContext returns ctx's error, wrapped with the transform kind.
func checkContext(ctx context.Context, kind string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return nil
}

// releaseAll releases every non-nil array.
func releaseAll(arrs []arrow.Array) {
	for _, a := range arrs {
		if a != nil {
			a.Release()
		}
	}
}
