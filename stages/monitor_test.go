package stages

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMonitorWarnsOnce: a monitoring warning (here: update/param ratios far from 1e-3, with
// an SGD learning rate of 1e-9 and biases near 0) is logged once per parameter, at warn level
// (not again as a note), and listed in the manifest's info.monitor_warnings.
func TestMonitorWarnsOnce(t *testing.T) {
	src := strings.Replace(summarySrc, "epochs = 1\n", "epochs = 2\nmonitor_every = 1\noptimizer = { name = \"sgd\", lr = 1e-9 }\n", 1)
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(dir, "log.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]int{}
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "update/param ratio") {
			if !strings.Contains(l, `"level":"warn"`) {
				t.Errorf("not a warning: %s", l)
			}
			_, msg, _ := strings.Cut(l, `"message":"`)
			param, _, _ := strings.Cut(msg, ":")
			lines[param]++
		}
	}
	listed, _ := m.Stages["model"].Info["monitor_warnings"].([]any)
	if len(lines) == 0 || len(listed) != len(lines) {
		t.Fatalf("%d parameters warned about in the log, %d in the manifest: %v", len(lines), len(listed), listed)
	}
	for p, n := range lines {
		if n != 1 {
			t.Errorf("%s: warned %d times, want once", p, n)
		}
	}
}
