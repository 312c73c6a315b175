package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/pipe-ml/pipe/internal/atomicfile"
	"github.com/pipe-ml/pipe/pipeline"
)

// Bucket is a stage store on top of a gocloud.dev/blob bucket: a local directory (the fileblob
// driver) or memory (memblob). It implements pipeline.Store and is safe for concurrent use, also
// by several processes that share one directory.
type Bucket struct {
	url string // as given to Open
	dir string // the absolute directory of a file store; "" for memory
	b   *blob.Bucket
}

var _ pipeline.Store = (*Bucket)(nil)

// Open opens the store at url, creating its directory if needed:
//
//   - a path, relative or absolute ("runs/.store"), or "file:///abs/dir": a directory;
//   - "mem://": a new, empty store in memory, for tests (each Open gives another one).
//
// Object storage ("s3://bucket/prefix") comes with pipe's Temporal executor; any other scheme is
// an error. The caller closes the Bucket.
func Open(ctx context.Context, url string) (*Bucket, error) {
	return open(ctx, url, true)
}

// OpenExisting is Open for a store that must exist already: a directory that does not exist is
// an error wrapping fs.ErrNotExist, and nothing is created (what `pipe gc` wants: a mistyped
// --store must not look like an empty store).
func OpenExisting(ctx context.Context, url string) (*Bucket, error) {
	return open(ctx, url, false)
}

func open(_ context.Context, rawURL string, create bool) (*Bucket, error) {
	dir, mem, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if mem {
		return &Bucket{url: rawURL, b: memblob.OpenBucket(nil)}, nil
	}
	if !create {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", rawURL, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("store %s: %s is not a directory", rawURL, dir)
		}
	}
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{
		CreateDir: create,
		// Temporary files beside their object, not in os.TempDir: a rename across file
		// systems fails, and a store often lives on another disk than /tmp.
		NoTempDir: true,
		// No ".attrs" sidecar per object: pipe stores no attributes, and sidecars would
		// double the files and go stale when a directory is copied.
		Metadata: fileblob.MetadataDontWrite,
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: open directory %s: %w", rawURL, dir, err)
	}
	return &Bucket{url: rawURL, dir: dir, b: b}, nil
}

// parseURL returns the absolute directory of a file store, or mem for a memory store.
func parseURL(raw string) (dir string, mem bool, err error) {
	if strings.TrimSpace(raw) == "" {
		return "", false, errors.New("store: no location given (a directory, file:///abs/dir or mem://)")
	}
	i := strings.Index(raw, "://")
	if i < 0 {
		abs, err := filepath.Abs(raw)
		if err != nil {
			return "", false, fmt.Errorf("store %s: %w", raw, err)
		}
		return abs, false, nil
	}
	switch scheme := strings.ToLower(raw[:i]); scheme {
	case "mem":
		return "", true, nil
	case "file":
		u, err := url.Parse(raw)
		if err != nil {
			return "", false, fmt.Errorf("store %s: %w", raw, err)
		}
		if (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(u.Path) || u.RawQuery != "" {
			return "", false, fmt.Errorf("store %s: a file URL is file:///absolute/dir (three slashes, no host, no query); write a relative directory as a plain path", raw)
		}
		return filepath.Clean(u.Path), false, nil
	case "s3", "gs", "azblob":
		return "", false, fmt.Errorf("store %s: %s stores come with pipe's Temporal executor (issue #14); use a directory, file:///abs/dir or mem:// for now", raw, scheme)
	default:
		return "", false, fmt.Errorf("store %s: unknown scheme %q: a store is a directory, file:///abs/dir or mem://", raw, scheme)
	}
}

// URL is the location the store was opened with.
func (b *Bucket) URL() string { return b.url }

// Dir is the absolute directory of a file store, "" for a memory store.
func (b *Bucket) Dir() string { return b.dir }

// Close releases the bucket.
func (b *Bucket) Close() error { return b.b.Close() }

// tempName matches the names of fileblob's temporary files ("<object>.<hex nanoseconds>.tmp",
// beside the object with NoTempDir). List hides them and CheckKey refuses keys that look like
// them.
var tempName = regexp.MustCompile(`\.[0-9a-f]+\.tmp$`)

// CheckKey reports whether key can name an object of a store: slash-separated non-empty names,
// none "." or "..", without a leading or trailing slash, control characters or backslashes, and
// not ending the way the file store's own files do (".attrs", ".<hex>.tmp").
func CheckKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("store key %q: %s (keys are slash-separated names such as \"stages/<key>/entry.json\")", key, why)
	}
	switch {
	case key == "":
		return bad("empty")
	case !utf8.ValidString(key):
		return bad("not valid UTF-8")
	case strings.HasPrefix(key, "/"):
		return bad("starts with /")
	case strings.HasSuffix(key, "/"):
		return bad("ends with /")
	case strings.HasSuffix(key, ".attrs"):
		return bad(`ends with ".attrs", which the file store reserves`)
	case tempName.MatchString(key):
		return bad(`ends like a temporary file of the file store (".<hex>.tmp")`)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return bad(fmt.Sprintf("holds the character %q", r))
		}
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return bad("has an empty segment (//)")
		case ".", "..":
			return bad(fmt.Sprintf("has a %q segment", seg))
		}
	}
	return nil
}

