package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Pipeline is a loaded, validated pipeline: its settings and its stages in file order.
type Pipeline struct {
	File         string // the path it was loaded from ("" when parsed from bytes)
	Dir          string // the directory relative paths in the config are resolved against
	Name         string
	Description  string
	Seed         uint64
	Workers      int   // the run-wide CPU budget
	MemoryBudget int64 // bytes of table data held in memory before spilling
	Stages       []*StageConfig
	byName       map[string]*StageConfig
	resolved     []byte
}

// Stage returns the named stage's config.
func (p *Pipeline) Stage(name string) (*StageConfig, bool) {
	s, ok := p.byName[name]
	return s, ok
}

// Resolved returns the config as TOML with every default filled in, as written into the run
// directory's pipeline.toml.
func (p *Pipeline) Resolved() []byte { return p.resolved }

// Hash is the SHA-256 of the resolved config.
func (p *Pipeline) Hash() string {
	sum := sha256.Sum256(p.resolved)
	return hex.EncodeToString(sum[:])
}

// Ref is a reference to an output port of a stage.
type Ref struct {
	Stage string
	Port  string
	Kind  PortKind
}

func (r Ref) String() string { return r.Stage + "." + r.Port }

// StageConfig is the decoded, validated config of one stage. Values have their defaults
// filled in and their types normalised: integers are int64, numbers float64, string lists
// []string, sizes int64 bytes.
type StageConfig struct {
	Name string
	Kind string
	Spec *KindSpec
	// Dir is the directory that relative paths are resolved against (the pipeline file's).
	Dir string
	// RunSeed is the pipeline's seed; derive per-stage randomness with DeriveSeed.
	RunSeed uint64

	values  map[string]any
	set     map[string]bool
	refs    map[string][]Ref
	pos     map[string]position
	file    string
	outputs []Port
	order   int
	stage   Stage
}

// IsSet reports whether the user wrote the key (rather than it taking its default).
func (c *StageConfig) IsSet(key string) bool { return c.set[key] }

// Value returns a key's value, or nil.
func (c *StageConfig) Value(key string) any { return c.values[key] }

// String returns a string field ("" when unset without default).
func (c *StageConfig) String(key string) string { s, _ := c.values[key].(string); return s }

// Int returns an integer field.
func (c *StageConfig) Int(key string) int { v, _ := c.values[key].(int64); return int(v) }

// Int64 returns an integer or size field.
func (c *StageConfig) Int64(key string) int64 { v, _ := c.values[key].(int64); return v }

// Float returns a number field.
func (c *StageConfig) Float(key string) float64 {
	switch v := c.values[key].(type) {
	case float64:
		return v
	case int64:
		return float64(v)
	}
	return 0
}

// Bool returns a boolean field.
func (c *StageConfig) Bool(key string) bool { v, _ := c.values[key].(bool); return v }

// Strings returns a string-list field.
func (c *StageConfig) Strings(key string) []string { v, _ := c.values[key].([]string); return v }

// Table returns an inline-table field (nil when unset).
func (c *StageConfig) Table(key string) map[string]any {
	v, _ := c.values[key].(map[string]any)
	return v
}

// List returns an array field.
func (c *StageConfig) List(key string) []any { v, _ := c.values[key].([]any); return v }

// Auto reports whether a TypeFloatOrAuto field is "auto"; otherwise it returns the number.
func (c *StageConfig) Auto(key string) (v float64, auto bool) {
	if s, ok := c.values[key].(string); ok && s == "auto" {
		return 0, true
	}
	return c.Float(key), false
}

// Input returns the reference an input field holds.
func (c *StageConfig) Input(key string) (Ref, bool) {
	r := c.refs[key]
	if len(r) == 0 {
		return Ref{}, false
	}
	return r[0], true
}

// Inputs returns the references an input-list field holds.
func (c *StageConfig) Inputs(key string) []Ref { return c.refs[key] }

// AllInputs returns every reference of the stage, in field order.
func (c *StageConfig) AllInputs() []Ref {
	var out []Ref
	for _, f := range c.Spec.Fields {
		out = append(out, c.refs[f.Name]...)
	}
	return out
}

// Outputs returns the stage's output ports.
func (c *StageConfig) Outputs() []Port { return c.outputs }

