package pipeline

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// fileMode is the mode every file of a run is created with, before the umask: 0666 minus the
// umask gives the usual 0644, so that an account that monitors runs can read them. (Go's
// os.CreateTemp creates 0600 files, which only the owner can read.)
const fileMode = 0o666

// WriteFileAtomic writes data to path through a temporary file in the same directory, synced
// and then renamed, so that a crash never leaves a half-written file at path. The file is
// created with mode 0666 minus the process's umask (0644 with the usual umask 022), like
// os.Create.
func WriteFileAtomic(path string, data []byte) error {
	return WriteAtomic(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteAtomic creates path by calling write on a temporary file in the same directory, then
// syncing and renaming it. On any error the temporary file is removed and path is untouched.
// The file's mode is 0666 minus the umask, as with WriteFileAtomic.
func WriteAtomic(path string, write func(f *os.File) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := createTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return nil
}

// createTemp creates a new file dir/<prefix><random> with mode fileMode (less the umask, which
// the kernel applies), never reusing an existing name.
func createTemp(dir, prefix string) (*os.File, error) {
	for range 100 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("temporary name in %s: %w", dir, err)
		}
		name := filepath.Join(dir, prefix+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("create a temporary file in %s: every name tried exists", dir)
}
