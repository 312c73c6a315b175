package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/pipe-ml/pipe/internal/storetest"
	"github.com/pipe-ml/pipe/pipeline"
)

// stores returns a file store in a temporary directory, a memory store, and a store under a
// prefix of a bucket on an S3 server in the test process (storetest.S3), by name.
func stores(t *testing.T) map[string]*Bucket {
	t.Helper()
	ctx := context.Background()
	file, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mem, err := Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	srv := storetest.S3(t, "pipe")
	s3, err := Open(ctx, srv.URL("pipe", "team/store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close(); mem.Close(); s3.Close() })
	return map[string]*Bucket{"file": file, "mem": mem, "s3": s3}
}

func put(t *testing.T, s pipeline.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s pipeline.Store, key string) []byte {
	t.Helper()
	r, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keysOf(objs []pipeline.ObjectInfo) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.Key)
	}
	return ks
}

// filesUnder lists every file under dir, relative, with slashes.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			objects := map[string]string{
				// "a-b" sorts before "a/b" ('-' < '/') although a directory walk visits a/ first.
				"a/b":                      "bee",
				"a/c":                      "sea",
				"a-b":                      "dash",
				"stages/k1/model/w.bin":    strings.Repeat("w", 5000),
				"stages/k1/entry.json":     `{"key":"k1"}`,
				"checkpoints/k2/epoch.bin": "",
			}
			for k, v := range objects {
				put(t, s, k, []byte(v))
			}
			for k, v := range objects {
				if got := string(get(t, s, k)); got != v {
					t.Errorf("Get %s = %q, want %q", k, got, v)
				}
				info, err := s.Stat(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				if info.Key != k || info.Size != int64(len(v)) || info.ModTime.IsZero() {
					t.Errorf("Stat %s = %+v, want size %d and a time", k, info, len(v))
				}
			}
			all, err := s.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"a-b", "a/b", "a/c", "checkpoints/k2/epoch.bin", "stages/k1/entry.json", "stages/k1/model/w.bin"}
			if got := keysOf(all); !reflect.DeepEqual(got, want) {
				t.Errorf("List = %q, want %q", got, want)
			}
			for _, o := range all {
				if o.Size != int64(len(objects[o.Key])) {
					t.Errorf("List: %s has size %d, want %d", o.Key, o.Size, len(objects[o.Key]))
				}
			}
			for prefix, want := range map[string][]string{
				"a/":         {"a/b", "a/c"},
				"a":          {"a-b", "a/b", "a/c"},
				"stages/k1/": {"stages/k1/entry.json", "stages/k1/model/w.bin"},
				"nothing/":   nil,
			} {
				got, err := s.List(ctx, prefix)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(keysOf(got), want) {
					t.Errorf("List(%q) = %q, want %q", prefix, keysOf(got), want)
				}
			}

			put(t, s, "a/b", []byte("replaced"))
			if got := string(get(t, s, "a/b")); got != "replaced" {
				t.Errorf("after a second Put: %q", got)
			}
			if err := s.Delete(ctx, "a/b"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, "a/b"); !errors.Is(err, pipeline.ErrNotFound) {
				t.Errorf("Get after Delete: %v, want ErrNotFound", err)
			}
			if err := s.Delete(ctx, "a/b"); err != nil {
				t.Errorf("Delete of a missing key: %v", err)
			}
			if s.Dir() != "" {
				if files := filesUnder(t, s.Dir()); len(files) != len(objects)-1 {
					t.Errorf("files in the store: %q, want one per object and no other", files)
				}
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			put(t, s, "dir/obj", []byte("x"))
			for _, key := range []string{"missing", "dir/missing", "dir"} {
				_, err := s.Get(ctx, key)
				if !errors.Is(err, pipeline.ErrNotFound) {
					t.Errorf("Get %s: %v, want ErrNotFound", key, err)
				} else if !strings.Contains(err.Error(), key) {
					t.Errorf("Get %s: %q does not name the key", key, err)
				}
				if _, err := s.Stat(ctx, key); !errors.Is(err, pipeline.ErrNotFound) {
					t.Errorf("Stat %s: %v, want ErrNotFound", key, err)
				}
			}
		})
	}
}

// failingReader yields n bytes, then an error.
type failingReader struct{ n int }

