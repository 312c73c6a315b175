package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/store"
)

// gcFixture makes runs/ with one run that refers to key "kept", and runs/.store with the
// committed entries "kept", "old" and "older" and a stale incomplete entry.
func gcFixture(t *testing.T) (runs, storeDir string) {
	t.Helper()
	ctx := context.Background()
	runs = filepath.Join(t.TempDir(), "runs")
	storeDir = filepath.Join(runs, ".store")
	s, err := store.Open(ctx, storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i, key := range []string{"older", "old", "kept"} {
		if err := s.Put(ctx, "stages/"+key+"/out.ipc", strings.NewReader(strings.Repeat("x", 1000))); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(store.Entry{Format: store.EntryFormat, FormatVersion: 1, Key: key, Kind: "csv", Stage: "load", CreatedAt: t0.Add(time.Duration(i) * time.Hour), SizeBytes: 1000})
		if err := s.Put(ctx, "stages/"+key+"/entry.json", strings.NewReader(string(b))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, "stages/crashed/out.ipc", strings.NewReader("partial")); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(storeDir, "stages", "crashed", "out.ipc"), old, old); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(runs, "iris", "20261101-000000-abcd")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	m := pipeline.Manifest{FormatVersion: pipeline.ManifestVersion, Pipeline: "iris", Status: pipeline.StatusSucceeded,
		Stages: map[string]*pipeline.StageManifest{"load": {Kind: "csv", Status: pipeline.StatusSucceeded, CacheKey: "kept"}}}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(run, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return runs, storeDir
}

func storeKeys(t *testing.T, dir string) []string {
	t.Helper()
	s, err := store.OpenExisting(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	objs, err := s.List(context.Background(), "stages/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

func TestGCCommand(t *testing.T) {
	runs, storeDir := gcFixture(t)
	before := storeKeys(t, storeDir)

	code, out, errOut := runCLI("gc", "--runs", runs, "--max-size", "0", "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, errOut)
	}
	if got := storeKeys(t, storeDir); strings.Join(got, ",") != strings.Join(before, ",") {
		t.Errorf("a dry run removed objects: %q, was %q", got, before)
	}
	for _, want := range []string{"would remove stages/older/", "would remove stages/old/", "would remove stages/crashed/", "dry run"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}

	// The store defaults to .store in the runs directory.
	code, out, errOut = runCLI("gc", "--runs", runs, "--max-size", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := storeKeys(t, storeDir); strings.Join(got, ",") != "stages/kept/entry.json,stages/kept/out.ipc" {
		t.Errorf("after gc the store holds %q, want the kept entry alone", got)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var removed []string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "removed" {
			removed = append(removed, f[1])
		}
	}
	// The stale incomplete entry first, then the unreferenced ones, oldest first.
	if strings.Join(removed, " ") != "stages/crashed/ stages/older/ stages/old/" {
		t.Errorf("removed %q, want crashed, older, old in that order:\n%s", removed, out)
	}
	if strings.Contains(out, "removed stages/kept/") || !strings.Contains(out, "kept 1 entries, 1 of them referred to by kept runs") {
		t.Errorf("output:\n%s", out)
	}
	if !strings.Contains(out, "no kept run refers to it") || !strings.Contains(out, `csv stage "load"`) {
		t.Errorf("output does not say what and why:\n%s", out)
	}

	// Nothing left to remove: exit 0, nothing removed.
	code, out, _ = runCLI("gc", "--runs", runs, "--store", storeDir)
	if code != 0 || strings.Contains(out, "removed") {
		t.Errorf("a second gc: exit %d:\n%s", code, out)
	}
}

func TestGCCommandSizeLimit(t *testing.T) {
	runs, storeDir := gcFixture(t)
	// Room for the kept entry and one more: "older" (the oldest, and stale "crashed") go.
	code, out, errOut := runCLI("gc", "--runs", runs, "--store", "file://"+filepath.ToSlash(storeDir), "--max-size", "2.5KiB")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got := strings.Join(storeKeys(t, storeDir), ",")
	if got != "stages/kept/entry.json,stages/kept/out.ipc,stages/old/entry.json,stages/old/out.ipc" {
		t.Errorf("after gc to 2.5KiB the store holds %q:\n%s", got, out)
	}
	if !strings.Contains(out, "limit 2.5KiB") {
		t.Errorf("output does not name the limit:\n%s", out)
	}
}

func TestGCCommandErrors(t *testing.T) {
	runs, storeDir := gcFixture(t)
	before := strings.Join(storeKeys(t, storeDir), ",")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"gc", "--runs", runs, "--store", "gs://bucket/x"}, "unknown scheme"},
		{[]string{"gc", "--runs", runs, "--store", filepath.Join(runs, "nostore")}, "no such file"},
		{[]string{"gc", "--runs", filepath.Join(runs, "typo"), "--store", storeDir, "--max-size", "0"}, "typo"},
		{[]string{"gc", "--runs", runs, "--max-size", "lots"}, "not a byte size"},
		{[]string{"gc", "--runs", runs, "extra"}, "no positional"},
		{[]string{"gc", "--bogus"}, "bogus"},
	} {
		code, _, errOut := runCLI(c.args...)
		if code != pipeline.ExitConfig || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", c.args, code, errOut, c.want)
		}
	}
	if got := strings.Join(storeKeys(t, storeDir), ","); got != before {
		t.Errorf("a refused gc changed the store: %q, was %q", got, before)
	}
	if _, err := os.Stat(filepath.Join(runs, "nostore")); err == nil {
		t.Error("gc created the missing store")
	}
}
