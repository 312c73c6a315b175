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
	"time"

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
	// Store is [pipeline] store: where the stage store is (a path made absolute against the
	// pipeline file's directory, or a URL), "" when the file does not say.
	Store string
	// StoreMaxSize is [pipeline] store_max_size in bytes; 0: the store's default limit.
	StoreMaxSize int64
	// Temporal is the [pipeline.temporal] table as decoded (nil when absent): the settings
	// of the Temporal engine, which reads it (package cluster).
	Temporal map[string]any
	Stages   []*StageConfig
	byName   map[string]*StageConfig
	resolved []byte
	// reg is the registry the pipeline was parsed with: the stage store reads outputs back
	// with its transform decoder and artifact loaders.
	reg *Registry
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
// []string, sizes int64 bytes. A nested table declared by Field.Fields or Field.Elem is a
// map[string]any (an array of them a []any) whose values are normalised the same way, with
// their own defaults filled in.
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
	common  stageCommon // the keys every stage table may hold (cache, retries, retry_backoff)
	refs    map[string][]Ref
	pos     map[string]position
	sets    []override
	file    string
	outputs []Port
	order   int
	stage   Stage
	// prefix is the key path of a nested config (Nested) inside the stage's table: Errorf
	// points at keys under it. "" for a stage's own config.
	prefix string
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

