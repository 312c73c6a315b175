package pipeline

import (
	"os"

	"github.com/pipe-ml/pipe/internal/atomicfile"
)

// WriteFileAtomic writes data to path through a temporary file in the same directory, synced
// and then renamed, so that a crash never leaves a half-written file at path. The file is
// created with mode 0666 minus the process's umask (0644 with the usual umask 022), like
// os.Create, so that an account that monitors runs can read it.
func WriteFileAtomic(path string, data []byte) error { return atomicfile.Write(path, data) }

// WriteAtomic creates path by calling write on a temporary file in the same directory, then
// syncing and renaming it. On any error the temporary file is removed and path is untouched.
// The file's mode is 0666 minus the umask, as with WriteFileAtomic.
func WriteAtomic(path string, write func(f *os.File) error) error {
	return atomicfile.WriteFunc(path, write)
}

// fileMode is the mode every file of a run is created with, before the umask: 0666 minus the
// umask gives the usual 0644, so that an account that monitors runs can read them.
const fileMode = 0o666
