package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/internal/storetest"
	"github.com/pipe-ml/pipe/pipeline"
)

const cacheCLISrc = `
[pipeline]
name = "tiny"
seed = 1
store_max_size = "1MiB"
[stages.load]
kind = "dataset"
name = "iris"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.test"]
[stages.save]
kind = "write"
input = "scale.test"
path = "test.csv"
`

// fakeStore connects the command's store seam to an in-memory store for one test, recording
// where it was opened and how it was trimmed.
type fakeStore struct {
	store    *storetest.MemStore
	opened   []string
	openErr  error
	trimmed  []int64
	trimDirs [][]string
}

func useFakeStore(t *testing.T) *fakeStore {
	f := &fakeStore{store: storetest.New()}
	oldOpen, oldTrim := openStore, trimStore
	openStore = func(_ context.Context, loc string) (pipeline.Store, func() error, error) {
		f.opened = append(f.opened, loc)
		if f.openErr != nil {
			return nil, nil, f.openErr
		}
		return f.store, func() error { return nil }, nil
	}
	trimStore = func(_ context.Context, s pipeline.Store, max int64, dirs []string) error {
		f.trimmed = append(f.trimmed, max)
		f.trimDirs = append(f.trimDirs, dirs)
		return nil
	}
	t.Cleanup(func() { openStore, trimStore = oldOpen, oldTrim })
	return f
}

