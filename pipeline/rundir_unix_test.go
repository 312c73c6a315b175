//go:build unix

package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRunFilesFollowTheUmask: the run's files are created 0666 minus the umask, like any
// file a program creates, so that a monitoring account can read them.
func TestRunFilesFollowTheUmask(t *testing.T) {
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	p := parse(t, tinySrc)
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := Run(context.Background(), p, RunOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dir, "stages", "x", "artifact.json")
	if err := WriteFileAtomic(extra, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"manifest.json", "pipeline.toml", "log.jsonl", LockFile, "stages/x/artifact.json"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o640 {
			t.Errorf("%s has mode %o, want 640 (0666 less the umask 027)", f, got)
		}
	}
}
