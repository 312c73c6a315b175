package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// fiveSrc is a pipeline of five stages: a source, two scalings, a sum of the source and the
// second scaling (an artifact), and a report of the sum.
const fiveSrc = `
[pipeline]
name = "five"
seed = 7

[stages.src]
kind = "gen"
rows = 500
batch = 64

[stages.s1]
kind = "scale"
input = "src"
factor = 2

[stages.s2]
kind = "scale"
input = "s1"
factor = 3

[stages.sum]
kind = "sum"
input = ["s2", "src"]

[stages.report]
kind = "show"
model = "sum.total"
`

// cacheRun is one run of a test pipeline against a store, with a checked allocator.
type cacheRun struct {
	t       *testing.T
	counts  *runCounts
	store   *memStore
	version int // the scale kind's Version
	dir     string
	lastDir string // the last run's directory
}

func newCacheRun(t *testing.T) *cacheRun {
	return &cacheRun{t: t, counts: &runCounts{n: map[string]int{}}, store: newMemStore()}
}

func (c *cacheRun) parse(src string, overrides ...string) *Pipeline {
	c.t.Helper()
	if c.dir == "" {
		c.dir = c.t.TempDir()
	}
	p, err := Parse([]byte(src), "p.toml", c.dir, cacheRegistry(c.counts, c.version), LoadOptions{Overrides: overrides})
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// run runs p and returns its manifest and the stages that ran.
func (c *cacheRun) run(p *Pipeline, opts RunOptions) (*Manifest, []string) {
	c.t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	opts.Dir = filepath.Join(c.t.TempDir(), "run")
	opts.Mem = mem
	if opts.Store == nil {
		opts.Store = c.store
	}
	if opts.Version == "" {
		opts.Version = "v1.0.0"
	}
	res, err := Run(context.Background(), p, opts)
	mem.AssertSize(c.t, 0)
	if err != nil {
		c.t.Fatalf("run: %v", err)
	}
	if res.Manifest.Status != StatusSucceeded {
		c.t.Fatalf("run status %s", res.Manifest.Status)
	}
	c.lastDir = opts.Dir
	return readManifest(c.t, opts.Dir), c.counts.ran()
}

func cachedStages(m *Manifest) []string {
	var out []string
	for _, n := range m.StageOrder {
		if m.Stages[n].Cached {
			out = append(out, n)
		}
	}
	return out
}

func sameStrings(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

var hexKey = regexp.MustCompile(`^[0-9a-f]{64}$`)

// fiveTotal is the report's total for 500 rows and the given factors, computed here.
func fiveTotal(f1, f2 int64) float64 {
	var sum int64
	for x := int64(0); x < 500; x++ {
		sum += f1*f2*x + x
	}
	return float64(sum)
}

// TestCacheHitAndMissPerStage runs a pipeline of five stages three times and counts what
// ran: everything the first time, nothing the second (every stage read back, with the same
// metrics and files, and no table read at all since no stage that runs needs one), and after
// one stage's config changed, that stage and what depends on it only.
func TestCacheHitAndMissPerStage(t *testing.T) {
	c := newCacheRun(t)
	m1, ran := c.run(c.parse(fiveSrc), RunOptions{})
	if want := []string{"report", "s1", "s2", "src", "sum"}; !sameStrings(ran, want) {
		t.Fatalf("first run ran %v, want %v", ran, want)
	}
	keys := map[string]string{}
	for _, n := range m1.StageOrder {
		s := m1.Stages[n]
		if !hexKey.MatchString(s.CacheKey) || s.Cached {
			t.Errorf("%s: cache_key %q cached %v", n, s.CacheKey, s.Cached)
		}
		keys[n] = s.CacheKey
		if _, err := c.store.Stat(context.Background(), "stages/"+s.CacheKey+"/entry.json"); err != nil {
			t.Errorf("%s: no entry stored: %v", n, err)
		}
	}
	if got := m1.Stages["report"].Metrics["test_total"]; got != fiveTotal(2, 3) {
		t.Fatalf("test_total %v, want %v", got, fiveTotal(2, 3))
	}

	c.store.resetCounts()
	m2, ran := c.run(c.parse(fiveSrc), RunOptions{})
	if len(ran) != 0 {
		t.Errorf("second run ran %v, want nothing", ran)
	}
	if got, want := cachedStages(m2), m2.StageOrder; !sameStrings(got, want) {
		t.Errorf("cached %v, want %v", got, want)
	}
	for _, n := range m2.StageOrder {
		a, b := m1.Stages[n], m2.Stages[n]
		if b.CacheKey != keys[n] || b.Status != StatusSucceeded {
			t.Errorf("%s: key %s status %s", n, b.CacheKey, b.Status)
		}
		if !reflect.DeepEqual(a.Metrics, b.Metrics) || !reflect.DeepEqual(a.Outputs, b.Outputs) || a.RowsOut != b.RowsOut || !reflect.DeepEqual(a.Notes, b.Notes) {
			t.Errorf("%s: restored entry differs:\n%+v\n%+v", n, a, b)
		}
	}
	// The stage directories' files are there, and a path into the old run's stage directory
	// in info now points into this run's.
	for _, f := range []string{"stages/sum/sum.txt", "stages/report/report.txt"} {
		if _, err := os.Stat(filepath.Join(c.lastDir, f)); err != nil {
			t.Errorf("cached run lacks %s: %v", f, err)
		}
	}
	if got, want := m2.Stages["sum"].Info["file"], filepath.Join(c.lastDir, "stages", "sum", "sum.txt"); got != want {
		t.Errorf("restored info.file = %v, want %v", got, want)
	}
	if n := c.store.count(c.store.gets, func(k string) bool { return strings.Contains(k, "/tables/") }); n != 0 {
		t.Errorf("%d tables read back, though no stage that runs reads one", n)
	}
	if n := c.store.count(c.store.puts, func(string) bool { return true }); n != 0 {
		t.Errorf("a fully cached run wrote %d objects", n)
	}

	c.store.resetCounts()
	m3, ran := c.run(c.parse(fiveSrc, "s2.factor=5"), RunOptions{})
	if want := []string{"report", "s2", "sum"}; !sameStrings(ran, want) {
		t.Errorf("after changing s2 ran %v, want %v", ran, want)
	}
	if got := cachedStages(m3); !sameStrings(got, []string{"src", "s1"}) {
		t.Errorf("cached %v, want [src s1]", got)
	}
	if got := m3.Stages["report"].Metrics["test_total"]; got != fiveTotal(2, 5) {
		t.Errorf("test_total %v, want %v", got, fiveTotal(2, 5))
	}
	for _, n := range []string{"src", "s1"} {
		if m3.Stages[n].CacheKey != keys[n] {
			t.Errorf("%s: key changed though its config did not", n)
		}
	}
	for _, n := range []string{"s2", "sum", "report"} {
		if m3.Stages[n].CacheKey == keys[n] {
			t.Errorf("%s: key did not change", n)
		}
	}
	// s1.out (read by s2) and src.out (read by sum) were read back; nothing else.
	tables := c.store.count(c.store.gets, func(k string) bool { return strings.Contains(k, "/tables/") })
	if tables != 2 {
		t.Errorf("%d tables read back, want 2 (s1.out, src.out)", tables)
	}
}

// TestCacheInvalidation: a key changes, and the stages run again, with pipe's version, the
// build, a kind's version, the seed and the input data; not with a field that cannot change
// results.
func TestCacheInvalidation(t *testing.T) {
	all := []string{"report", "s1", "s2", "src", "sum"}
	cases := []struct {
		name      string
		overrides []string
		opts      RunOptions
		version   int
		want      []string
	}{
		{name: "nothing changed", want: nil},
		{name: "pipe version", opts: RunOptions{Version: "v1.0.1"}, want: all},
		{name: "build", opts: RunOptions{BuildID: "other-binary"}, want: all},
		{name: "kind version", version: 1, want: []string{"report", "s1", "s2", "sum"}},
		{name: "seed", overrides: []string{"pipeline.seed=8"}, want: all},
		{name: "source config", overrides: []string{"src.rows=499"}, want: all},
		{name: "key-exempt field", overrides: []string{"sum.workers=3"}, want: nil},
		{name: "a default written out", overrides: []string{"s1.factor=2"}, want: nil},
		{name: "memory budget", overrides: []string{"pipeline.memory_budget=1024"}, want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCacheRun(t)
			c.run(c.parse(fiveSrc), RunOptions{})
			c.version = tc.version
			_, ran := c.run(c.parse(fiveSrc, tc.overrides...), tc.opts)
			if !sameStrings(ran, tc.want) {
				t.Errorf("ran %v, want %v", ran, tc.want)
			}
		})
	}
}

// TestCacheInvalidationByInputFile: a source's key holds its file's identity (path, size,
// modification time): rewriting or touching the file runs it again, and so everything
// downstream.
func TestCacheInvalidationByInputFile(t *testing.T) {
	c := newCacheRun(t)
	c.dir = t.TempDir()
	data := filepath.Join(c.dir, "data.txt")
	if err := os.WriteFile(data, []byte("1\n2\n3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := "[stages.src]\nkind = \"lines\"\npath = \"data.txt\"\n\n[stages.sum]\nkind = \"sum\"\ninput = \"src\"\n"
	c.run(c.parse(src), RunOptions{})
	if _, ran := c.run(c.parse(src), RunOptions{}); len(ran) != 0 {
		t.Fatalf("unchanged file: ran %v", ran)
	}
	// Touched: the same content, a new modification time.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(data, later, later); err != nil {
		t.Fatal(err)
	}
	if _, ran := c.run(c.parse(src), RunOptions{}); !sameStrings(ran, []string{"src", "sum"}) {
		t.Errorf("touched file: ran %v, want [src sum]", ran)
	}
	// Rewritten.
	if err := os.WriteFile(data, []byte("1\n2\n4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, ran := c.run(c.parse(src), RunOptions{})
	if !sameStrings(ran, []string{"src", "sum"}) || m.Stages["sum"].Metrics["all_sum"] != 7 {
		t.Errorf("rewritten file: ran %v, sum %v", ran, m.Stages["sum"].Metrics["all_sum"])
	}
}

// TestFileIdentity: by default a file's identity changes when it is touched; with content,
// only when its bytes change (and not when it moves).
func TestFileIdentity(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := filepath.Join(dir, "a.csv")
	if err := os.WriteFile(a, []byte("x\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := func(path string, content bool) string {
		t.Helper()
		s, err := FileIdentity(ctx, path, content)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	stat0, content0, dir0 := id(a, false), id(a, true), id(dir, true)
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(a, later, later); err != nil {
		t.Fatal(err)
	}
	if id(a, false) == stat0 {
		t.Error("touching a file kept its stat identity")
	}
	if id(a, true) != content0 || id(dir, true) != dir0 {
		t.Error("touching a file changed its content identity")
	}
	b := filepath.Join(t.TempDir(), "a.csv")
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	if id(b, true) != content0 {
		t.Error("moving a file changed its content identity")
	}
	if err := os.WriteFile(b, []byte("x\n2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if id(b, true) == content0 {
		t.Error("new content kept the content identity")
	}
	if _, err := FileIdentity(ctx, filepath.Join(dir, "missing"), false); err == nil {
		t.Error("a missing file has an identity")
	}
}

// TestCacheNoCacheAndRefresh: --no-cache runs everything and writes nothing to the store;
// --refresh runs the stage and what depends on it, and writes their entries again.
func TestCacheNoCacheAndRefresh(t *testing.T) {
	c := newCacheRun(t)
	m1, _ := c.run(c.parse(fiveSrc), RunOptions{})

	c.store.resetCounts()
	m, ran := c.run(c.parse(fiveSrc), RunOptions{NoCache: true})
	if len(ran) != 5 || len(cachedStages(m)) != 0 {
		t.Errorf("--no-cache: ran %v, cached %v", ran, cachedStages(m))
	}
	if n := c.store.count(c.store.puts, func(string) bool { return true }) + c.store.count(c.store.gets, func(string) bool { return true }); n != 0 {
		t.Errorf("--no-cache touched %d objects", n)
	}
	if m.Stages["s1"].CacheKey != m1.Stages["s1"].CacheKey {
		t.Error("--no-cache: keys are still recorded")
	}

	c.store.resetCounts()
	m, ran = c.run(c.parse(fiveSrc), RunOptions{Refresh: []string{"s2"}})
	if want := []string{"report", "s2", "sum"}; !sameStrings(ran, want) {
		t.Errorf("--refresh s2: ran %v, want %v", ran, want)
	}
	for _, n := range m.StageOrder {
		puts := c.store.count(c.store.puts, func(k string) bool { return k == "stages/"+m.Stages[n].CacheKey+"/entry.json" })
		wantPuts := 0
		if n == "s2" || n == "sum" || n == "report" {
			wantPuts = 1
		}
		if puts != wantPuts {
			t.Errorf("--refresh s2: %s's entry written %d times, want %d", n, puts, wantPuts)
		}
	}

	_, err := Run(context.Background(), c.parse(fiveSrc), RunOptions{Dir: filepath.Join(t.TempDir(), "x"), Store: c.store, Refresh: []string{"s3"}})
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(ce.Hint, `"s1"`) && !strings.Contains(ce.Hint, `"s2"`) {
		t.Errorf("--refresh of no stage: %v", err)
	}
}

// TestCacheFalse: a stage with cache = false always runs and is never stored; the stages
// that read it are still cached.
func TestCacheFalse(t *testing.T) {
	c := newCacheRun(t)
	src := strings.Replace(fiveSrc, "factor = 2\n", "factor = 2\ncache = false\n", 1)
	m, ran := c.run(c.parse(src), RunOptions{})
	if len(ran) != 5 {
		t.Fatalf("ran %v", ran)
	}
	if _, err := c.store.Stat(context.Background(), "stages/"+m.Stages["s1"].CacheKey+"/entry.json"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a cache = false stage was stored: %v", err)
	}
	m, ran = c.run(c.parse(src), RunOptions{})
	if !sameStrings(ran, []string{"s1"}) || !sameStrings(cachedStages(m), []string{"src", "s2", "sum", "report"}) {
		t.Errorf("ran %v, cached %v", ran, cachedStages(m))
	}
	// The resolved config keeps the key, and a wrong value is a config error at its line.
	if !strings.Contains(string(c.parse(src).Resolved()), "cache = false") {
		t.Error("the resolved config lost cache = false")
	}
	_, err := Parse([]byte(strings.Replace(src, "cache = false", "cache = \"no\"", 1)), "p.toml", c.dir, cacheRegistry(c.counts, 0), LoadOptions{})
	if ces := ConfigErrors(err); len(ces) != 1 || ces[0].Key != "cache" || ces[0].Line != 15 {
		t.Errorf("cache = \"no\": %v", err)
	}
}

// TestCacheRestoresLineageAndSplit: a table read back has its schema (split role), its
// batches and its lineage (transform state, fit split, input schema) exactly as written.
func TestCacheRestoresLineageAndSplit(t *testing.T) {
	c := newCacheRun(t)
	src := fiveSrc + "\n[stages.probe]\nkind = \"probe\"\ninput = \"s2\"\ncache = false\n"
	m1, _ := c.run(c.parse(src), RunOptions{})
	m2, ran := c.run(c.parse(src), RunOptions{})
	if !sameStrings(ran, []string{"probe"}) {
		t.Fatalf("ran %v", ran)
	}
	a, b := m1.Stages["probe"], m2.Stages["probe"]
	if !reflect.DeepEqual(a.Info, b.Info) || !reflect.DeepEqual(a.Metrics, b.Metrics) {
		t.Errorf("the table read back differs:\n%v\n%v", a.Info, b.Info)
	}
	if l, _ := b.Info["lineage"].([]any); len(l) != 2 || !strings.Contains(l[1].(string), `s2/scale/all/false/scale{"factor":3}`) {
		t.Errorf("lineage %v", b.Info["lineage"])
	}
}

// TestCacheDamagedEntryRuns: an entry missing an object is a miss; an entry whose file does
// not match its checksum is not read back: the stage runs (reading its cached input back on
// demand) and the run says so.
func TestCacheDamagedEntryRuns(t *testing.T) {
	c := newCacheRun(t)
	m1, _ := c.run(c.parse(fiveSrc), RunOptions{})
	report := "stages/" + m1.Stages["report"].CacheKey + "/files/report.txt"
	c.store.mu.Lock()
	b := c.store.objects[report]
	c.store.objects[report] = []byte(strings.Repeat("x", len(b)))
	c.store.mu.Unlock()
	m, ran := c.run(c.parse(fiveSrc), RunOptions{})
	if !sameStrings(ran, []string{"report"}) || m.Stages["report"].Cached || m.Stages["report"].Metrics["test_total"] != fiveTotal(2, 3) {
		t.Errorf("damaged report entry: ran %v, cached %v, total %v", ran, m.Stages["report"].Cached, m.Stages["report"].Metrics)
	}
	if len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], "could not be read back") {
		t.Errorf("warnings %q", m.Warnings)
	}
	got, _ := os.ReadFile(filepath.Join(c.lastDir, "stages", "report", "report.txt"))
	if want := fmt.Sprintf("total %d\n", int64(fiveTotal(2, 3))); string(got) != want {
		t.Errorf("report.txt %q", got)
	}

	if err := c.store.Delete(context.Background(), "stages/"+m1.Stages["sum"].CacheKey+"/files/sum.txt"); err != nil {
		t.Fatal(err)
	}
	_, ran = c.run(c.parse(fiveSrc), RunOptions{})
	if !sameStrings(ran, []string{"sum"}) {
		t.Errorf("sum entry missing an object: ran %v, want [sum]", ran)
	}
}

// TestCacheStoreFailureKeepsTheRun: a store that cannot be written does not fail a run that
// otherwise succeeded; the manifest says what was not stored.
func TestCacheStoreFailureKeepsTheRun(t *testing.T) {
	c := newCacheRun(t)
	c.store.failPut = errors.New("disk full")
	m, ran := c.run(c.parse(fiveSrc), RunOptions{})
	if len(ran) != 5 || m.Stages["report"].Metrics["test_total"] != fiveTotal(2, 3) {
		t.Errorf("ran %v, metrics %v", ran, m.Stages["report"].Metrics)
	}
	if len(m.Warnings) != 5 || !strings.Contains(m.Warnings[0], "disk full") {
		t.Errorf("warnings %q", m.Warnings)
	}
}

// TestRetries: a flaky source is tried again after a failure (its rows from the failed
// attempt never reach the stages that read it), and every attempt is in the manifest; no
// retry after the last, and none for a config error.
func TestRetries(t *testing.T) {
	src := "[stages.src]\nkind = \"flaky\"\nrows = 100\nfail_times = %d\nretries = %d\nretry_backoff = \"1ms\"\n%s\n[stages.sum]\nkind = \"sum\"\ninput = \"src\"\n"
	var want float64
	for x := 0; x < 100; x++ {
		want += float64(x)
	}
	for _, tc := range []struct {
		name             string
		fail, retries    int
		extra            string
		attempts         int
		status, errMatch string
	}{
		{name: "succeeds on the third attempt", fail: 2, retries: 2, attempts: 3, status: StatusSucceeded},
		{name: "fails after the last retry", fail: 3, retries: 1, attempts: 2, status: StatusFailed, errMatch: "injected failure"},
		{name: "no retry for a config error", retries: 3, extra: "config_error = true", attempts: 1, status: StatusFailed, errMatch: "injected config error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			counts := &runCounts{n: map[string]int{}}
			p, err := Parse([]byte(fmt.Sprintf(src, tc.fail, tc.retries, tc.extra)), "p.toml", t.TempDir(), cacheRegistry(counts, 0), LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			flakyFailures.Lock()
			flakyFailures.left["src"] = tc.fail
			flakyFailures.Unlock()
			dir := filepath.Join(t.TempDir(), "run")
			Run(context.Background(), p, RunOptions{Dir: dir, Mem: mem})
			mem.AssertSize(t, 0)
			m := readManifest(t, dir)
			s := m.Stages["src"]
			if m.Status != tc.status || len(s.Attempts) != tc.attempts {
				t.Fatalf("status %s, attempts %+v", m.Status, s.Attempts)
			}
			for i, a := range s.Attempts {
				last := i == len(s.Attempts)-1
				if a.StartedAt.IsZero() || a.Seconds < 0 || (a.Error == "") != (last && tc.status == StatusSucceeded) {
					t.Errorf("attempt %d: %+v", i+1, a)
				}
			}
			if tc.status == StatusSucceeded && m.Stages["sum"].Metrics["all_sum"] != want {
				t.Errorf("sum %v, want %v: a failed attempt's rows reached the reader", m.Stages["sum"].Metrics["all_sum"], want)
			}
			if tc.errMatch != "" && !strings.Contains(s.Error, tc.errMatch) {
				t.Errorf("error %q", s.Error)
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	for _, tc := range []struct {
		base    time.Duration
		attempt int
		want    time.Duration
	}{
		{2 * time.Second, 0, 2 * time.Second},
		{2 * time.Second, 1, 4 * time.Second},
		{2 * time.Second, 3, 16 * time.Second},
		{2 * time.Second, 10, MaxRetryBackoff},
		{time.Minute, 60, MaxRetryBackoff},
		{0, 5, 0},
	} {
		if got := retryDelay(tc.base, tc.attempt); got != tc.want {
			t.Errorf("retryDelay(%v, %d) = %v, want %v", tc.base, tc.attempt, got, tc.want)
		}
	}
	_, err := Parse([]byte("[stages.a]\nkind = \"gen\"\nretry_backoff = \"soon\"\n"), "p.toml", ".", testRegistry(), LoadOptions{})
	if ces := ConfigErrors(err); len(ces) != 1 || ces[0].Key != "retry_backoff" || ces[0].Line != 3 {
		t.Errorf("retry_backoff = \"soon\": %v", err)
	}
}

// TestCacheKindNotOptedIn: a kind that has not opted in is never cached nor stored, but its
// stages still get keys.
func TestCacheKindNotOptedIn(t *testing.T) {
	c := newCacheRun(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	p, err := Parse([]byte(dagSrc), "p.toml", t.TempDir(), testRegistry(), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		dir := filepath.Join(t.TempDir(), "run")
		if _, err := Run(context.Background(), p, RunOptions{Dir: dir, Mem: mem, Store: c.store}); err != nil {
			t.Fatal(err)
		}
		m := readManifest(t, dir)
		if len(cachedStages(m)) != 0 || !hexKey.MatchString(m.Stages["load"].CacheKey) {
			t.Errorf("cached %v, key %q", cachedStages(m), m.Stages["load"].CacheKey)
		}
	}
	if objs, _ := c.store.List(context.Background(), ""); len(objs) != 0 {
		t.Errorf("kinds that did not opt in were stored: %d objects", len(objs))
	}
}

// TestCacheKeysOfTheResolvedConfig: the run directory's pipeline.toml (defaults filled in,
// paths absolute), loaded from elsewhere, gives every stage the key of the run it came from:
// a resumed run finds the original's checkpoints and entries.
func TestCacheKeysOfTheResolvedConfig(t *testing.T) {
	c := newCacheRun(t)
	c.dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(c.dir, "data.txt"), []byte("4\n5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := fiveSrc + "\n[stages.more]\nkind = \"lines\"\npath = \"data.txt\"\n\n[stages.total]\nkind = \"sum\"\ninput = [\"more\", \"s1\"]\nworkers = 2\n"
	m1, _ := c.run(c.parse(src), RunOptions{})
	resolved, err := os.ReadFile(filepath.Join(c.lastDir, "pipeline.toml"))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Parse(resolved, "pipeline.toml", t.TempDir(), cacheRegistry(c.counts, 0), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m2, ran := c.run(p2, RunOptions{})
	for _, n := range m1.StageOrder {
		if m1.Stages[n].CacheKey != m2.Stages[n].CacheKey {
			t.Errorf("%s: key %s from the file, %s from the resolved config", n, m1.Stages[n].CacheKey, m2.Stages[n].CacheKey)
		}
	}
	if len(ran) != 0 {
		t.Errorf("the resolved config ran %v", ran)
	}
}

// TestOpenStoreAfterTheRunDirectory: a store opened through OpenStore is opened only once the
// run directory is accepted (a refused run opens none), and one that cannot be opened refuses
// the run with nothing written.
func TestOpenStoreAfterTheRunDirectory(t *testing.T) {
	c := newCacheRun(t)
	p := c.parse(fiveSrc)
	opened := 0
	open := func(context.Context) (Store, error) { opened++; return c.store, nil }
	if _, err := Run(context.Background(), p, RunOptions{Dir: "/", OpenStore: open}); !IsRefused(err) || opened != 0 {
		t.Errorf("refused run: %v, store opened %d times", err, opened)
	}
	dir := filepath.Join(t.TempDir(), "run")
	_, err := Run(context.Background(), p, RunOptions{Dir: dir, OpenStore: func(context.Context) (Store, error) {
		return nil, errors.New("permission denied")
	}})
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "stage store cannot be opened: permission denied") {
		t.Errorf("store not opened: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused run left %s", dir)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	if _, err := Run(context.Background(), p, RunOptions{Dir: dir, Mem: mem, OpenStore: open}); err != nil || opened != 1 {
		t.Fatalf("run: %v, store opened %d times", err, opened)
	}
	if m := readManifest(t, dir); !hexKey.MatchString(m.Stages["src"].CacheKey) {
		t.Errorf("no key with the opened store: %q", m.Stages["src"].CacheKey)
	}
}
