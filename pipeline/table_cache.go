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
//
// It also keeps values the runs derive from those tables (StageContext.Shared: a training
// table's dense copy, which every member of an ensemble on the worker would otherwise build
// for itself), under the table's key and a spec of how the value was made, within the same
// bound as the tables, evicted with them least recently used first.
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

	values        map[string]*cachedValue
	valuesLoading map[string]chan struct{}
	valueBytes    int64
	valueHits     int64
	valueMisses   int64
}

// cachedValue is one value derived from a stored table in a TableCache.
type cachedValue struct {
	v     any
	bytes int64
	used  uint64 // the cache's clock at its last use
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
	return &TableCache{mem: mem, tables: map[string]*cachedTable{}, loading: map[string]chan struct{}{},
		values: map[string]*cachedValue{}, valuesLoading: map[string]chan struct{}{}}
}

// TableCacheStats says how a TableCache has been used.
type TableCacheStats struct {
	Hits, Misses int64 // tables taken from memory, and read from the store
	Tables       int   // tables held now
	Bytes        int64 // their batches' bytes
	// ValueHits and ValueMisses count the values derived from tables (StageContext.Shared)
	// taken from memory, and built; Values are those held now, ValueBytes their bytes (as
	// their builders sized them).
	ValueHits, ValueMisses int64
	Values                 int
	ValueBytes             int64
}

// Stats returns the cache's counters.
func (c *TableCache) Stats() TableCacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return TableCacheStats{Hits: c.hits, Misses: c.misses, Tables: len(c.tables), Bytes: c.bytes,
		ValueHits: c.valueHits, ValueMisses: c.valueMisses, Values: len(c.values), ValueBytes: c.valueBytes}
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
	clear(c.values)
	c.valueBytes = 0
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
	key := storedTableKey(e, o)
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

// storedTableKey names the stored table o of entry e: its content never changes under it.
func storedTableKey(e *storeEntry, o entryObject) string {
	return e.Key + "/" + o.Name + "@" + o.SHA256
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
	c.evictFor(size, limit)
	c.clock++
	c.tables[key] = &cachedTable{schema: schema, recs: recs, bytes: size, used: c.clock}
	c.bytes += size
}

// evictFor evicts the least recently used tables and values until size more bytes fit in
// limit beside those left. c.mu is held.
func (c *TableCache) evictFor(size, limit int64) {
	for c.bytes+c.valueBytes+size > limit && len(c.tables)+len(c.values) > 0 {
		var oldest string
		var at uint64
		table := false
		for k, t := range c.tables {
			if oldest == "" || t.used < at {
				oldest, at, table = k, t.used, true
			}
		}
		for k, v := range c.values {
			if oldest == "" || v.used < at {
				oldest, at, table = k, v.used, false
			}
		}
		if table {
			t := c.tables[oldest]
			releaseAll(t.recs)
			c.bytes -= t.bytes
			delete(c.tables, oldest)
			continue
		}
		// The runs that took the value keep it; the cache lets go of it.
		c.valueBytes -= c.values[oldest].bytes
		delete(c.values, oldest)
	}
}

// Shared returns a value derived from table t, described by spec (what the value is and
// everything it was made from besides t's content: for a dense copy, the input plan and
// whether it has the targets): built by build, which returns the value and its size in
// bytes, and shared by the runs of this process that ask for the same one. It is shared when
// the run has a TableCache (RunOptions.TableCache: a worker's activities) and t was read back
// from the stage store, whose key fixes its content; otherwise build's value is returned and
// kept by no one. shared says whether the value came from, or was left in, the cache: then
// other runs may hold the same value, and no one may change it (copy what you change).
//
// The cache keeps values within the memory budget of the run that builds them, with its
// tables (one larger than the budget is not kept); the bytes a run uses are the run's to
// count in its own budget (ReserveMemory), as if it had built the value. When two runs want
// a value that is not there yet, one builds it and the other waits; when the build fails,
// the waiting run builds it itself (the error, and its wording, are the run's own).
func (sc *StageContext) Shared(ctx context.Context, t *Table, spec string, build func() (any, int64, error)) (v any, shared bool, err error) {
	var c *TableCache
	var limit int64
	if sc.run != nil {
		c, limit = sc.run.tableCache, sc.run.p.MemoryBudget
	}
	if c == nil || t == nil || t.stored == "" {
		v, _, err := build()
		return v, false, err
	}
	return c.shared(ctx, t.stored+"\x00"+spec, limit, build)
}

// shared is Shared's cache side: the value under key, or build's (kept when it fits limit).
func (c *TableCache) shared(ctx context.Context, key string, limit int64, build func() (any, int64, error)) (any, bool, error) {
	for {
		c.mu.Lock()
		if cv := c.values[key]; cv != nil {
			c.clock++
			cv.used = c.clock
			c.valueHits++
			c.mu.Unlock()
			return cv.v, true, nil
		}
		wait := c.valuesLoading[key]
		if wait == nil {
			break // c.mu held: this caller builds the value
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, false, context.Cause(ctx)
		}
	}
	done := make(chan struct{})
	c.valuesLoading[key] = done
	c.valueMisses++
	c.mu.Unlock()
	built := false
	defer func() {
		if !built { // build panicked: the waiting runs build the value themselves
			c.mu.Lock()
			close(done)
			delete(c.valuesLoading, key)
			c.mu.Unlock()
		}
	}()
	v, size, err := build()
	built = true
	c.mu.Lock()
	defer c.mu.Unlock()
	close(done)
	delete(c.valuesLoading, key)
	if err != nil || c.closed || size > limit {
		return v, false, err
	}
	c.evictFor(size, limit)
	c.clock++
	c.values[key] = &cachedValue{v: v, bytes: size, used: c.clock}
	c.valueBytes += size
	return v, true, nil
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