// Path resolves a path field against the pipeline file's directory (Dir).
func (c *StageConfig) Path(key string) string {
	p := c.String(key)
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// Errorf returns a config error of this stage that points at key (which may be a nested path
// such as "layers[1].dense").
// A key set by --set points at the --set argument instead.
func (c *StageConfig) Errorf(key, format string, args ...any) *ConfigError {
	rel := joinKey(c.prefix, key)
	return errorAt(c.file, c.Name, c.pos, c.sets, joinKey("stages."+c.Name, rel), rel, fmt.Sprintf(format, args...), "")
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
// relative paths resolve (made absolute).
//
// Every phase that can run does, and every problem is reported, sorted by position: TOML
// syntax; --set overrides; every table against its spec (nested tables included); output
// ports, references, split roles and cycles; and each stage's own constructor (New), for
// every stage whose fields and references are sound.
func Parse(data []byte, file, dir string, reg *Registry, opts LoadOptions) (*Pipeline, error) {
	if file == "" {
		file = "pipeline.toml"
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
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

	var sets []override
	for _, ov := range opts.Overrides {
		path, e := applyOverride(raw, ov)
		if e != nil {
			add(e)
			continue
		}
		sets = append(sets, override{path: path, arg: ov})
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

	p := &Pipeline{File: file, Dir: dir, byName: map[string]*StageConfig{}, reg: reg}
	pd := &decoder{file: file, dir: dir, pos: pos, sets: sets}
	pvals, pset, _ := pd.table("pipeline", "", asTable(raw["pipeline"]), pipelineSpec(), nil)
	errs = append(errs, pd.errs...)
	if raw["pipeline"] != nil && asTable(raw["pipeline"]) == nil {
		add(errorAt(file, "", pos, sets, "pipeline", "pipeline", "must be a table", "write it as [pipeline]"))
	}
	p.Name, _ = pvals["name"].(string)
	if !pset["name"] || p.Name == "" {
		base := filepath.Base(file)
		p.Name = strings.TrimSuffix(base, filepath.Ext(base))
		if checkPlainName(p.Name) != "" || p.Name == "" {
			p.Name = "pipeline"
		}
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
	p.StoreMaxSize, _ = pvals["store_max_size"].(int64)
	if st, _ := pvals["store"].(string); st != "" {
		p.Store = resolveStoreLocation(st, dir)
		pvals["store"] = p.Store
	}
	if t := asTable(pvals["temporal"]); t != nil {
		p.Temporal = t
		n := len(pd.errs)
		check := func(abs string, tbl map[string]any) {
			for _, k := range TemporalDurationKeys {
				if v, ok := tbl[k].(string); ok {
					if d, err := time.ParseDuration(strings.TrimSpace(v)); err != nil || d <= 0 {
						pd.fail(joinKey(abs, k), k, fmt.Sprintf("%q is not a positive duration", v), "write a Go duration such as \"30s\", \"10m\" or \"24h\"")
					}
				}
			}
		}
		check("pipeline.temporal", t)
		for kind, v := range asTable(t["kinds"]) {
			if _, ok := reg.Kind(kind); reg != nil && !ok {
				pd.fail(joinKey("pipeline.temporal.kinds", kind), kind, fmt.Sprintf("%q is not a stage kind", kind), "name a kind that `pipe docs` lists")
			}
			check(joinKey("pipeline.temporal.kinds", kind), asTable(v))
		}
		errs = append(errs, pd.errs[n:]...)
	}

	stagesRaw, ok := raw["stages"].(map[string]any)
	if !ok || len(stagesRaw) == 0 {
		if ok || raw["stages"] == nil {
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
	// broken holds the stages that are written but cannot be built (no kind, an unknown
	// kind...): their own error is reported, and references to them are not reported again.
	broken := map[string]bool{}
	// sound holds the stages whose fields decoded without a problem.
	sound := map[string]bool{}
	for i, name := range names {
		l, c := at("stages." + name)
		st := asTable(stagesRaw[name])
		if st == nil {
			broken[name] = true
			add(&ConfigError{File: file, Line: l, Col: c, Stage: name, Msg: "a stage must be a table", Hint: fmt.Sprintf("write [stages.%s] followed by kind = \"...\"", name)})
			continue
		}
		if !stageNameRE.MatchString(name) {
			broken[name] = true
			add(&ConfigError{File: file, Line: l, Col: c, Stage: name, Msg: "invalid stage name", Hint: "use letters, digits, '_' and '-' (no dots: a dot separates stage and port in references)"})
			continue
		}
		kindName, isString := st["kind"].(string)
		if kindName == "" {
			broken[name] = true
			if st["kind"] != nil && !isString {
				add(errorAt(file, name, pos, sets, "stages."+name+".kind", "kind", "expected a string, found "+tomlTypeName(st["kind"]), "`pipe docs` lists the kinds: "+ListNames(reg.kindNames(), 20)))
				continue
			}
			add(&ConfigError{File: file, Line: l, Col: c, Stage: name, Key: "kind", Msg: "missing", Hint: "every stage needs kind = \"...\"; `pipe docs` lists the kinds: " + ListNames(reg.kindNames(), 20)})
			continue
		}
		spec, ok := reg.Kind(kindName)
		if !ok {
			broken[name] = true
			ce := errorAt(file, name, pos, sets, "stages."+name+".kind", "kind", fmt.Sprintf("unknown stage kind %q", kindName), "")
			if s := Suggest(kindName, reg.kindNames()); s != "" {
				ce.Hint = fmt.Sprintf("did you mean %q?", s)
			} else {
				ce.Hint = "known kinds: " + ListNames(reg.kindNames(), 20)
			}
			add(ce)
			continue
		}
		delete(st, "kind")
		d := &decoder{file: file, stage: name, dir: dir, pos: pos, sets: sets}
		vals, set, fieldsOK := d.table("stages."+name, "", st, append(append([]Field(nil), spec.Fields...), commonDecodeFields()...), nil)
		common, commonOK := d.common("stages."+name, vals, set)
		errs = append(errs, d.errs...)
		sound[name] = fieldsOK && commonOK
		sc := &StageConfig{Name: name, Kind: kindName, Spec: spec, Dir: dir, RunSeed: p.Seed, values: vals, set: set,
			common: common, refs: map[string][]Ref{}, pos: pos, sets: sets, file: file, order: i}
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
	refsOK := map[string]bool{}
	for _, sc := range p.Stages {
		refsOK[sc.Name] = true
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
				ref, ok, ce := p.resolveRef(sc, key, r, f.Port, broken, sound)
				if !ok {
					refsOK[sc.Name] = false
					if ce != nil {
						add(ce)
					}
					continue
				}
				sc.refs[f.Name] = append(sc.refs[f.Name], ref)
				if f.Splits != nil && ref.Kind == PortTable {
					// Reported; the stage's own checks still run (the reference resolves).
					if split := p.splitOf(ref, 0); split != "" && !contains(f.Splits, split) {
						ce := sc.Errorf(key, "input %q is the %s split, but %s takes %s", r, split, f.Name, orList(f.Splits))
						ce.Hint = f.Doc
						add(ce)
					}
				}
			}
		}
	}
	if cyc := findCycle(p); len(cyc) > 0 {
		first := p.byName[cyc[0]]
		l, c := at("stages." + first.Name)
		add(&ConfigError{File: file, Line: l, Col: c, Stage: first.Name, Msg: "the stages form a cycle: " + strings.Join(cyc, " → "),
			Hint: "a pipeline is a DAG; break the cycle by reading an earlier stage's output"})
	}
	// Each stage's own checks run when its own fields and references are sound, whatever
	// is wrong elsewhere, so that one validation reports everything.
	for _, sc := range p.Stages {
		if !sound[sc.Name] || !refsOK[sc.Name] {
			continue
		}
		st, err := sc.Spec.New(sc)
		if err != nil {
			if IsConfigError(err) {
				errs = append(errs, err)
			} else {
				errs = append(errs, sc.Errorf("", "%v", err))
			}
			continue
		}
		sc.stage = st
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
			f := sc.Spec.field(k)
			// A single-reference field is written as the string it was given, so that the
			// resolved config loads again as it is.
			if refs, ok := v.([]string); ok && len(refs) == 1 && f != nil && f.Type == TypeInput {
				v = refs[0]
			}
			// A file the pipeline reads is written as an absolute path, so that the resolved
			// config loads again from the run directory.
			if f != nil && f.Path == PathInput {
				v = sc.Path(k)
			}
			m[k] = v
		}
		for k, v := range sc.common.written {
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

// orList writes "train", "train or all", "train, all or unlabeled".
func orList(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// splitOf returns the split role of the rows a table port carries, when the config alone
// says so: the port's Split, or that of the table it carries the rows of (Port.From).
func (p *Pipeline) splitOf(ref Ref, depth int) string {
	target, ok := p.byName[ref.Stage]
	if !ok || depth > len(p.Stages) {
		return ""
	}
	for _, port := range target.outputs {
		if port.Name != ref.Port {
			continue
		}
		if port.Split != "" || port.From == "" {
			return port.Split
		}
		from, ok := p.lookupRef(port.From)
		if !ok {
			return ""
		}
		return p.splitOf(from, depth+1)
	}
	return ""
}

// lookupRef resolves a reference without reporting anything.
func (p *Pipeline) lookupRef(r string) (Ref, bool) {
	stage, port, hasPort := strings.Cut(r, ".")
	target, ok := p.byName[stage]
	if !ok {
		return Ref{}, false
	}
	if !hasPort {
		port = target.Spec.DefaultOutput
		if port == "" && len(target.outputs) > 0 {
			port = target.outputs[0].Name
		}
	}
	return Ref{Stage: stage, Port: port}, true
}

// resolveRef resolves reference r of sc's field key. ok is false when it does not resolve;
// ce then says why, or is nil when the stage it names has problems of its own, already
// reported (an unknown kind, or fields whose errors may hide its ports).
func (p *Pipeline) resolveRef(sc *StageConfig, key, r string, want PortKind, broken, sound map[string]bool) (ref Ref, ok bool, ce *ConfigError) {
	stage, port, hasPort := strings.Cut(r, ".")
	if broken[stage] {
		return Ref{}, false, nil
	}
	target, found := p.byName[stage]
	if !found {
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
			ce.Hint = "stages: " + ListNames(names, 20)
		}
		return Ref{}, false, ce
	}
	if target == sc {
		return Ref{}, false, sc.Errorf(key, "input %q: a stage cannot read its own output", r)
	}
	if !hasPort {
		port = target.Spec.DefaultOutput
		if port == "" && len(target.outputs) > 0 {
			port = target.outputs[0].Name
		}
	}
	var out *Port
	portNames := make([]string, 0, len(target.outputs))
	for i := range target.outputs {
		portNames = append(portNames, target.outputs[i].Name)
		if target.outputs[i].Name == port {
			out = &target.outputs[i]
		}
	}
	if out == nil {
		if !sound[stage] {
			// Its ports may depend on the fields that failed (split's train_dev).
			return Ref{}, false, nil
		}
		ce := sc.Errorf(key, "input %q: stage %q (kind %s) has no output %q", r, stage, target.Kind, port)
		if s := Suggest(port, portNames); s != "" {
			ce.Hint = fmt.Sprintf("did you mean %q?", stage+"."+s)
		} else {
			ce.Hint = "its outputs: " + ListNames(portNames, 20)
		}
		return Ref{}, false, ce
	}
	if out.Kind != want {
		return Ref{}, false, sc.Errorf(key, "input %q is %s %s, but %q needs %s %s", r, article(out.Kind), out.Kind, key, article(want), want)
	}
	return Ref{Stage: stage, Port: port, Kind: out.Kind}, true, nil
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
		{Name: "name", Type: TypeString, Path: PathName, Doc: "The pipeline's name, a plain name without a separator or \"..\": the run directory is runs/<name>/<run-id>/. Default: the file name without .toml."},
		{Name: "description", Type: TypeString, Doc: "Free text, kept in the manifest."},
		{Name: "seed", Type: TypeInt, Default: int64(0), Min: Bound(0), Doc: "The run seed. Every random step derives its own seed from (seed, stage, index)."},
		{Name: "workers", Type: TypeInt, Default: int64(0), Min: Bound(0), Doc: "The run-wide CPU budget shared by concurrent stages, ensemble members and GEMM threads. 0 means the number of cores."},
		{Name: "memory_budget", Type: TypeSize, Default: "2GiB", Doc: "What the run holds in memory: tables' batches (beyond it, tables spill to Arrow IPC files in the run directory), the dense copies that train, evaluate and predict make (one that does not fit is written to a file and read through it, with the same results: data_path_<role> in the stage's info says which), and an ensemble's running members. The Go runtime's memory limit is set to the budget plus max(512MiB, budget/2) unless GOMEMLIMIT is set."},
		{Name: "store", Type: TypeString, Doc: "The stage store, which keeps every finished stage's outputs under a content key so that a later run reuses them (the cache): a directory (relative to the pipeline file) or a URL (`file:///abs/dir`, `s3://bucket/prefix?region=...&endpoint=...`, `mem://`). `pipe run --store` overrides it. Default: `.store` in the runs directory (runs/.store)."},
		{Name: "store_max_size", Type: TypeSize, Doc: "After a run, the stage store is trimmed to this size, as `pipe gc` does: entries that neither the run nor any run under the runs directory refers to are removed, oldest first. Default: the store's own limit, 20GiB (store.DefaultMaxBytes)."},
		{Name: "temporal", Type: TypeTable, Fields: append(temporalFields(), Field{Name: "kinds", Type: TypeTable,
			Elem: &Field{Type: TypeTable, Fields: temporalFields()},
			Doc:  "Per stage kind, the same keys, overriding the ones above for stages of that kind: `kinds.ensemble = { stage_timeout = \"48h\" }`."}),
			Doc: "How the run's activities behave on Temporal (`pipe run --engine temporal`); ignored by a local run. Defaults per kind: see the README's \"Running on a cluster\"."},
	}
}

// TemporalDurationKeys are the keys of [pipeline.temporal] that hold Go durations.
var TemporalDurationKeys = []string{"heartbeat_timeout", "stage_timeout", "retry_interval"}

func temporalFields() []Field {
	return []Field{
		{Name: "heartbeat_timeout", Type: TypeString, Doc: "A running activity (a stage, or an ensemble member) that has not reported for this long is taken as lost (its worker died) and tried again on another worker, from its last checkpoint. A Go duration. Default \"30s\"."},
		{Name: "stage_timeout", Type: TypeString, Doc: "The longest one attempt of a stage (or of a member) may run. A Go duration. Default \"24h\" for training kinds, \"2h\" for the others."},
		{Name: "max_attempts", Type: TypeInt, Min: Bound(1), Max: Bound(100), Doc: "How many attempts an activity gets when its worker is lost or it times out (a stage's own error is not retried by Temporal: use the stage's retries key). Default 5."},
		{Name: "retry_interval", Type: TypeString, Doc: "The delay before the first retry of a lost activity, doubled after each. A Go duration. Default \"1s\"."},
	}
}

// PipelineFields documents the [pipeline] table.
func PipelineFields() []Field { return pipelineSpec() }

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
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a byte size (write for example \"512MiB\" or \"4GiB\")", s)
	}
	if f*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large a byte size (at most 8EiB)", s)
	}
	return int64(f * mult), nil
}

// intLiteral matches what a user means as an integer, to tell an out-of-range integer from a
// string.
var intLiteral = regexp.MustCompile(`^[+-]?[0-9][0-9_]*$`)

// overridePart is one key of a --set path: a name, and an array index when written
// "layers[1]".
type overridePart struct {
	name  string
	index int // -1: none
}

func parseOverrideKey(key string) ([]overridePart, bool) {
	var parts []overridePart
	for _, s := range strings.Split(key, ".") {
		p := overridePart{name: s, index: -1}
		if name, idx, ok := strings.Cut(s, "["); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			if !strings.HasSuffix(idx, "]") || err != nil || n < 0 {
				return nil, false
			}
			p = overridePart{name: name, index: n}
		}
		if p.name == "" {
			return nil, false
		}
		parts = append(parts, p)
	}
	return parts, true
}

// applyOverride applies one --set assignment to the raw document and returns the key path it
// set ("stages.model.epochs", "stages.model.layers[0].dense").
func applyOverride(raw map[string]any, ov string) (string, *ConfigError) {
	// Tables created on the way are removed again when the assignment fails, so that a
	// wrong --set leaves the document as it was.
	type created struct {
		in  map[string]any
		key string
	}
	var made []created
	fail := func(stage, key, msg, hint string) (string, *ConfigError) {
		for i := len(made) - 1; i >= 0; i-- {
			delete(made[i].in, made[i].key)
		}
		return "", &ConfigError{File: "--set", Arg: ov, Stage: stage, Key: key, Msg: msg, Hint: hint}
	}
	key, val, ok := strings.Cut(ov, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return fail("", "", "not stage.key=value", "write for example --set model.epochs=20")
	}
	parts, ok := parseOverrideKey(key)
	if !ok || len(parts) < 2 || parts[0].index >= 0 {
		return fail("", key, "expected stage.key=value or pipeline.key=value", "a nested key is stage.table.key, an array element stage.list[0].key")
	}
	var parsed map[string]any
	var v any = val
	if err := toml.Unmarshal([]byte("v = "+val), &parsed); err == nil {
		v = parsed["v"]
	} else {
		stage, rel := parts[0].name, key[len(parts[0].name)+1:]
		if stage == "pipeline" {
			stage = ""
		}
		t := strings.TrimSpace(val)
		if intLiteral.MatchString(t) {
			return fail(stage, rel, fmt.Sprintf("the integer %s is out of range", t), fmt.Sprintf("integers are 64-bit: from %d to %d", int64(math.MinInt64), int64(math.MaxInt64)))
		}
		if _, err := strconv.ParseFloat(strings.ReplaceAll(t, "_", ""), 64); errors.Is(err, strconv.ErrRange) {
			return fail(stage, rel, fmt.Sprintf("the number %s is out of range", t), fmt.Sprintf("numbers are 64-bit floats: at most about %.3g", math.MaxFloat64))
		}
	}
	var m map[string]any
	var path string
	var stage string
	if parts[0].name == "pipeline" {
		pm, _ := raw["pipeline"].(map[string]any)
		if pm == nil {
			if raw["pipeline"] != nil {
				return fail("", "pipeline", "is "+tomlTypeName(raw["pipeline"])+", not a table", "")
			}
			pm = map[string]any{}
			raw["pipeline"] = pm
			made = append(made, created{raw, "pipeline"})
		}
		m, path = pm, "pipeline"
	} else {
		stage = parts[0].name
		stages, _ := raw["stages"].(map[string]any)
		st, _ := stages[stage].(map[string]any)
		if st == nil {
			names := make([]string, 0, len(stages))
			for n := range stages {
				names = append(names, n)
			}
			sort.Strings(names)
			hint := "stages: " + ListNames(names, 20)
			if s := Suggest(stage, names); s != "" {
				hint = fmt.Sprintf("did you mean %q?", s)
			}
			return fail(stage, key, "no such stage", hint)
		}
		m, path = st, "stages."+stage
	}
	parts = parts[1:]
	for i, p := range parts {
		last := i == len(parts)-1
		path = joinKey(path, p.name)
		rel := strings.TrimPrefix(strings.TrimPrefix(path, "stages."+stage+"."), "pipeline.")
		if p.index >= 0 {
			l, isList := m[p.name].([]any)
			if m[p.name] == nil {
				return fail(stage, rel, fmt.Sprintf("is not set: it has no element %d to change", p.index), fmt.Sprintf("set the whole array, e.g. --set %s=[...]", strings.SplitN(key, ".", 2)[0]+"."+rel))
			}
			if !isList {
				return fail(stage, rel, fmt.Sprintf("is %s, not an array", tomlTypeName(m[p.name])), "")
			}
			if p.index >= len(l) {
				return fail(stage, rel, fmt.Sprintf("has %d elements: there is no element %d", len(l), p.index), "elements count from 0")
			}
			path += "[" + strconv.Itoa(p.index) + "]"
			if last {
				l[p.index] = v
				return path, nil
			}
			next, isTable := l[p.index].(map[string]any)
			if !isTable {
				return fail(stage, rel+"["+strconv.Itoa(p.index)+"]", fmt.Sprintf("is %s, not a table", tomlTypeName(l[p.index])), "")
			}
			m = next
			continue
		}
		if last {
			m[p.name] = v
			return path, nil
		}
		switch next := m[p.name].(type) {
		case nil:
			n := map[string]any{}
			m[p.name] = n
			made = append(made, created{m, p.name})
			m = n
		case map[string]any:
			m = next
		default:
			return fail(stage, rel, fmt.Sprintf("is %s, not a table", tomlTypeName(next)), fmt.Sprintf("set it whole, e.g. --set %s=...; an array element is %s[0]", strings.SplitN(key, ".", 2)[0]+"."+rel, rel))
		}
	}
	return path, nil
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
