package stages

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/search"
)

// A search parameter's name is a dotted path into the base config: table keys, list indexes,
// and `*` for every element of a list ("optimizer.lr", "layers.0.dense", "layers.*.dropout",
// "tasks.price.loss_weight"). This file checks such paths against a kind's field specs and
// applies a trial's values to a copy of the base.

// wildcard is the path segment that stands for every element of a list.
const wildcard = "*"

// unsearchable are the keys of a base that decide how the data is read, which is done once
// for all trials: they cannot be searched.
var unsearchable = map[string]bool{"target": true, "features": true, "task": true}

// paramField walks a parameter's path through fields (the keys of the base's kind) and the
// base config, and returns the field the path ends at. msg says what is wrong with the path
// (hint what to do), or is empty.
func paramField(fields []pipeline.Field, base map[string]any, name string) (f *pipeline.Field, msg, hint string) {
	segs := strings.Split(name, ".")
	if unsearchable[segs[0]] || (segs[0] == "tasks" && len(segs) == 3 && segs[2] == "task") {
		return nil, fmt.Sprintf("%s decides how the data is read, which is done once for all trials: it cannot be searched", strings.Join(segs[:min(len(segs), 3)], ".")),
			"set it in base"
	}
	level := fields // the keys of the table the walk is in; nil: see f
	var val any = base
	var listKey string // the key of the list the previous segment indexed
	for i, seg := range segs {
		at := strings.Join(segs[:i], ".")
		switch {
		case level != nil:
			f = nil
			names := make([]string, 0, len(level))
			for j := range level {
				names = append(names, level[j].Name)
				if level[j].Name == seg {
					f = &level[j]
				}
			}
			if f == nil {
				where := "base"
				if at != "" {
					where = at
				}
				hint := "name a key of base's kind, a dotted path into its tables or lists: optimizer.lr, layers.0.dense, layers.*.dropout"
				if s := pipeline.Suggest(seg, names); s != "" {
					hint = fmt.Sprintf("did you mean %q?", joinPath(at, s))
				}
				return nil, fmt.Sprintf("%s has no key %q", where, seg), hint
			}
			if listKey == "layers" {
				if m := layerMsg(val, listKey, segs[i-1], seg); m != "" {
					return nil, m, ""
				}
			}
			listKey = ""
			val = child(val, seg)
		case f.Type == pipeline.TypeList && f.Elem != nil:
			list, isList := val.([]any)
			if !isList {
				return nil, fmt.Sprintf("base has no %s: its elements can be searched only when base lists them", at), fmt.Sprintf("write %s in base", at)
			}
			if seg != wildcard {
				n, err := strconv.Atoi(seg)
				if err != nil || n < 0 || n >= len(list) {
					return nil, fmt.Sprintf("%s: %q is not an element of base's %d (give an index from 0 to %d, or * for every element)", at, seg, len(list), len(list)-1), ""
				}
			}
			listKey = f.Name
			val = child(val, seg)
			f = f.Elem
		case f.Type == pipeline.TypeTable && f.Elem != nil:
			val = child(val, seg)
			f = f.Elem
		default:
			return nil, fmt.Sprintf("%s is a %s: it has no key %q", at, f.Type, seg), ""
		}
		if f.Fields != nil && (f.Type == pipeline.TypeTable || f.Type == pipeline.TypeBoolOrTable) {
			level = f.Fields
		} else {
			level = nil
		}
	}
	return f, "", ""
}

// layerMsg says why the layer (or, for *, every layer) of base that the segment idx of
// layers selects does not take key.
func layerMsg(val any, listKey, idx, key string) string {
	layers, _ := val.([]any) // the list itself when idx is *, else its element
	if idx != wildcard {
		layers = []any{val}
	}
	var typ string
	for _, l := range layers {
		m, ok := l.(map[string]any)
		if !ok {
			return "" // not a table: base's own check reports it
		}
		t, long, msg := layerType(m)
		if msg != "" || layerTakes(t, long, key) {
			return ""
		}
		typ = t
	}
	if idx == wildcard {
		return fmt.Sprintf("no layer of base takes %s", key)
	}
	return fmt.Sprintf("%s.%s is a %s layer, which takes no %s", listKey, idx, typ, key)
}

