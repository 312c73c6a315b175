package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RefusedError is a run that Run refused before any stage ran, because its run directory
// cannot be used: it is not empty and holds no run, it already holds a run, it is a file or a
// system directory, another run holds its lock, or it cannot be created or written. Nothing of
// the run is left behind. The pipe command exits 2 (ExitConfig) on it.
type RefusedError struct {
	Dir    string      // the run directory as given
	Reason string      // what is wrong, and what to do
	Holder *LockHolder // the process that holds the directory's lock, when that is the reason
	Err    error       // the underlying error, if any
}

func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("run directory %s: %s", e.Dir, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *RefusedError) Unwrap() error { return e.Err }

// IsRefused reports whether err says that a run was refused before anything ran.
func IsRefused(err error) bool {
	var re *RefusedError
	return errors.As(err, &re)
}

// systemDirs are directories a run never writes into, nor into anything below them.
var systemTrees = []string{
	"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin", "/sys", "/usr",
	"/System", "/Library", "/Applications", "/private/etc", "/private/var/db",
}

// systemDirs are directories a run never writes into, though it may write below them (a new
// directory in /tmp or /home/me).
var systemDirs = []string{
	"/", "/home", "/root", "/Users", "/var", "/var/lib", "/var/log", "/var/tmp", "/tmp", "/opt", "/srv", "/mnt",
	"/media", "/run", "/private", "/private/tmp", "/private/var", "/usr/local",
}

// systemDirReason says why path (absolute, clean) must not be a run directory, or "".
func systemDirReason(path string) string {
	for _, d := range systemTrees {
		if path == d || strings.HasPrefix(path, d+"/") {
			return fmt.Sprintf("%s is a system directory; a run never writes there", d)
		}
	}
	for _, d := range systemDirs {
		if path == d {
			return "is a system directory; a run writes only into a new or empty directory of its own"
		}
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		for _, h := range []string{filepath.Clean(home), resolvePath(home)} {
			if path == h {
				return "is your home directory; a run writes only into a new or empty directory of its own"
			}
		}
	}
	return ""
}

// resolvePath returns the absolute path with every symbolic link of its existing part
// resolved (the part that does not exist yet is appended as it is).
func resolvePath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	rest := ""
	for p := abs; ; {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return abs
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// checkSystemDir refuses a path that is, or resolves to, a system directory.
func checkSystemDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return &RefusedError{Dir: dir, Reason: "cannot make the path absolute", Err: err}
	}
	resolved := resolvePath(abs)
	for _, p := range []string{abs, resolved} {
		if r := systemDirReason(p); r != "" {
			if p != abs {
				r = "resolves to " + p + ": " + r
			}
			return &RefusedError{Dir: dir, Reason: r}
		}
	}
	// Nor does a run add a directory at the root of the file system.
	if top := topMissing(resolved); top != "" && filepath.Dir(top) == string(filepath.Separator) {
		return &RefusedError{Dir: dir, Reason: fmt.Sprintf("would create %s at the root of the file system; choose a directory inside an existing one", top)}
	}
	return nil
}

// topMissing returns the topmost directory of path (absolute, resolved) that does not exist,
// or "" when path exists.
func topMissing(path string) string {
	missing := ""
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			return missing
		}
		missing = p
		if filepath.Dir(p) == p {
			return missing
		}
	}
}

// runDir is a run directory made ready for a run: locked, and empty apart from its lock file.
type runDir struct {
	path    string
	lock    *dirLock
	created bool // the run created the directory (rather than finding it empty)
}

// openRunDir makes dir, exactly, the run directory: absent (it is created) or empty, never a
// system directory, and locked. Every failure is a *RefusedError, and nothing was written
// when it comes (but, in a directory the run created, possibly the directory).
func openRunDir(dir string) (*runDir, error) {
	if err := checkSystemDir(dir); err != nil {
		return nil, err
	}
	created := false
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if li, lerr := os.Lstat(dir); lerr == nil && li.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(dir)
			return nil, &RefusedError{Dir: dir, Reason: fmt.Sprintf("is a symbolic link to %s, which does not exist", target)}
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, &RefusedError{Dir: dir, Reason: "cannot create its parent directory", Err: err}
		}
		switch err := os.Mkdir(dir, 0o755); {
		case err == nil:
			created = true
		case errors.Is(err, fs.ErrExist): // created meanwhile, by another run perhaps: check it as any
		default:
			return nil, &RefusedError{Dir: dir, Reason: "cannot create it", Err: err}
		}
	case err != nil:
		return nil, &RefusedError{Dir: dir, Reason: "cannot use it", Err: err}
	case !fi.IsDir():
		return nil, &RefusedError{Dir: dir, Reason: "is a file, not a directory; choose a new or empty directory"}
	}
	if err := checkEmpty(dir); err != nil {
		// A run that has just taken the directory has files there before its manifest: name
		// that run rather than its files.
		if held, known := probeLock(filepath.Join(dir, LockFile)); known && held {
			h, _ := readLockHolder(filepath.Join(dir, LockFile))
			return nil, lockRefusal(dir, &errLockBusy{holder: h})
		}
		return nil, err
	}
	lock, err := tryLock(dir)
	if err != nil {
		return nil, lockRefusal(dir, err)
	}
	// Another run may have used the directory between the check and the lock.
	if err := checkEmpty(dir); err != nil {
		lock.release()
		return nil, err
	}
	return &runDir{path: dir, lock: lock, created: created}, nil
}