// checkPrefix accepts "" and any prefix of a valid key.
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := CheckKey(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("list: prefix: %w", err)
	}
	return nil
}

// wrap adds the operation, key and store to err, and maps the driver's "not found" to pipeline.ErrNotFound.
func (b *Bucket) wrap(op, key string, err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("%s %s in store %s: %w", op, key, b.url, pipeline.ErrNotFound)
	}
	return fmt.Errorf("%s %s in store %s: %w", op, key, b.url, err)
}

// Put writes the object key with everything r yields. The object appears whole when Put
// returns nil, and not at all when it fails (an error from r, a canceled ctx, a full disk): the
// file store writes a temporary file beside the object, syncs it and renames it over the object,
// so a concurrent Put of the same key leaves one of the two whole objects.
func (b *Bucket) Put(ctx context.Context, key string, r io.Reader) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var f *os.File
	opts := &blob.WriterOptions{
		ContentType: "application/octet-stream",
		BeforeWrite: func(as func(any) bool) error {
			as(&f) // the file store's temporary file, synced before the rename
			return nil
		},
	}
	var w *blob.Writer
	var err error
	// A gc that removes an empty entry directory between the driver's MkdirAll and its create
	// of the temporary file makes the create fail with "not found"; nothing of r is read yet,
	// so try again.
	for range 3 {
		w, err = b.b.NewWriter(ctx, key, opts)
		if gcerrors.Code(err) != gcerrors.NotFound {
			break
		}
	}
	if err != nil {
		return b.wrap("put", key, err)
	}
	if _, err := io.Copy(w, r); err != nil {
		cancel() // abort: the driver removes the temporary file and publishes nothing
		_ = w.Close()
		return b.wrap("put", key, err)
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			cancel()
			_ = w.Close()
			return b.wrap("put", key, err)
		}
	}
	if err := w.Close(); err != nil {
		return b.wrap("put", key, err)
	}
	if b.dir != "" {
		atomicfile.SyncDir(filepath.Dir(filepath.Join(b.dir, filepath.FromSlash(key))))
	}
	return nil
}

// Get opens the object key for reading; the error wraps pipeline.ErrNotFound when it does not
// exist. The caller closes the reader. On a file store a reader keeps reading the object it
// opened even when the object is replaced or deleted meanwhile.
func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	r, err := b.b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, b.wrap("get", key, err)
	}
	return r, nil
}

// Stat describes the object key; the error wraps pipeline.ErrNotFound when it does not exist.
func (b *Bucket) Stat(ctx context.Context, key string) (pipeline.ObjectInfo, error) {
	if err := CheckKey(key); err != nil {
		return pipeline.ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	a, err := b.b.Attributes(ctx, key)
	if err != nil {
		return pipeline.ObjectInfo{}, b.wrap("stat", key, err)
	}
	return pipeline.ObjectInfo{Key: key, Size: a.Size, ModTime: a.ModTime}, nil
}

// List returns every object whose key starts with prefix, sorted by key. Objects being written
// (the file store's temporary files) are not listed.
func (b *Bucket) List(ctx context.Context, prefix string) ([]pipeline.ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	all, err := b.listRaw(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, o := range all {
		if !b.isTemp(o.Key) {
			out = append(out, o)
		}
	}
	return out, nil
}

// listRaw lists everything under prefix, temporary files included, sorted by key.
func (b *Bucket) listRaw(ctx context.Context, prefix string) ([]pipeline.ObjectInfo, error) {
	var out []pipeline.ObjectInfo
	it := b.b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %q in store %s: %w", prefix, b.url, err)
		}
		if o.IsDir {
			continue
		}
		out = append(out, pipeline.ObjectInfo{Key: o.Key, Size: o.Size, ModTime: o.ModTime})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// isTemp reports whether key is a temporary file of the file store.
func (b *Bucket) isTemp(key string) bool {
	return b.dir != "" && tempName.MatchString(key)
}

// Delete removes the object key; a key that does not exist is not an error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return b.deleteRaw(ctx, key)
}

func (b *Bucket) deleteRaw(ctx context.Context, key string) error {
	err := b.b.Delete(ctx, key)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return b.wrap("delete", key, err)
	}
	return nil
}

// removeEmptyDirs removes, in a file store, the directories the objects of the entry at
// prefix ("stages/<key>/") leave empty, deepest first, the entry's own included. A directory
// that is not empty (a writer has started on the key again) is left as it is.
func (b *Bucket) removeEmptyDirs(prefix string, objs []pipeline.ObjectInfo) {
	if b.dir == "" || prefix == "" {
		return
	}
	top := strings.TrimSuffix(prefix, "/")
	seen := map[string]bool{top: true}
	dirs := []string{top}
	for _, o := range objs {
		for d := path.Dir(o.Key); len(d) > len(top) && !seen[d]; d = path.Dir(d) {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		_ = os.Remove(filepath.Join(b.dir, filepath.FromSlash(d))) // fails when not empty
	}
}
