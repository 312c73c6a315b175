package store

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
)

// putEntry writes a committed entry: its objects (name → size), then entry.json.
func putEntry(t *testing.T, s pipeline.Store, key string, created time.Time, objects map[string]int) {
	t.Helper()
	var total int64
	for name, n := range objects {
		put(t, s, StagesPrefix+key+"/"+name, []byte(strings.Repeat("o", n)))
		total += int64(n)
	}
	b, err := json.Marshal(Entry{Format: EntryFormat, FormatVersion: 1, Key: key, Kind: "train", Stage: "model", CreatedAt: created, SizeBytes: total})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, StagesPrefix+key+"/"+EntryObject, b)
}

func entryByKey(t *testing.T, entries []EntryInfo, prefix string) EntryInfo {
	t.Helper()
	for _, e := range entries {
		if e.Prefix == prefix {
			return e
		}
	}
	t.Fatalf("no entry %s", prefix)
	return EntryInfo{}
}

func TestEntries(t *testing.T) {
	ctx := context.Background()
	created := time.Date(2026, 11, 3, 4, 5, 6, 0, time.UTC)
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			putEntry(t, s, "k1", created, map[string]int{"out.ipc": 300, "model/w.bin": 200})
			put(t, s, "stages/k2/out.ipc", make([]byte, 50)) // no entry.json: incomplete
			put(t, s, "stages/k3/out.ipc", make([]byte, 10))
			put(t, s, "stages/k3/entry.json", []byte("{not json"))
			put(t, s, "stages/k4/entry.json", []byte(`{"key":"another"}`))
			put(t, s, "checkpoints/k5/epoch", make([]byte, 70))
			put(t, s, "checkpoints/k5/member-1/epoch", make([]byte, 30))
			put(t, s, "README", []byte("not an entry"))
			put(t, s, "stages/loose", []byte("not an entry"))

			entries, err := Entries(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			var prefixes []string
			for _, e := range entries {
				prefixes = append(prefixes, e.Prefix)
			}
			want := []string{"checkpoints/k5/", "stages/k1/", "stages/k2/", "stages/k3/", "stages/k4/"}
			if !reflect.DeepEqual(prefixes, want) {
				t.Fatalf("entries %q, want %q", prefixes, want)
			}

			k1 := entryByKey(t, entries, "stages/k1/")
			if k1.State != Committed || k1.Entry == nil || !k1.Entry.CreatedAt.Equal(created) || k1.Entry.SizeBytes != 500 || k1.Entry.Kind != "train" || k1.Entry.Stage != "model" {
				t.Errorf("k1: %+v (entry %+v), want committed, created %v, 500 bytes", k1, k1.Entry, created)
			}
			markerSize := int64(0)
			for _, o := range k1.Objects {
				if o.Key == "stages/k1/entry.json" {
					markerSize = o.Size
				}
			}
			if len(k1.Objects) != 3 || markerSize == 0 || k1.Bytes != 500+markerSize || k1.Key != "k1" {
				t.Errorf("k1: %d objects, %d bytes, want 3 objects and 500 + entry.json", len(k1.Objects), k1.Bytes)
			}
			if k2 := entryByKey(t, entries, "stages/k2/"); k2.State != Incomplete || k2.Entry != nil || k2.Bytes != 50 || k2.Newest.IsZero() {
				t.Errorf("k2: %+v, want incomplete with 50 bytes and a time", k2)
			}
			if k3 := entryByKey(t, entries, "stages/k3/"); k3.State != Damaged || !strings.Contains(k3.Problem, "not an entry") {
				t.Errorf("k3: %+v, want damaged", k3)
			}
			if k4 := entryByKey(t, entries, "stages/k4/"); k4.State != Damaged || !strings.Contains(k4.Problem, `"another"`) {
				t.Errorf("k4: %+v, want damaged (entry.json of another key)", k4)
			}
			if k5 := entryByKey(t, entries, "checkpoints/k5/"); k5.State != Checkpoint || k5.Bytes != 100 || len(k5.Objects) != 2 {
				t.Errorf("k5: %+v, want a checkpoint of 2 objects, 100 bytes", k5)
			}
		})
	}
}

