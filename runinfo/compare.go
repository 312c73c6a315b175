package runinfo

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/pipe-ml/pipe/pipeline"
)

// Config changes.
const (
	Added   = "added"   // the key is in B only
	Removed = "removed" // the key is in A only
	Changed = "changed" // the key is in both, with different values
)

// Comparison is run B set against run A. Its JSON form is what `pipe compare --format json`
// prints.
type Comparison struct {
	A Side `json:"a"`
	B Side `json:"b"`
	// Config lists the keys of the resolved configs (pipeline.toml) that differ, sorted by
	// path; empty, never null, when none does.
	Config []ConfigChange `json:"config"`
	// Metrics lists every metric either run reports, per stage (in stage order) and key.
	Metrics []MetricChange `json:"metrics"`
	// Stages lists the stages whose status differs, that were read from the stage store in
	// one run and not in the other, or that one run lacks.
	Stages []StageChange `json:"stages"`
}

// Side is what a comparison says of one run.
type Side struct {
	Dir         string     `json:"dir"`
	ID          string     `json:"id"`
	Pipeline    string     `json:"pipeline"`
	Status      string     `json:"status"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	Seed        uint64     `json:"seed"`
	PipeVersion string     `json:"pipe_version"`
	ConfigHash  string     `json:"config_hash"`
	Overrides   []string   `json:"overrides,omitempty"`
}

// ConfigChange is one key whose value differs between the two runs' resolved configs.
type ConfigChange struct {
	// Path names the key as `pipe run --set` does: stage.key for a stage's key
	// ("model.epochs"), nested tables and arrays of tables included
	// ("model.optimizer.lr", "model.layers[1].dense"), and pipeline.key for the [pipeline]
	// table ("pipeline.seed"). An array of plain values is one key. A table or array of
	// tables that one run lacks is listed leaf by leaf.
	Path string `json:"path"`
	// Change is "added" (in B only), "removed" (in A only) or "changed".
	Change string `json:"change"`
	// A and B are the values in TOML syntax ("0.001", "\"adam\"", "[64, 32]"); empty on the
	// side that lacks the key.
	A string `json:"a,omitempty"`
	B string `json:"b,omitempty"`
}

// MetricChange is one metric of one stage in both runs. A or B is null (nil) when that run
// does not report it; Delta is B − A when both do.
type MetricChange struct {
	Stage string   `json:"stage"`
	Key   string   `json:"key"`
	A     *float64 `json:"a"`
	B     *float64 `json:"b"`
	Delta *float64 `json:"delta"`
}

// StageChange is a stage whose status or use of the stage store differs between the runs.
type StageChange struct {
	Stage string `json:"stage"`
	// AStatus and BStatus are the stage's status in each run; empty when the run has no such
	// stage.
	AStatus string `json:"a_status,omitempty"`
	BStatus string `json:"b_status,omitempty"`
	// ACached and BCached say whether the stage was read back from the stage store.
	ACached bool `json:"a_cached"`
	BCached bool `json:"b_cached"`
}

// Compare reads the runs in dirA and dirB (their manifest.json and pipeline.toml) and sets B
// against A. A run whose manifest or resolved config cannot be read is an error naming the
// file.
func Compare(dirA, dirB string) (*Comparison, error) {
	ma, sa, err := readSide(dirA)
	if err != nil {
		return nil, err
	}
	mb, sb, err := readSide(dirB)
	if err != nil {
		return nil, err
	}
	ca, err := readConfig(dirA)
	if err != nil {
		return nil, err
	}
	cb, err := readConfig(dirB)
	if err != nil {
		return nil, err
	}
	c := &Comparison{A: sa, B: sb, Config: []ConfigChange{}, Metrics: []MetricChange{}, Stages: []StageChange{}}
	diffConfig("", ca, cb, &c.Config)
	sort.SliceStable(c.Config, func(i, j int) bool { return c.Config[i].Path < c.Config[j].Path })
	for _, name := range unionOrder(ma, mb) {
		a, b := ma.Stages[name], mb.Stages[name]
		c.Metrics = append(c.Metrics, diffMetrics(name, a, b)...)
		var st StageChange
		st.Stage = name
		if a != nil {
			st.AStatus, st.ACached = a.Status, a.Cached
		}
		if b != nil {
			st.BStatus, st.BCached = b.Status, b.Cached
		}
		if st.AStatus != st.BStatus || st.ACached != st.BCached {
			c.Stages = append(c.Stages, st)
		}
	}
	return c, nil
}

// readSide reads the manifest of the run in dir.
func readSide(dir string) (*pipeline.Manifest, Side, error) {
	m, status, err := pipeline.ReadRun(dir)
	if err != nil {
		return nil, Side{}, fmt.Errorf("run %s: %w (is it a run directory? it should hold manifest.json)", dir, err)
	}
	s := Side{Dir: dir, ID: m.RunID, Pipeline: m.Pipeline, Status: status, Seed: m.Seed,
		PipeVersion: m.PipeVersion, ConfigHash: m.ConfigHash, Overrides: m.Overrides}
	if !m.StartedAt.IsZero() {
		t := m.StartedAt
		s.StartedAt = &t
	}
	return m, s, nil
}

// readConfig decodes the resolved config of the run in dir.
func readConfig(dir string) (map[string]any, error) {
	path := filepath.Join(dir, "pipeline.toml")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("run %s: its resolved config: %w", dir, err)
	}
	var cfg map[string]any
	if err := toml.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// unionOrder is A's stage order followed by the stages only B has, in B's order.
func unionOrder(a, b *pipeline.Manifest) []string {
	order := stageOrder(a)
	seen := map[string]bool{}
	for _, n := range order {
		seen[n] = true
	}
	for _, n := range stageOrder(b) {
		if !seen[n] {
			order = append(order, n)
		}
	}
	return order
}

// diffMetrics compares one stage's metrics; a or b may be nil (the run lacks the stage).
func diffMetrics(stage string, a, b *pipeline.StageManifest) []MetricChange {
	keys := map[string]bool{}
	var ma, mb map[string]float64
	if a != nil {
		ma = a.Metrics
	}
	if b != nil {
		mb = b.Metrics
	}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	out := make([]MetricChange, 0, len(sorted))
	for _, k := range sorted {
		mc := MetricChange{Stage: stage, Key: k}
		if v, ok := ma[k]; ok {
			mc.A = &v
		}
		if v, ok := mb[k]; ok {
			mc.B = &v
		}
		if mc.A != nil && mc.B != nil {
			d := *mc.B - *mc.A
			mc.Delta = &d
		}
		out = append(out, mc)
	}
	return out
}

// diffConfig appends the differences of a and b (decoded TOML values at path) to out. The top
// level's "stages" table is left out of the paths, as --set leaves it out.
func diffConfig(path string, a, b any, out *[]ConfigChange) {
	ta, aTable := a.(map[string]any)
	tb, bTable := b.(map[string]any)
	if aTable && bTable {
		keys := map[string]bool{}
		for k := range ta {
			keys[k] = true
		}
		for k := range tb {
			keys[k] = true
		}
		for k := range keys {
			va, inA := ta[k]
			vb, inB := tb[k]
			child := joinKey(path, k)
			if path == "" && k == "stages" {
				child = ""
			}
			switch {
			case inA && inB:
				diffConfig(child, va, vb, out)
			case inA:
				leaves(child, va, Removed, out)
			default:
				leaves(child, vb, Added, out)
			}
		}
		return
	}
	la, aTables := tableArray(a)
	lb, bTables := tableArray(b)
	if aTables && bTables {
		for i := range max(len(la), len(lb)) {
			child := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i < len(la) && i < len(lb):
				diffConfig(child, la[i], lb[i], out)
			case i < len(la):
				leaves(child, la[i], Removed, out)
			default:
				leaves(child, lb[i], Added, out)
			}
		}
		return
	}
	if ta, tb := tomlText(a), tomlText(b); ta != tb {
		*out = append(*out, ConfigChange{Path: path, Change: Changed, A: ta, B: tb})
	}
}

// leaves appends every leaf of v (at path) as added or removed: a table, or an array of
// tables, is listed key by key.
func leaves(path string, v any, change string, out *[]ConfigChange) {
	add := func(p string, v any) {
		cc := ConfigChange{Path: p, Change: change}
		if change == Added {
			cc.B = tomlText(v)
		} else {
			cc.A = tomlText(v)
		}
		*out = append(*out, cc)
	}
	if t, ok := v.(map[string]any); ok {
		if len(t) == 0 {
			add(path, v)
		}
		for k, c := range t {
			leaves(joinKey(path, k), c, change, out)
		}
		return
	}
	if l, ok := tableArray(v); ok && len(l) > 0 {
		for i, c := range l {
			leaves(fmt.Sprintf("%s[%d]", path, i), c, change, out)
		}
		return
	}
	add(path, v)
}

// tableArray returns v as a list of tables when it is an array whose every element is a table
// (an empty array counts).
func tableArray(v any) ([]any, bool) {
	l, ok := v.([]any)
	if !ok {
		return nil, false
	}
	for _, e := range l {
		if _, ok := e.(map[string]any); !ok {
			return nil, false
		}
	}
	return l, true
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// joinKey appends key k to path, quoting it when it is not a bare TOML key.
func joinKey(path, k string) string {
	if !bareKey.MatchString(k) {
		k = strconv.Quote(k)
	}
	if path == "" {
		return k
	}
	return path + "." + k
}

// tomlText writes a decoded TOML value in TOML syntax. Equal values give equal texts, and
// values of different types different ones (1 and 1.0).
func tomlText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return strconv.Quote(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		switch {
		case math.IsNaN(x):
			return "nan"
		case math.IsInf(x, 1):
			return "inf"
		case math.IsInf(x, -1):
			return "-inf"
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return s
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = tomlText(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = joinKey("", k) + " = " + tomlText(x[k])
		}
		if len(parts) == 0 {
			return "{}"
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return fmt.Sprint(v)
}

// DiffConfigs lists the keys whose values differ between two resolved configs (TOML texts,
// as a run's pipeline.toml), sorted by path, named as Compare names them.
func DiffConfigs(a, b []byte) ([]ConfigChange, error) {
	var ca, cb map[string]any
	if err := toml.Unmarshal(a, &ca); err != nil {
		return nil, fmt.Errorf("the first config: %w", err)
	}
	if err := toml.Unmarshal(b, &cb); err != nil {
		return nil, fmt.Errorf("the second config: %w", err)
	}
	var out []ConfigChange
	diffConfig("", ca, cb, &out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
