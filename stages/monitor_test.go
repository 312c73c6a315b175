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

// TestUpdateRatioOff: a ratio above 1e-1 is always off; one below 1e-6 only while the learning
// rate has not decayed below a tenth of its peak (a schedule's end); 0 (no update, a frozen
// param) never.
func TestUpdateRatioOff(t *testing.T) {
	for _, c := range []struct {
		ratio, lr, peak float64
		want            bool
	}{
		{0.5, 1e-3, 1e-3, true},
		{0.5, 1e-9, 1e-3, true},
		{1e-3, 1e-3, 1e-3, false},
		{1e-7, 1e-3, 1e-3, true},
		{1e-7, 2e-4, 1e-3, true},
		{1e-7, 9e-5, 1e-3, false},
		{3e-8, 1e-8, 2e-3, false},
		{0, 1e-3, 1e-3, false},
	} {
		if got := updateRatioOff(c.ratio, c.lr, c.peak); got != c.want {
			t.Errorf("updateRatioOff(%g, lr %g, peak %g) = %v, want %v", c.ratio, c.lr, c.peak, got, c.want)
		}
	}
}

// TestMonitorStateKeepsPeakLR: the highest learning rate sampled goes into the checkpoint (gob,
// as the train checkpoint encodes it) and comes back, so that a run resumed in a schedule's
// decay does not take the decayed rate for its peak; a checkpoint from before it was kept
// decodes with 0 (the first sample sets it again).
func TestMonitorStateKeepsPeakLR(t *testing.T) {
	l := &monitorLog{warned: map[string]bool{}, peakLR: 2e-3}
	b, err := gobEncode(l.state())
	if err != nil {
		t.Fatal(err)
	}
	var st monitorState
	if err := gobDecode(b, &st); err != nil {
		t.Fatal(err)
	}
	var r monitorLog
	r.restore(st)
	if r.peakLR != 2e-3 {
		t.Errorf("restored peak learning rate %g, want 2e-3", r.peakLR)
	}
	type oldState struct {
		Rows     [][]string
		Warned   map[string]bool
		Warnings []string
	}
	if b, err = gobEncode(oldState{Rows: [][]string{{"1"}}}); err != nil {
		t.Fatal(err)
	}
	st = monitorState{}
	if err := gobDecode(b, &st); err != nil || st.PeakLR != 0 || len(st.Rows) != 1 {
		t.Errorf("an earlier checkpoint's monitor state: %+v, %v", st, err)
	}
}
