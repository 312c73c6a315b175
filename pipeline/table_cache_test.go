package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestTableCacheAcrossRuns: runs of one process that share a TableCache fetch a stored table
// from the store once; the runs after take it from memory, with the same results. A table
// larger than the run's memory budget is not kept, and Close releases every batch the cache
// holds.
func TestTableCacheAcrossRuns(t *testing.T) {
	c := newCacheRun(t)
	c.run(c.parse(fiveSrc), RunOptions{}) // fills the store
	tablesRead := func() int {
		return c.store.count(c.store.gets, func(k string) bool { return strings.Contains(k, "/tables/") })
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	cache := NewTableCache(mem)
	for i, want := range []struct {
		read         int
		hits, misses int64
	}{
		{read: 2, hits: 0, misses: 2}, // sum reads s2.out and src.out from the store
		{read: 0, hits: 2, misses: 2}, // and then from memory
	} {
		c.store.resetCounts()
		m, ran := c.run(c.parse(fiveSrc), RunOptions{Refresh: []string{"sum"}, TableCache: cache})
		if !sameStrings(ran, []string{"report", "sum"}) {
			t.Fatalf("run %d ran %v, want report and sum", i, ran)
		}
		if got := m.Stages["report"].Metrics["test_total"]; got != fiveTotal(2, 3) {
			t.Errorf("run %d: test_total %v, want %v", i, got, fiveTotal(2, 3))
		}
		if n := tablesRead(); n != want.read {
			t.Errorf("run %d: %d tables fetched from the store, want %d", i, n, want.read)
		}
		if s := cache.Stats(); s.Hits != want.hits || s.Misses != want.misses || s.Tables != 2 || s.Bytes <= 0 {
			t.Errorf("run %d: cache %+v, want %d hits, %d misses and 2 tables", i, s, want.hits, want.misses)
		}
	}
	// A budget of one and a half tables keeps one: the one used last evicts the other.
	budget := cache.Stats().Bytes * 3 / 4
	mid := NewTableCache(nil)
	for i := range 2 {
		c.run(c.parse(fiveSrc, fmt.Sprintf("pipeline.memory_budget=%d", budget)), RunOptions{Refresh: []string{"sum"}, TableCache: mid})
		if s := mid.Stats(); s.Tables != 1 || s.Bytes > budget || s.Hits+s.Misses != int64(2*(i+1)) {
			t.Errorf("budget %d, run %d: cache %+v, want one table within the budget", budget, i, s)
		}
	}
	mid.Close()
	// Every table is larger than a budget of 1 KiB: none is kept, every run fetches them.
	small := NewTableCache(nil)
	for i := range 2 {
		c.store.resetCounts()
		m, _ := c.run(c.parse(fiveSrc, "pipeline.memory_budget=1024"), RunOptions{Refresh: []string{"sum"}, TableCache: small})
		if got := m.Stages["report"].Metrics["test_total"]; got != fiveTotal(2, 3) {
			t.Errorf("small budget, run %d: test_total %v, want %v", i, got, fiveTotal(2, 3))
		}
		if n := tablesRead(); n != 2 {
			t.Errorf("small budget, run %d: %d tables fetched, want 2", i, n)
		}
	}
	if s := small.Stats(); s.Tables != 0 || s.Hits != 0 {
		t.Errorf("a cache for runs of 1 KiB budget holds %+v", s)
	}
	cache.Close()
	small.Close()
	if s := cache.Stats(); s.Tables != 0 || s.Bytes != 0 {
		t.Errorf("closed cache %+v", s)
	}
	mem.AssertSize(t, 0)
}

// slowTables is a store whose tables take a while to come: runs that start together all want
// them before the first has them.
type slowTables struct{ *memStore }

func (s slowTables) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.Contains(key, "/tables/") {
		time.Sleep(300 * time.Millisecond)
	}
	return s.memStore.Get(ctx, key)
}

// TestTableCacheConcurrentRuns: runs that start together and want the same stored tables
// fetch each from the store once: one run reads it, the others wait for it.
func TestTableCacheConcurrentRuns(t *testing.T) {
	c := newCacheRun(t)
	c.run(c.parse(fiveSrc), RunOptions{}) // fills the store
	c.store.resetCounts()
	cache := NewTableCache(nil)
	defer cache.Close()
	const runs = 4
	errs := make(chan error, runs)
	totals := make(chan float64, runs)
	for range runs {
		go func() {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			res, err := Run(context.Background(), c.parse(fiveSrc), RunOptions{Dir: filepath.Join(t.TempDir(), "run"), Mem: mem, Store: slowTables{c.store},
				Version: "v1.0.0", Refresh: []string{"sum"}, TableCache: cache})
			if err == nil && mem.CurrentAlloc() != 0 {
				err = fmt.Errorf("%d bytes left allocated", mem.CurrentAlloc())
			}
			if err == nil {
				totals <- res.Manifest.Stages["report"].Metrics["test_total"]
			}
			errs <- err
		}()
	}
	for range runs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if got := <-totals; got != fiveTotal(2, 3) {
			t.Errorf("test_total %v, want %v", got, fiveTotal(2, 3))
		}
	}
	if n := c.store.count(c.store.gets, func(k string) bool { return strings.Contains(k, "/tables/") }); n != 2 {
		t.Errorf("%d runs together fetched %d tables from the store, want 2 (each table once)", runs, n)
	}
	if s := cache.Stats(); s.Misses != 2 || s.Hits != 2*runs-2 {
		t.Errorf("cache %+v, want 2 misses and %d hits", s, 2*runs-2)
	}
}