// Path resolves a path field against the pipeline file's directory.
func (c *StageConfig) Path(key string) string {
	p := c.String(key)
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// Errorf returns a config error of this stage that points at key (which may be a nested path
// such as "layers[1].dense").
func (c *StageConfig) Errorf(key, format string, args ...any) *ConfigError {
	e := &ConfigError{File: c.file, Stage: c.Name, Key: key, Msg: fmt.Sprintf(format, args...)}
	if p, ok := c.pos["stages."+c.Name+"."+key]; ok {
		e.Line, e.Col = p.Line, p.Col
	} else if p, ok := c.pos["stages."+c.Name]; ok {
		e.Line, e.Col = p.Line, p.Col
	}
	return e
}

// LoadOptions tune Load.
type LoadOptions struct {
	// Overrides are "stage.key=value" assignments applied before validation, as `pipe run
	// --set` gives them. The value is read as a TOML value when it parses as one (so 3, 0.5,
	// true, ["a","b"] work), otherwise as a string. "pipeline.key=value" sets a pipeline key.
	Overrides []string
}

// Load reads, decodes and validates a pipeline file. Every problem is reported: the error
// joins one *ConfigError per problem.
func Load(path string, reg *Registry, opts LoadOptions) (*Pipeline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &ConfigError{File: path, Msg: "pipeline file not found", Hint: "check the path; pipe run takes the path of a .toml file"}
		}
		return nil, &ConfigError{File: path, Msg: err.Error()}
	}
	abs, _ := filepath.Abs(path)
	return Parse(data, path, filepath.Dir(abs), reg, opts)
}

var stageNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// Parse decodes and validates a pipeline from bytes. file names it in errors; dir is where
// relative paths resolve.
func Parse(data []byte, file, dir string, reg *Registry, opts LoadOptions) (*Pipeline, error) {
	if file == "" {
		file = "pipeline.toml"
	}
	var raw map[string]any
	if err := toml.Unmarshal(data, &raw); err != nil {
		ce := &ConfigError{File: file, Msg: "TOML syntax error: " + err.Error()}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			ce.Line, ce.Col = de.Position()
			ce.Msg = "TOML syntax error: " + de.Error()
		}
		return nil, ce
	}
	pos := keyPositions(data)
	var errs []error
	add := func(e *ConfigError) { errs = append(errs, e) }
	at := func(key string) (int, int) { p := pos[key]; return p.Line, p.Col }

	for _, ov := range opts.Overrides {
		if e := applyOverride(raw, ov); e != nil {
			add(e)
		}
	}

	for k := range raw {
		if k != "pipeline" && k != "stages" {
			l, c := at(k)
			ce := &ConfigError{File: file, Line: l, Col: c, Key: k, Msg: "unknown top-level key"}
			if s := Suggest(k, []string{"pipeline", "stages"}); s != "" {
				ce.Hint = fmt.Sprintf("did you mean %q?", s)
			} else {
				ce.Hint = "a pipeline file has a [pipeline] table and [stages.<name>] tables"
			}
			add(ce)
		}
	}

	p := &Pipeline{File: file, Dir: dir, byName: map[string]*StageConfig{}}
	pipeSpec := pipelineSpec()
	pvals, pset, perrs := decodeFields(file, "", "pipeline", asTable(raw["pipeline"]), pipeSpec, pos)
	errs = append(errs, perrs...)
	if raw["pipeline"] != nil && asTable(raw["pipeline"]) == nil {
		l, c := at("pipeline")
		add(&ConfigError{File: file, Line: l, Col: c, Key: "pipeline", Msg: "must be a table", Hint: "write it as [pipeline]"})
	}
	p.Name, _ = pvals["name"].(string)
	if !pset["name"] || p.Name == "" {
		base := filepath.Base(file)
		p.Name = strings.TrimSuffix(base, filepath.Ext(base))
		pvals["name"] = p.Name
	}
	p.Description, _ = pvals["description"].(string)
	if s, ok := pvals["seed"].(int64); ok {
		p.Seed = uint64(s)
	}
	if w, _ := pvals["workers"].(int64); w > 0 {
		p.Workers = int(w)
	} else {
		p.Workers = runtime.NumCPU()
	}
	p.MemoryBudget, _ = pvals["memory_budget"].(int64)

	stagesRaw, ok := raw["stages"].(map[string]any)
	if !ok {
		if raw["stages"] == nil {
			add(&ConfigError{File: file, Msg: "the pipeline has no stages", Hint: "add [stages.<name>] tables with a kind each"})
		} else {
			l, c := at("stages")
			add(&ConfigError{File: file, Line: l, Col: c, Key: "stages", Msg: "must be a table of stage tables", Hint: "write [stages.load], [stages.split], ..."})
		}
	}
	// Stages in file order.
	names := make([]string, 0, len(stagesRaw))
	for n := range stagesRaw {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		pi, pj := pos["stages."+names[i]], pos["stages."+names[j]]
		if pi.Line != pj.Line {
			return pi.Line < pj.Line
		}
		return names[i] < names[j]
	})
	for i, name := range names {
		l, c := at("stages." + name)
		st := asTable(stagesRaw[name])
		if st == nil {
			add(&ConfigError{File: file, Line: l, Col: c, Stage: name, Msg: "a stage must be a table", Hint: fmt.Sprintf("write [stages.%s] followed by kind = \"...\"", name)})
			continue
		}
		if !stageNameRE.MatchString(name) {
			add(&ConfigError{File: file, Line: l, Col: c, Stage: name, Msg: "invalid stage name", Hint: "use letters, digits, '_' and '-' (no dots: a dot separates stage and port in references)"})
			continue
		}
		kindName, _ := st["kind"].(string)
		if kindName == "" {
			add(&ConfigError{File: file, Line: l, Col: c, Stage: name, Key: "kind", Msg: "missing", Hint: "every stage needs kind = \"...\"; `pipe docs` lists the kinds: " + strings.Join(reg.kindNames(), ", ")})
			continue
		}
		spec, ok := reg.Kind(kindName)
		if !ok {
			kl, kc := at("stages." + name + ".kind")
			ce := &ConfigError{File: file, Line: kl, Col: kc, Stage: name, Key: "kind", Msg: fmt.Sprintf("unknown stage kind %q", kindName)}
			if s := Suggest(kindName, reg.kindNames()); s != "" {
				ce.Hint = fmt.Sprintf("did you mean %q?", s)
			} else {
				ce.Hint = "known kinds: " + strings.Join(reg.kindNames(), ", ")
			}
			add(ce)
			continue
		}
		delete(st, "kind")
		vals, set, ferrs := decodeFields(file, name, "stages."+name, st, spec.Fields, pos)
		errs = append(errs, ferrs...)
		sc := &StageConfig{Name: name, Kind: kindName, Spec: spec, Dir: dir, RunSeed: p.Seed, values: vals, set: set,
			refs: map[string][]Ref{}, pos: pos, file: file, order: i}
		p.Stages = append(p.Stages, sc)
		p.byName[name] = sc
	}

	// Outputs, then references.
	for _, sc := range p.Stages {
		if sc.Spec.Outputs != nil {
			sc.outputs = sc.Spec.Outputs(sc)
		} else {
			sc.outputs = []Port{{Name: "out", Kind: PortTable}}
		}
	}
	for _, sc := range p.Stages {
		for _, f := range sc.Spec.Fields {
			if f.Type != TypeInput && f.Type != TypeInputs {
				continue
			}
			refs, _ := sc.values[f.Name].([]string)
			for i, r := range refs {
				key := f.Name
				if f.Type == TypeInputs && sc.set[f.Name] {
					if _, isList := sc.pos["stages."+sc.Name+"."+f.Name+"[0]"]; isList {
						key = fmt.Sprintf("%s[%d]", f.Name, i)
					}
				}
				ref, ce := p.resolveRef(sc, key, r, f.Port)
				if ce != nil {
					add(ce)
					continue
				}
				sc.refs[f.Name] = append(sc.refs[f.Name], ref)
			}
		}
	}
	if cyc := findCycle(p); len(cyc) > 0 {
		first := p.byName[cyc[0]]
		l, c := at("stages." + first.Name)
		add(&ConfigError{File: file, Line: l, Col: c, Stage: first.Name, Msg: "the stages form a cycle: " + strings.Join(cyc, " → "),
			Hint: "a pipeline is a DAG; break the cycle by reading an earlier stage's output"})
	}
	if len(errs) == 0 {
		for _, sc := range p.Stages {
			st, err := sc.Spec.New(sc)
			if err != nil {
				var ce *ConfigError
				if errors.As(err, &ce) {
					errs = append(errs, err)
				} else {
					errs = append(errs, sc.Errorf("", "%v", err))
				}
				continue
			}
			sc.stage = st
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(sortErrors(errs)...)
	}
	res := map[string]any{"pipeline": pvals}
	stages := map[string]any{}
	for _, sc := range p.Stages {
		m := map[string]any{"kind": sc.Kind}
		for k, v := range sc.values {
			if v == nil {
				continue
			}
			// A single-reference field is written as the string it was given, so that the
			// resolved config loads again as it is.
			if refs, ok := v.([]string); ok && len(refs) == 1 && sc.Spec.field(k) != nil && sc.Spec.field(k).Type == TypeInput {
				v = refs[0]
			}
			m[k] = v
		}
		stages[sc.Name] = m
	}
	res["stages"] = stages
	b, err := toml.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode resolved config: %w", err)
	}
	p.resolved = b
	return p, nil
}