// lockRefusal turns a failure to take a directory's lock into a RefusedError.
func lockRefusal(dir string, err error) error {
	var busy *errLockBusy
	if errors.As(err, &busy) {
		h := busy.holder
		reason := "another run is using it (" + h.String() + "); wait for it to end or choose another directory"
		if staleLocks {
			reason += fmt.Sprintf(" (if no such process runs, remove %s)", filepath.Join(dir, LockFile))
		}
		return &RefusedError{Dir: dir, Reason: reason, Holder: &h}
	}
	return &RefusedError{Dir: dir, Reason: "cannot take its lock (is it writable, and does its file system support flock?)", Err: err}
}

// checkEmpty refuses a directory that holds anything but a lock file: a run (running,
// finished or crashed) or files that are not a run's.
func checkEmpty(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return &RefusedError{Dir: dir, Reason: "cannot read it", Err: err}
	}
	var others []string
	for _, e := range ents {
		if e.Name() != LockFile {
			others = append(others, e.Name())
		}
	}
	if len(others) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		m, status, err := ReadRun(dir)
		switch {
		case err != nil:
			return &RefusedError{Dir: dir, Reason: "already holds a run (its manifest.json cannot be read); choose another directory", Err: err}
		case status == StatusRunning:
			h := LockHolder{PID: m.PID, Host: m.Host, Since: m.StartedAt}
			return &RefusedError{Dir: dir, Reason: fmt.Sprintf("another run is using it (%s); wait for it to end or choose another directory", h), Holder: &h}
		default:
			return &RefusedError{Dir: dir, Reason: fmt.Sprintf("already holds a run (run %s, %s); choose another directory, or remove this one", m.RunID, status)}
		}
	}
	var shown []string
	for i, name := range others {
		if i == 3 {
			shown = append(shown, "...")
			break
		}
		shown = append(shown, fmt.Sprintf("%q", name))
	}
	return &RefusedError{Dir: dir, Reason: fmt.Sprintf("is not empty (%d entries: %s) and holds no pipe run; a run writes only into a new or empty directory, so choose another",
		len(others), strings.Join(shown, ", "))}
}

// newRunDir creates a new run directory <root>/<pipeline>/<run-id>, holding the lock of
// <root>/<pipeline>/ while it picks the id, so that concurrent runs of one pipeline never
// share a directory. It returns the directory and its run id (id, or a new one when id's
// directory exists).
func newRunDir(ctx context.Context, root, pipeline, id string) (*runDir, string, error) {
	parent := filepath.Join(root, pipeline)
	if err := checkSystemDir(parent); err != nil {
		return nil, "", err
	}
	if fi, err := os.Stat(parent); err == nil && !fi.IsDir() {
		return nil, "", &RefusedError{Dir: parent, Reason: "is a file, not a directory"}
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, "", &RefusedError{Dir: parent, Reason: "cannot create it", Err: err}
	}
	plock, err := waitLock(ctx, parent, 10*time.Second)
	if err != nil {
		return nil, "", lockRefusal(parent, err)
	}
	defer plock.release()
	for range 10 {
		dir := filepath.Join(parent, id)
		err := os.Mkdir(dir, 0o755)
		if errors.Is(err, fs.ErrExist) {
			id = NewRunID(time.Now())
			continue
		}
		if err != nil {
			return nil, "", &RefusedError{Dir: dir, Reason: "cannot create it", Err: err}
		}
		lock, err := tryLock(dir)
		if err != nil {
			os.Remove(dir)
			return nil, "", lockRefusal(dir, err)
		}
		return &runDir{path: dir, lock: lock, created: true}, id, nil
	}
	return nil, "", &RefusedError{Dir: parent, Reason: "could not pick a run id that is not taken"}
}

// abandon undoes a run directory whose set-up failed: the files the run wrote go, and so does
// the directory when the run created it. The lock file of a directory the run found stays.
func (d *runDir) abandon(written ...string) {
	for _, name := range written {
		os.Remove(filepath.Join(d.path, name))
	}
	if d.created {
		os.Remove(filepath.Join(d.path, LockFile))
		d.lock.release()
		os.Remove(d.path)
		return
	}
	d.lock.release()
}
