package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
)

// DefaultMaxBytes is the default size limit of a store, 20 GiB: room for the outputs of many
// runs of the bundled pipelines, small enough for a laptop's disk. `pipe gc` without
// --max-size trims the store to it, and so does a run that trims its store when it ends.
const DefaultMaxBytes int64 = 20 << 30

// DefaultStaleAfter is how long an incomplete entry, a checkpoint or a temporary file must
// have been left untouched before gc takes it for a crashed writer's leftovers.
const DefaultStaleAfter = 24 * time.Hour

// GCOptions says what GC keeps.
type GCOptions struct {
	// Kept are the cache keys that kept runs refer to (KeptKeys): their committed entries and
	// checkpoints are never removed. nil: none.
	Kept map[string]bool
	// MaxBytes is the size the store is trimmed to, counting every object in it: committed
	// entries no kept run refers to are removed, oldest first (by entry.json's created_at),
	// until the store is at most MaxBytes. 0 removes every committed entry no kept run refers
	// to; use DefaultMaxBytes for the default limit. Entries kept runs refer to stay even
	// when the store stays over the limit.
	MaxBytes int64
	// StaleAfter is how long an incomplete or damaged entry, an unreferenced checkpoint or a
	// temporary file must have been left untouched (its newest object) before it is removed;
	// a younger one may belong to a writer at work. Default DefaultStaleAfter (24 h).
	StaleAfter time.Duration
	// DryRun reports what GC would remove and removes nothing.
	DryRun bool
	// Now is the time staleness is measured at. Default time.Now().
	Now time.Time
}

// Reasons of a Removal.
const (
	ReasonUnreferenced = "no kept run refers to it"
	ReasonStale        = "left incomplete"
	ReasonDamaged      = "damaged"
	ReasonCheckpoint   = "checkpoint left untouched"
	ReasonFinished     = "checkpoint of a committed entry"
)

// Removal is an entry GC removed (or would remove, in a dry run), and why.
type Removal struct {
	EntryInfo
	// Reason is one of the Reason constants.
	Reason string
}

// GCReport says what GC did.
type GCReport struct {
	DryRun bool
	// Removed are the entries removed, in the order they were removed.
	Removed []Removal
	// Kept are the entries left in the store, sorted by Prefix.
	Kept []EntryInfo
	// TempFiles and TempBytes count the stale temporary files of a file store removed.
	TempFiles int
	TempBytes int64
	// BytesBefore and BytesAfter are the total size of the store's objects (temporary files
	// included) before and after; after a dry run, BytesAfter is what the store would hold.
	BytesBefore, BytesAfter int64
	// MaxBytes and StaleAfter are the limits GC applied (defaults filled in).
	MaxBytes   int64
	StaleAfter time.Duration
}

