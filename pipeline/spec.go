package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/pipe-ml/pipe/internal/names"
)

// Type is the type of a stage field, as written in TOML.
type Type int

// Field types.
const (
	TypeString      Type = iota // a TOML string
	TypeInt                     // a TOML integer
	TypeFloat                   // a TOML float or integer
	TypeBool                    // a TOML boolean
	TypeStrings                 // a string, or an array of strings
	TypeInput                   // a reference to one output port: "stage" or "stage.port"
	TypeInputs                  // one reference, or an array of references
	TypeTable                   // an inline table: its keys are declared by Field.Fields (or its values by Field.Elem)
	TypeList                    // an array: its elements are declared by Field.Elem
	TypeFloatOrAuto             // a number, or the string "auto"
	TypeSize                    // a byte size: an integer, or a string such as "512MiB" or "4GiB"
	TypeAny                     // any value, checked by the stage
	TypeBoolOrTable             // a boolean (on or off), or an inline table of settings (Field.Fields)
)

func (t Type) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeInt:
		return "integer"
	case TypeFloat:
		return "number"
	case TypeBool:
		return "boolean"
	case TypeStrings:
		return "string or array of strings"
	case TypeInput:
		return "input reference"
	case TypeInputs:
		return "input reference or array of references"
	case TypeTable:
		return "table"
	case TypeList:
		return "array"
	case TypeFloatOrAuto:
		return `number or "auto"`
	case TypeSize:
		return "byte size"
	case TypeAny:
		return "any"
	case TypeBoolOrTable:
		return "boolean or table"
	}
	return "unknown"
}

// PortKind says what an edge carries.
type PortKind int

// Port kinds.
const (
	PortTable    PortKind = iota // a stream of Arrow record batches
	PortArtifact                 // a fitted thing: a transform, a model bundle, an ensemble
)

func (k PortKind) String() string {
	if k == PortArtifact {
		return "artifact"
	}
	return "table"
}

// Field declares one key of a stage's TOML table, or of a table nested in it. Register checks
// the declaration (a default must pass the field's own checks), and the loader checks every
// value against it, nested tables included, reporting each problem at its line and column.
type Field struct {
	Name     string
	Type     Type
	Default  any    // nil: no default
	Required bool   // the key must be set
	Doc      string // one or two sentences, shown by `pipe docs`
	Enum     []string
	Min, Max *float64 // bounds for numbers, inclusive unless MinExclusive/MaxExclusive
	// MinExclusive and MaxExclusive make Min and Max strict: a share in [0, 1) is Min:
	// Bound(0), Max: Bound(1), MaxExclusive: true.
	MinExclusive, MaxExclusive bool
	// Port is the kind of port an input field must reference (TypeInput, TypeInputs).
	Port PortKind
	// Splits lists the split roles ("train", "all", ...) a table referenced by an input field
	// may carry, checked when the config alone says which role it carries (a split stage's
	// outputs, and the tables derived from them: see Port.Split and Port.From). nil: any.
	Splits []string

	// Fields declares the keys of the nested table of a TypeTable or TypeBoolOrTable field,
	// checked exactly like top-level fields: unknown keys (with a "did you mean"), types,
	// enums, ranges, required keys and defaults, recursively. nil: see Elem.
	Fields []Field
	// Elem declares every element of a TypeList field (for example a layer table, or a
	// number in a range), or every value of a TypeTable field whose keys are names the user
	// chooses (per-target settings, column types). nil: not checked.
	Elem *Field
	// Len is the exact number of elements of a TypeList field (0: any number).
	Len int
	// Misplaced maps keys that a user may write into this field's nested table by mistake to
	// a hint saying where they belong.
	Misplaced map[string]string
	// DocsSee, on a field with nested Fields, says where they are documented ("the train
	// stage's fields"), so that `pipe docs` does not list them a second time.
	DocsSee string
	// Path says that a string field names a file: see PathKind.
	Path PathKind
	// KeyExempt says that the field cannot change what the stage produces (a worker count:
	// results are the same for any number of workers), so it is left out of the stage's cache
	// key: a run that changes only it reuses the stage's stored outputs. Only top-level fields
	// are checked for it.
	KeyExempt bool
}

// PathKind says what a string field that names a file means.
type PathKind int

// Path kinds.
const (
	PathNone PathKind = iota
	// PathInput is a file or directory the stage reads, relative to the pipeline file's
	// directory. It must exist when the pipeline is loaded, and the resolved config holds it
	// as an absolute path, so that it loads again from anywhere.
	PathInput
	// PathName is a plain name: a file the stage writes inside its own run directory, or a
	// directory name. It has no directory part (no separator), is not absolute, and is not
	// "." or "..", so that what is written stays inside its root.
	PathName
)