// sizeOf is the total size of the objects under prefix.
func sizeOf(t *testing.T, s pipeline.Store, prefix string) int64 {
	t.Helper()
	objs, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, o := range objs {
		n += o.Size
	}
	return n
}

func removedPrefixes(rep GCReport) []string {
	var out []string
	for _, r := range rep.Removed {
		out = append(out, r.Prefix)
	}
	return out
}

func TestGCSizeLimit(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			// Written newest first, so that the order of creation in the store is not the
			// order of created_at.
			putEntry(t, s, "k3", t0.Add(3*time.Hour), map[string]int{"out.ipc": 1000})
			putEntry(t, s, "k2", t0.Add(2*time.Hour), map[string]int{"out.ipc": 1000, "sub/dir/x": 10})
			putEntry(t, s, "k1", t0.Add(1*time.Hour), map[string]int{"out.ipc": 1000})
			putEntry(t, s, "k0", t0, map[string]int{"out.ipc": 1000})
			total := sizeOf(t, s, "")
			kept := map[string]bool{"k1": true}
			// The limit takes k0 and k2 (the two oldest no run refers to), not k3.
			limit := total - sizeOf(t, s, "stages/k0/") - sizeOf(t, s, "stages/k2/")

			dry, err := GC(ctx, s, GCOptions{Kept: kept, MaxBytes: limit, DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := sizeOf(t, s, ""); got != total {
				t.Fatalf("a dry run changed the store: %d bytes, was %d", got, total)
			}
			rep, err := GC(ctx, s, GCOptions{Kept: kept, MaxBytes: limit})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []GCReport{dry, rep} {
				if got := removedPrefixes(r); !reflect.DeepEqual(got, []string{"stages/k0/", "stages/k2/"}) {
					t.Errorf("dry run %v: removed %q, want k0 then k2", r.DryRun, got)
				}
				if r.BytesBefore != total || r.BytesAfter != limit {
					t.Errorf("dry run %v: bytes %d → %d, want %d → %d", r.DryRun, r.BytesBefore, r.BytesAfter, total, limit)
				}
				for _, rm := range r.Removed {
					if rm.Reason != ReasonUnreferenced {
						t.Errorf("%s removed because %q", rm.Prefix, rm.Reason)
					}
				}
				if len(r.Kept) != 2 {
					t.Errorf("dry run %v: kept %d entries, want 2", r.DryRun, len(r.Kept))
				}
			}
			if got := sizeOf(t, s, ""); got != limit {
				t.Errorf("the store holds %d bytes after gc, want %d", got, limit)
			}
			for _, k := range []string{"k1", "k3"} {
				if _, err := s.Stat(ctx, StagesPrefix+k+"/out.ipc"); err != nil {
					t.Errorf("%s was removed: %v", k, err)
				}
			}
			for _, k := range []string{"k0", "k2"} {
				if n := sizeOf(t, s, StagesPrefix+k+"/"); n != 0 {
					t.Errorf("%s: %d bytes left", k, n)
				}
			}
			if s.Dir() != "" {
				for _, k := range []string{"k0", "k2"} {
					if _, err := os.Stat(filepath.Join(s.Dir(), "stages", k)); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("the directory of %s is left: %v", k, err)
					}
				}
			}

			// Limit 0: every entry no run refers to goes; the referenced one stays.
			rep, err = GC(ctx, s, GCOptions{Kept: kept})
			if err != nil {
				t.Fatal(err)
			}
			if got := removedPrefixes(rep); !reflect.DeepEqual(got, []string{"stages/k3/"}) {
				t.Errorf("limit 0: removed %q, want k3", got)
			}
			if rep.BytesAfter != sizeOf(t, s, "") || rep.BytesAfter != sizeOf(t, s, "stages/k1/") {
				t.Errorf("limit 0: %d bytes after, the store holds %d", rep.BytesAfter, sizeOf(t, s, ""))
			}
		})
	}
}

