package search

import (
	"errors"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
)

// decode decodes a TOML document as the pipeline's config loader does.
func decode(t *testing.T, doc string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := toml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("toml: %v", err)
	}
	return m
}

func mustSpace(t *testing.T, doc string, base map[string]any) *Space {
	t.Helper()
	s, err := ParseSpace(decode(t, doc), base)
	if err != nil {
		t.Fatalf("ParseSpace: %v", err)
	}
	return s
}

func TestParseSpace(t *testing.T) {
	doc := `
"optimizer.lr" = { log_uniform = [1e-4, 3e-2] }
"layers.0.dense" = { choice = [128, 256, 512] }
"layers.*.dropout" = { uniform = [0.0, 0.5] }
"optimizer.name" = { choice = ["adam", "sgd"] }
"optimizer.momentum" = { uniform = [0.8, 0.99], when = { "optimizer.name" = "sgd" } }
batch = { log_int = [16, 256] }
layers = { choice = [ [ { dense = 64 } ], [ { dense = 128 }, { dense = 64 } ] ] }
model.depth = { int = [1, 4], when = { model.kind = "mlp" } }
`
	base := map[string]any{"model": map[string]any{"kind": "mlp"}}
	s := mustSpace(t, doc, base)
	want := []string{"batch", "layers", "layers.*.dropout", "layers.0.dense", "model.depth", "optimizer.lr", "optimizer.momentum", "optimizer.name"}
	if got := s.Names(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("names = %v, want %v (a nested table without a distribution is a dotted path)", got, want)
	}
	check := func(name string, d Dist, lo, hi float64) {
		t.Helper()
		p, ok := s.Param(name)
		if !ok || p.Dist != d || p.Lo != lo || p.Hi != hi {
			t.Errorf("%s = %+v, want %s [%g, %g]", name, p, d, lo, hi)
		}
	}
	check("optimizer.lr", LogUniform, 1e-4, 3e-2)
	check("layers.*.dropout", Uniform, 0, 0.5)
	check("batch", LogInt, 16, 256)
	check("model.depth", Int, 1, 4)
	if p, _ := s.Param("layers"); p.Dist != Choice || len(p.Choices) != 2 {
		t.Errorf("layers = %+v: want a choice of two layer lists", p)
	}
	if p, _ := s.Param("optimizer.momentum"); len(p.When) != 1 || p.When[0].Name != "optimizer.name" || p.When[0].Value != "sgd" || p.When[0].Fixed {
		t.Errorf("momentum's condition = %+v", p.When)
	}
	if p, _ := s.Param("model.depth"); len(p.When) != 1 || p.When[0].Name != "model.kind" || !p.When[0].Fixed {
		t.Errorf("depth's condition = %+v: want a fixed condition on the base's model.kind", p.When)
	}
}

