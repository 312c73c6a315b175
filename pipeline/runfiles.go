package pipeline

import (
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// logFileWriter writes the run's log lines to log.jsonl. After the first failed write (a full
// disk, say) it writes nothing more and keeps that error: zerolog would otherwise report
// every later line's failure on stderr. The run reports the failure once (checkLogFile).
type logFileWriter struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

// Write writes p, or drops it once a write has failed. It never returns an error.
func (l *logFileWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		_, l.err = l.w.Write(p)
	}
	return len(p), nil
}

// failure returns the first write error, or nil.
func (l *logFileWriter) failure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// reserveFile holds space set aside at the start of a run, freed for the final manifest when
// the disk has filled up meanwhile (and removed at the end of every run).
const reserveFile = ".reserve"

// reserveSize is the space set aside: several times a large manifest.
const reserveSize = 256 << 10

// reserveSpace writes reserveFile. Its bytes are random, so that a compressing file system
// stores all of them.
func reserveSpace(dir string) error {
	b := make([]byte, reserveSize)
	_, _ = rand.Read(b)
	f, err := os.OpenFile(filepath.Join(dir, reserveFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// freeReserve removes reserveFile and reports whether there was one.
func freeReserve(dir string) bool {
	return os.Remove(filepath.Join(dir, reserveFile)) == nil
}
