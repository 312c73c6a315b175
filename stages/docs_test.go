package stages

import (
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/pipeline"
)

// TestDocsListEveryBuiltinKindsOutputs: `pipe docs` gives every built-in kind one Outputs
// line, which names the kind's default port when it has one.
func TestDocsListEveryBuiltinKindsOutputs(t *testing.T) {
	reg := registry(t)
	for _, k := range reg.Kinds() {
		doc, err := pipeline.Docs(reg, k.Kind)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(doc, "\n") {
			if strings.HasPrefix(l, "Outputs: ") {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 {
			t.Errorf("%s: %d Outputs lines, want 1:\n%s", k.Kind, len(lines), doc)
			continue
		}
		if k.DefaultOutput != "" && !strings.Contains(lines[0], "`"+k.DefaultOutput+"`") {
			t.Errorf("%s: %q does not name the default port %q", k.Kind, lines[0], k.DefaultOutput)
		}
		if strings.Count(doc, "Outputs: ") != 1 {
			t.Errorf("%s: the outputs are described twice (in Doc and the Outputs line):\n%s", k.Kind, doc)
		}
	}
}
