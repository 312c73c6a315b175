package pipeline

import (
	"strings"
	"testing"
)

// outputsLines returns the "Outputs:" lines of a Docs rendering, by kind.
func outputsLines(t *testing.T, doc string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	kind := ""
	for _, line := range strings.Split(doc, "\n") {
		if rest, ok := strings.CutPrefix(line, "### `"); ok {
			kind, _, _ = strings.Cut(rest, "`")
			continue
		}
		if strings.HasPrefix(line, "Outputs: ") {
			out[kind] = append(out[kind], line)
		}
	}
	return out
}

// TestDocsListEveryKindsOutputs: every kind's reference has one Outputs line, built from the
// ports that Outputs gives a stage of defaults, or from OutputsDoc where the kind sets it.
func TestDocsListEveryKindsOutputs(t *testing.T) {
	noop := func(*StageConfig) (Stage, error) { return nil, nil }
	reg := NewRegistry()
	for _, k := range []KindSpec{
		{Kind: "plain", New: noop}, // nil Outputs: one table port "out"
		{Kind: "model", New: noop, Outputs: func(*StageConfig) []Port {
			return []Port{{Name: "model", Kind: PortArtifact, Doc: "the fitted model"}}
		}},
		{Kind: "two", New: noop, DefaultOutput: "b", Outputs: func(*StageConfig) []Port {
			return []Port{{Name: "a", Kind: PortTable}, {Name: "b", Kind: PortTable}}
		}},
		{Kind: "bydefault", New: noop,
			Fields: []Field{{Name: "input", Type: TypeInput, Required: true}, {Name: "extra", Type: TypeBool, Default: true}},
			Outputs: func(c *StageConfig) []Port {
				ports := []Port{{Name: "main", Kind: PortTable}}
				if c.Bool("extra") {
					ports = append(ports, Port{Name: "extra", Kind: PortTable})
				}
				return ports
			}},
		{Kind: "described", New: noop, OutputsDoc: "one table per input, named after its port.",
			Outputs: func(*StageConfig) []Port { return nil }},
		{Kind: "sink", New: noop, Outputs: func(*StageConfig) []Port { return nil }},
	} {
		if err := reg.Register(k); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := Docs(reg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"plain":     "Outputs: `out` (table).",
		"model":     "Outputs: `model` (artifact): the fitted model.",
		"two":       "Outputs: `a` (table), `b` (table, the default).",
		"bydefault": "Outputs: `main` (table, the default), `extra` (table).", // extra's default is true
		"described": "Outputs: one table per input, named after its port.",
		"sink":      "Outputs: none (a sink).",
	}
	got := outputsLines(t, doc)
	for kind, w := range want {
		if len(got[kind]) != 1 || got[kind][0] != w {
			t.Errorf("%s: Outputs lines %q, want [%q]", kind, got[kind], w)
		}
	}
	// One kind alone renders the same line.
	one, err := Docs(reg, "two")
	if err != nil {
		t.Fatal(err)
	}
	if l := outputsLines(t, one)["two"]; len(l) != 1 || l[0] != want["two"] {
		t.Errorf("docs of one kind: %q", l)
	}
}
