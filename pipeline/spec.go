package pipeline

import (
	"fmt"
	"sort"
	"strings"
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
	TypeTable                   // an inline table, checked by the stage
	TypeList                    // an array of any values (for example inline tables), checked by the stage
	TypeFloatOrAuto             // a number, or the string "auto"
	TypeSize                    // a byte size: an integer, or a string such as "512MiB" or "4GiB"
	TypeAny                     // any value, checked by the stage
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

// Field declares one key of a stage's TOML table.
type Field struct {
	Name     string
	Type     Type
	Default  any    // nil: no default
	Required bool   // the key must be set
	Doc      string // one or two sentences, shown by `pipe docs`
	Enum     []string
	Min, Max *float64 // inclusive bounds for numbers
	// Port is the kind of port an input field must reference (TypeInput, TypeInputs).
	Port PortKind
}

// Bound returns a pointer to v, for Field.Min and Field.Max.
func Bound(v float64) *float64 { return &v }

// Port is a named output of a stage.
type Port struct {
	Name string
	Kind PortKind
	Doc  string
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
}

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
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{kinds: map[string]*KindSpec{}} }

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
	seen := map[string]bool{"kind": true}
	for _, f := range spec.Fields {
		if seen[f.Name] {
			return fmt.Errorf("register %q: field %q declared twice (or reserved)", spec.Kind, f.Name)
		}
		seen[f.Name] = true
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

// Suggest returns the candidate closest to s by edit distance, or "" when none is close.
func Suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := levenshtein(strings.ToLower(s), strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) > 6 {
		limit = 3
	}
	if bestD <= limit || (best != "" && (strings.HasPrefix(best, s) || strings.HasPrefix(s, best)) && len(s) >= 3) {
		return best
	}
	return ""
}

// levenshtein is the optimal-string-alignment distance: insertions, deletions, substitutions
// and transpositions of adjacent characters each cost one.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