var errBroken = errors.New("the source broke")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errBroken
	}
	k := min(len(p), r.n)
	for i := range p[:k] {
		p[i] = 'z'
	}
	r.n -= k
	return k, nil
}

func TestFailedPutLeavesNothing(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			err := s.Put(ctx, "stages/k/new.ipc", &failingReader{n: 100_000})
			if !errors.Is(err, errBroken) {
				t.Fatalf("Put from a failing reader: %v, want the reader's error", err)
			}
			if _, err := s.Stat(ctx, "stages/k/new.ipc"); !errors.Is(err, pipeline.ErrNotFound) {
				t.Errorf("after a failed Put, Stat: %v, want ErrNotFound", err)
			}
			put(t, s, "stages/k/old.ipc", []byte("whole"))
			if err := s.Put(ctx, "stages/k/old.ipc", &failingReader{n: 100_000}); err == nil {
				t.Fatal("Put from a failing reader succeeded")
			}
			if got := string(get(t, s, "stages/k/old.ipc")); got != "whole" {
				t.Errorf("a failed Put over an object left %d bytes, want the old object", len(got))
			}
			canceled, cancel := context.WithCancel(ctx)
			cancel()
			if err := s.Put(canceled, "stages/k/canceled.ipc", strings.NewReader("x")); err == nil {
				t.Error("Put with a canceled context succeeded")
			}
			objs, err := s.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := keysOf(objs); !reflect.DeepEqual(got, []string{"stages/k/old.ipc"}) {
				t.Errorf("List = %q, want only the whole object", got)
			}
			if s.Dir() != "" {
				if files := filesUnder(t, s.Dir()); !reflect.DeepEqual(files, []string{"stages/k/old.ipc"}) {
					t.Errorf("files left in the store: %q, want no temporary file", files)
				}
			}
		})
	}
}

// TestPutInvisibleWhileWriting reads the store while a Put is half done: the object is not
// there, in any listing, until Put returns.
func TestPutInvisibleWhileWriting(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() { done <- s.Put(ctx, "stages/k/big.ipc", pr) }()
			half := bytes.Repeat([]byte("h"), 64<<10)
			if _, err := pw.Write(half); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Stat(ctx, "stages/k/big.ipc"); !errors.Is(err, pipeline.ErrNotFound) {
				t.Errorf("Stat while writing: %v, want ErrNotFound", err)
			}
			if _, err := s.Get(ctx, "stages/k/big.ipc"); !errors.Is(err, pipeline.ErrNotFound) {
				t.Errorf("Get while writing: %v, want ErrNotFound", err)
			}
			objs, err := s.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != 0 {
				t.Errorf("List while writing = %q, want nothing", keysOf(objs))
			}
			if s.Dir() != "" {
				// The temporary file lies beside the object (not in os.TempDir, from which a
				// rename to another file system fails).
				files := filesUnder(t, s.Dir())
				if len(files) != 1 || !strings.HasPrefix(files[0], "stages/k/big.ipc.") {
					t.Errorf("files while writing: %q, want one temporary file beside the object", files)
				}
			}
			if _, err := pw.Write(half); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got := get(t, s, "stages/k/big.ipc"); len(got) != 2*len(half) {
				t.Errorf("after Put: %d bytes, want %d", len(got), 2*len(half))
			}
		})
	}
}

// TestFileModes: objects are 0666 and directories 0777 less the umask, like every file of a
// run, and no metadata sidecar (".attrs") is written.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "store")
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put(t, s, "stages/k/model/w.bin", []byte("weights"))
	for _, c := range []struct {
		path string
		want fs.FileMode
	}{
		{dir, 0o755},
		{filepath.Join(dir, "stages", "k"), 0o755},
		{filepath.Join(dir, "stages", "k", "model"), 0o755},
		{filepath.Join(dir, "stages", "k", "model", "w.bin"), 0o644},
	} {
		st, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, st.Mode().Perm(), c.want)
		}
	}
	if files := filesUnder(t, dir); !reflect.DeepEqual(files, []string{"stages/k/model/w.bin"}) {
		t.Errorf("files in the store: %q, want the object alone (no sidecar)", files)
	}
}

