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
	"time"
	"unicode/utf8"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/pipe-ml/pipe/internal/atomicfile"
	"github.com/pipe-ml/pipe/pipeline"
)

// Bucket is a stage store on top of a gocloud.dev/blob bucket: a local directory (the fileblob
// driver), memory (memblob) or an S3 bucket, or a prefix in one, on AWS or an S3-compatible
// server (s3blob). It implements pipeline.Store and is safe for concurrent use, also by several
// processes (on several machines, for S3) that share one store.
type Bucket struct {
	url string // as given to Open
	dir string // the absolute directory of a file store; "" for memory and S3
	// s3 is the bucket name of an S3 store, "" otherwise.
	s3 string
	b  *blob.Bucket
}

var _ pipeline.Store = (*Bucket)(nil)

// Open opens the store at url, creating its directory if needed:
//
//   - a path, relative or absolute ("runs/.store"), or "file:///abs/dir": a directory;
//   - "s3://bucket/prefix?region=...&endpoint=...": the keys under prefix in an S3 bucket, on
//     AWS or an S3-compatible server (the parameters are in the package documentation); the
//     bucket must exist (pipe creates no bucket) and the credentials come from the AWS SDK's
//     usual chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws, a role), never from pipe's files;
//   - "mem://": a new, empty store in memory, for tests (each Open gives another one).
//
// Any other scheme is an error. An S3 store is checked at once (one List request): a bucket
// that does not exist, or credentials that may not list it, are an error that names the URL.
// The caller closes the Bucket.
func Open(ctx context.Context, url string) (*Bucket, error) {
	return open(ctx, url, true)
}

// OpenExisting is Open for a store that must exist already: a directory that does not exist is
// an error wrapping fs.ErrNotExist, and nothing is created (what `pipe gc` wants: a mistyped
// --store must not look like an empty store). For S3 the bucket must exist, as for Open; a
// prefix under which nothing is stored yet is an empty store (S3 has no directories).
func OpenExisting(ctx context.Context, url string) (*Bucket, error) {
	return open(ctx, url, false)
}

func open(ctx context.Context, rawURL string, create bool) (*Bucket, error) {
	loc, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch {
	case loc.mem:
		return &Bucket{url: rawURL, b: memblob.OpenBucket(nil)}, nil
	case loc.s3 != nil:
		b, err := openS3(ctx, rawURL, loc.s3)
		if err != nil {
			return nil, err
		}
		return &Bucket{url: rawURL, s3: loc.s3.bucket, b: b}, nil
	}
	dir := loc.dir
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

// location is a parsed store URL: one of dir, mem and s3 is set.
type location struct {
	dir string // the absolute directory of a file store
	mem bool
	s3  *s3Location
}

const schemes = "a directory, file:///abs/dir, s3://bucket/prefix or mem://"

// parseURL parses a store's location.
func parseURL(raw string) (location, error) {
	if strings.TrimSpace(raw) == "" {
		return location{}, errors.New("store: no location given (" + schemes + ")")
	}
	i := strings.Index(raw, "://")
	if i < 0 {
		abs, err := filepath.Abs(raw)
		if err != nil {
			return location{}, fmt.Errorf("store %s: %w", raw, err)
		}
		return location{dir: abs}, nil
	}
	switch scheme := strings.ToLower(raw[:i]); scheme {
	case "mem":
		return location{mem: true}, nil
	case "file":
		u, err := url.Parse(raw)
		if err != nil {
			return location{}, fmt.Errorf("store %s: %w", raw, err)
		}
		if (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(u.Path) || u.RawQuery != "" {
			return location{}, fmt.Errorf("store %s: a file URL is file:///absolute/dir (three slashes, no host, no query); write a relative directory as a plain path", raw)
		}
		return location{dir: filepath.Clean(u.Path)}, nil
	case "s3":
		s3, err := parseS3(raw)
		if err != nil {
			return location{}, err
		}
		return location{s3: s3}, nil
	default:
		return location{}, fmt.Errorf("store %s: unknown scheme %q: a store is %s", raw, scheme, schemes)
	}
}

// URL is the location the store was opened with.
func (b *Bucket) URL() string { return b.url }

// Dir is the absolute directory of a file store, "" for a memory or S3 store.
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

// wrap adds the operation, key and store to err, and maps the driver's "not found" to
// pipeline.ErrNotFound. An S3 store's bucket that has gone is not a missing key, and an S3
// error says what to do about it.
func (b *Bucket) wrap(op, key string, err error) error {
	if b.s3 != "" {
		if gcerrors.Code(err) == gcerrors.NotFound && !isNoSuchBucket(err) {
			return fmt.Errorf("%s %s in store %s: %w", op, key, b.url, pipeline.ErrNotFound)
		}
		return fmt.Errorf("%s %s in store %s: %w%s", op, key, b.url, err, b.hint(err))
	}
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("%s %s in store %s: %w", op, key, b.url, pipeline.ErrNotFound)
	}
	return fmt.Errorf("%s %s in store %s: %w", op, key, b.url, err)
}

// hint says what to do about an error of an S3 store (see s3Hint); "" for other stores.
func (b *Bucket) hint(err error) string {
	if b.s3 == "" {
		return ""
	}
	return s3Hint(err, b.s3)
}

// modTime is t as the store reports it: to the second for S3, whose HEAD (Stat) says no
// more, while its listings may say milliseconds (MinIO does); GC compares the two.
func (b *Bucket) modTime(t time.Time) time.Time {
	if b.s3 != "" {
		return t.Truncate(time.Second)
	}
	return t
}

// Put writes the object key with everything r yields. The object appears whole when Put
// returns nil, and not at all when it fails (an error from r, a canceled ctx, a full disk): the
// file store writes a temporary file beside the object, syncs it and renames it over the object,
// so a concurrent Put of the same key leaves one of the two whole objects. On S3 an object
// appears when its upload (one PutObject, or a multipart upload of 8 MiB parts) completes; a
// failed Put cancels the upload before it completes, so S3 publishes nothing (the parts of an
// aborted multipart upload that the server could not be told about stay invisible until the
// bucket's lifecycle rule for incomplete uploads removes them), and of two concurrent Puts the
// last to complete wins whole.
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
	var opts *blob.ReaderOptions
	if b.s3 != "" {
		opts = s3ReaderOptions
	}
	r, err := b.b.NewReader(ctx, key, opts)
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
	return pipeline.ObjectInfo{Key: key, Size: a.Size, ModTime: b.modTime(a.ModTime)}, nil
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
			return nil, fmt.Errorf("list %q in store %s: %w%s", prefix, b.url, err, b.hint(err))
		}
		if o.IsDir {
			continue
		}
		out = append(out, pipeline.ObjectInfo{Key: o.Key, Size: o.Size, ModTime: b.modTime(o.ModTime)})
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
