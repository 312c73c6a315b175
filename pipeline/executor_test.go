package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func parse(t *testing.T, src string, overrides ...string) *Pipeline {
	t.Helper()
	p, err := Parse([]byte(src), "test.toml", t.TempDir(), testRegistry(), LoadOptions{Overrides: overrides})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readManifest(t *testing.T, dir string) *Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const dagSrc = `
[pipeline]
name = "dag"
seed = 5

[stages.load]
kind = "gen"
rows = 1000
batch = 64

[stages.twice]
kind = "double"
input = "load"

[stages.sum]
kind = "total"
input = ["twice.out", "load"]
epochs = 3

[stages.show]
kind = "report"
model = "sum.total"
`

func TestRunDAG(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	p := parse(t, dagSrc)
	dir := filepath.Join(t.TempDir(), "run")
	res, err := Run(context.Background(), p, RunOptions{Dir: dir, Mem: mem})
	if err != nil {
		t.Fatal(err)
	}
	// sum over x of 2x + x for x = 0..999, computed here independently.
	var want float64
	for x := 0; x < 1000; x++ {
		want += float64(3 * x)
	}
	m := readManifest(t, dir)
	if m.Status != StatusSucceeded || m.ExitCode != 0 || res.Manifest.Status != StatusSucceeded {
		t.Fatalf("status %s", m.Status)
	}
	if got := m.Stages["sum"].Metrics["all_sum"]; got != want {
		t.Errorf("all_sum = %v, want %v", got, want)
	}
	if got := m.Stages["show"].Metrics["test_total"]; got != want {
		t.Errorf("test_total = %v, want %v", got, want)
	}
	if s := m.Stages["load"]; s.RowsOut != 1000 || s.Batches != 16 || s.Outputs["out"].Split != "all" {
		t.Errorf("load: rows_out %d batches %d split %q", s.RowsOut, s.Batches, s.Outputs["out"].Split)
	}
	// sum replays both tables 3 times: 2 tables × 1000 rows × 3 epochs.
	if s := m.Stages["sum"]; s.RowsIn != 6000 {
		t.Errorf("sum rows_in = %d, want 6000", s.RowsIn)
	}
	if m.ConfigHash != p.Hash() || m.Seed != 5 || m.Pipeline != "dag" || m.GoVersion == "" {
		t.Errorf("manifest header: %+v", m)
	}
	for _, f := range []string{"pipeline.toml", "log.jsonl"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("run dir lacks %s", f)
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log.jsonl"))
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("log.jsonl line is not JSON: %q", line)
		}
	}
	if !strings.Contains(string(log), `"run finished"`) {
		t.Error("log lacks the final line")
	}
}

func TestRunSpillsAndReplays(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	// 20,000 rows × 16 bytes = 320 kB of data against a 32 kB budget.
	p := parse(t, dagSrc, "pipeline.memory_budget=32768", "load.rows=20000", "load.batch=500")
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := Run(context.Background(), p, RunOptions{Dir: dir, Mem: mem}); err != nil {
		t.Fatal(err)
	}
	m := readManifest(t, dir)
	if !m.Stages["load"].Outputs["out"].Spilled || !m.Stages["twice"].Outputs["out"].Spilled {
		t.Errorf("tables did not spill: %+v", m.Stages["load"].Outputs)
	}
	// The budget also counts a spilled batch while a reader holds it: up to one 500-row batch
	// (16 bytes a row, a quarter more for padding) per reading stage on top of a full budget.
	if limit := int64(32768 + 3*500*16*5/4); m.PeakTableMem > limit {
		t.Errorf("peak table memory %d over the budget 32768 plus three read-back batches (%d)", m.PeakTableMem, limit)
	}
	var want float64
	for x := 0; x < 20000; x++ {
		want += float64(3 * x)
	}
	if got := m.Stages["sum"].Metrics["all_sum"]; got != want {
		t.Errorf("all_sum after spill = %v, want %v", got, want)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "spill")); len(ents) != 0 {
		t.Errorf("spill files left behind: %d", len(ents))
	}
}

