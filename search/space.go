package search

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/pipe-ml/pipe/internal/names"
)

// Dist is the distribution of a parameter, spelled as its key in the space's TOML.
type Dist string

// The distributions.
const (
	// Uniform draws a float uniformly in [lo, hi].
	Uniform Dist = "uniform"
	// LogUniform draws a float whose logarithm is uniform in [ln lo, ln hi]; lo > 0.
	LogUniform Dist = "log_uniform"
	// Int draws an integer in [lo, hi] (inclusive), each with the same probability.
	Int Dist = "int"
	// LogInt draws an integer in [lo, hi] (inclusive, lo ≥ 1) on a log scale: integer k has
	// the probability of the interval [k−½, k+½] on a log axis over [lo−½, hi+½].
	LogInt Dist = "log_int"
	// Choice draws one of a list of values of any TOML type (numbers, strings, booleans,
	// arrays, tables), with weights that start equal and that zoom changes.
	Choice Dist = "choice"
)

// keyWhen is the key of a parameter's condition.
const keyWhen = "when"

var dists = []Dist{Uniform, LogUniform, Int, LogInt, Choice}

// log reports whether d samples on a log scale.
func (d Dist) log() bool { return d == LogUniform || d == LogInt }

// integer reports whether d draws integers.
func (d Dist) integer() bool { return d == Int || d == LogInt }

// maxExactInt bounds int parameters to integers whose halves a float64 holds exactly.
const maxExactInt = 1 << 51

// Param is one parameter of a Space.
type Param struct {
	// Name is the parameter's name: a dotted path into the config it applies to
	// ("optimizer.lr", "layers.0.dense", "layers.*.dropout"). The package does not interpret
	// it, except that conditions name other parameters by it.
	Name string
	// Dist is its distribution.
	Dist Dist
	// Lo and Hi are the bounds of a numeric parameter (integers for Int and LogInt).
	Lo, Hi float64
	// Choices are the values of a Choice parameter, as decoded from TOML. They are shared:
	// treat them as read-only (sampled values are copies).
	Choices []any
	// When lists the conditions under which the parameter exists, by Name; all must hold.
	When []Condition
}

// Condition makes a parameter exist only when another parameter, or a fixed value of the
// base config, equals Value.
type Condition struct {
	// Name is the parameter (a Choice of the space) or the base config's path that is tested.
	Name string
	// Value is the value it must equal (numbers compare by value: 2 equals 2.0).
	Value any
	// Fixed is true when Name is a value of the base config, not a parameter of the space.
	// A fixed condition always holds (one that does not is a parse error).
	Fixed bool
}

// Space is a parsed, validated search space: an immutable set of parameters. It is safe for
// concurrent use.
type Space struct {
	params []Param         // sorted by name: the order in which Sample draws
	index  map[string]int  // name → position in params
	order  []int           // params in an order where every condition's parameter comes first
	deps   [][]conditionAt // per param, its non-fixed conditions
}

// conditionAt is a resolved, non-fixed condition: the parameter it tests and the value.
type conditionAt struct {
	param int
	value any
}

// Params returns the parameters in name order (a copy).
func (s *Space) Params() []Param {
	out := make([]Param, len(s.params))
	copy(out, s.params)
	return out
}

// Names returns the parameters' names in sorted order.
func (s *Space) Names() []string {
	out := make([]string, len(s.params))
	for i, p := range s.params {
		out[i] = p.Name
	}
	return out
}

// Param returns the parameter called name.
func (s *Space) Param(name string) (Param, bool) {
	i, ok := s.index[name]
	if !ok {
		return Param{}, false
	}
	return s.params[i], true
}

// Len returns the number of parameters.
func (s *Space) Len() int { return len(s.params) }

// SpaceError is one problem of a search space, about one parameter. ParseSpace returns all of
// them joined (errors.Join), sorted by parameter and key.
type SpaceError struct {
	// Param is the parameter's name ("optimizer.lr"); empty for the space as a whole.
	Param string
	// Key is the key inside the parameter's table that is wrong ("log_uniform", "when",
	// "when.optimizer.name"); empty for the table as a whole.
	Key string
	// Msg says what is wrong.
	Msg string
	// Hint says what to do, when there is something useful to say.
	Hint string
}

