package stages

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const summarySrc = `
[pipeline]
seed = 3
[stages.load]
kind = "dataset"
name = "wine"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val"]
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
epochs = 1
layers = [ { dense = 16 } ]
`

// TestSummaryWarningLoggedOnce: the train stage reports a lopsided layer once in its log (not
// in the summary table, a warning and a note), records it in the manifest, and says nothing
// about a small model.
func TestSummaryWarningLoggedOnce(t *testing.T) {
	for _, tc := range []struct {
		name, layers, layer string
	}{
		// dense_1 holds most of a ~300-parameter model: not worth a warning.
		{"small", `[ { dense = 16 } ]`, ""},
		// dense_2: 1100×1000 of ~1.12M parameters.
		{"large", `[ { dense = 1100 }, { dense = 1000 } ]`, "dense_2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(summarySrc, `[ { dense = 16 } ]`, tc.layers, 1)
			m, dir, err := runTOML(t, ".", src)
			if err != nil {
				t.Fatal(err)
			}
			log, err := os.ReadFile(filepath.Join(dir, "log.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, l := range strings.Split(string(log), "\n") {
				if strings.Contains(l, "% of the") && strings.Contains(l, "parameters") {
					lines = append(lines, l)
				}
			}
			w, _ := m.Stages["model"].Info["summary_warning"].(string)
			if tc.layer == "" {
				if len(lines) != 0 || w != "" {
					t.Fatalf("a small model gets warnings: manifest %q, log:\n%s", w, strings.Join(lines, "\n"))
				}
				return
			}
			if len(lines) != 1 || !strings.Contains(lines[0], `"level":"warn"`) || !strings.Contains(lines[0], tc.layer+" holds") {
				t.Fatalf("want one warn line about %s, got %d:\n%s", tc.layer, len(lines), strings.Join(lines, "\n"))
			}
			if !strings.Contains(w, tc.layer+" holds") {
				t.Errorf("manifest info.summary_warning %q, want the warning about %s", w, tc.layer)
			}
		})
	}
}
