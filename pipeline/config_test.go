package pipeline

import (
	"flag"
	"os"
	"path/filepath"
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
	reg := testRegistry()
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