// Bound returns a pointer to v, for Field.Min and Field.Max.
func Bound(v float64) *float64 { return &v }

// Port is a named output of a stage.
type Port struct {
	Name string
	Kind PortKind
	Doc  string
	// Split is the split role ("train", "val", "test", "train_dev") of the rows a table port
	// carries, when the config alone says so (a split stage's outputs). Empty: see From.
	Split string
	// From is a reference ("stage" or "stage.port") to the table whose rows this table port
	// carries, transformed (normalize.val carries impute.val's rows): it has that table's
	// split role. Empty: unknown.
	From string
}

// Shape is the role a stage kind plays in a DAG, for documentation and graphs.
type Shape string

// Stage shapes (see DESIGN.md).
const (
	ShapeSource    Shape = "source"    // → table
	ShapeTransform Shape = "transform" // table → table
	ShapeFit       Shape = "fit"       // table → artifact (often applied at once: fit+apply)
	ShapeApply     Shape = "apply"     // artifact + table → table
	ShapeTrain     Shape = "train"     // tables → artifact
	ShapeSink      Shape = "sink"      // table →
)

// KindSpec declares a stage kind: its documentation, its fields, its outputs and how to build
// it. The fields drive strict decoding, validation, `pipe docs` and the defaults written into
// the resolved config.
type KindSpec struct {
	Kind   string
	Shape  Shape
	Doc    string
	Fields []Field
	// Outputs lists the output ports of a configured stage. It may depend on the config (a
	// stage that applies a fitted transform to several tables names its outputs after them).
	// nil means one table port named "out".
	Outputs func(c *StageConfig) []Port
	// OutputsDoc describes the output ports in `pipe docs` (Markdown) where they depend on the
	// config. Empty: the docs list the ports Outputs returns for a stage of defaults.
	OutputsDoc string
	// DefaultOutput is the port a reference that names only the stage resolves to. Empty:
	// the first port that Outputs returns.
	DefaultOutput string
	// New builds the stage from its validated config. An error it returns is reported as a
	// config error of this stage; use c.Errorf to point at the key.
	New func(c *StageConfig) (Stage, error)
	// Example is an optional TOML snippet shown in the reference.
	Example string
	// KeepsFeatures says that the stage's output tables hold its input tables' feature values
	// unchanged (it selects, splits or reorders rows, or changes labels only), so that a model
	// trained on them needs nothing replayed for this stage. When false (the default) and the
	// stage does not record its own step in the lineage it gives NewTable, the engine records
	// the stage as a step that cannot be replayed, and a model trained downstream is refused:
	// a transform that a bundle cannot replay would make its predictions silently wrong. Use
	// ReplayableTransformStage for a transform that can be saved.
	KeepsFeatures bool

	// Cacheable opts the kind into the stage store's cache: a stage of it whose cache key is in
	// the store is not run, and its outputs are read back instead. Set it only when a stage's
	// outputs (tables, artifacts, the files of its directory, metrics, info and notes) depend
	// on nothing but what the key holds: the kind and Version, pipe's version, the stage's
	// config, its inputs, its seed and the identity of the data it reads (Fingerprint). Its
	// artifacts must have a loader (Registry.SetArtifactLoader) and the transforms in its
	// tables' lineage a decoder (Registry.SetTransformDecoder); a stage whose outputs lack
	// one is not stored. Default false: the stage always runs.
	Cacheable bool
	// Version is the version of the kind's results. Bump it whenever a change of the kind's
	// code changes what a stage of it produces from the same config and inputs (a new default
	// behaviour, a fixed bug, another algorithm): it is part of every cache key, so stored
	// outputs of the old code are no longer reused. pipe's own version is part of the key too,
	// so a released pipe never reuses another release's outputs; Version is what keeps a
	// development build, or a program that adds kinds, honest between releases. Default 0.
	Version int
	// Fingerprint returns the identity of the data a stage reads from outside the pipeline
	// (a file's path, size and modification time, or its content's hash; a dataset's files),
	// which is part of its cache key: when the data changes, so does the key. It runs before
	// the run starts, once per stage. nil: the identity of every file that a PathInput field
	// names (FileIdentity with content false). An error leaves the stage, and every stage
	// that reads its outputs, out of the cache for this run (it runs).
	Fingerprint func(ctx context.Context, c *StageConfig, env FingerprintEnv) (string, error)
	// Restored, when set, is called when a stage of the kind is read back from the stage store
	// instead of run, after its outputs and manifest entry are restored: it redoes what the
	// stage does beyond its own outputs (a run-level audit: see StageContext.RunInfoOrInit),
	// from the restored entry (StageContext.RestoredInfo, Metrics). nil: nothing to redo.
	Restored func(sc *StageContext) error
}