func cliManifest(t *testing.T, dir string) *pipeline.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := pipeline.ReadManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRunCacheFlags: pipe run reuses the stages in its store (the summary says "cached"),
// --no-cache and --refresh opt out, the store is opened where --store, [pipeline] store or the
// runs directory say, and trimmed to store_max_size after the run.
func TestRunCacheFlags(t *testing.T) {
	f := useFakeStore(t)
	base := t.TempDir()
	file := filepath.Join(base, "tiny.toml")
	if err := os.WriteFile(file, []byte(cacheCLISrc), 0o644); err != nil {
		t.Fatal(err)
	}
	runs := filepath.Join(base, "runs")
	run := func(args ...string) (*pipeline.Manifest, string) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "run")
		code, out, errOut := runCLI(append([]string{"run", file, "--out", dir, "--runs", runs, "--log-format", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		return cliManifest(t, dir), out
	}
	cachedOf := func(m *pipeline.Manifest) int {
		n := 0
		for _, s := range m.Stages {
			if s.Cached {
				n++
			}
		}
		return n
	}
	m, _ := run()
	if cachedOf(m) != 0 || f.opened[0] != filepath.Join(runs, ".store") {
		t.Fatalf("first run: %d cached, store opened at %v", cachedOf(m), f.opened)
	}
	if len(f.trimmed) != 1 || f.trimmed[0] != 1<<20 || len(f.trimDirs[0]) != 1 {
		t.Errorf("trim: %v %v (the runs directory does not exist: only the run is kept)", f.trimmed, f.trimDirs)
	}
	m, out := run()
	if cachedOf(m) != 4 || strings.Count(out, " cached ") != 4 {
		t.Errorf("second run: %d cached; summary:\n%s", cachedOf(m), out)
	}
	// With --out alone, the store is beside the run directory.
	outDir := filepath.Join(t.TempDir(), "job", "today")
	if code, out, errOut := runCLI("run", file, "--out", outDir, "--log-format", "json"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if last := f.opened[len(f.opened)-1]; last != filepath.Join(filepath.Dir(outDir), ".store") {
		t.Errorf("--out alone: store opened at %q", last)
	}
	m, _ = run("--no-cache")
	if cachedOf(m) != 0 {
		t.Errorf("--no-cache: %d cached", cachedOf(m))
	}
	m, _ = run("--refresh", "scale")
	if cachedOf(m) != 2 || m.Stages["scale"].Cached || m.Stages["save"].Cached {
		t.Errorf("--refresh scale: %d cached", cachedOf(m))
	}
	run("--store", "elsewhere")
	if last := f.opened[len(f.opened)-1]; last != "elsewhere" {
		t.Errorf("--store: opened %q", last)
	}
	withStore := strings.Replace(cacheCLISrc, "seed = 1", "seed = 1\nstore = \"mystore\"", 1)
	if err := os.WriteFile(file, []byte(withStore), 0o644); err != nil {
		t.Fatal(err)
	}
	run()
	if last := f.opened[len(f.opened)-1]; last != filepath.Join(base, "mystore") {
		t.Errorf("[pipeline] store: opened %q", last)
	}

	// A --refresh of no stage and a store that cannot be opened refuse the run: exit 2,
	// nothing written.
	dir := filepath.Join(t.TempDir(), "refused")
	code, _, errOut := runCLI("run", file, "--out", dir, "--refresh", "scal")
	if code != pipeline.ExitConfig || !strings.Contains(errOut, `did you mean "scale"?`) {
		t.Errorf("--refresh scal: exit %d\n%s", code, errOut)
	}
	f.openErr = errors.New("permission denied")
	code, _, errOut = runCLI("run", file, "--out", dir)
	if code != pipeline.ExitConfig || !strings.Contains(errOut, "the stage store cannot be opened") || !strings.Contains(errOut, "permission denied") {
		t.Errorf("store not opened: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused run wrote %s", dir)
	}
	if m, _ := run("--no-cache"); m.Status != pipeline.StatusSucceeded {
		t.Errorf("--no-cache with a store that cannot be opened: %s", m.Status)
	}
}

// TestRunWithTheStoreDirectory: with the real store, pipe run stores every stage under
// runs/.store, the next run reads them all back, and after a run the store is trimmed to
// store_max_size: entries of a deleted run go, those of the runs that remain stay.
func TestRunWithTheStoreDirectory(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "tiny.toml")
	src := strings.Replace(cacheCLISrc, `store_max_size = "1MiB"`, `store_max_size = 1`, 1)
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	runs := filepath.Join(base, "runs")
	run := func(args ...string) (*pipeline.Manifest, string) {
		t.Helper()
		code, out, errOut := runCLI(append([]string{"run", file, "--runs", runs, "--log-format", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		dir := strings.TrimPrefix(lines[len(lines)-1], "run: ")
		return cliManifest(t, dir), dir
	}
	committed := func(key string) bool {
		_, err := os.Stat(filepath.Join(runs, ".store", "stages", key, "entry.json"))
		return err == nil
	}
	m1, dir1 := run()
	for name, s := range m1.Stages {
		if !committed(s.CacheKey) {
			t.Errorf("%s: no entry in runs/.store", name)
		}
	}
	m2, _ := run()
	for name, s := range m2.Stages {
		if !s.Cached {
			t.Errorf("%s: not read back from runs/.store", name)
		}
	}
	// Only the scaling changes: load and split stay, scale and save are new.
	if err := os.RemoveAll(dir1); err != nil {
		t.Fatal(err)
	}
	m3, _ := run("--set", "scale.method=\"minmax\"")
	if !m3.Stages["split"].Cached || m3.Stages["scale"].Cached {
		t.Fatalf("split cached %v, scale cached %v", m3.Stages["split"].Cached, m3.Stages["scale"].Cached)
	}
	// The second run (kept) refers to the first run's keys: they stay. Remove it too, and the
	// next run's trim removes them.
	for name, s := range m2.Stages {
		if !committed(s.CacheKey) {
			t.Errorf("%s: an entry a kept run refers to was removed", name)
		}
	}
	ids, _ := os.ReadDir(filepath.Join(runs, "tiny"))
	for _, e := range ids {
		if e.IsDir() && e.Name() != m3.RunID {
			os.RemoveAll(filepath.Join(runs, "tiny", e.Name()))
		}
	}
	m4, _ := run("--set", "scale.method=\"minmax\"")
	for name, s := range m4.Stages {
		if !committed(s.CacheKey) || !s.Cached {
			t.Errorf("%s: the kept run's entry is gone (cached %v)", name, s.Cached)
		}
	}
	for _, name := range []string{"scale", "save"} {
		if committed(m2.Stages[name].CacheKey) {
			t.Errorf("%s: the entry no run refers to was not trimmed", name)
		}
	}
}