func TestBadKeys(t *testing.T) {
	ctx := context.Background()
	bad := map[string]string{
		"":                         "empty",
		"/stages/k/x":              "starts with /",
		"stages/k/":                "ends with /",
		"stages//x":                "empty segment",
		"stages/../x":              `".." segment`,
		"../outside":               `".." segment`,
		"stages/./x":               `"." segment`,
		"stages/k/x.attrs":         ".attrs",
		"stages/k/x.18c3f2a9b.tmp": "temporary file",
		"stages/k/a\\b":            "character",
		"stages/k/a\nb":            "character",
		"stages/k/\xff":            "UTF-8",
	}
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			for key, why := range bad {
				err := s.Put(ctx, key, strings.NewReader("x"))
				if err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), fmt.Sprintf("%q", key)) {
					t.Errorf("Put %q: %v, want an error naming the key and saying %q", key, err, why)
				}
				if _, err := s.Get(ctx, key); err == nil || errors.Is(err, pipeline.ErrNotFound) {
					t.Errorf("Get %q: %v, want a key error", key, err)
				}
				if _, err := s.Stat(ctx, key); err == nil || errors.Is(err, pipeline.ErrNotFound) {
					t.Errorf("Stat %q: %v, want a key error", key, err)
				}
				if err := s.Delete(ctx, key); err == nil {
					t.Errorf("Delete %q: no error", key)
				}
			}
			if _, err := s.List(ctx, "../"); err == nil {
				t.Error(`List("../"): no error`)
			}
			objs, err := s.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != 0 {
				t.Errorf("bad keys wrote %q", keysOf(objs))
			}
			if s.Dir() != "" {
				if files := filesUnder(t, filepath.Dir(s.Dir())); len(files) != 0 {
					t.Errorf("bad keys wrote files: %q", files)
				}
			}
		})
	}
	for _, good := range []string{"stages/0123abcd/entry.json", "checkpoints/k/member-03.ckpt", "a", "x.tmp", "a b/c"} {
		if err := CheckKey(good); err != nil {
			t.Errorf("CheckKey(%q): %v", good, err)
		}
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	t.Chdir(root)

	s, err := Open(ctx, filepath.Join("runs", ".store"))
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "stages/k/x", []byte("rel"))
	s.Close()
	if b, err := os.ReadFile(filepath.Join(root, "runs", ".store", "stages", "k", "x")); err != nil || string(b) != "rel" {
		t.Errorf("a relative path: the object is not in ./runs/.store: %q %v", b, err)
	}

	abs := filepath.Join(root, "abs store")
	s, err = Open(ctx, "file://"+filepath.ToSlash(abs))
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir() != abs {
		t.Errorf("Dir = %q, want %q", s.Dir(), abs)
	}
	put(t, s, "k", []byte("abs"))
	s.Close()
	if b, err := os.ReadFile(filepath.Join(abs, "k")); err != nil || string(b) != "abs" {
		t.Errorf("file URL: the object is not in %s: %q %v", abs, b, err)
	}
	s, err = OpenExisting(ctx, abs)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(get(t, s, "k")); got != "abs" {
		t.Errorf("OpenExisting of the same directory reads %q", got)
	}
	s.Close()

	missing := filepath.Join(root, "missing")
	if _, err := OpenExisting(ctx, missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenExisting of a missing directory: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Error("OpenExisting created the directory")
	}
	if err := os.WriteFile(filepath.Join(root, "plain"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	for url, want := range map[string]string{
		"":                           "no location",
		"gs://bucket":                "unknown scheme",
		"ftp://host/x":               "unknown scheme",
		"file://host/abs":            "file:///absolute/dir",
		"file://relative":            "file:///absolute/dir",
		"file:///abs?metadata=on":    "no query",
		filepath.Join(root, "plain"): "not a directory",
	} {
		if _, err := Open(ctx, url); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q): %v, want an error saying %q", url, err, want)
		}
	}
	m1, _ := Open(ctx, "mem://")
	m2, _ := Open(ctx, "mem://")
	put(t, m1, "k", []byte("x"))
	if _, err := m2.Stat(ctx, "k"); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("two mem:// stores share objects: %v", err)
	}
	if m1.Dir() != "" || m1.URL() != "mem://" {
		t.Errorf("mem store: Dir %q URL %q", m1.Dir(), m1.URL())
	}
}
