//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package pipeline

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// staleLocks is false: flock(2) locks belong to the open file, and the kernel drops them
// when the process ends, however it ends (kill -9 included). The lock file stays, unlocked.
const staleLocks = false

// lockFile opens (creating) path and takes an exclusive flock on it without waiting. busy is
// true when another open file holds it (another process, or another run in this one).
func lockFile(path string) (f *os.File, busy bool, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, false, err
	}
	err = flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, true, nil
	}
	if err != nil {
		f.Close()
		return nil, false, &fs.PathError{Op: "flock", Path: path, Err: err}
	}
	return f, false, nil
}

// unlockFile drops the lock; the file stays (removing a locked file races with a process
// that has just opened it).
func unlockFile(f *os.File, _ string) {
	_ = flock(f, syscall.LOCK_UN)
	f.Close()
}

// probeLock says whether some process holds the lock on path. known is false when that
// cannot be told (no lock file).
func probeLock(path string) (held, known bool) {
	f, err := os.Open(path)
	if err != nil {
		return false, false
	}
	defer f.Close()
	err = flock(f, syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, true
	}
	if err != nil {
		return false, false
	}
	_ = flock(f, syscall.LOCK_UN)
	return false, true
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}
