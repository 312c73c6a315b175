package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/storetest"
	"github.com/pipe-ml/pipe/pipeline"
)

// cachedRun runs a pipeline against a stage store with a checked allocator and returns its
// manifest and directory.
func cachedRun(t *testing.T, store pipeline.Store, dir, src string, opts pipeline.RunOptions, overrides ...string) (*pipeline.Manifest, string) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	p, err := pipeline.Parse([]byte(src), "test.toml", dir, registry(t), pipeline.LoadOptions{Overrides: overrides})
	if err != nil {
		t.Fatal(err)
	}
	opts.Dir, opts.Mem, opts.Store = filepath.Join(t.TempDir(), "run"), mem, store
	if opts.Version == "" {
		opts.Version = "test"
	}
	res, err := pipeline.Run(context.Background(), p, opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(opts.Dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := pipeline.ReadManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != pipeline.StatusSucceeded {
		t.Fatalf("status %s: %s", m.Status, m.Error)
	}
	return m, res.Dir
}

func cachedNames(m *pipeline.Manifest) []string {
	var out []string
	for _, n := range m.StageOrder {
		if m.Stages[n].Cached {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// ranNames lists the stages that ran (were not read back).
func ranNames(m *pipeline.Manifest) []string {
	var out []string
	for _, n := range m.StageOrder {
		if !m.Stages[n].Cached {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// dirFiles reads every file under dir, by slash path.
func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// bundleFiles is a bundle directory's files, bundle.json aside (it holds its creation time).
func bundleFiles(t *testing.T, dir string) map[string][]byte {
	f := dirFiles(t, dir)
	delete(f, "bundle.json")
	return f
}

// cacheDigitsSrc covers every artifact kind and lineage transform the built-in kinds have: a
// fitted transform, augment, an encoder, a model bundle, an ensemble and a combined one.
const cacheDigitsSrc = `
[pipeline]
seed = 3
[stages.load]
kind = "dataset"
name = "digits"
peer_split = true
[stages.split]
kind = "split"
input = "load"
split_column = "split"
[stages.normalize]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
method = "minmax"
[stages.aug]
kind = "augment"
input = "normalize.train"
noise = 0.05
[stages.dae]
kind = "pretrain"
input = "normalize.train"
layers = [ { dense = 24 } ]
epochs = 2
[stages.model]
kind = "train"
train = "aug"
val = "normalize.val"
init_from = "dae.encoder"
epochs = 3
[stages.members]
kind = "ensemble"
train = "normalize.train"
val = "normalize.val"
members = 2
member = { layers = [ { dense = 16 } ], epochs = 2 }
[stages.vote]
kind = "combine"
ensemble = "members.ensemble"
method = "vote"
[stages.scores]
kind = "predict"
model = "model.model"
input = "split.test"
[stages.save]
kind = "write"
input = "scores"
path = "scores.csv"
[stages.eval]
kind = "evaluate"
models = ["model.model", "members.ensemble", "vote.model"]
tables = ["normalize.val", "normalize.test"]
`

// TestCachedRunIsBitIdentical: a run that reads stages back from the store gives exactly the
// metrics, predictions, bundles and leakage audit of a run that computes them, whether the
// stages that run read their inputs back from the store (evaluate with another worst_k;
// predict refreshed, and train refreshed on the restored encoder) or nothing runs at all.
func TestCachedRunIsBitIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	store := storetest.New()
	m1, dir1 := cachedRun(t, store, ".", cacheDigitsSrc, pipeline.RunOptions{})
	if len(cachedNames(m1)) != 0 {
		t.Fatalf("first run cached %v", cachedNames(m1))
	}
	preds := func(dir string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "stages/save/scores.csv"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	leakage := func(m *pipeline.Manifest) string {
		b, _ := json.Marshal(m.Run["leakage"])
		return string(b)
	}

	// Everything read back.
	m2, dir2 := cachedRun(t, store, ".", cacheDigitsSrc, pipeline.RunOptions{})
	if len(ranNames(m2)) != 0 {
		t.Errorf("second run ran %v", ranNames(m2))
	}
	for _, n := range m1.StageOrder {
		if !reflect.DeepEqual(m1.Stages[n].Metrics, m2.Stages[n].Metrics) {
			t.Errorf("%s: cached metrics differ", n)
		}
	}
	if !bytes.Equal(preds(dir1), preds(dir2)) {
		t.Error("cached predictions differ")
	}
	for _, b := range []string{"model", "members", "vote"} {
		if !reflect.DeepEqual(bundleFiles(t, filepath.Join(dir1, "stages", b, "bundle")), bundleFiles(t, filepath.Join(dir2, "stages", b, "bundle"))) {
			t.Errorf("%s: cached bundle files differ", b)
		}
	}
	if leakage(m1) != leakage(m2) || !strings.Contains(leakage(m2), `"stage":"normalize"`) {
		t.Errorf("leakage audit: %s vs %s", leakage(m1), leakage(m2))
	}

	// evaluate with another worst_k, predict and train refreshed: they run on tables and
	// artifacts read back from the store.
	m3, dir3 := cachedRun(t, store, ".", cacheDigitsSrc, pipeline.RunOptions{Refresh: []string{"scores", "model"}}, "eval.worst_k=3")
	if got, want := ranNames(m3), []string{"eval", "model", "save", "scores"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	for _, n := range []string{"model", "eval"} {
		if !reflect.DeepEqual(m1.Stages[n].Metrics, m3.Stages[n].Metrics) {
			t.Errorf("%s: metrics on restored inputs differ:\n%v\n%v", n, m1.Stages[n].Metrics, m3.Stages[n].Metrics)
		}
	}
	if !bytes.Equal(preds(dir1), preds(dir3)) {
		t.Error("predictions from a restored model and table differ")
	}
	if !reflect.DeepEqual(bundleFiles(t, filepath.Join(dir1, "stages/model/bundle")), bundleFiles(t, filepath.Join(dir3, "stages/model/bundle"))) {
		t.Error("the bundle trained on restored inputs differs")
	}
	if leakage(m1) != leakage(m3) {
		t.Errorf("leakage audit: %s vs %s", leakage(m1), leakage(m3))
	}
}

// TestCSVFingerprint: a CSV source's results are reused until its file changes: by default a
// touch counts as a change; with fingerprint = "content" only new bytes do.
func TestCSVFingerprint(t *testing.T) {
	src := "[stages.load]\nkind = \"csv\"\npath = \"d.csv\"\nfingerprint = \"%s\"\n[stages.save]\nkind = \"write\"\ninput = \"load\"\npath = \"out.csv\"\n"
	for _, mode := range []string{"stat", "content"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "d.csv")
			if err := os.WriteFile(data, []byte("a,target\n1,0\n2,1\n3,0\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			touch := func() {
				later := time.Now().Add(time.Hour)
				if err := os.Chtimes(data, later, later); err != nil {
					t.Fatal(err)
				}
			}
			store := storetest.New()
			s := strings.Replace(src, "%s", mode, 1)
			cachedRun(t, store, dir, s, pipeline.RunOptions{})
			if m, _ := cachedRun(t, store, dir, s, pipeline.RunOptions{}); len(ranNames(m)) != 0 {
				t.Fatalf("unchanged file ran %v", ranNames(m))
			}
			touch()
			m, _ := cachedRun(t, store, dir, s, pipeline.RunOptions{})
			if ran := len(ranNames(m)); (mode == "stat") != (ran == 2) || (mode == "content" && ran != 0) {
				t.Errorf("touched file: ran %v", ranNames(m))
			}
			if err := os.WriteFile(data, []byte("a,target\n1,0\n2,1\n4,0\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			m, runDir := cachedRun(t, store, dir, s, pipeline.RunOptions{})
			out, _ := os.ReadFile(filepath.Join(runDir, "stages/save/out.csv"))
			if len(ranNames(m)) != 2 || !strings.Contains(string(out), "4,0,") {
				t.Errorf("rewritten file: ran %v, wrote %q", ranNames(m), out)
			}
		})
	}
}

// TestBuiltinKindsAreCacheable: every built-in kind opts in, and the stage store can read back
// what they output (a loader for every artifact kind, a decoder for every lineage transform).
func TestBuiltinKindsAreCacheable(t *testing.T) {
	r := registry(t)
	for _, k := range r.Kinds() {
		if !k.Cacheable {
			t.Errorf("%s is not cacheable", k.Kind)
		}
	}
	for _, kind := range []string{"bundle", "ensemble", "transform", "encoder"} {
		if r.ArtifactLoader(kind) == nil {
			t.Errorf("no loader for %s artifacts", kind)
		}
	}
	dec := r.TransformDecoder()
	aug := &AugmentSpec{Noise: 0.1, Mixup: 0.2}
	state, _ := aug.Marshal()
	got, err := dec("augment", state)
	if err != nil || !reflect.DeepEqual(got, aug) {
		t.Errorf("augment decodes to %#v, %v", got, err)
	}
	if _, err := dec("nosuch", nil); err == nil {
		t.Error("an unknown transform kind decodes")
	}
}

// TestDatasetFingerprint: an embedded dataset's data is part of pipe itself (its name and
// pipe's version are in the key); MNIST's identity is that of its idx files, which changes
// when one of them does.
func TestDatasetFingerprint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, f := range []string{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	parse := func(name string) *pipeline.StageConfig {
		p, err := pipeline.Parse([]byte("[stages.load]\nkind = \"dataset\"\nname = \""+name+"\"\n"), "p.toml", ".", registry(t), pipeline.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sc, _ := p.Stage("load")
		return sc
	}
	env := pipeline.FingerprintEnv{DataDir: dir}
	if id, err := datasetFingerprint(ctx, parse("iris"), env); err != nil || id != "" {
		t.Errorf("iris: %q, %v", id, err)
	}
	mnist := parse("mnist")
	before, err := datasetFingerprint(ctx, mnist, env)
	if err != nil || before == "" {
		t.Fatalf("mnist: %q, %v", before, err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"), later, later); err != nil {
		t.Fatal(err)
	}
	if after, _ := datasetFingerprint(ctx, mnist, env); after == before {
		t.Error("a changed idx file kept MNIST's identity")
	}
}
