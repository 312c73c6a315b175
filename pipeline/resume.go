package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// resumable are the statuses of a run that Resume continues: it did not finish its work.
var resumable = map[string]bool{StatusCanceled: true, StatusFailed: true, StatusCrashed: true}

// openRunDirForResume takes dir, which holds an interrupted run (canceled, failed or crashed),
// for a resumed run: it locks it, clears what the interrupted attempt left of its stages (a
// finished stage comes back from the stage store, an unfinished one from its checkpoints) and
// returns the old manifest, its Status the one the run was found in. A running, succeeded or degraded run, or a directory that holds
// none, is refused (*RefusedError).
func openRunDirForResume(dir string) (*runDir, *Manifest, error) {
	if err := checkSystemDir(dir); err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
		return nil, nil, &RefusedError{Dir: dir, Reason: "holds no run to resume (no manifest.json)", Err: err}
	}
	lock, err := tryLock(dir)
	if err != nil {
		return nil, nil, lockRefusal(dir, err)
	}
	m, status, err := ReadRun(dir)
	if err != nil {
		lock.release()
		return nil, nil, &RefusedError{Dir: dir, Reason: "its manifest.json cannot be read", Err: err}
	}
	if status == StatusRunning {
		// We hold the lock, so no live run on this host holds it: the manifest's heartbeat is
		// recent, from another host or a crash moments ago. Trust the lock.
		status = StatusCrashed
	}
	if !resumable[status] {
		lock.release()
		return nil, nil, &RefusedError{Dir: dir, Reason: fmt.Sprintf("holds run %s, which %s: there is nothing to resume", m.RunID, statusPhrase(status))}
	}
	for _, sub := range []string{"stages", "spill"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			lock.release()
			return nil, nil, &RefusedError{Dir: dir, Reason: "cannot clear " + sub + "/ of the interrupted attempt", Err: err}
		}
	}
	os.Remove(filepath.Join(dir, ".reserve"))
	m.Status = status // as it was found: canceled, failed or crashed
	return &runDir{path: dir, lock: lock}, m, nil
}

func statusPhrase(status string) string {
	switch status {
	case StatusSucceeded:
		return "succeeded"
	case StatusDegraded:
		return "finished degraded"
	}
	return "is " + status
}

// Resumption is one resumption of a run, recorded in its manifest.
type Resumption struct {
	At time.Time `json:"at"`
	// From is the status the run had when it was resumed (canceled, failed or crashed).
	From string `json:"from"`
}