// FingerprintEnv is what a Fingerprint sees of the run beside the stage's config.
type FingerprintEnv struct {
	// DataDir is RunOptions.DataDir: where datasets that are not embedded are looked for.
	DataDir string
}

// TransformDecoder rebuilds a fitted transform of a table's lineage from its kind and the
// bytes its Marshal returned, to read a stored table back with its lineage.
type TransformDecoder func(kind string, state []byte) (FittedTransform, error)

// ArtifactLoader reads an artifact back from the directory of the stage that produced it
// (the stage's files, restored from the stage store into the run's stages/<name>/).
type ArtifactLoader func(ctx context.Context, stageDir string) (Artifact, error)

func (k *KindSpec) field(name string) *Field {
	for i := range k.Fields {
		if k.Fields[i].Name == name {
			return &k.Fields[i]
		}
	}
	return nil
}

// Registry holds the stage kinds a pipeline may use. The zero value is not usable: call
// NewRegistry. A Registry is filled once, then read concurrently.
type Registry struct {
	kinds map[string]*KindSpec
	// decoder and loaders read stored outputs back (the stage store's cache).
	decoder TransformDecoder
	loaders map[string]ArtifactLoader
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{kinds: map[string]*KindSpec{}, loaders: map[string]ArtifactLoader{}}
}

// SetTransformDecoder sets the function that rebuilds the fitted transforms of a stored
// table's lineage, replacing an earlier one (stages.Register sets pipe's; a program that adds
// transforms sets one that knows them too). Without one, a stage whose output tables have
// fitted transforms in their lineage is not cached.
func (r *Registry) SetTransformDecoder(fn TransformDecoder) { r.decoder = fn }

// TransformDecoder returns the function SetTransformDecoder set, or nil.
func (r *Registry) TransformDecoder() TransformDecoder { return r.decoder }

// SetArtifactLoader sets the function that reads artifacts of the given kind (as ArtifactKind
// names it) back from their stage's directory, replacing an earlier one. A stage with an
// artifact output whose kind has no loader is not cached.
func (r *Registry) SetArtifactLoader(kind string, fn ArtifactLoader) { r.loaders[kind] = fn }

// ArtifactLoader returns the loader of an artifact kind, or nil.
func (r *Registry) ArtifactLoader(kind string) ArtifactLoader { return r.loaders[kind] }

// Register adds a stage kind. A duplicate or malformed kind is an error.
func (r *Registry) Register(spec KindSpec) error {
	if spec.Kind == "" {
		return fmt.Errorf("register: a stage kind needs a name")
	}
	if _, dup := r.kinds[spec.Kind]; dup {
		return fmt.Errorf("register: stage kind %q is already registered", spec.Kind)
	}
	if spec.New == nil {
		return fmt.Errorf("register %q: New is nil", spec.Kind)
	}
	if err := checkFieldSpecs(spec.Fields, "", reservedKeys()); err != nil {
		return fmt.Errorf("register %q: %w", spec.Kind, err)
	}
	s := spec
	r.kinds[spec.Kind] = &s
	return nil
}

// MustRegister is Register for static tables of built-in kinds; it panics on error.
func (r *Registry) MustRegister(spec KindSpec) {
	if err := r.Register(spec); err != nil {
		panic(err)
	}
}

// Kind returns a registered kind.
func (r *Registry) Kind(name string) (*KindSpec, bool) {
	k, ok := r.kinds[name]
	return k, ok
}