func TestGCStaleLeftovers(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			putEntry(t, s, "done", time.Now(), map[string]int{"out.ipc": 10})
			put(t, s, "checkpoints/done/epoch", make([]byte, 5)) // left by a crash after the commit
			put(t, s, "stages/crashed/out.ipc", make([]byte, 20))
			put(t, s, "stages/broken/entry.json", []byte("{"))
			put(t, s, "checkpoints/old/epoch", make([]byte, 30))
			put(t, s, "checkpoints/resumable/epoch", make([]byte, 40))
			put(t, s, "other/file", make([]byte, 7))
			kept := map[string]bool{"resumable": true, "done": true, "crashed": true}

			// Now: everything is fresh (a writer may be at work), but the checkpoint of a
			// committed entry is useless at once.
			rep, err := GC(ctx, s, GCOptions{Kept: kept})
			if err != nil {
				t.Fatal(err)
			}
			if got := removedPrefixes(rep); !reflect.DeepEqual(got, []string{"checkpoints/done/"}) || rep.Removed[0].Reason != ReasonFinished {
				t.Errorf("fresh: removed %q (%+v), want only the finished checkpoint", got, rep.Removed)
			}

			// Two days later they are a crashed writer's leftovers, except the checkpoints of
			// a kept run (it may be resumed).
			rep, err = GC(ctx, s, GCOptions{Kept: kept, Now: time.Now().Add(48 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			reasons := map[string]string{}
			for _, r := range rep.Removed {
				reasons[r.Prefix] = r.Reason
			}
			want := map[string]string{
				"checkpoints/old/": ReasonCheckpoint,
				"stages/broken/":   ReasonDamaged,
				"stages/crashed/":  ReasonStale,
			}
			if len(reasons) != len(want) {
				t.Errorf("stale: removed %q", removedPrefixes(rep))
			}
			for p, why := range want {
				if !strings.HasPrefix(reasons[p], why) {
					t.Errorf("stale: %s removed because %q, want %q", p, reasons[p], why)
				}
			}
			objs, err := s.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			wantLeft := []string{"checkpoints/resumable/epoch", "other/file", "stages/done/entry.json", "stages/done/out.ipc"}
			if got := keysOf(objs); !reflect.DeepEqual(got, wantLeft) {
				t.Errorf("left %q, want %q", got, wantLeft)
			}

			// A shorter StaleAfter takes fresh leftovers too.
			put(t, s, "stages/new/out.ipc", make([]byte, 1))
			rep, err = GC(ctx, s, GCOptions{Kept: kept, StaleAfter: time.Nanosecond, Now: time.Now().Add(time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			if got := removedPrefixes(rep); !reflect.DeepEqual(got, []string{"stages/new/"}) {
				t.Errorf("StaleAfter 1ns: removed %q", got)
			}
		})
	}
}

// TestGCTempFiles: a file store's temporary files left by a killed writer go once stale;
// a fresh one (a writer at work) stays.
func TestGCTempFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	putEntry(t, s, "k", time.Now(), map[string]int{"out.ipc": 10})
	oldTemp := filepath.Join(dir, "stages", "k", "out.ipc.18a2b3c4d5e6f708.tmp")
	newTemp := filepath.Join(dir, "stages", "k2", "out.ipc.18a2b3c4d5e6f709.tmp")
	for _, p := range []string{oldTemp, newTemp} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, 100), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-25 * time.Hour)
	if err := os.Chtimes(oldTemp, old, old); err != nil {
		t.Fatal(err)
	}
	before := sizeOf(t, s, "")
	rep, err := GC(ctx, s, GCOptions{Kept: map[string]bool{"k": true}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TempFiles != 1 || rep.TempBytes != 100 || len(rep.Removed) != 0 {
		t.Errorf("removed %d temporary files (%d bytes) and %q, want the old one alone", rep.TempFiles, rep.TempBytes, removedPrefixes(rep))
	}
	if rep.BytesBefore != before+200 || rep.BytesAfter != before+100 {
		t.Errorf("bytes %d → %d, want %d → %d (temporary files count)", rep.BytesBefore, rep.BytesAfter, before+200, before+100)
	}
	if _, err := os.Stat(oldTemp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale temporary file is left: %v", err)
	}
	if _, err := os.Stat(newTemp); err != nil {
		t.Errorf("the fresh temporary file was removed: %v", err)
	}
}

// TestRemoveEntrySkipsRewritten: an object written again since gc listed it (a writer storing
// the same key anew) is not deleted; entry.json goes first.
func TestRemoveEntrySkipsRewritten(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			putEntry(t, s, "k", time.Now(), map[string]int{"a.ipc": 10, "b.ipc": 10})
			entries, err := Entries(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond) // a modification time the listing did not see
			put(t, s, "stages/k/b.ipc", []byte("rewritten"))
			rec := &recordingStore{Store: s}
			freed, err := removeEntry(ctx, rec, entries[0])
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"stages/k/entry.json", "stages/k/a.ipc"}; !reflect.DeepEqual(rec.deleted, want) {
				t.Errorf("deleted %q, want %q (entry.json first, the rewritten object kept)", rec.deleted, want)
			}
			if got := string(get(t, s, "stages/k/b.ipc")); got != "rewritten" {
				t.Errorf("b.ipc = %q", got)
			}
			if want := entries[0].Bytes - 10; freed != want {
				t.Errorf("freed %d bytes, want %d", freed, want)
			}
		})
	}
}

