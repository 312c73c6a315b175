//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package pipeline

import (
	"errors"
	"io/fs"
	"os"
)

// staleLocks is true: without flock the lock is the lock file's existence, and a process that
// dies without releasing it leaves it behind (remove it by hand once no run uses the
// directory).
const staleLocks = true

// lockFile creates path exclusively; busy is true when it exists already.
func lockFile(path string) (f *os.File, busy bool, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	if errors.Is(err, fs.ErrExist) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	return f, false, nil
}

// unlockFile removes the lock file.
func unlockFile(f *os.File, path string) {
	f.Close()
	_ = os.Remove(path)
}

// probeLock says whether the lock file exists.
func probeLock(path string) (held, known bool) {
	_, err := os.Stat(path)
	return err == nil, true
}
