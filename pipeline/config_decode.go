package pipeline

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// override is one --set assignment: the key path it set ("stages.model.epochs") and the
// argument as given.
type override struct{ path, arg string }

// overrideOf returns the --set argument that set the value at path (or a table holding it).
func overrideOf(sets []override, path string) (string, bool) {
	for i := len(sets) - 1; i >= 0; i-- {
		s := sets[i]
		if path == s.path || strings.HasPrefix(path, s.path+".") || strings.HasPrefix(path, s.path+"[") {
			return s.arg, true
		}
	}
	return "", false
}

// parentPath strips the last key or index of a key path: "a.b[1].c" → "a.b[1]" → "a.b".
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// lookupPos returns the position of path, or of the nearest table that holds it.
func lookupPos(pos map[string]position, path string) position {
	for p := path; p != ""; p = parentPath(p) {
		if at, ok := pos[p]; ok {
			return at
		}
	}
	return position{}
}

// errorAt builds the ConfigError of the value at key path abs (rel is the key as shown, from
// the stage's table): at its line and column in the file, or at the --set argument that set
// it.
func errorAt(file, stage string, pos map[string]position, sets []override, abs, rel, msg, hint string) *ConfigError {
	e := &ConfigError{File: file, Stage: stage, Key: rel, Msg: msg, Hint: hint}
	if arg, ok := overrideOf(sets, abs); ok {
		e.File, e.Arg = "--set", arg
		return e
	}
	p := lookupPos(pos, abs)
	e.Line, e.Col = p.Line, p.Col
	return e
}

// decoder checks tables against field specs, nested tables included, and collects every
// problem.
type decoder struct {
	file  string
	stage string
	// dir is where PathInput fields resolve; "" skips the check that they exist.
	dir  string
	pos  map[string]position
	sets []override
	errs []error
}

func (d *decoder) fail(abs, rel, msg, hint string) {
	d.errs = append(d.errs, errorAt(d.file, d.stage, d.pos, d.sets, abs, rel, msg, hint))
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	if key == "" {
		return prefix
	}
	return prefix + "." + key
}

// sortedKeys returns the keys of m in file order (then by name: keys set by --set or not in
// the file come last).
func (d *decoder) sortedKeys(abs string, m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		pi, oki := d.pos[joinKey(abs, keys[i])]
		pj, okj := d.pos[joinKey(abs, keys[j])]
		if oki != okj {
			return oki
		}
		if pi.Line != pj.Line {
			return pi.Line < pj.Line
		}
		if pi.Col != pj.Col {
			return pi.Col < pj.Col
		}
		return keys[i] < keys[j]
	})
	return keys
}

// table checks raw against fields: unknown keys, then every value (recursively), then
// required keys; it fills defaults. abs is the table's key path in the document
// ("stages.model.optimizer"), rel its path as shown in errors ("optimizer", "" for a stage's
// own table). ok is false when any problem was found in it.
func (d *decoder) table(abs, rel string, raw map[string]any, fields []Field, misplaced map[string]string) (vals map[string]any, set map[string]bool, ok bool) {
	vals, set, ok = map[string]any{}, map[string]bool{}, true
	known := make([]string, 0, len(fields))
	byName := map[string]*Field{}
	for i := range fields {
		known = append(known, fields[i].Name)
		byName[fields[i].Name] = &fields[i]
	}
	for _, k := range d.sortedKeys(abs, raw) {
		kabs, krel := joinKey(abs, k), joinKey(rel, k)
		f := byName[k]
		if f == nil {
			hint := ""
			if h, isMisplaced := misplaced[k]; isMisplaced {
				hint = h
			} else if s := Suggest(k, known); s != "" {
				hint = fmt.Sprintf("did you mean %q?", s)
			} else if len(known) > 0 {
				hint = "valid keys: " + ListNames(known, 20)
			}
			d.fail(kabs, krel, "unknown key", hint)
			ok = false
			continue
		}
		nv, vok := d.value(f, raw[k], kabs, krel)
		if !vok {
			ok = false
			continue
		}
		vals[k] = nv
		set[k] = true
	}
	for i := range fields {
		f := &fields[i]
		if _, present := raw[f.Name]; present {
			continue // set, or set wrongly (already reported)
		}
		if f.Required {
			d.fail(abs, joinKey(rel, f.Name), "required key is missing", f.Doc)
			ok = false
			continue
		}
		if f.Default != nil {
			// Register checked that every default passes its field's checks.
			if nv, msg := normalise(f, f.Default); msg == "" {
				vals[f.Name] = nv
			}
		}
	}
	return vals, set, ok
}

