package pipeline

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is what a Store returns (wrapped or not) for a key it does not hold.
var ErrNotFound = errors.New("not found in the store")

// ObjectInfo describes one object of a Store.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Store is blob storage for the stage store: the outputs of finished stages (tables as Arrow
// IPC, artifacts as their files, a description written last) under content keys, and the
// checkpoints of interrupted ones. It has blob-style operations only, so that the same code
// serves a local directory, an in-memory store for tests and object storage (S3) for runs
// spread over machines; keys are slash-separated paths ("stages/<key>/entry.json") with no
// meaning to the Store. Implementations are safe for concurrent use, also by several
// processes sharing one store: Put makes an object visible whole or not at all, and a
// concurrent Put of the same key leaves one of the two whole objects.
type Store interface {
	// Put writes the object key with everything r yields.
	Put(ctx context.Context, key string, r io.Reader) error
	// Get opens the object key for reading; ErrNotFound when it does not exist. The caller
	// closes it.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes the object key; ErrNotFound when it does not exist.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes the object key; deleting a key that does not exist is not an error.
	Delete(ctx context.Context, key string) error
}