func (e *SpaceError) Error() string {
	var b strings.Builder
	b.WriteString("search space")
	if e.Param != "" {
		fmt.Fprintf(&b, ": parameter %q", e.Param)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// rawParam is a parameter before its conditions are resolved.
type rawParam struct {
	Param
	when map[string]any
}

type spaceParser struct {
	errs []*SpaceError
}

func (sp *spaceParser) fail(param, key, hint, format string, args ...any) {
	sp.errs = append(sp.errs, &SpaceError{Param: param, Key: key, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// ParseSpace parses and validates a search space from its decoded TOML form: a table of
// parameters, each a table with one distribution key and an optional condition:
//
//	{ "optimizer.lr"       = { log_uniform = [1e-4, 3e-2] },
//	  "layers.0.dense"     = { choice = [128, 256, 512] },
//	  "optimizer.name"     = { choice = ["adam", "sgd"] },
//	  "optimizer.momentum" = { uniform = [0.8, 0.99], when = { "optimizer.name" = "sgd" } } }
//
// A parameter's name is its key; nested tables without a distribution key are paths, so the
// dotted keys of TOML (optimizer.lr = { ... } without quotes) name the same parameter as the
// quoted key "optimizer.lr".
//
// A condition (`when`) names other parameters, which must be choices, or values of base (the
// config the parameters apply to, walked by the dotted path: tables by key, arrays by index),
// which are fixed: a fixed condition must hold, since a parameter that can never exist is a
// mistake. Conditions on conditional parameters chain (the parameter exists only when its
// condition's parameter exists too); a cycle is an error.
//
// Every problem is reported: the error joins one *SpaceError per problem. An empty space is an
// error.
func ParseSpace(raw map[string]any, base map[string]any) (*Space, error) {
	sp := &spaceParser{}
	var raws []rawParam
	seen := map[string]bool{}
	sp.collect("", raw, &raws, seen)
	if len(raw) == 0 {
		sp.fail("", "", "give at least one parameter, such as \"optimizer.lr\" = { log_uniform = [1e-4, 1e-2] }", "no parameters")
	}
	sort.Slice(raws, func(i, j int) bool { return raws[i].Name < raws[j].Name })
	s := &Space{index: make(map[string]int, len(raws))}
	for i, r := range raws {
		s.params = append(s.params, r.Param)
		s.index[r.Name] = i
	}
	s.deps = make([][]conditionAt, len(s.params))
	for i, r := range raws {
		sp.resolveWhen(s, i, r.when, base)
	}
	sp.checkCycles(s)
	if len(sp.errs) > 0 {
		sort.SliceStable(sp.errs, func(i, j int) bool {
			if sp.errs[i].Param != sp.errs[j].Param {
				return sp.errs[i].Param < sp.errs[j].Param
			}
			return sp.errs[i].Key < sp.errs[j].Key
		})
		errs := make([]error, len(sp.errs))
		for i, e := range sp.errs {
			errs[i] = e
		}
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// sortedKeys returns m's keys in sorted order.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func joinName(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// isParamTable reports whether t declares a parameter (has a distribution key or a
// condition), rather than being a level of a dotted path.
func isParamTable(t map[string]any) bool {
	for k := range t {
		if k == keyWhen {
			return true
		}
		for _, d := range dists {
			if k == string(d) {
				return true
			}
		}
	}
	return false
}

// allTables reports whether every value of a non-empty t is a table.
func allTables(t map[string]any) bool {
	for _, v := range t {
		if _, ok := v.(map[string]any); !ok {
			return false
		}
	}
	return len(t) > 0
}

func (sp *spaceParser) collect(prefix string, raw map[string]any, out *[]rawParam, seen map[string]bool) {
	for _, k := range sortedKeys(raw) {
		name := joinName(prefix, k)
		t, ok := raw[k].(map[string]any)
		if !ok {
			sp.fail(name, "", "write it as a table, such as { uniform = [0.0, 0.5] } or { choice = [\"a\", \"b\"] }", "needs a distribution table, got %s", FormatValue(raw[k]))
			continue
		}
		if !isParamTable(t) && allTables(t) {
			sp.collect(name, t, out, seen)
			continue
		}
		if bad := badName(name); bad != "" {
			sp.fail(name, "", "", "%s", bad)
			continue
		}
		if seen[name] {
			sp.fail(name, "", "give each parameter once: a quoted dotted key and a nested table name the same parameter", "declared twice")
			continue
		}
		seen[name] = true
		if p, ok := sp.parseParam(name, t); ok {
			*out = append(*out, p)
		}
	}
}

// badName says what is wrong with a parameter name, or "".
func badName(name string) string {
	for _, seg := range strings.Split(name, ".") {
		if seg == "" {
			return "the name has an empty path segment: write a.b, not a..b or .a"
		}
	}
	return ""
}

func distNames() []string {
	out := make([]string, len(dists))
	for i, d := range dists {
		out[i] = string(d)
	}
	return out
}

func (sp *spaceParser) parseParam(name string, t map[string]any) (rawParam, bool) {
	p := rawParam{Param: Param{Name: name}}
	var found []string
	ok := true
	for _, k := range sortedKeys(t) {
		if k == keyWhen {
			w, isTable := t[k].(map[string]any)
			if !isTable || len(w) == 0 {
				sp.fail(name, keyWhen, "write when = { \"optimizer.name\" = \"sgd\" }", "needs a table of parameter = value, got %s", FormatValue(t[k]))
				ok = false
				continue
			}
			p.when = w
			continue
		}
		known := false
		for _, d := range dists {
			if k == string(d) {
				known = true
			}
		}
		if !known {
			hint := "the distributions are " + strings.Join(distNames(), ", ") + "; a condition is when = { ... }"
			if s := names.Suggest(k, append(distNames(), keyWhen)); s != "" {
				hint = fmt.Sprintf("did you mean %s?", s)
			}
			sp.fail(name, k, hint, "unknown distribution %q", k)
			ok = false
			continue
		}
		found = append(found, k)
	}
	switch {
	case len(found) == 0 && ok:
		sp.fail(name, "", "give one of "+strings.Join(distNames(), ", "), "no distribution")
		return p, false
	case len(found) > 1:
		sp.fail(name, "", "give exactly one distribution per parameter", "has %d distributions: %s", len(found), strings.Join(found, " and "))
		return p, false
	case len(found) == 0:
		return p, false
	}
	p.Dist = Dist(found[0])
	v := t[found[0]]
	if p.Dist == Choice {
		list, isList := v.([]any)
		if !isList {
			sp.fail(name, found[0], "write choice = [value, value, ...]", "needs an array of values, got %s", FormatValue(v))
			return p, false
		}
		if len(list) == 0 {
			sp.fail(name, found[0], "give at least one value", "empty choice")
			return p, false
		}
		for i := range list {
			for j := range i {
				if equalValues(list[i], list[j]) {
					sp.fail(name, found[0], "give each value once", "value %s is listed twice (positions %d and %d)", FormatValue(list[i]), j+1, i+1)
					return p, false
				}
			}
		}
		p.Choices = list
		return p, ok
	}
	lo, hi, good := sp.bounds(name, p.Dist, v)
	p.Lo, p.Hi = lo, hi
	return p, ok && good
}

// bounds parses and checks [lo, hi] of a numeric distribution.
func (sp *spaceParser) bounds(name string, d Dist, v any) (lo, hi float64, ok bool) {
	key := string(d)
	list, isList := v.([]any)
	example := "[0.0, 1.0]"
	switch d {
	case LogUniform:
		example = "[1e-4, 1e-1]"
	case Int, LogInt:
		example = "[1, 10]"
	}
	if !isList || len(list) != 2 {
		sp.fail(name, key, "write "+key+" = "+example, "needs [lower, upper], two numbers; got %s", FormatValue(v))
		return 0, 0, false
	}
	var b [2]float64
	for i, e := range list {
		x, isNum := number(e)
		which := [2]string{"lower", "upper"}[i]
		switch {
		case !isNum:
			sp.fail(name, key, "write "+key+" = "+example, "the %s bound %s is not a number", which, FormatValue(e))
			return 0, 0, false
		case math.IsNaN(x) || math.IsInf(x, 0):
			sp.fail(name, key, "give finite bounds", "the %s bound is %s", which, formatFloat(x))
			return 0, 0, false
		case d.integer() && x != math.Trunc(x):
			sp.fail(name, key, "use uniform or log_uniform for a float parameter", "the %s bound %s is not an integer", which, FormatValue(e))
			return 0, 0, false
		case d.integer() && math.Abs(x) > maxExactInt:
			sp.fail(name, key, "", "the %s bound %s is beyond ±2^51", which, FormatValue(e))
			return 0, 0, false
		}
		b[i] = x
	}
	lo, hi = b[0], b[1]
	switch {
	case lo > hi:
		sp.fail(name, key, fmt.Sprintf("write %s = [%s, %s]", key, FormatValue(list[1]), FormatValue(list[0])), "bounds reversed: the lower bound %s is above the upper bound %s", FormatValue(list[0]), FormatValue(list[1]))
		return 0, 0, false
	case math.IsInf(hi-lo, 0):
		sp.fail(name, key, "narrow the range, or use log_uniform", "the range from %s to %s is too wide to sample", FormatValue(list[0]), FormatValue(list[1]))
		return 0, 0, false
	case lo == hi:
		sp.fail(name, key, "a parameter with one value is fixed: set it in the base config instead", "the bounds are equal (%s)", FormatValue(list[0]))
		return 0, 0, false
	case d == LogUniform && lo <= 0:
		sp.fail(name, key, "a log scale needs both bounds > 0; use uniform for a range that includes 0", "the lower bound %s is not positive", FormatValue(list[0]))
		return 0, 0, false
	case d == LogInt && lo < 1:
		sp.fail(name, key, "a log scale needs both bounds ≥ 1; use int for a range that includes 0", "the lower bound %s is below 1", FormatValue(list[0]))
		return 0, 0, false
	}
	return lo, hi, true
}

// flattenWhen turns a condition table into (name, value) pairs. A key that names a parameter
// of the space is a condition as it stands (a choice's value may be a table); a table under
// any other key is a level of a dotted path (when = { optimizer.name = "sgd" } without quotes),
// so a condition on the base config names a value inside a table, not the table.
func flattenWhen(prefix string, w map[string]any, s *Space, out *[][2]any) {
	for _, k := range sortedKeys(w) {
		name := joinName(prefix, k)
		v := w[k]
		if _, inSpace := s.index[name]; !inSpace {
			if t, isTable := v.(map[string]any); isTable && len(t) > 0 {
				flattenWhen(name, t, s, out)
				continue
			}
		}
		*out = append(*out, [2]any{name, v})
	}
}

func (sp *spaceParser) resolveWhen(s *Space, i int, when map[string]any, base map[string]any) {
	if when == nil {
		return
	}
	p := &s.params[i]
	var pairs [][2]any
	flattenWhen("", when, s, &pairs)
	for _, pr := range pairs {
		cname, want := pr[0].(string), pr[1]
		key := keyWhen + "." + cname
		if cname == p.Name {
			sp.fail(p.Name, key, "", "a parameter cannot depend on itself")
			continue
		}
		if j, inSpace := s.index[cname]; inSpace {
			q := s.params[j]
			if q.Dist != Choice {
				sp.fail(p.Name, key, "condition on a choice parameter, or on a value fixed in the base config", "names %q, a %s parameter", cname, q.Dist)
				continue
			}
			found := false
			for _, c := range q.Choices {
				if equalValues(c, want) {
					found = true
				}
			}
			if !found {
				hint := "its choices are " + formatList(q.Choices)
				if ws, isString := want.(string); isString {
					var cs []string
					for _, c := range q.Choices {
						if s, ok := c.(string); ok {
							cs = append(cs, s)
						}
					}
					if sug := names.Suggest(ws, cs); sug != "" {
						hint = fmt.Sprintf("did you mean %q? %s", sug, hint)
					}
				}
				sp.fail(p.Name, key, hint, "%q has no choice %s, so the parameter would never exist", cname, FormatValue(want))
				continue
			}
			p.When = append(p.When, Condition{Name: cname, Value: want})
			s.deps[i] = append(s.deps[i], conditionAt{param: j, value: want})
			continue
		}
		got, inBase := lookupPath(base, cname)
		if !inBase {
			hint := "name a choice parameter of the space or a value of the base config"
			if sug := names.Suggest(cname, s.Names()); sug != "" {
				hint = fmt.Sprintf("did you mean %q?", sug)
			}
			sp.fail(p.Name, key, hint, "names %q, which is neither a parameter of the space nor a value of the base config", cname)
			continue
		}
		if !equalValues(got, want) {
			sp.fail(p.Name, key, fmt.Sprintf("make %q a choice parameter of the space, or drop this parameter", cname), "the base config sets %s = %s, not %s, so the parameter would never exist", cname, FormatValue(got), FormatValue(want))
			continue
		}
		p.When = append(p.When, Condition{Name: cname, Value: want, Fixed: true})
	}
	sort.Slice(p.When, func(a, b int) bool { return p.When[a].Name < p.When[b].Name })
	sort.Slice(s.deps[i], func(a, b int) bool { return s.deps[i][a].param < s.deps[i][b].param })
}

// checkCycles reports conditions that depend on themselves through other parameters, and
// computes the order in which presence is decided.
func (sp *spaceParser) checkCycles(s *Space) {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(s.params))
	var stack []int
	var visit func(i int) bool
	visit = func(i int) bool {
		color[i] = grey
		stack = append(stack, i)
		for _, d := range s.deps[i] {
			switch color[d.param] {
			case grey:
				var cyc []string
				for k := len(stack) - 1; k >= 0; k-- {
					cyc = append(cyc, s.params[stack[k]].Name)
					if stack[k] == d.param {
						break
					}
				}
				// cyc runs from i back to d.param; print it in condition order.
				for a, b := 0, len(cyc)-1; a < b; a, b = a+1, b-1 {
					cyc[a], cyc[b] = cyc[b], cyc[a]
				}
				// Start the cycle at its first name, and report it there.
				first := 0
				for a := range cyc {
					if cyc[a] < cyc[first] {
						first = a
					}
				}
				path := make([]string, 0, len(cyc)+1)
				path = append(path, cyc[first:]...)
				path = append(path, cyc[:first]...)
				path = append(path, path[0])
				at := path[0]
				for a := range path {
					path[a] = strconv.Quote(path[a])
				}
				sp.fail(at, keyWhen, "a parameter's condition may not depend, through other conditions, on the parameter itself", "conditions form a cycle: %s (each exists only when the next one does)", strings.Join(path, " → "))
				return false
			case white:
				if !visit(d.param) {
					return false
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		s.order = append(s.order, i)
		return true
	}
	for i := range s.params {
		if color[i] == white {
			stack = stack[:0]
			if !visit(i) {
				return
			}
		}
	}
}

// lookupPath walks a decoded TOML table by a dotted path: tables by key, arrays by index.
func lookupPath(base map[string]any, path string) (any, bool) {
	var cur any = base
	if base == nil {
		return nil, false
	}
	for _, seg := range strings.Split(path, ".") {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[seg]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			cur = x[i]
		case []map[string]any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			cur = x[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// formatList writes values as a TOML array.
func formatList(vs []any) string {
	return FormatValue(vs)
}