func (p *Pipeline) resolveRef(sc *StageConfig, key, r string, want PortKind) (Ref, *ConfigError) {
	stage, port, hasPort := strings.Cut(r, ".")
	target, ok := p.byName[stage]
	if !ok {
		ce := sc.Errorf(key, "input %q: there is no stage %q", r, stage)
		names := make([]string, 0, len(p.Stages))
		for _, s := range p.Stages {
			if s != sc {
				names = append(names, s.Name)
			}
		}
		if s := Suggest(stage, names); s != "" {
			ce.Hint = fmt.Sprintf("did you mean %q?", s)
		} else {
			ce.Hint = "stages: " + strings.Join(names, ", ")
		}
		return Ref{}, ce
	}
	if target == sc {
		return Ref{}, sc.Errorf(key, "input %q: a stage cannot read its own output", r)
	}
	if !hasPort {
		port = target.Spec.DefaultOutput
		if port == "" && len(target.outputs) > 0 {
			port = target.outputs[0].Name
		}
	}
	var found *Port
	portNames := make([]string, 0, len(target.outputs))
	for i := range target.outputs {
		portNames = append(portNames, target.outputs[i].Name)
		if target.outputs[i].Name == port {
			found = &target.outputs[i]
		}
	}
	if found == nil {
		ce := sc.Errorf(key, "input %q: stage %q (kind %s) has no output %q", r, stage, target.Kind, port)
		if s := Suggest(port, portNames); s != "" {
			ce.Hint = fmt.Sprintf("did you mean %q?", stage+"."+s)
		} else {
			ce.Hint = "its outputs: " + strings.Join(portNames, ", ")
		}
		return Ref{}, ce
	}
	if found.Kind != want {
		return Ref{}, sc.Errorf(key, "input %q is %s %s, but %q needs %s %s", r, article(found.Kind), found.Kind, key, article(want), want)
	}
	return Ref{Stage: stage, Port: port, Kind: found.Kind}, nil
}

func article(k PortKind) string {
	if k == PortArtifact {
		return "an"
	}
	return "a"
}

