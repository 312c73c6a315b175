package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// LockFile is the name of a run directory's lock file. A run holds an exclusive lock on it
// for its whole life (and on runs/<pipeline>/.lock while it picks its run id); the file holds
// the holder's pid, host and start time, so that a refused run can name it.
const LockFile = ".lock"

// LockHolder is what a lock file records about the process that holds it.
type LockHolder struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

func (h LockHolder) String() string {
	if h.PID == 0 {
		return "another process (it has not written its pid yet)"
	}
	return fmt.Sprintf("pid %d on host %s, since %s", h.PID, h.Host, h.Since.Format(time.RFC3339))
}

// thisProcess describes the calling process as a lock holder.
func thisProcess() LockHolder {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return LockHolder{PID: os.Getpid(), Host: host, Since: time.Now().UTC().Truncate(time.Second)}
}

// dirLock is a held lock on a directory's LockFile.
type dirLock struct {
	path string
	f    *os.File
}

// errLockBusy is returned by tryLock when another process holds the lock.
type errLockBusy struct{ holder LockHolder }

func (e *errLockBusy) Error() string { return "locked by " + e.holder.String() }

// tryLock takes the lock on dir's LockFile without waiting, creating the file, and records
// this process in it. When another process holds it, the error is an *errLockBusy naming it.
func tryLock(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockFile)
	f, busy, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	if busy {
		h, _ := readLockHolder(path)
		return nil, &errLockBusy{holder: h}
	}
	l := &dirLock{path: path, f: f}
	b, _ := json.Marshal(thisProcess())
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(append(b, '\n'), 0)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			l.release()
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	} else {
		l.release()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return l, nil
}

// waitLock takes the lock on dir's LockFile, retrying while another process holds it, for at
// most wait. It is for locks held only briefly (runs/<pipeline>/ while a run picks its id).
func waitLock(ctx context.Context, dir string, wait time.Duration) (*dirLock, error) {
	deadline := time.Now().Add(wait)
	for {
		l, err := tryLock(dir)
		if _, busy := err.(*errLockBusy); !busy || time.Now().After(deadline) {
			return l, err
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// ErrDirReplaced is a run's error, and dirLock.holds's, when the lock file at the lock's path is no
// longer the file this process locked: the directory was removed (and perhaps made again,
// maybe by another run) while the run ran.
var ErrDirReplaced = errors.New("the run directory was removed or replaced while this run ran (its lock file is not the one this run holds); " +
	"nothing more is written there, so that another run's files are not overwritten: start the run again into a new directory")

// holds reports, as nil, that the file at the lock's path is still the one this process
// locked; otherwise ErrDirReplaced.
func (l *dirLock) holds() error {
	if l == nil || l.f == nil {
		return nil
	}
	mine, err := l.f.Stat()
	if err != nil {
		return nil // cannot tell: do not refuse a write on a file system that cannot say
	}
	there, err := os.Stat(l.path)
	if err != nil || !os.SameFile(mine, there) {
		return ErrDirReplaced
	}
	return nil
}

// release gives the lock up. It is safe to call more than once.
func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	unlockFile(l.f, l.path)
	l.f = nil
}

// readLockHolder reads the holder a lock file records.
func readLockHolder(path string) (LockHolder, error) {
	var h LockHolder
	b, err := os.ReadFile(path)
	if err != nil {
		return h, err
	}
	if len(b) == 0 {
		return h, nil
	}
	err = json.Unmarshal(b, &h)
	return h, err
}