// value checks one value against its field and returns it normalised (see StageConfig).
func (d *decoder) value(f *Field, v any, abs, rel string) (any, bool) {
	nv, msg := normalise(f, v)
	if msg != "" {
		d.fail(abs, rel, msg, "")
		return nil, false
	}
	if msg := checkValue(f, nv); msg != "" {
		hint := ""
		for _, s := range asStrings(nv) {
			if len(f.Enum) > 0 && !contains(f.Enum, s) {
				if sg := Suggest(s, f.Enum); sg != "" {
					hint = fmt.Sprintf("did you mean %q?", sg)
				}
				break
			}
		}
		d.fail(abs, rel, msg, hint)
		return nil, false
	}
	if s, isString := nv.(string); isString {
		switch f.Path {
		case PathInput:
			if s == "" {
				d.fail(abs, rel, "is empty", "name a file")
				return nil, false
			}
			if d.dir != "" {
				// Reported, but the value stands: the stage's own checks still run, so that
				// one validation reports its other problems too.
				if msg, hint := checkInputPath(s, d.dir); msg != "" {
					d.fail(abs, rel, msg, hint)
				}
			}
		case PathName:
			if msg := checkPlainName(s); msg != "" {
				d.fail(abs, rel, msg, f.Doc)
				return nil, false
			}
		}
	}
	switch x := nv.(type) {
	case map[string]any:
		if f.Fields != nil {
			vals, _, ok := d.table(abs, rel, x, f.Fields, f.Misplaced)
			return vals, ok
		}
		if f.Elem != nil {
			out := make(map[string]any, len(x))
			ok := true
			for _, k := range d.sortedKeys(abs, x) {
				ev, eok := d.value(f.Elem, x[k], joinKey(abs, k), joinKey(rel, k))
				if !eok {
					ok = false
					continue
				}
				out[k] = ev
			}
			return out, ok
		}
	case []any:
		if f.Type != TypeList {
			break
		}
		if f.Len > 0 && len(x) != f.Len {
			d.fail(abs, rel, fmt.Sprintf("expected %d elements, found %d", f.Len, len(x)), f.Doc)
			return nil, false
		}
		if f.Elem != nil {
			out := make([]any, len(x))
			ok := true
			for i, e := range x {
				idx := "[" + strconv.Itoa(i) + "]"
				ev, eok := d.value(f.Elem, e, abs+idx, rel+idx)
				if !eok {
					ok = false
					continue
				}
				out[i] = ev
			}
			return out, ok
		}
	}
	return nv, true
}

// checkInputPath says what is wrong with a file the pipeline reads, resolved against dir.
func checkInputPath(p, dir string) (msg, hint string) {
	resolved := p
	if !filepath.IsAbs(p) {
		resolved = filepath.Join(dir, p)
		hint = fmt.Sprintf("relative paths are resolved against %s, the pipeline file's directory", dir)
	}
	if _, err := os.Stat(resolved); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "not found: " + resolved, hint
		}
		return fmt.Sprintf("cannot read %s: %v", resolved, err), hint
	}
	return "", ""
}

// checkPlainName says what keeps s from being a plain name that stays inside its root.
func checkPlainName(s string) string {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == '/' || r == '\\' })
	switch {
	case s == "." || s == "..":
		return fmt.Sprintf("%q is not a name", s)
	case filepath.IsAbs(s) || strings.HasPrefix(s, "/") || strings.HasPrefix(s, `\`):
		return fmt.Sprintf("%q is an absolute path: it would leave its root", s)
	case contains(parts, ".."):
		return fmt.Sprintf("%q climbs out of its root (\"..\")", s)
	case strings.ContainsAny(s, `/\`):
		return fmt.Sprintf("%q has a directory part: it must be a plain name, without \"/\" or \"\\\"", s)
	case strings.ContainsRune(s, 0):
		return fmt.Sprintf("%q holds a NUL byte", s)
	}
	return ""
}

func asStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []string:
		return x
	}
	return nil
}

// normalise converts a decoded TOML value to the field's Go type, or says what is wrong.
func normalise(f *Field, v any) (any, string) {
	got := tomlTypeName(v)
	bad := func() (any, string) { return nil, fmt.Sprintf("expected %s, found %s", f.Type, got) }
	finite := func(x float64) (any, string) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Sprintf("must be a finite number, found %v", x)
		}
		return x, ""
	}
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
			return finite(x)
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
			return finite(x)
		case int64:
			return float64(x), ""
		case int:
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
	case TypeBoolOrTable:
		switch x := v.(type) {
		case bool:
			return x, ""
		case map[string]any:
			return x, ""
		}
		return bad()
	case TypeList:
		switch x := v.(type) {
		case []any:
			return x, ""
		case []string:
			out := make([]any, len(x))
			for i, s := range x {
				out[i] = s
			}
			return out, ""
		}
		return bad()
	case TypeSize:
		switch x := v.(type) {
		case int64:
			if x < 0 {
				return nil, fmt.Sprintf("a byte size cannot be negative, found %d", x)
			}
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
		for _, s := range asStrings(v) {
			if !contains(f.Enum, s) {
				return fmt.Sprintf("%q is not one of %s", s, ListNames(quoteAll(f.Enum), 20))
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
		if f.Min != nil && (num < *f.Min || (f.MinExclusive && num == *f.Min)) {
			if f.MinExclusive {
				return fmt.Sprintf("%v must be above %v", v, *f.Min)
			}
			return fmt.Sprintf("%v is below the minimum %v", v, *f.Min)
		}
		if f.Max != nil && (num > *f.Max || (f.MaxExclusive && num == *f.Max)) {
			if f.MaxExclusive {
				return fmt.Sprintf("%v must be below %v", v, *f.Max)
			}
			return fmt.Sprintf("%v is above the maximum %v", v, *f.Max)
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
