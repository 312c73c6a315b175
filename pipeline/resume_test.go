package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestResumeContinuesInPlace cancels a run once its first three stages have finished, then
// resumes it in its own directory: the finished stages come back from the store, the rest run,
// the run keeps its id and records the resumption, and its results equal an uninterrupted
// run's.
func TestResumeContinuesInPlace(t *testing.T) {
	c := newCacheRun(t)
	want, _ := c.run(c.parse(fiveSrc), RunOptions{Store: newMemStore()}) // uninterrupted, another store

	p := c.parse(fiveSrc)
	dir := filepath.Join(t.TempDir(), "run")
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var mu sync.Mutex // progress events come from the stages' goroutines
	done := map[string]bool{}
	res, err := Run(ctx, p, RunOptions{Dir: dir, Mem: mem, Store: c.store, Version: "v1.0.0", Progress: func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Status == StatusSucceeded {
			done[ev.Stage] = true
			if done["src"] && done["s1"] && done["s2"] {
				cancel(ErrCanceled)
			}
		}
	}})
	mem.AssertSize(t, 0)
	if !errors.Is(err, ErrCanceled) && err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	first := res.Manifest
	if first.Status != StatusCanceled && first.Status != StatusSucceeded {
		t.Fatalf("first attempt %s", first.Status)
	}
	if first.Status == StatusSucceeded {
		t.Skip("the run finished before the cancellation took effect")
	}
	// Leftovers of the interrupted attempt must not survive the resumption.
	stale := filepath.Join(dir, "stages", "report", "stale.txt")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(stale, []byte("x"), 0o644)

	c.counts.ran() // reset
	mem2 := memory.NewCheckedAllocator(memory.NewGoAllocator())
	res2, err := Run(context.Background(), c.parse(fiveSrc), RunOptions{Dir: dir, Resume: true, Mem: mem2, Store: c.store, Version: "v1.0.0"})
	mem2.AssertSize(t, 0)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	m := readManifest(t, dir)
	if m.Status != StatusSucceeded || m.RunID != first.RunID {
		t.Fatalf("resumed run %s, id %s (first %s)", m.Status, m.RunID, first.RunID)
	}
	if len(m.Resumptions) != 1 || m.Resumptions[0].From != StatusCanceled || !m.StartedAt.Equal(first.StartedAt) {
		t.Errorf("resumptions %+v, started %v (first %v)", m.Resumptions, m.StartedAt, first.StartedAt)
	}
	for _, n := range []string{"src", "s1", "s2"} {
		if !m.Stages[n].Cached {
			t.Errorf("stage %s finished before the interruption but ran again", n)
		}
	}
	if got, w := m.Stages["report"].Metrics["test_total"], want.Stages["report"].Metrics["test_total"]; got != w {
		t.Errorf("resumed result %v, uninterrupted %v", got, w)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("a file of the interrupted attempt survived the resumption")
	}
	if res2.Dir != dir {
		t.Errorf("resumed into %s", res2.Dir)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log.jsonl"))
	if strings.Count(string(log), `"message":"run started"`) != 2 {
		t.Errorf("log.jsonl does not keep both attempts")
	}

	// A finished run has nothing to resume; nor has a directory without a run.
	_, err = Run(context.Background(), c.parse(fiveSrc), RunOptions{Dir: dir, Resume: true, Store: c.store})
	if !IsRefused(err) || !strings.Contains(err.Error(), "nothing to resume") {
		t.Errorf("resuming a succeeded run: %v", err)
	}
	_, err = Run(context.Background(), c.parse(fiveSrc), RunOptions{Dir: t.TempDir(), Resume: true, Store: c.store})
	if !IsRefused(err) || !strings.Contains(err.Error(), "no run to resume") {
		t.Errorf("resuming an empty directory: %v", err)
	}
}
