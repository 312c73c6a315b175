package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
)

// The layout of a store (see the package documentation).
const (
	// StagesPrefix holds one directory of objects per finished stage: "stages/<key>/...".
	StagesPrefix = "stages/"
	// CheckpointsPrefix holds the checkpoints of stages that have not finished:
	// "checkpoints/<key>/...".
	CheckpointsPrefix = "checkpoints/"
	// EntryObject is the name of the commit marker of an entry, written last:
	// "stages/<key>/entry.json".
	EntryObject = "entry.json"
	// EntryFormat is the "format" of an entry.json.
	EntryFormat = "pipe.store.entry"
)

// Entry is the content of an entry.json: the description of one finished stage's outputs,
// written after all of them.
type Entry struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"format_version"`
	Key           string    `json:"key"`
	Kind          string    `json:"kind"`
	Stage         string    `json:"stage"`
	CreatedAt     time.Time `json:"created_at"`
	// SizeBytes is the total size of the entry's objects, entry.json excluded.
	SizeBytes int64 `json:"size_bytes"`
}

// EntryState says what a group of objects under one key is.
type EntryState string

const (
	// Committed: stages/<key>/ with a readable entry.json.
	Committed EntryState = "committed"
	// Incomplete: stages/<key>/ without entry.json: a writer crashed, or is still writing.
	Incomplete EntryState = "incomplete"
	// Damaged: stages/<key>/ whose entry.json cannot be read as an entry (not JSON, or for
	// another key). A reader treats it as absent.
	Damaged EntryState = "damaged"
	// Checkpoint: checkpoints/<key>/, the checkpoints of a stage that has not finished.
	Checkpoint EntryState = "checkpoint"
)

// EntryInfo describes the objects of one key: an entry under stages/ or the checkpoints under
// checkpoints/.
type EntryInfo struct {
	// Key is the cache key, Prefix "stages/<key>/" or "checkpoints/<key>/".
	Key    string
	Prefix string
	State  EntryState
	// Entry is entry.json's content for a Committed entry, nil otherwise.
	Entry *Entry
	// Problem says what is wrong with a Damaged entry's entry.json.
	Problem string
	// Objects are the entry's objects, entry.json included, sorted by key; Bytes is their
	// total size and Newest the latest modification time among them.
	Objects []pipeline.ObjectInfo
	Bytes   int64
	Newest  time.Time
}

// Entries lists the entries of s: every key under stages/ (committed, incomplete or damaged)
// and under checkpoints/, sorted by Prefix. Objects elsewhere in the store are not part of any
// entry. It reads the entry.json of each entry under stages/.
func Entries(ctx context.Context, s pipeline.Store) ([]EntryInfo, error) {
	objs, err := s.List(ctx, "")
	if err != nil {
		return nil, err
	}
	entries, _ := group(objs)
	for i := range entries {
		if err := readEntry(ctx, s, &entries[i]); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// group sorts objects into entries, and returns those under no entry.
func group(objs []pipeline.ObjectInfo) (entries []EntryInfo, others []pipeline.ObjectInfo) {
	// Sorted by key, the objects of one prefix are consecutive: a key between two keys that
	// start with a prefix starts with it too.
	objs = append([]pipeline.ObjectInfo(nil), objs...)
	sort.Slice(objs, func(a, b int) bool { return objs[a].Key < objs[b].Key })
	for _, o := range objs {
		prefix, key, state := entryOf(o.Key)
		if prefix == "" {
			others = append(others, o)
			continue
		}
		if n := len(entries); n == 0 || entries[n-1].Prefix != prefix {
			entries = append(entries, EntryInfo{Key: key, Prefix: prefix, State: state})
		}
		e := &entries[len(entries)-1]
		e.Objects = append(e.Objects, o)
		e.Bytes += o.Size
		if o.ModTime.After(e.Newest) {
			e.Newest = o.ModTime
		}
	}
	sort.Slice(entries, func(a, b int) bool { return entries[a].Prefix < entries[b].Prefix })
	return entries, others
}

// entryOf returns the entry prefix and key of an object key, and the state of the entry as
// far as the key says (Incomplete for stages/, Checkpoint for checkpoints/); "" when the object
// belongs to no entry.
func entryOf(objKey string) (prefix, key string, state EntryState) {
	for _, p := range []struct {
		prefix string
		state  EntryState
	}{{StagesPrefix, Incomplete}, {CheckpointsPrefix, Checkpoint}} {
		rest, ok := strings.CutPrefix(objKey, p.prefix)
		if !ok {
			continue
		}
		key, _, ok := strings.Cut(rest, "/")
		if !ok || key == "" {
			return "", "", ""
		}
		return p.prefix + key + "/", key, p.state
	}
	return "", "", ""
}

// readEntry reads the entry.json of an entry under stages/, if it has one, and sets its state.
func readEntry(ctx context.Context, s pipeline.Store, e *EntryInfo) error {
	if e.State != Incomplete {
		return nil
	}
	marker := e.Prefix + EntryObject
	found := false
	for _, o := range e.Objects {
		found = found || o.Key == marker
	}
	if !found {
		return nil
	}
	r, err := s.Get(ctx, marker)
	if errors.Is(err, pipeline.ErrNotFound) {
		return nil // removed since the listing: incomplete again
	}
	if err != nil {
		return fmt.Errorf("entry %s: %w", e.Key, err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		return fmt.Errorf("entry %s: read %s: %w", e.Key, marker, err)
	}
	var ent Entry
	switch err := json.Unmarshal(b, &ent); {
	case err != nil:
		e.State, e.Problem = Damaged, fmt.Sprintf("%s is not an entry: %v", marker, err)
	case ent.Key != e.Key:
		e.State, e.Problem = Damaged, fmt.Sprintf("%s is the entry of key %q, not of %q", marker, ent.Key, e.Key)
	default:
		e.State, e.Entry = Committed, &ent
	}
	return nil
}