// Kinds returns every registered kind, sorted by name.
func (r *Registry) Kinds() []*KindSpec {
	out := make([]*KindSpec, 0, len(r.kinds))
	for _, k := range r.kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

func (r *Registry) kindNames() []string {
	names := make([]string, 0, len(r.kinds))
	for n := range r.kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// checkFieldSpecs checks field declarations (recursively, nested tables included), so that
// a malformed spec fails at Register rather than inside Parse. prefix is the key path of the
// table the fields belong to ("" or "optimizer."); reserved names may not be declared.
func checkFieldSpecs(fields []Field, prefix string, reserved map[string]bool) error {
	seen := map[string]bool{}
	for i := range fields {
		f := &fields[i]
		if f.Name == "" {
			return fmt.Errorf("field %d of %q has no name", i+1, strings.TrimSuffix(prefix, "."))
		}
		if seen[f.Name] || reserved[f.Name] {
			return fmt.Errorf("field %q declared twice (or reserved)", prefix+f.Name)
		}
		seen[f.Name] = true
		if err := checkFieldSpec(f, prefix+f.Name); err != nil {
			return err
		}
	}
	return nil
}

func checkFieldSpec(f *Field, name string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("field %q: %s", name, fmt.Sprintf(format, args...))
	}
	numeric := f.Type == TypeInt || f.Type == TypeFloat || f.Type == TypeFloatOrAuto || f.Type == TypeSize
	if (f.Min != nil || f.Max != nil) && !numeric {
		return bad("Min and Max apply to numbers, not to a %s", f.Type)
	}
	if (f.MinExclusive && f.Min == nil) || (f.MaxExclusive && f.Max == nil) {
		return bad("MinExclusive and MaxExclusive need Min and Max")
	}
	for _, b := range []*float64{f.Min, f.Max} {
		if b != nil && (math.IsNaN(*b) || math.IsInf(*b, 0)) {
			return bad("a bound must be a finite number, found %v (leave it nil for no bound)", *b)
		}
	}
	if f.Min != nil && f.Max != nil && (*f.Min > *f.Max || (*f.Min == *f.Max && (f.MinExclusive || f.MaxExclusive))) {
		return bad("no value fits between Min %v and Max %v", *f.Min, *f.Max)
	}
	if len(f.Enum) > 0 && f.Type != TypeString && f.Type != TypeStrings {
		return bad("Enum applies to strings, not to a %s", f.Type)
	}
	if f.Fields != nil && f.Type != TypeTable && f.Type != TypeBoolOrTable {
		return bad("nested Fields need a table type, not %s", f.Type)
	}
	if f.Elem != nil && f.Type != TypeTable && f.Type != TypeList {
		return bad("Elem needs an array or table type, not %s", f.Type)
	}
	if f.Fields != nil && f.Elem != nil {
		return bad("set Fields (fixed keys) or Elem (keys the user names), not both")
	}
	if f.Len < 0 || (f.Len > 0 && f.Type != TypeList) {
		return bad("Len is the length of an array")
	}
	if f.Path != PathNone && f.Type != TypeString {
		return bad("Path applies to strings, not to a %s", f.Type)
	}
	if f.Splits != nil && (f.Port != PortTable || (f.Type != TypeInput && f.Type != TypeInputs)) {
		return bad("Splits applies to input fields that reference tables")
	}
	if f.Misplaced != nil && f.Fields == nil {
		return bad("Misplaced needs nested Fields")
	}
	if f.Required && f.Default != nil {
		return bad("a required field has no default")
	}
	if f.Elem != nil {
		if f.Elem.Required || f.Elem.Default != nil {
			return bad("Elem declares elements: it has no default and is not required")
		}
		if err := checkFieldSpec(f.Elem, name+"[]"); err != nil {
			return err
		}
	}
	if f.Fields != nil {
		if err := checkFieldSpecs(f.Fields, name+".", nil); err != nil {
			return err
		}
	}
	if f.Default != nil {
		d := &decoder{file: "default"}
		if _, ok := d.value(f, f.Default, name, name); !ok {
			msg := "invalid"
			if ces := ConfigErrors(errors.Join(d.errs...)); len(ces) > 0 {
				msg = ces[0].Msg
			}
			return bad("its default %v cannot pass its own checks: %s", f.Default, msg)
		}
	}
	return nil
}

// ListNames joins names with ", ", cut after max of them with a count of the rest: "a, b, ...
// (and 31 more)". max <= 0 lists them all.
func ListNames(list []string, max int) string { return names.List(list, max) }

// FlattenFields returns fields with the nested fields of each one listed after it, named by
// their path: "optimizer.lr", "layers[].dense", "tasks.<target>.loss_weight". `pipe docs`
// shows them this way. A field whose nested fields are documented elsewhere (DocsSee) is not
// expanded; its doc says where they are.
func FlattenFields(fields []Field) []Field {
	var out []Field
	var walk func(prefix string, f Field)
	walk = func(prefix string, f Field) {
		name := prefix + f.Name
		g := f
		g.Name = name
		if f.DocsSee != "" {
			g.Doc = strings.TrimSpace(g.Doc + " Keys: " + f.DocsSee + ".")
		}
		out = append(out, g)
		if f.DocsSee != "" {
			return
		}
		for _, n := range f.Fields {
			walk(name+".", n)
		}
		if f.Elem != nil {
			e := *f.Elem
			switch {
			case f.Type == TypeList:
				e.Name = name + "[]"
			case e.Name != "":
				e.Name = name + "." + e.Name
			default:
				e.Name = name + ".<key>"
			}
			if e.Doc == "" {
				e.Doc = "Each element."
			}
			walk("", e)
		}
	}
	for _, f := range fields {
		walk("", f)
	}
	return out
}

// Suggest returns the candidate closest to s by edit distance, or "" when none is close.
func Suggest(s string, candidates []string) string { return names.Suggest(s, candidates) }
