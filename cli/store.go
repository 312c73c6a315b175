package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/store"
)

// The stage store as pipe run uses it: opened with the store package, and trimmed after the
// run with its gc. Variables, so that tests can put a store of their own in.
var (
	// openStore opens the stage store at location (a directory path or a URL); close releases
	// it.
	openStore = func(ctx context.Context, location string) (pipeline.Store, func() error, error) {
		b, err := store.Open(ctx, location)
		if err != nil {
			return nil, nil, err
		}
		return b, b.Close, nil
	}
	// trimStore removes from s the entries that no run under runsDirs refers to, oldest
	// first, until s holds at most maxBytes (0: store.DefaultMaxBytes).
	trimStore = func(ctx context.Context, s pipeline.Store, maxBytes int64, runsDirs []string) error {
		kept, err := store.KeptKeys(runsDirs...)
		if err != nil {
			return err
		}
		if maxBytes <= 0 {
			maxBytes = store.DefaultMaxBytes
		}
		_, err = store.GC(ctx, s, store.GCOptions{Kept: kept, MaxBytes: maxBytes})
		return err
	}
)

// buildID identifies this build for the stage store's keys when its version does not: a
// development build ("devel...") gets the SHA-256 of its executable, so that a rebuilt pipe
// with other code never reuses the outputs of the last one (a Go build is reproducible: the
// same code gives the same executable, and keeps its cache). A released version needs
// nothing more: "".
func buildID(version string) string {
	if !strings.HasPrefix(version, "devel") {
		return ""
	}
	exeHashOnce.Do(func() { exeHash = hashExecutable() })
	return exeHash
}

var (
	exeHashOnce sync.Once
	exeHash     string
)

// hashExecutable is the SHA-256 of the running executable, or a word saying why there is none.
func hashExecutable() string {
	exe, err := os.Executable()
	if err != nil {
		return "unknown-executable"
	}
	f, err := os.Open(exe)
	if err != nil {
		return "unreadable-executable"
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "unreadable-executable"
	}
	return "exe-sha256:" + hex.EncodeToString(h.Sum(nil))
}