// GC removes from s what no kept run needs:
//
//   - incomplete and damaged entries (stages/<key>/ without a readable entry.json) and
//     checkpoints no kept run refers to, when their newest object is older than StaleAfter:
//     a crashed writer's leftovers, never a concurrent writer's work in progress; checkpoints
//     of an entry that is committed, at once; stale temporary files of a file store;
//   - committed entries no kept run refers to, oldest first, until the store holds at most
//     MaxBytes (all of them when MaxBytes is 0).
//
// An entry is removed entry.json first, so that a reader never finds a committed entry whose
// objects are gone; an object that changed since GC listed it (a writer storing the same key
// again) is left alone. Several GCs, and writers, may run at once.
func GC(ctx context.Context, s pipeline.Store, opts GCOptions) (GCReport, error) {
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = DefaultStaleAfter
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.MaxBytes < 0 {
		return GCReport{}, fmt.Errorf("gc: negative size limit %d", opts.MaxBytes)
	}
	rep := GCReport{DryRun: opts.DryRun, MaxBytes: opts.MaxBytes, StaleAfter: opts.StaleAfter}
	staleBefore := opts.Now.Add(-opts.StaleAfter)

	bucket, _ := s.(*Bucket)
	var all []pipeline.ObjectInfo
	var err error
	if bucket != nil {
		all, err = bucket.listRaw(ctx, "")
	} else {
		all, err = s.List(ctx, "")
	}
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	var objs []pipeline.ObjectInfo
	for _, o := range all {
		rep.BytesBefore += o.Size
		if bucket == nil || !bucket.isTemp(o.Key) {
			objs = append(objs, o)
			continue
		}
		if o.ModTime.Before(staleBefore) {
			if !opts.DryRun {
				if err := bucket.deleteRaw(ctx, o.Key); err != nil {
					return rep, fmt.Errorf("gc: %w", err)
				}
			}
			rep.TempFiles++
			rep.TempBytes += o.Size
		}
	}
	total := rep.BytesBefore - rep.TempBytes

	entries, _ := group(objs)
	committed := map[string]bool{}
	for i := range entries {
		if err := readEntry(ctx, s, &entries[i]); err != nil {
			return rep, fmt.Errorf("gc: %w", err)
		}
		if entries[i].State == Committed {
			committed[entries[i].Key] = true
		}
	}

	removed := make([]bool, len(entries))
	remove := func(i int, reason string) error {
		e := entries[i]
		freed := e.Bytes
		if !opts.DryRun {
			var err error
			if freed, err = removeEntry(ctx, s, e); err != nil {
				return fmt.Errorf("gc: entry %s: %w", e.Prefix, err)
			}
		}
		total -= freed
		removed[i] = true
		rep.Removed = append(rep.Removed, Removal{EntryInfo: e, Reason: reason})
		return nil
	}

	for i, e := range entries {
		var reason string
		switch {
		case e.State == Incomplete && e.Newest.Before(staleBefore):
			reason = ReasonStale
		case e.State == Damaged && e.Newest.Before(staleBefore):
			reason = ReasonDamaged + ": " + e.Problem
		case e.State == Checkpoint && committed[e.Key]:
			reason = ReasonFinished
		case e.State == Checkpoint && !opts.Kept[e.Key] && e.Newest.Before(staleBefore):
			reason = ReasonCheckpoint
		default:
			continue
		}
		if err := remove(i, reason); err != nil {
			return rep, err
		}
	}

	var candidates []int
	for i, e := range entries {
		if e.State == Committed && !opts.Kept[e.Key] {
			candidates = append(candidates, i)
		}
	}
	sort.SliceStable(candidates, func(a, b int) bool {
		ea, eb := entries[candidates[a]], entries[candidates[b]]
		if !ea.Entry.CreatedAt.Equal(eb.Entry.CreatedAt) {
			return ea.Entry.CreatedAt.Before(eb.Entry.CreatedAt)
		}
		return ea.Key < eb.Key
	})
	for _, i := range candidates {
		if opts.MaxBytes > 0 && total <= opts.MaxBytes {
			break
		}
		if err := remove(i, ReasonUnreferenced); err != nil {
			return rep, err
		}
	}

	for i, e := range entries {
		if !removed[i] {
			rep.Kept = append(rep.Kept, e)
		}
	}
	rep.BytesAfter = total
	return rep, nil
}

// removeEntry deletes e's objects, entry.json first, and returns the bytes freed. An object
// that is gone or changed since it was listed is skipped: another GC removed it, or a writer
// stores the key again.
func removeEntry(ctx context.Context, s pipeline.Store, e EntryInfo) (int64, error) {
	objs := append([]pipeline.ObjectInfo(nil), e.Objects...)
	marker := e.Prefix + EntryObject
	sort.SliceStable(objs, func(a, b int) bool { return objs[a].Key == marker && objs[b].Key != marker })
	var freed int64
	for _, o := range objs {
		now, err := s.Stat(ctx, o.Key)
		if errors.Is(err, pipeline.ErrNotFound) {
			continue
		}
		if err != nil {
			return freed, err
		}
		if now.Size != o.Size || !now.ModTime.Equal(o.ModTime) {
			continue
		}
		if err := s.Delete(ctx, o.Key); err != nil {
			return freed, err
		}
		freed += o.Size
	}
	if b, ok := s.(*Bucket); ok {
		b.removeEmptyDirs(e.Prefix, objs)
	}
	return freed, nil
}

// FormatBytes writes a byte size the way pipeline.ParseSize reads it: "512B", "20GiB",
// "1.5MiB" (binary units, one decimal when not whole).
func FormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, u := float64(n), 0
	for (v >= 1024 || v <= -1024) && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 || v == float64(int64(v)) {
		return fmt.Sprintf("%d%s", int64(v), units[u])
	}
	return fmt.Sprintf("%.1f%s", v, units[u])
}
