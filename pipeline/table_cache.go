package pipeline

import (
	"context"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TableCache keeps tables read back from the stage store, decoded, for the runs of one
// process that read the same stored tables again (RunOptions.TableCache): the activities of a
// Temporal worker, where every member of an ensemble reads the training table of the stage
// before it, and the stage's own run reads it once more. A hit takes the table's batches from
// memory instead of fetching and decoding the object again. A stored table never changes under
// its key (the key is the stage's key, the object's name and its SHA-256), so a cached table
// is the stored one, bit for bit.
//
// It holds at most the memory budget ([pipeline] memory_budget) of the run that adds a table:
// a table that does not fit beside the others evicts the least recently used ones first, and
// one larger than the budget is not kept. Its batches are allocated from the cache's own
// allocator, not the runs' (their allocators see none of them), and are shared with the runs'
// tables, which retain and release them as any batch; the cache releases its own references
// when it evicts a table and on Close. When two runs want a table that is not cached yet, one
// reads it and the other waits for it. Safe for concurrent use.
type TableCache struct {
	mem     memory.Allocator
	mu      sync.Mutex
	tables  map[string]*cachedTable
	loading map[string]chan struct{}
	bytes   int64
	clock   uint64
	hits    int64
	misses  int64
	closed  bool
}

// cachedTable is one table in a TableCache.
type cachedTable struct {
	schema *arrow.Schema
	recs   []arrow.RecordBatch // one reference each, the cache's
	bytes  int64
	used   uint64 // the cache's clock at its last use
}

// NewTableCache returns an empty cache whose batches are allocated from mem (nil: Go's
// allocator).
func NewTableCache(mem memory.Allocator) *TableCache {
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	return &TableCache{mem: mem, tables: map[string]*cachedTable{}, loading: map[string]chan struct{}{}}
}

// TableCacheStats says how a TableCache has been used.
type TableCacheStats struct {
	Hits, Misses int64 // tables taken from memory, and read from the store
	Tables       int   // tables held now
	Bytes        int64 // their batches' bytes
}

// Stats returns the cache's counters.
func (c *TableCache) Stats() TableCacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return TableCacheStats{Hits: c.hits, Misses: c.misses, Tables: len(c.tables), Bytes: c.bytes}
}

// Close releases the cache's references to every batch it holds; it keeps no table after.
// The runs' tables keep theirs.
func (c *TableCache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for key, t := range c.tables {
		releaseAll(t.recs)
		delete(c.tables, key)
	}
	c.bytes = 0
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// tableSource is where a table read back from the store comes from: the store (storedTable)
// or a TableCache (cachedSource).
type tableSource interface {
	schema() *arrow.Schema
	// fill appends every batch to t, closes t (with the error, if reading fails) and
	// releases the source.
	fill(t *Table) error
	// abandon releases the source without filling a table.
	abandon()
}

// open returns the stored table o of entry e from the cache, or from s when it is not cached
// (then the cache keeps it once it has been read whole, if it fits in limit bytes).
func (c *TableCache) open(ctx context.Context, s Store, e *storeEntry, o entryObject, limit int64) (tableSource, error) {
	key := e.Key + "/" + o.Name + "@" + o.SHA256
	for {
		c.mu.Lock()
		if t := c.tables[key]; t != nil {
			c.clock++
			t.used = c.clock
			c.hits++
			recs := append([]arrow.RecordBatch(nil), t.recs...)
			for _, r := range recs {
				r.Retain()
			}
			c.mu.Unlock()
			return &cachedSource{sch: t.schema, recs: recs}, nil
		}
		wait := c.loading[key]
		if wait == nil {
			break // c.mu held: this caller reads the table
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	done := make(chan struct{})
	c.loading[key] = done
	c.misses++
	c.mu.Unlock()
	st, err := openStoredTable(ctx, s, e, o, c.mem)
	if err != nil {
		c.add(key, nil, nil, limit)
		return nil, err
	}
	st.keep = func(recs []arrow.RecordBatch) { c.add(key, st.schema(), recs, limit) }
	return st, nil
}

// add ends the reading of the table under key: it keeps recs (one reference each, which it
// takes over) when they fit in limit bytes beside the tables it can evict, and wakes the runs
// that wait for the table. recs is nil when the reading failed.
func (c *TableCache) add(key string, schema *arrow.Schema, recs []arrow.RecordBatch, limit int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if done := c.loading[key]; done != nil {
		close(done)
		delete(c.loading, key)
	}
	if recs == nil {
		return
	}
	var size int64
	for _, r := range recs {
		size += recordBytes(r)
	}
	if c.closed || size > limit || c.tables[key] != nil {
		releaseAll(recs)
		return
	}
	for c.bytes+size > limit {
		var oldest string
		for k, t := range c.tables {
			if oldest == "" || t.used < c.tables[oldest].used {
				oldest = k
			}
		}
		t := c.tables[oldest]
		releaseAll(t.recs)
		c.bytes -= t.bytes
		delete(c.tables, oldest)
	}
	c.clock++
	c.tables[key] = &cachedTable{schema: schema, recs: recs, bytes: size, used: c.clock}
	c.bytes += size
}

// cachedSource is a table taken from a TableCache: its batches, retained for it.
type cachedSource struct {
	sch  *arrow.Schema
	recs []arrow.RecordBatch
}

func (cs *cachedSource) schema() *arrow.Schema { return cs.sch }

func (cs *cachedSource) fill(t *Table) error {
	defer cs.abandon()
	for _, r := range cs.recs {
		if err := t.Append(r); err != nil {
			t.Close(err)
			return err
		}
	}
	t.Close(nil)
	return nil
}

func (cs *cachedSource) abandon() {
	releaseAll(cs.recs)
	cs.recs = nil
}
