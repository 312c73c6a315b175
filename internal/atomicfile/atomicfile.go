// Package atomicfile writes files so that a crash never leaves a half-written file that looks
// whole: the content goes to a temporary file in the same directory, which is synced and then
// renamed over the target. Files are created with mode 0666 minus the process's umask (0644
// under the usual umask), like files written by os.Create, so that another account (a
// monitoring job) can read them.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix starts the name of every temporary file: "." + the target's base name + TempPrefix.
const TempPrefix = ".tmp-"

// Write creates path with data.
func Write(path string, data []byte) error {
	return WriteFunc(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteFunc creates path by calling write on a temporary file in the same directory (created
// if needed), then syncing and renaming it. On any error the temporary file is removed and
// path is untouched.
func WriteFunc(path string, write func(f *os.File) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, tmp, err := createTemp(dir, filepath.Base(path))
	if err != nil {
		return err
	}
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
	SyncDir(dir)
	return nil
}

// createTemp creates a new file "."+base+TempPrefix+random in dir with mode 0666 (before the
// umask); os.CreateTemp would give 0600.
func createTemp(dir, base string) (*os.File, string, error) {
	for range 10 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, "", err
		}
		name := filepath.Join(dir, "."+base+TempPrefix+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("create a temporary file in %s: too many collisions", dir)
}

// IsTemp reports whether a file name is one of this package's temporary files.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, TempPrefix)
}

// SyncDir makes the renames in dir durable where the platform supports it (errors are
// ignored: some file systems cannot sync a directory).
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