// findCycle returns one cycle of stage names (first name repeated at the end), or nil.
func findCycle(p *Pipeline) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var cycle []string
	var visit func(s *StageConfig) bool
	visit = func(s *StageConfig) bool {
		color[s.Name] = grey
		stack = append(stack, s.Name)
		for _, r := range s.AllInputs() {
			dep := p.byName[r.Stage]
			switch color[dep.Name] {
			case grey:
				for i, n := range stack {
					if n == dep.Name {
						cycle = append(append([]string{}, stack[i:]...), dep.Name)
						return true
					}
				}
			case white:
				if visit(dep) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[s.Name] = black
		return false
	}
	for _, s := range p.Stages {
		if color[s.Name] == white && visit(s) {
			return cycle
		}
	}
	return nil
}

func asTable(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func pipelineSpec() []Field {
	return []Field{
		{Name: "name", Type: TypeString, Doc: "The pipeline's name: the run directory is runs/<name>/<run-id>/. Default: the file name without .toml."},
		{Name: "description", Type: TypeString, Doc: "Free text, kept in the manifest."},
		{Name: "seed", Type: TypeInt, Default: int64(0), Min: Bound(0), Doc: "The run seed. Every random step derives its own seed from (seed, stage, index)."},
		{Name: "workers", Type: TypeInt, Default: int64(0), Min: Bound(0), Doc: "The run-wide CPU budget shared by concurrent stages, ensemble members and GEMM threads. 0 means the number of cores."},
		{Name: "memory_budget", Type: TypeSize, Default: "2GiB", Doc: "Table data held in memory before tables spill to Arrow IPC files in the run directory."},
	}
}

// PipelineFields documents the [pipeline] table.
func PipelineFields() []Field { return pipelineSpec() }

// decodeFields checks a table against field specs: unknown keys, types, enums, ranges, required
// keys; it fills defaults. prefix is the key path of the table ("stages.model").
func decodeFields(file, stage, prefix string, raw map[string]any, fields []Field, pos map[string]position) (map[string]any, map[string]bool, []error) {
	vals := map[string]any{}
	set := map[string]bool{}
	var errs []error
	known := make([]string, 0, len(fields))
	byName := map[string]*Field{}
	for i := range fields {
		known = append(known, fields[i].Name)
		byName[fields[i].Name] = &fields[i]
	}
	mk := func(key, msg, hint string) *ConfigError {
		p := pos[prefix+"."+key]
		if p.Line == 0 {
			p = pos[prefix]
		}
		return &ConfigError{File: file, Line: p.Line, Col: p.Col, Stage: stage, Key: key, Msg: msg, Hint: hint}
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		pi, pj := pos[prefix+"."+keys[i]], pos[prefix+"."+keys[j]]
		if pi.Line != pj.Line {
			return pi.Line < pj.Line
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		v := raw[k]
		f, ok := byName[k]
		if !ok {
			hint := ""
			if s := Suggest(k, known); s != "" {
				hint = fmt.Sprintf("did you mean %q?", s)
			} else if len(known) > 0 {
				hint = "valid keys: " + strings.Join(known, ", ")
			}
			errs = append(errs, mk(k, "unknown key", hint))
			continue
		}
		nv, msg := normalise(f, v)
		if msg != "" {
			errs = append(errs, mk(k, msg, ""))
			continue
		}
		if msg := checkValue(f, nv); msg != "" {
			hint := ""
			if len(f.Enum) > 0 {
				if s, ok := nv.(string); ok {
					if sg := Suggest(s, f.Enum); sg != "" {
						hint = fmt.Sprintf("did you mean %q?", sg)
					}
				}
			}
			errs = append(errs, mk(k, msg, hint))
			continue
		}
		vals[k] = nv
		set[k] = true
	}
	for i := range fields {
		f := &fields[i]
		if _, present := raw[f.Name]; present || set[f.Name] {
			continue // set, or set wrongly (already reported)
		}
		if f.Required {
			p := pos[prefix]
			errs = append(errs, &ConfigError{File: file, Line: p.Line, Col: p.Col, Stage: stage, Key: f.Name, Msg: "required key is missing", Hint: f.Doc})
			continue
		}
		if f.Default != nil {
			nv, msg := normalise(f, f.Default)
			if msg != "" {
				panic(fmt.Sprintf("field %s: bad default: %s", f.Name, msg))
			}
			vals[f.Name] = nv
		}
	}
	return vals, set, errs
}

// normalise converts a decoded TOML value to the field's Go type, or says what is wrong.
func normalise(f *Field, v any) (any, string) {
	got := tomlTypeName(v)
	bad := func() (any, string) { return nil, fmt.Sprintf("expected %s, found %s", f.Type, got) }
	switch f.Type {
	case TypeString:
		if s, ok := v.(string); ok {
			return s, ""
		}
		return bad()
	case TypeInt:
		switch x := v.(type) {
		case int64:
			return x, ""
		case int:
			return int64(x), ""
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
				return nil, fmt.Sprintf("expected an integer, found the float %v (write %d)", x, int64(x))
			}
		}
		return bad()
	case TypeFloat:
		switch x := v.(type) {
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, "must be a finite number"
			}
			return x, ""
		case int64:
			return float64(x), ""
		case int:
			return float64(x), ""
		}
		return bad()
	case TypeFloatOrAuto:
		switch x := v.(type) {
		case string:
			if x == "auto" {
				return x, ""
			}
			return nil, fmt.Sprintf(`expected a number or "auto", found the string %q`, x)
		case float64:
			return x, ""
		case int64:
			return float64(x), ""
		}
		return bad()
	case TypeBool:
		if b, ok := v.(bool); ok {
			return b, ""
		}
		return bad()
	case TypeStrings, TypeInputs:
		switch x := v.(type) {
		case string:
			return []string{x}, ""
		case []string:
			return x, ""
		case []any:
			out := make([]string, len(x))
			for i, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Sprintf("element %d: expected a string, found %s", i, tomlTypeName(e))
				}
				out[i] = s
			}
			return out, ""
		}
		return bad()
	case TypeInput:
		if s, ok := v.(string); ok {
			return []string{s}, ""
		}
		return bad()
	case TypeTable:
		if m, ok := v.(map[string]any); ok {
			return m, ""
		}
		return bad()
	case TypeList:
		if l, ok := v.([]any); ok {
			return l, ""
		}
		return bad()
	case TypeSize:
		switch x := v.(type) {
		case int64:
			return x, ""
		case string:
			n, err := ParseSize(x)
			if err != nil {
				return nil, err.Error()
			}
			return n, ""
		}
		return bad()
	case TypeAny:
		return v, ""
	}
	return v, ""
}

