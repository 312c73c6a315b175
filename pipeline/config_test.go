package pipeline

import (
	"context"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestConfigGolden loads every testdata/config/*.toml file: *.good.toml must load, *.bad.toml
// must fail with exactly the error text in the matching .golden file.
func TestConfigGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/config/*.toml")
	if len(files) < 8 {
		t.Fatalf("expected the config test files, found %d", len(files))
	}
	reg := nestedRegistry(t)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f, reg, LoadOptions{})
			if strings.HasSuffix(f, ".good.toml") {
				if err != nil {
					t.Fatalf("want no error, got:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error, got none")
			}
			golden := strings.TrimSuffix(f, ".toml") + ".golden"
			got := err.Error() + "\n"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("no golden file (run with -update): %v", rerr)
			}
			if got != string(want) {
				t.Errorf("error text differs\n got:\n%s\nwant:\n%s", got, want)
			}
			if len(ConfigErrors(err)) == 0 {
				t.Errorf("error holds no *ConfigError: %T", err)
			}
		})
	}
}

func TestAllProblemsReportedTogether(t *testing.T) {
	src := `
[pipeline]
name = "x"

[stages.a]
kind = "gen"
rowz = 3
mode = "fanzy"

[stages.b]
kind = "doubel"

[stages.c]
kind = "total"
input = "aa"
`
	_, err := Parse([]byte(src), "p.toml", ".", testRegistry(), LoadOptions{})
	errs := ConfigErrors(err)
	if len(errs) != 4 {
		t.Fatalf("want 4 problems, got %d:\n%v", len(errs), err)
	}
	wantLines := []int{7, 8, 11, 15}
	for i, e := range errs {
		if e.Line != wantLines[i] {
			t.Errorf("problem %d at line %d, want %d: %v", i, e.Line, wantLines[i], e)
		}
	}
}

func TestOverrides(t *testing.T) {
	src := "[stages.a]\nkind = \"gen\"\nrows = 5\n"
	p, err := Parse([]byte(src), "p.toml", ".", testRegistry(), LoadOptions{Overrides: []string{"a.rows=7", "a.mode=fancy", "pipeline.seed=9"}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Stage("a")
	if a.Int("rows") != 7 || a.String("mode") != "fancy" || p.Seed != 9 {
		t.Errorf("overrides not applied: rows=%d mode=%q seed=%d", a.Int("rows"), a.String("mode"), p.Seed)
	}
	if !strings.Contains(string(p.Resolved()), "ratio = 0.5") {
		t.Errorf("resolved config lacks the default ratio:\n%s", p.Resolved())
	}
	_, err = Parse([]byte(src), "p.toml", ".", testRegistry(), LoadOptions{Overrides: []string{"b.rows=7"}})
	if err == nil || !strings.Contains(err.Error(), `stage "b"`) {
		t.Errorf("override of a missing stage: %v", err)
	}
	_, err = Parse([]byte(src), "p.toml", ".", testRegistry(), LoadOptions{Overrides: []string{"a.rows=many"}})
	if err == nil || !strings.Contains(err.Error(), `expected integer, found the string "many"`) {
		t.Errorf("override with a wrong type: %v", err)
	}
}

func TestSuggest(t *testing.T) {
	cases := []struct{ in, want string }{
		{"epoch", "epochs"}, {"epohcs", "epochs"}, {"lr", "lr"}, {"zzzzzz", ""}, {"optimiser", "optimizer"},
	}
	cands := []string{"epochs", "lr", "optimizer", "batch_size"}
	for _, c := range cases {
		if got := Suggest(c.in, cands); got != c.want {
			t.Errorf("Suggest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		err  bool
	}{{"4GiB", 4 << 30, false}, {"512MiB", 512 << 20, false}, {"100MB", 100_000_000, false}, {"1.5KiB", 1536, false}, {"7", 7, false}, {"lots", 0, true}, {"-1GiB", 0, true}}
	for _, c := range cases {
		got, err := ParseSize(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, err=%v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestGraph(t *testing.T) {
	src := `
[stages.a]
kind = "gen"
[stages.b]
kind = "double"
input = "a"
[stages.c]
kind = "total"
input = ["b.out", "a"]
[stages.d]
kind = "report"
model = "c.total"
`
	p, err := Parse([]byte(src), "p.toml", ".", testRegistry(), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dot := p.DOT()
	for _, want := range []string{`"a" -> "b"`, `"b" -> "c"`, `"a" -> "c"`, `"c" -> "d" [label="total → model", style=dashed]`} {
		if !strings.Contains(dot, want) {
			t.Errorf("DOT lacks %s:\n%s", want, dot)
		}
	}
	mm := p.Mermaid()
	for _, want := range []string{"a -->|out| b", "c -.->|total| d"} {
		if !strings.Contains(mm, want) {
			t.Errorf("Mermaid lacks %s:\n%s", want, mm)
		}
	}
}

func TestDocsCoverEveryField(t *testing.T) {
	reg := testRegistry()
	doc, err := Docs(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range reg.Kinds() {
		if !strings.Contains(doc, "### `"+k.Kind+"`") {
			t.Errorf("docs lack kind %s", k.Kind)
		}
		for _, f := range k.Fields {
			if !strings.Contains(doc, "| `"+f.Name+"` |") {
				t.Errorf("docs lack field %s.%s", k.Kind, f.Name)
			}
		}
	}
	if _, err := Docs(reg, "doubel"); err == nil || !strings.Contains(err.Error(), `did you mean "double"`) {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestRegistryRejectsDuplicates(t *testing.T) {
	r := testRegistry()
	err := r.Register(KindSpec{Kind: "gen", New: func(*StageConfig) (Stage, error) { return nil, nil }})
	if err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("duplicate kind: %v", err)
	}
}

// nestedRegistry is testRegistry plus kinds with nested tables, path fields and split roles.
func nestedRegistry(t testing.TB) *Registry {
	t.Helper()
	r := testRegistry()
	layer := []Field{
		{Name: "dense", Type: TypeInt, Min: Bound(1), Doc: "Units."},
		{Name: "dropout", Type: TypeFloat, Min: Bound(0), Max: Bound(1), MaxExclusive: true, Doc: "A share."},
		{Name: "activation", Type: TypeString, Enum: []string{"relu", "tanh"}, Doc: "The activation."},
	}
	kinds := []KindSpec{{
		Kind: "net", Shape: ShapeTrain, Doc: "A stage with nested tables.",
		Fields: []Field{
			{Name: "input", Type: TypeInput, Port: PortTable, Splits: []string{"train", "all"}, Doc: "The training table."},
			{Name: "layers", Type: TypeList, Elem: &Field{Type: TypeTable, Fields: layer}, Doc: "The layers."},
			{Name: "optimizer", Type: TypeTable, Fields: []Field{
				{Name: "name", Type: TypeString, Default: "adam", Enum: []string{"adam", "sgd"}, Doc: "The optimizer."},
				{Name: "lr", Type: TypeFloatOrAuto, Min: Bound(0), MinExclusive: true, Doc: "The rate."},
			}, Misplaced: map[string]string{"epochs": "epochs is a key of the stage"}, Doc: "The optimizer."},
			{Name: "early_stopping", Type: TypeBoolOrTable, Fields: []Field{
				{Name: "patience", Type: TypeInt, Default: int64(15), Min: Bound(1), Doc: "Epochs."},
			}, Doc: "Early stopping."},
			{Name: "tasks", Type: TypeTable, Elem: &Field{Name: "<target>", Type: TypeTable, Fields: []Field{
				{Name: "weight", Type: TypeFloat, Min: Bound(0), Doc: "A weight."},
			}}, Doc: "Per target."},
			{Name: "ratios", Type: TypeList, Len: 3, Elem: &Field{Type: TypeFloat, Min: Bound(0), Max: Bound(1)}, Doc: "Three shares."},
			{Name: "data", Type: TypeString, Path: PathInput, Doc: "A file read."},
			{Name: "out", Type: TypeString, Path: PathName, Doc: "A file written."},
			{Name: "picky", Type: TypeBool, Default: false, Doc: "New refuses the stage."},
		},
		Outputs: func(*StageConfig) []Port { return nil },
		New: func(c *StageConfig) (Stage, error) {
			if c.Bool("picky") {
				return nil, c.Errorf("picky", "refused by New")
			}
			return StageFunc(func(context.Context, *StageContext) error { return nil }), nil
		},
	}, {
		Kind: "splitter", Shape: ShapeTransform, Doc: "Splits.",
		Fields: []Field{{Name: "input", Type: TypeInput, Required: true, Port: PortTable, Doc: "The table."}},
		Outputs: func(*StageConfig) []Port {
			return []Port{{Name: "train", Kind: PortTable, Split: "train"}, {Name: "val", Kind: PortTable, Split: "val"}}
		},
		New: func(*StageConfig) (Stage, error) {
			return StageFunc(func(context.Context, *StageContext) error { return nil }), nil
		},
	}, {
		Kind: "pass", Shape: ShapeTransform, Doc: "Carries its input's rows.",
		Fields: []Field{{Name: "input", Type: TypeInput, Required: true, Port: PortTable, Doc: "The table."}},
		Outputs: func(c *StageConfig) []Port {
			return []Port{{Name: "out", Kind: PortTable, From: c.Strings("input")[0]}}
		},
		New: func(*StageConfig) (Stage, error) {
			return StageFunc(func(context.Context, *StageContext) error { return nil }), nil
		},
	}}
	for _, k := range kinds {
		if err := r.Register(k); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// posOf returns the 1-based line and column of the first occurrence of needle in src.
func posOf(t *testing.T, src, needle string) (int, int) {
	t.Helper()
	i := strings.Index(src, needle)
	if i < 0 {
		t.Fatalf("%q not in the source", needle)
	}
	line := strings.Count(src[:i], "\n") + 1
	return line, i - strings.LastIndex(src[:i], "\n")
}

// TestNestedTablesAreChecked: unknown keys, types and ranges inside nested tables (inline
// tables, arrays of inline tables, [[arrays of tables]], tables of tables) are errors at
// their own line and column, all reported together and sorted.
func TestNestedTablesAreChecked(t *testing.T) {
	src := `[stages.n]
kind = "net"
layers = [ { dense = 16, dropot = 0.5 }, { dense = -3 }, { dropout = 1.5 }, 7 ]
optimizer = { name = "adamm", lr = "fast", epochs = 3 }
early_stopping = { patience = 0 }
tasks = { a = { weight = -1 }, b = { wieght = 1 } }
ratios = [0.5, 0.5]

[stages.m]
kind = "net"
early_stopping = false

[[stages.m.layers]]
dense = 8
activation = "rleu"

[[stages.m.layers]]
dense = 4
[stages.m.optimizer]
lr = inf
`
	_, err := Parse([]byte(src), "p.toml", t.TempDir(), nestedRegistry(t), LoadOptions{})
	want := []struct {
		key, at, msg, hint string
	}{
		{"layers[0].dropot", "dropot", "unknown key", `did you mean "dropout"?`},
		{"layers[1].dense", "dense = -3", "-3 is below the minimum 1", ""},
		{"layers[2].dropout", "dropout = 1.5", "1.5 must be below 1", ""},
		{"layers[3]", "7 ]", "expected table, found the integer 7", ""},
		{"optimizer.name", `name = "adamm"`, `"adamm" is not one of "adam", "sgd"`, `did you mean "adam"?`},
		{"optimizer.lr", `lr = "fast"`, `expected a number or "auto", found the string "fast"`, ""},
		{"optimizer.epochs", "epochs = 3", "unknown key", "epochs is a key of the stage"},
		{"early_stopping.patience", "patience = 0", "0 is below the minimum 1", ""},
		{"tasks.a.weight", "weight = -1", "-1 is below the minimum 0", ""},
		{"tasks.b.wieght", "wieght", "unknown key", `did you mean "weight"?`},
		{"ratios", "ratios", "expected 3 elements, found 2", "Three shares."},
		{"layers[0].activation", `activation = "rleu"`, `"rleu" is not one of "relu", "tanh"`, `did you mean "relu"?`},
		{"optimizer.lr", "lr = inf", "must be a finite number, found +Inf", ""},
	}
	errs := ConfigErrors(err)
	if len(errs) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		e := errs[i]
		line, col := posOf(t, src, w.at)
		if e.Key != w.key || e.Line != line || e.Col != col || e.Msg != w.msg || e.Hint != w.hint {
			t.Errorf("error %d:\n got %s %q at %d:%d: %s (%s)\nwant %s %q at %d:%d: %s (%s)", i, e.Stage, e.Key, e.Line, e.Col, e.Msg, e.Hint, "", w.key, line, col, w.msg, w.hint)
		}
	}
}

// TestNestedValuesAreNormalisedWithDefaults: a stage reads nested values with their types
// normalised and their defaults filled in, and the resolved config holds them.
func TestNestedValuesAreNormalisedWithDefaults(t *testing.T) {
	src := "[stages.n]\nkind = \"net\"\nlayers = [ { dense = 4, dropout = 0 } ]\noptimizer = { lr = 1 }\nearly_stopping = {}\n"
	p, err := Parse([]byte(src), "p.toml", ".", nestedRegistry(t), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := p.Stage("n")
	opt := n.Table("optimizer")
	if opt["name"] != "adam" || opt["lr"] != 1.0 {
		t.Errorf("optimizer = %#v, want the default name and lr as a float", opt)
	}
	if l := n.List("layers")[0].(map[string]any); l["dropout"] != 0.0 || l["dense"] != int64(4) {
		t.Errorf("layer = %#v", l)
	}
	if es := n.Table("early_stopping"); es["patience"] != int64(15) {
		t.Errorf("early_stopping = %#v, want the default patience", es)
	}
	again, err := Parse(p.Resolved(), "p.toml", ".", nestedRegistry(t), LoadOptions{})
	if err != nil || string(again.Resolved()) != string(p.Resolved()) {
		t.Errorf("the resolved config does not resolve to itself: %v\n%s", err, p.Resolved())
	}
}

// TestEveryPhaseReportsAtOnce: a stage's own constructor runs when its fields and references
// are sound, whatever is wrong elsewhere; a stage that cannot be built is reported once, not
// again by every stage that reads it.
func TestEveryPhaseReportsAtOnce(t *testing.T) {
	src := `[stages.a]
kind = "gen"
rowz = 3

[stages.b]
kind = "net"
picky = true

[stages.c]
kind = "doubel"

[stages.d]
kind = "double"
input = "c"

[stages.e]
kind = "double"
input = "nowhere"
`
	_, err := Parse([]byte(src), "p.toml", ".", nestedRegistry(t), LoadOptions{})
	errs := ConfigErrors(err)
	want := []string{"rowz: unknown key", "picky: refused by New", `unknown stage kind "doubel"`, `there is no stage "nowhere"`}
	if len(errs) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if !strings.Contains(errs[i].Error(), w) {
			t.Errorf("error %d = %v, want %q", i, errs[i], w)
		}
	}
}

// TestRegisterChecksFieldSpecs: a field spec that cannot work is an error at Register (never
// a panic inside Parse): a default that fails its own checks, nested ones included.
func TestRegisterChecksFieldSpecs(t *testing.T) {
	newStage := func(*StageConfig) (Stage, error) { return nil, nil }
	cases := []struct {
		name  string
		field Field
		want  string
	}{
		{"infinite default", Field{Name: "min", Type: TypeFloat, Default: math.Inf(-1)}, "must be a finite number"},
		{"default out of range", Field{Name: "n", Type: TypeInt, Default: int64(0), Min: Bound(1)}, "below the minimum"},
		{"default not in enum", Field{Name: "s", Type: TypeString, Default: "x", Enum: []string{"a"}}, "is not one of"},
		{"default of the wrong type", Field{Name: "s", Type: TypeString, Default: 3}, "expected string"},
		{"default table with an unknown key", Field{Name: "t", Type: TypeTable, Default: map[string]any{"z": int64(1)}, Fields: []Field{{Name: "a", Type: TypeInt}}}, "unknown key"},
		{"nested default", Field{Name: "t", Type: TypeTable, Fields: []Field{{Name: "a", Type: TypeFloat, Default: math.NaN()}}}, `"t.a"`},
		{"min above max", Field{Name: "n", Type: TypeFloat, Min: Bound(2), Max: Bound(1)}, "no value fits"},
		{"bound on a string", Field{Name: "s", Type: TypeString, Min: Bound(0)}, "apply to numbers"},
		{"enum on a number", Field{Name: "n", Type: TypeInt, Enum: []string{"a"}}, "Enum applies to strings"},
		{"required with a default", Field{Name: "n", Type: TypeInt, Required: true, Default: int64(1)}, "no default"},
		{"nested duplicate", Field{Name: "t", Type: TypeTable, Fields: []Field{{Name: "a", Type: TypeInt}, {Name: "a", Type: TypeInt}}}, `"t.a" declared twice`},
		{"elements of a scalar", Field{Name: "n", Type: TypeInt, Elem: &Field{Type: TypeInt}}, "Elem needs"},
		{"path on a number", Field{Name: "n", Type: TypeInt, Path: PathInput}, "Path applies to strings"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := NewRegistry().Register(KindSpec{Kind: "k", New: newStage, Fields: []Field{c.field}})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Register = %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestOverrideErrors: a --set value that is wrong is reported at the --set argument (not at a
// line of the file), nested keys and array elements can be set, and an integer out of range
// says so.
func TestOverrideErrors(t *testing.T) {
	src := "[stages.a]\nkind = \"gen\"\nrows = 5\n[stages.n]\nkind = \"net\"\nlayers = [ { dense = 4 }, { dense = 2 } ]\noptimizer = { lr = 0.1 }\n"
	parse := func(sets ...string) ([]*ConfigError, *Pipeline) {
		p, err := Parse([]byte(src), "p.toml", ".", nestedRegistry(t), LoadOptions{Overrides: sets})
		return ConfigErrors(err), p
	}
	cases := []struct {
		set, key, msg string
	}{
		{"a.rows=abc", "rows", `expected integer, found the string "abc"`},
		{"a.rows=99999999999999999999", "rows", "the integer 99999999999999999999 is out of range"},
		{"a.rows=1e400", "rows", "the number 1e400 is out of range"},
		{"n.tasks.a[0]=1", "tasks.a", "is not set: it has no element 0"},
		{"n.optimizer.lr=abc", "optimizer.lr", `expected a number or "auto", found the string "abc"`},
		{"n.layers[1].dense=0", "layers[1].dense", "0 is below the minimum 1"},
		{"n.layers.dense=3", "layers", "is an array, not a table"},
		{"n.layers[5].dense=3", "layers", "there is no element 5"},
		{"n.optimizer.lrr=1", "optimizer.lrr", "unknown key"},
	}
	for _, c := range cases {
		errs, _ := parse(c.set)
		if len(errs) != 1 {
			t.Errorf("--set %s: %d errors, want 1: %v", c.set, len(errs), errs)
			continue
		}
		e := errs[0]
		if e.File != "--set" || e.Arg != c.set || e.Line != 0 || e.Key != c.key || !strings.Contains(e.Msg, c.msg) {
			t.Errorf("--set %s: got %#v, want key %q and %q at the argument", c.set, e, c.key, c.msg)
		}
		if !strings.HasPrefix(e.Error(), "--set "+c.set+": ") {
			t.Errorf("--set %s: the error does not start with the argument: %v", c.set, e)
		}
	}
	errs, p := parse("n.layers[1].dense=3", "n.optimizer.name=sgd")
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	n, _ := p.Stage("n")
	if l := n.List("layers")[1].(map[string]any); l["dense"] != int64(3) || n.Table("optimizer")["name"] != "sgd" || n.Table("optimizer")["lr"] != 0.1 {
		t.Errorf("nested overrides not applied: %v %v", n.List("layers"), n.Table("optimizer"))
	}
}

// TestInputPathsMustExist: a file the pipeline reads is looked for when it loads; the error
// names the resolved path and the directory relative paths were resolved against; the
// resolved config holds the absolute path, so it loads again from anywhere.
func TestInputPathsMustExist(t *testing.T) {
	dir := t.TempDir()
	src := "[stages.n]\nkind = \"net\"\ndata = \"data.csv\"\n"
	_, err := Parse([]byte(src), "p.toml", dir, nestedRegistry(t), LoadOptions{})
	errs := ConfigErrors(err)
	want := filepath.Join(dir, "data.csv")
	if len(errs) != 1 || errs[0].Key != "data" || errs[0].Line != 3 || !strings.Contains(errs[0].Msg, "not found: "+want) || !strings.Contains(errs[0].Hint, "resolved against "+dir) {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(want, []byte("x\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Parse([]byte(src), "p.toml", dir, nestedRegistry(t), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := p.Stage("n")
	if n.String("data") != "data.csv" || n.Path("data") != want {
		t.Errorf("data = %q, path %q", n.String("data"), n.Path("data"))
	}
	if !strings.Contains(string(p.Resolved()), strconv.Quote(want)) && !strings.Contains(string(p.Resolved()), "'"+want+"'") {
		t.Errorf("the resolved config lacks the absolute path %s:\n%s", want, p.Resolved())
	}
	if _, err := Parse(p.Resolved(), "pipeline.toml", t.TempDir(), nestedRegistry(t), LoadOptions{}); err != nil {
		t.Errorf("the resolved config does not load from another directory: %v", err)
	}
}

// TestNamesStayInsideTheirRoot: [pipeline] name and the files a stage writes are plain names.
func TestNamesStayInsideTheirRoot(t *testing.T) {
	for _, bad := range []string{"../up", "a/b", `a\b`, "/abs", "..", "."} {
		for _, src := range []string{
			"[pipeline]\nname = " + strconv.Quote(bad) + "\n[stages.a]\nkind = \"gen\"\n",
			"[stages.n]\nkind = \"net\"\nout = " + strconv.Quote(bad) + "\n",
		} {
			_, err := Parse([]byte(src), "p.toml", ".", nestedRegistry(t), LoadOptions{})
			if errs := ConfigErrors(err); len(errs) != 1 || errs[0].Line != 2 && errs[0].Line != 3 {
				t.Errorf("%q: %v", bad, err)
			}
		}
	}
	p, err := Parse([]byte("[pipeline]\nname = \"ok-name\"\n[stages.n]\nkind = \"net\"\nout = \"out.parquet\"\n"), "p.toml", ".", nestedRegistry(t), LoadOptions{})
	if err != nil || p.Name != "ok-name" {
		t.Errorf("plain names refused: %v", err)
	}
}

// TestSplitRolesAreCheckedStatically: an input field that takes only some split roles refuses
// a table the config says is another, directly or through stages that carry its rows.
func TestSplitRolesAreCheckedStatically(t *testing.T) {
	base := "[stages.a]\nkind = \"gen\"\n[stages.s]\nkind = \"splitter\"\ninput = \"a\"\n[stages.p]\nkind = \"pass\"\ninput = \"s.val\"\n[stages.n]\nkind = \"net\"\n"
	for _, c := range []struct {
		input string
		bad   bool
	}{{"s.train", false}, {"s", false}, {"a", false}, {"s.val", true}, {"p", true}, {"p.out", true}} {
		_, err := Parse([]byte(base+"input = "+strconv.Quote(c.input)+"\n"), "p.toml", ".", nestedRegistry(t), LoadOptions{})
		if !c.bad {
			if err != nil {
				t.Errorf("input %s: %v", c.input, err)
			}
			continue
		}
		errs := ConfigErrors(err)
		if len(errs) != 1 || errs[0].Stage != "n" || errs[0].Key != "input" || !strings.Contains(errs[0].Msg, "is the val split, but input takes train or all") {
			t.Errorf("input %s: %v", c.input, err)
		}
	}
	// The stage's own checks still run.
	_, err := Parse([]byte(base+"input = \"s.val\"\npicky = true\n"), "p.toml", ".", nestedRegistry(t), LoadOptions{})
	if errs := ConfigErrors(err); len(errs) != 2 || errs[1].Key != "picky" {
		t.Errorf("a split error held back the stage's own checks: %v", err)
	}
}

func TestListNames(t *testing.T) {
	var names []string
	for i := range 25 {
		names = append(names, "c"+strconv.Itoa(i))
	}
	if got, want := ListNames(names, 20), strings.Join(names[:20], ", ")+", ... (and 5 more)"; got != want {
		t.Errorf("ListNames = %q, want %q", got, want)
	}
	if got := ListNames(names[:3], 20); got != "c0, c1, c2" {
		t.Errorf("short list: %q", got)
	}
	// Config errors use it: a kind with many keys lists 20 of them.
	var fields []Field
	for _, n := range names {
		fields = append(fields, Field{Name: n, Type: TypeInt, Doc: "x"})
	}
	r := NewRegistry()
	r.MustRegister(KindSpec{Kind: "wide", Fields: fields, New: func(*StageConfig) (Stage, error) { return nil, nil }})
	_, err := Parse([]byte("[stages.w]\nkind = \"wide\"\nzzzzzzzz = 1\n"), "p.toml", ".", r, LoadOptions{})
	// The keys every stage may hold (cache, retries, retry_backoff) are valid keys too.
	if errs := ConfigErrors(err); len(errs) != 1 || !strings.HasSuffix(errs[0].Hint, "c19, ... (and 8 more)") {
		t.Errorf("unknown key among many: %v", err)
	}
}

// TestKeyPositionsInArraysOfTables: headers inside arrays of tables belong to the last
// element.
func TestKeyPositionsInArraysOfTables(t *testing.T) {
	src := "[[a.b]]\nx = 1\n[[a.b]]\ny = 2\n[[a.b.c]]\nz = 3\n[a.b.d]\nw = 4\n[[a.b]]\nv = { u = [ { t = 5 } ] }\n"
	pos := keyPositions([]byte(src))
	for path, needle := range map[string]string{
		"a.b[0].x": "x =", "a.b[1].y": "y =", "a.b[1].c[0].z": "z =", "a.b[1].d.w": "w =", "a.b[2].v.u[0].t": "t =",
	} {
		line, col := posOf(t, src, needle)
		if p, ok := pos[path]; !ok || p.Line != line || p.Col != col {
			t.Errorf("%s at %v (recorded: %v), want %d:%d", path, p, ok, line, col)
		}
	}
}

func TestSizesAreBounded(t *testing.T) {
	if _, err := ParseSize("1e30GiB"); err == nil {
		t.Error("1e30GiB: no error")
	}
	_, err := Parse([]byte("[pipeline]\nmemory_budget = -5\n[stages.a]\nkind = \"gen\"\n"), "p.toml", ".", testRegistry(), LoadOptions{})
	if errs := ConfigErrors(err); len(errs) != 1 || errs[0].Key != "memory_budget" || !strings.Contains(errs[0].Msg, "negative") {
		t.Errorf("negative size: %v", err)
	}
}

func TestDocsShowNestedFields(t *testing.T) {
	doc, err := Docs(nestedRegistry(t), "net")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| `layers[].dropout` | number | — | A share. Range [0, 1). |", "| `optimizer.name` | string | `\"adam\"` |", "| `tasks.<target>.weight` |", "| `optimizer.lr` | number or \"auto\" | — | The rate. Above 0. |"} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs lack %s:\n%s", want, doc)
		}
	}
}
