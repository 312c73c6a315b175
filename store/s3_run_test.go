package store_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/cli"
	"github.com/pipe-ml/pipe/internal/storetest"
	"github.com/pipe-ml/pipe/pipeline"
)

const s3RunSrc = `
[pipeline]
name = "iris-s3"
seed = 7
workers = 2
[stages.load]
kind = "dataset"
name = "iris"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 8 } ]
epochs = 3
`

// TestRunWithAnS3Store runs a pipeline (iris, a train stage) through the pipe command with
// --store s3://... on an S3 server in the test process: every stage's entry lands in the
// bucket under the URL's prefix, a second run reads every stage back from it with the same
// model, and pipe gc empties the store once no run refers to it.
func TestRunWithAnS3Store(t *testing.T) {
	srv := storetest.S3(t, "pipe")
	storeURL := srv.URL("pipe", "ci/store")
	base := t.TempDir()
	file := filepath.Join(base, "iris.toml")
	if err := os.WriteFile(file, []byte(s3RunSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	runs := filepath.Join(base, "runs")
	pipe := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := cli.Main(args, &out, &errOut); code != 0 {
			t.Fatalf("pipe %q: exit %d\n%s\n%s", args, code, out.String(), errOut.String())
		}
		return out.String()
	}
	run := func() (*pipeline.Manifest, string) {
		t.Helper()
		out := pipe("run", file, "--runs", runs, "--store", storeURL, "--log-format", "json")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		dir := strings.TrimPrefix(lines[len(lines)-1], "run: ")
		b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := pipeline.ReadManifest(b)
		if err != nil {
			t.Fatal(err)
		}
		return m, dir
	}
	inBucket := func() map[string]bool {
		keys := map[string]bool{}
		for _, k := range srv.Keys(t, "pipe") {
			keys[k] = true
		}
		return keys
	}
	weights := func(dir string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "stages", "model", "bundle", "model", "weights.bin"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	m1, dir1 := run()
	keys := inBucket()
	for name, s := range m1.Stages {
		if s.Cached {
			t.Errorf("first run: %s cached", name)
		}
		if !keys["ci/store/stages/"+s.CacheKey+"/entry.json"] {
			t.Errorf("first run: %s has no entry in the bucket under ci/store/", name)
		}
	}
	for k := range keys {
		if !strings.HasPrefix(k, "ci/store/stages/") {
			t.Errorf("an object outside the store's entries: %s", k)
		}
	}
	if _, err := os.Stat(filepath.Join(runs, ".store")); err == nil {
		t.Error("the run made a local store beside the S3 one")
	}

	m2, dir2 := run()
	if len(m2.Stages) != len(m1.Stages) {
		t.Fatalf("second run: %d stages, first %d", len(m2.Stages), len(m1.Stages))
	}
	for name, s := range m2.Stages {
		if !s.Cached || s.CacheKey != m1.Stages[name].CacheKey {
			t.Errorf("second run: %s cached %v, key %s (first run %s)", name, s.Cached, s.CacheKey, m1.Stages[name].CacheKey)
		}
	}
	if w1, w2 := weights(dir1), weights(dir2); len(w1) == 0 || !bytes.Equal(w1, w2) {
		t.Errorf("the model read back from S3 differs from the one trained (%d and %d bytes)", len(w1), len(w2))
	}

	// No run left: pipe gc removes every entry.
	if err := os.RemoveAll(filepath.Join(runs, "iris-s3")); err != nil {
		t.Fatal(err)
	}
	out := pipe("gc", "--runs", runs, "--store", storeURL, "--max-size", "0")
	if left := srv.Keys(t, "pipe"); len(left) != 0 {
		t.Errorf("after gc the bucket holds %q\n%s", left, out)
	}
}