// child returns the value under seg of a decoded table or list (for *, the list itself), or
// nil.
func child(v any, seg string) any {
	switch x := v.(type) {
	case map[string]any:
		return x[seg]
	case []any:
		if seg == wildcard {
			return x
		}
		if n, err := strconv.Atoi(seg); err == nil && n >= 0 && n < len(x) {
			return x[n]
		}
	}
	return nil
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// applyOrder returns the parameters' names in the order they are applied: shorter paths
// first, so that a table chosen whole (optimizer = { choice = [...] }) gets the searched keys
// inside it; at equal length a path with * before the paths it covers, so that
// layers.0.dropout overrides layers.*.dropout for layer 0; then by name.
func applyOrder(params search.Params) []string {
	names := params.Names()
	sort.SliceStable(names, func(i, j int) bool {
		a, b := strings.Count(names[i], "."), strings.Count(names[j], ".")
		if a != b {
			return a < b
		}
		wa, wb := strings.Contains(names[i], wildcard), strings.Contains(names[j], wildcard)
		if wa != wb {
			return wa
		}
		return names[i] < names[j]
	})
	return names
}

// applyParams returns a copy of base with the parameters' values set at their paths (see
// applyOrder): a missing table on the way is created, `*` sets every element of a list (of
// layers: every layer whose type takes the key; of an empty list, nothing). base is not
// modified.
func applyParams(base map[string]any, params search.Params) (map[string]any, error) {
	out, _ := copyTOML(base).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	for _, name := range applyOrder(params) {
		if err := setPath(out, "", strings.Split(name, "."), copyTOML(params[name])); err != nil {
			return nil, fmt.Errorf("parameter %q: %w", name, err)
		}
	}
	return out, nil
}

// setPath sets v at the path segs under the table t (at is t's path, for messages).
func setPath(t map[string]any, at string, segs []string, v any) error {
	key := segs[0]
	if len(segs) == 1 {
		t[key] = v
		return nil
	}
	here := joinPath(at, key)
	switch x := t[key].(type) {
	case nil:
		m := map[string]any{}
		t[key] = m
		return setPath(m, here, segs[1:], v)
	case map[string]any:
		return setPath(x, here, segs[1:], v)
	case []any:
		return setInList(x, key, here, segs[1:], v)
	default:
		return fmt.Errorf("%s is %s, not a table", here, search.FormatValue(x))
	}
}

// setInList sets v at segs under the elements of list (one, or every one for *).
func setInList(list []any, listKey, at string, segs []string, v any) error {
	idx := []int{}
	if segs[0] == wildcard && len(list) == 0 {
		// * over no elements sets nothing: a choice of layer lists may hold [] (no hidden
		// layer: a linear or logistic model), and layers.*.dropout then has no layer to set.
		return nil
	}
	if segs[0] == wildcard {
		for i := range list {
			idx = append(idx, i)
		}
	} else {
		n, err := strconv.Atoi(segs[0])
		if err != nil || n < 0 || n >= len(list) {
			return fmt.Errorf("%s has no element %s (it has %d)", at, segs[0], len(list))
		}
		idx = append(idx, n)
	}
	set := 0
	for _, i := range idx {
		here := fmt.Sprintf("%s.%d", at, i)
		if len(segs) == 1 {
			list[i] = copyTOML(v)
			set++
			continue
		}
		m, ok := list[i].(map[string]any)
		if !ok {
			return fmt.Errorf("%s is %s, not a table", here, search.FormatValue(list[i]))
		}
		if segs[0] == wildcard && listKey == "layers" && len(segs) == 2 {
			if typ, long, msg := layerType(m); msg == "" && !layerTakes(typ, long, segs[1]) {
				continue // a batch_norm layer has no dropout: * means every layer that takes it
			}
		}
		if err := setPath(m, here, segs[1:], copyTOML(v)); err != nil {
			return err
		}
		set++
	}
	if set == 0 {
		return fmt.Errorf("no element of %s takes %s", at, strings.Join(segs[1:], "."))
	}
	return nil
}

// copyTOML returns a deep copy of a decoded TOML value, with arrays of tables as []any.
func copyTOML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = copyTOML(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = copyTOML(e)
		}
		return s
	case []map[string]any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = copyTOML(e)
		}
		return s
	case []string:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = e
		}
		return s
	}
	return v
}