func checkValue(f *Field, v any) string {
	if len(f.Enum) > 0 {
		check := func(s string) string {
			for _, e := range f.Enum {
				if s == e {
					return ""
				}
			}
			return fmt.Sprintf("%q is not one of %s", s, strings.Join(quoteAll(f.Enum), ", "))
		}
		switch x := v.(type) {
		case string:
			if m := check(x); m != "" {
				return m
			}
		case []string:
			for _, s := range x {
				if m := check(s); m != "" {
					return m
				}
			}
		}
	}
	var num float64
	var isNum bool
	switch x := v.(type) {
	case int64:
		num, isNum = float64(x), true
	case float64:
		num, isNum = x, true
	}
	if isNum {
		if f.Min != nil && num < *f.Min {
			return fmt.Sprintf("%v is below the minimum %v", num, *f.Min)
		}
		if f.Max != nil && num > *f.Max {
			return fmt.Sprintf("%v is above the maximum %v", num, *f.Max)
		}
	}
	return ""
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = strconv.Quote(x)
	}
	return out
}

func tomlTypeName(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case int64, int:
		return fmt.Sprintf("the integer %v", x)
	case float64:
		return fmt.Sprintf("the float %v", x)
	case bool:
		return fmt.Sprintf("the boolean %v", x)
	case []any, []string:
		return "an array"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("a %T", v)
}

// ParseSize reads a byte size: "512MiB", "4GiB", "100MB", "1.5GiB" or a plain integer.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a byte size (write for example \"512MiB\" or \"4GiB\")", s)
	}
	return int64(f * mult), nil
}

func applyOverride(raw map[string]any, ov string) *ConfigError {
	key, val, ok := strings.Cut(ov, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return &ConfigError{File: "--set", Msg: fmt.Sprintf("%q is not stage.key=value", ov)}
	}
	var parsed map[string]any
	var v any = val
	if err := toml.Unmarshal([]byte("v = "+val), &parsed); err == nil {
		v = parsed["v"]
	}
	parts := strings.Split(key, ".")
	if len(parts) < 2 {
		return &ConfigError{File: "--set", Key: key, Msg: "expected stage.key=value or pipeline.key=value"}
	}
	var m map[string]any
	if parts[0] == "pipeline" {
		pm, _ := raw["pipeline"].(map[string]any)
		if pm == nil {
			pm = map[string]any{}
			raw["pipeline"] = pm
		}
		m = pm
		parts = parts[1:]
	} else {
		stages, _ := raw["stages"].(map[string]any)
		st, _ := stages[parts[0]].(map[string]any)
		if st == nil {
			names := make([]string, 0, len(stages))
			for n := range stages {
				names = append(names, n)
			}
			sort.Strings(names)
			ce := &ConfigError{File: "--set", Stage: parts[0], Key: key, Msg: "no such stage"}
			if s := Suggest(parts[0], names); s != "" {
				ce.Hint = fmt.Sprintf("did you mean %q?", s)
			}
			return ce
		}
		m = st
		parts = parts[1:]
	}
	for _, p := range parts[:len(parts)-1] {
		next, _ := m[p].(map[string]any)
		if next == nil {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
	return nil
}

// sortErrors orders problems by file position; problems without a position come last.
func sortErrors(errs []error) []error {
	key := func(e error) (int, int) {
		var ce *ConfigError
		if errors.As(e, &ce) && ce.Line > 0 {
			return ce.Line, ce.Col
		}
		return 1 << 30, 0
	}
	sort.SliceStable(errs, func(i, j int) bool {
		li, ci := key(errs[i])
		lj, cj := key(errs[j])
		if li != lj {
			return li < lj
		}
		return ci < cj
	})
	return errs
}