func TestParseSpaceErrors(t *testing.T) {
	base := map[string]any{"optimizer": map[string]any{"name": "adam"}, "layers": []any{map[string]any{"dense": int64(64)}}}
	cases := []struct {
		name, doc   string
		param, key  string
		msg         []string // substrings of the message
		errorsCount int      // 0: one
	}{
		{"bounds reversed", `lr = { uniform = [0.5, 0.1] }`, "lr", "uniform", []string{"bounds reversed", "[0.1, 0.5]"}, 0},
		{"equal bounds", `lr = { uniform = [0.5, 0.5] }`, "lr", "uniform", []string{"bounds are equal", "base config"}, 0},
		{"log of zero", `lr = { log_uniform = [0.0, 0.1] }`, "lr", "log_uniform", []string{"not positive", "log scale"}, 0},
		{"log of negative", `lr = { log_uniform = [-1, 0.1] }`, "lr", "log_uniform", []string{"not positive"}, 0},
		{"log_int below 1", `units = { log_int = [0, 64] }`, "units", "log_int", []string{"below 1"}, 0},
		{"int not integer", `units = { int = [1, 2.5] }`, "units", "int", []string{"not an integer"}, 0},
		{"not two bounds", `lr = { uniform = [0.1] }`, "lr", "uniform", []string{"[lower, upper]"}, 0},
		{"bound not a number", `lr = { uniform = [0, "1"] }`, "lr", "uniform", []string{"upper bound \"1\" is not a number"}, 0},
		{"infinite bound", `lr = { uniform = [0, inf] }`, "lr", "uniform", []string{"upper bound is inf"}, 0},
		{"too wide", `u = { uniform = [-1e308, 1e308] }`, "u", "uniform", []string{"too wide to sample"}, 0},
		{"int beyond 2^51", `u = { int = [0, 4503599627370496] }`, "u", "int", []string{"beyond ±2^51"}, 0},
		{"empty choice", `act = { choice = [] }`, "act", "choice", []string{"empty choice"}, 0},
		{"choice not a list", `act = { choice = "relu" }`, "act", "choice", []string{"array of values"}, 0},
		{"duplicate choice", `act = { choice = ["relu", "tanh", "relu"] }`, "act", "choice", []string{"listed twice", "positions 1 and 3"}, 0},
		{"duplicate choice by number", `units = { choice = [2, 2.0] }`, "units", "choice", []string{"listed twice"}, 0},
		{"unknown distribution", `lr = { log_unifrom = [1e-4, 1e-1] }`, "lr", "log_unifrom", []string{"unknown distribution", "did you mean log_uniform?"}, 0},
		{"two distributions", `lr = { uniform = [0, 1], log_uniform = [1e-3, 1] }`, "lr", "", []string{"2 distributions"}, 0},
		{"no distribution", `lr = { when = { "optimizer.name" = "adam" } }`, "lr", "", []string{"no distribution"}, 0},
		{"not a table", `lr = 0.1`, "lr", "", []string{"needs a distribution table", "0.1"}, 0},
		{"empty path segment", `"optimizer..lr" = { uniform = [0, 1] }`, "optimizer..lr", "", []string{"empty path segment"}, 0},
		{"declared twice", "\"optimizer.lr\" = { uniform = [0, 1] }\noptimizer = { lr = { uniform = [0, 2] } }", "optimizer.lr", "", []string{"declared twice"}, 0},
		{"when names unknown", "mom = { uniform = [0.8, 0.99], when = { \"optimizer.nme\" = \"sgd\" } }\n\"optimizer.name\" = { choice = [\"adam\", \"sgd\"] }", "mom", "when.optimizer.nme", []string{"neither a parameter", "did you mean \"optimizer.name\"?"}, 0},
		{"when on a numeric param", "mom = { uniform = [0.8, 0.99], when = { lr = 0.1 } }\nlr = { uniform = [0, 1] }", "mom", "when.lr", []string{"a uniform parameter", "choice"}, 0},
		{"when value not a choice", "mom = { uniform = [0.8, 0.99], when = { opt = \"sdg\" } }\nopt = { choice = [\"adam\", \"sgd\"] }", "mom", "when.opt", []string{"has no choice \"sdg\"", "did you mean \"sgd\"?", "[\"adam\", \"sgd\"]"}, 0},
		{"when on base value that differs", `mom = { uniform = [0.8, 0.99], when = { "optimizer.name" = "sgd" } }`, "mom", "when.optimizer.name", []string{"base config sets optimizer.name = \"adam\", not \"sgd\"", "never exist"}, 0},
		{"when on itself", `opt = { choice = ["a", "b"], when = { opt = "a" } }`, "opt", "when.opt", []string{"itself"}, 0},
		{"when not a table", `mom = { uniform = [0.8, 0.99], when = "sgd" }`, "mom", "when", []string{"table of parameter = value"}, 0},
		{"cycle", "a = { choice = [1, 2], when = { b = 1 } }\nb = { choice = [1, 2], when = { c = 1 } }\nc = { choice = [1, 2], when = { a = 1 } }", "a", "when", []string{"cycle", `"a" → "b" → "c" → "a"`}, 0},
		{"every problem reported", "lr = { uniform = [1, 0] }\nact = { choice = [] }\nx = { unifrm = [0, 1] }", "act", "choice", []string{"empty choice"}, 3},
		{"empty space", ``, "", "", []string{"no parameters"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSpace(decode(t, c.doc), base)
			if err == nil {
				t.Fatal("no error")
			}
			var all []*SpaceError
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					var se *SpaceError
					if !errors.As(e, &se) {
						t.Fatalf("error %v is not a *SpaceError", e)
					}
					all = append(all, se)
				}
			}
			want := max(1, c.errorsCount)
			if len(all) != want {
				t.Fatalf("%d errors, want %d: %v", len(all), want, err)
			}
			se := all[0]
			if se.Param != c.param || se.Key != c.key {
				t.Errorf("error at parameter %q key %q, want %q %q: %v", se.Param, se.Key, c.param, c.key, se)
			}
			for _, m := range c.msg {
				if !strings.Contains(se.Error(), m) {
					t.Errorf("error %q does not say %q", se.Error(), m)
				}
			}
			if c.param != "" && !strings.Contains(se.Error(), `parameter "`+c.param+`"`) {
				t.Errorf("error %q does not name the parameter", se.Error())
			}
		})
	}
}

func TestParseSpaceConditionsThroughNestedTables(t *testing.T) {
	// when = { optimizer.name = "sgd" } without quotes is a nested table in TOML.
	s := mustSpace(t, `
optimizer.name = { choice = ["adam", "sgd"] }
optimizer.momentum = { uniform = [0.8, 0.99], when = { optimizer.name = "sgd" } }
shape = { choice = [ { a = 1 }, { a = 2 } ] }
width = { uniform = [0, 1], when = { shape = { a = 2 } } }
`, nil)
	p, _ := s.Param("optimizer.momentum")
	if len(p.When) != 1 || p.When[0].Name != "optimizer.name" {
		t.Errorf("momentum's condition = %+v", p.When)
	}
	// A condition on a table-valued choice keeps its table value.
	w, _ := s.Param("width")
	if len(w.When) != 1 || w.When[0].Name != "shape" || !equalValues(w.When[0].Value, map[string]any{"a": int64(2)}) {
		t.Errorf("width's condition = %+v", w.When)
	}
}
