//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package runinfo

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
)

// TestListTellsRunningFromCrashed: two runs whose manifests both say running; the one whose
// lock is held runs, the other (lock file free) crashed.
func TestListTellsRunningFromCrashed(t *testing.T) {
	root := t.TempDir()
	for _, id := range []string{"alive", "dead"} {
		writeRun(t, root, fixtureRun{pipeline: "p", id: id, m: manifest("p", id, pipeline.StatusRunning, t0, 0), lockFile: true})
	}
	f, err := os.OpenFile(filepath.Join(root, "p", "alive", pipeline.LockFile), os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	must(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)

	got, err := List(root, ListOptions{Now: t0.Add(time.Minute)})
	must(t, err)
	status := map[string]string{}
	for _, r := range got {
		status[r.ID] = r.Status
	}
	if status["alive"] != pipeline.StatusRunning || status["dead"] != pipeline.StatusCrashed {
		t.Errorf("statuses %v, want alive running and dead crashed", status)
	}
}