func TestRunFailureStopsEverything(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	p := parse(t, dagSrc, "load.fail_at=300")
	dir := filepath.Join(t.TempDir(), "run")
	_, err := Run(context.Background(), p, RunOptions{Dir: dir, Mem: mem})
	var de *DataError
	if !errors.As(err, &de) || de.Row != 321 {
		t.Fatalf("want the injected DataError at row 321, got %v", err)
	}
	m := readManifest(t, dir)
	if m.Status != StatusFailed || m.ExitCode != ExitFailed || !strings.Contains(m.Error, "injected failure") {
		t.Errorf("manifest: status %s exit %d error %q", m.Status, m.ExitCode, m.Error)
	}
	if m.Stages["load"].Status != StatusFailed {
		t.Errorf("load status %s", m.Stages["load"].Status)
	}
	for _, s := range []string{"twice", "sum", "show"} {
		if st := m.Stages[s].Status; st != StatusSkipped {
			t.Errorf("%s status %s, want skipped", s, st)
		}
	}
}

func TestRunCanceledMidStream(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	p := parse(t, dagSrc, "load.slow_ms=20", "load.rows=100000")
	dir := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(150*time.Millisecond, func() { cancel(ErrCanceled) })
	start := time.Now()
	_, err := Run(ctx, p, RunOptions{Dir: dir, Mem: mem})
	if !errors.Is(err, ErrCanceled) {
		t.Fatalf("want ErrCanceled, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %v", d)
	}
	m := readManifest(t, dir)
	if m.Status != StatusCanceled || m.ExitCode != ExitCanceled {
		t.Errorf("status %s exit %d", m.Status, m.ExitCode)
	}
	if m.Stages["load"].Status != StatusCanceled {
		t.Errorf("load %s", m.Stages["load"].Status)
	}
	// goleak (TestMain) checks that no goroutine outlives the run.
}

func TestRunStreamsWhileProducing(t *testing.T) {
	// The consumer must see the first batch long before a slow producer finishes.
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	reg := testRegistry()
	firstSeen := make(chan time.Time, 1)
	reg.MustRegister(KindSpec{Kind: "watch", Fields: []Field{{Name: "input", Type: TypeInput, Required: true}},
		Outputs: func(*StageConfig) []Port { return nil },
		New: func(c *StageConfig) (Stage, error) {
			return StageFunc(func(ctx context.Context, sc *StageContext) error {
				t, err := sc.Input(ctx, "input")
				if err != nil {
					return err
				}
				r := sc.Scan(ctx, t)
				defer r.Release()
				first := true
				for r.Next() {
					if first {
						firstSeen <- time.Now()
						first = false
					}
				}
				return r.Err()
			}), nil
		}})
	src := "[stages.load]\nkind = \"gen\"\nrows = 200\nbatch = 10\nslow_ms = 10\n[stages.w]\nkind = \"watch\"\ninput = \"load\"\n"
	p, err := Parse([]byte(src), "t.toml", ".", reg, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := Run(context.Background(), p, RunOptions{Dir: filepath.Join(t.TempDir(), "r"), Mem: mem}); err != nil {
		t.Fatal(err)
	}
	total := time.Since(start)
	first := (<-firstSeen).Sub(start)
	if first > total/2 {
		t.Errorf("first batch seen after %v of %v: the consumer did not stream", first, total)
	}
}

func TestRunDirIsNotReused(t *testing.T) {
	p := parse(t, "[stages.load]\nkind = \"gen\"\nrows = 3\n")
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := Run(context.Background(), p, RunOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), p, RunOptions{Dir: dir}); err == nil || !strings.Contains(err.Error(), "already holds a run") {
		t.Errorf("second run into the same dir: %v", err)
	}
}

func TestEmptySourceIsAnError(t *testing.T) {
	p := parse(t, "[stages.load]\nkind = \"gen\"\nrows = 0\n")
	_, err := Run(context.Background(), p, RunOptions{Dir: filepath.Join(t.TempDir(), "r")})
	if err == nil || !strings.Contains(err.Error(), "the source has no rows") {
		t.Errorf("empty source: %v", err)
	}
}

func TestDeriveSeed(t *testing.T) {
	a := DeriveSeed(1, "members", 3)
	if a != DeriveSeed(1, "members", 3) {
		t.Error("not deterministic")
	}
	for _, other := range []uint64{DeriveSeed(2, "members", 3), DeriveSeed(1, "member", 3), DeriveSeed(1, "members", 4), DeriveSeed(1, "members")} {
		if other == a {
			t.Error("seeds collide")
		}
	}
}

func TestWriteAtomicLeavesNothingOnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.bin")
	err := WriteAtomic(path, func(f *os.File) error {
		f.Write([]byte("half"))
		return errors.New("crash")
	})
	if err == nil {
		t.Fatal("want error")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("left %d files", len(ents))
	}
	if err := WriteFileAtomic(path, []byte("whole")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "whole" {
		t.Errorf("content %q", b)
	}
}