// recordingStore records the keys deleted, in order.
type recordingStore struct {
	pipeline.Store
	deleted []string
}

func (r *recordingStore) Delete(ctx context.Context, key string) error {
	r.deleted = append(r.deleted, key)
	return r.Store.Delete(ctx, key)
}

func writeManifest(t *testing.T, dir string, keys ...string) {
	t.Helper()
	m := pipeline.Manifest{FormatVersion: pipeline.ManifestVersion, Pipeline: "p", Status: pipeline.StatusSucceeded, Stages: map[string]*pipeline.StageManifest{}}
	for i, k := range keys {
		m.Stages[string(rune('a'+i))] = &pipeline.StageManifest{Kind: "csv", Status: pipeline.StatusSucceeded, CacheKey: k}
	}
	m.Stages["nokey"] = &pipeline.StageManifest{Kind: "csv", Status: pipeline.StatusSkipped}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestKeptKeys(t *testing.T) {
	root := t.TempDir()
	runs := filepath.Join(root, "runs")
	writeManifest(t, filepath.Join(runs, "iris", "20261101-000000-aaaa"), "A", "B")
	writeManifest(t, filepath.Join(runs, "iris", "20261102-000000-bbbb"), "B", "C")
	writeManifest(t, filepath.Join(runs, "mnist", "run1"), "D")
	// Not runs: a file named manifest.json inside a run's stage directory, and the store.
	writeManifest(t, filepath.Join(runs, "mnist", "run1", "stages", "w"), "NOT1")
	writeManifest(t, filepath.Join(runs, ".store", "stages", "x"), "NOT2")
	out := filepath.Join(root, "elsewhere")
	writeManifest(t, out, "E")

	kept, err := KeptKeys(runs, out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"A": true, "B": true, "C": true, "D": true, "E": true}
	if !reflect.DeepEqual(kept, want) {
		t.Errorf("KeptKeys = %v, want %v", kept, want)
	}
	if kept, err := KeptKeys(); err != nil || len(kept) != 0 {
		t.Errorf("no directories: %v %v", kept, err)
	}

	if _, err := KeptKeys(filepath.Join(root, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing runs directory: %v, want ErrNotExist", err)
	}
	bad := filepath.Join(runs, "iris", "broken")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "manifest.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := KeptKeys(runs); err == nil || !strings.Contains(err.Error(), filepath.Join(bad, "manifest.json")) {
		t.Errorf("a damaged manifest: %v, want an error naming it", err)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1023: "1023B", 1024: "1KiB", 2560: "2.5KiB", 20 << 30: "20GiB", 3<<40 + 1<<39: "3.5TiB"} {
		got := FormatBytes(n)
		if got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
		if back, err := pipeline.ParseSize(got); err != nil || back != n {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", got, back, err, n)
		}
	}
}