// TestTableCacheSharesValues: a value a stage derives from a table read back from the store
// (StageContext.Shared) is built once by the runs that share a TableCache, and taken from
// memory after, with the same results; a table the run computed itself has no key in the
// store, and its value is built by the run and kept by no one. Close lets go of every value.
func TestTableCacheSharesValues(t *testing.T) {
	c := newCacheRun(t)
	c.run(c.parse(fiveSrc), RunOptions{}) // fills the store
	cache := NewTableCache(nil)
	for i, want := range []struct{ hits, misses int64 }{
		{hits: 0, misses: 2}, // the sums of s2.out and src.out, built
		{hits: 2, misses: 2}, // and then taken from memory
	} {
		m, _ := c.run(c.parse(fiveSrc, "sum.shared=true"), RunOptions{Refresh: []string{"sum"}, TableCache: cache})
		if got := m.Stages["report"].Metrics["test_total"]; got != fiveTotal(2, 3) {
			t.Errorf("run %d: test_total %v, want %v", i, got, fiveTotal(2, 3))
		}
		if s := cache.Stats(); s.ValueHits != want.hits || s.ValueMisses != want.misses || s.Values != 2 || s.ValueBytes != 16 {
			t.Errorf("run %d: cache %+v, want %d value hits, %d misses, 2 values of 8 bytes", i, s, want.hits, want.misses)
		}
	}
	// Every stage runs: sum's inputs are the run's own tables, not the store's.
	m, _ := c.run(c.parse(fiveSrc, "sum.shared=true"), RunOptions{Refresh: []string{"src", "s1", "s2", "sum"}, TableCache: cache})
	if got := m.Stages["report"].Metrics["test_total"]; got != fiveTotal(2, 3) {
		t.Errorf("computed tables: test_total %v, want %v", got, fiveTotal(2, 3))
	}
	if s := cache.Stats(); s.ValueHits != 2 || s.ValueMisses != 2 {
		t.Errorf("the sums of tables computed in the run went through the cache: %+v", s)
	}
	cache.Close()
	if s := cache.Stats(); s.Values != 0 || s.ValueBytes != 0 {
		t.Errorf("closed cache %+v", s)
	}
}

// TestTableCacheValueWaitsAndEvicts: runs that want a value not built yet wait for the one
// that builds it (built once); one whose build fails (or panics) leaves it to the next, which
// builds it itself; the cache holds values within the budget, the least recently used evicted first, and
// keeps none larger than the budget.
func TestTableCacheValueWaitsAndEvicts(t *testing.T) {
	c := NewTableCache(nil)
	defer c.Close()
	ctx := context.Background()
	var builds atomic.Int64
	slow := func() (any, int64, error) {
		builds.Add(1)
		time.Sleep(200 * time.Millisecond)
		return new(int), 100, nil
	}
	const runs = 4
	got := make(chan any, runs)
	for range runs {
		go func() {
			v, shared, err := c.shared(ctx, "a", 250, slow)
			if err != nil || !shared {
				t.Errorf("shared %v, %v", shared, err)
			}
			got <- v
		}()
	}
	first := <-got
	for range runs - 1 {
		if v := <-got; v != first {
			t.Errorf("runs got different values")
		}
	}
	if n := builds.Load(); n != 1 {
		t.Errorf("%d runs together built the value %d times, want once", runs, n)
	}
	if s := c.Stats(); s.ValueMisses != 1 || s.ValueHits != runs-1 || s.Values != 1 || s.ValueBytes != 100 {
		t.Errorf("cache %+v, want 1 miss, %d hits, one value of 100 bytes", s, runs-1)
	}

	failed := errors.New("no")
	if _, _, err := c.shared(ctx, "b", 250, func() (any, int64, error) { return nil, 0, failed }); !errors.Is(err, failed) {
		t.Errorf("failed build: %v", err)
	}
	if _, shared, err := c.shared(ctx, "b", 250, slow); err != nil || !shared {
		t.Errorf("after a failed build: shared %v, %v", shared, err)
	}
	// a and b fill 200 of 250 bytes; c evicts a (used before b).
	if _, _, err := c.shared(ctx, "c", 250, slow); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Values != 2 || s.ValueBytes != 200 {
		t.Errorf("cache %+v, want two values of 100 bytes within 250", s)
	}
	misses := c.Stats().ValueMisses
	if _, _, err := c.shared(ctx, "b", 250, slow); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.shared(ctx, "a", 250, slow); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.ValueMisses != misses+1 || s.Values != 2 {
		t.Errorf("cache %+v: want b still held (a hit) and a evicted (built again)", s)
	}
	if _, shared, err := c.shared(ctx, "big", 250, func() (any, int64, error) { return 1, 251, nil }); err != nil || shared {
		t.Errorf("a value larger than the budget: shared %v, %v; want it not kept", shared, err)
	}
	if s := c.Stats(); s.Values != 2 || s.ValueBytes != 200 {
		t.Errorf("cache %+v after a value too large to keep", s)
	}
	// A build that panics leaves the value to the next run, which does not wait for it.
	func() {
		defer func() { _ = recover() }()
		_, _, _ = c.shared(ctx, "p", 250, func() (any, int64, error) { panic("build") })
	}()
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, shared, err := c.shared(wait, "p", 250, func() (any, int64, error) { return 1, 1, nil }); err != nil || !shared {
		t.Errorf("after a build that panicked: shared %v, %v", shared, err)
	}
}
