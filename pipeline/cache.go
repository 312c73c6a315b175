package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// cachePlan is what the stage store's cache does in one run, decided before any stage starts:
// every stage's key, which stages are read back (hits) and which are stored when they succeed.
type cachePlan struct {
	keys  map[string]string
	hits  map[string]*storeEntry
	write map[string]bool
	// fresh are the stages that must not continue from an earlier attempt's checkpoints:
	// --no-cache, --refresh and cache = false ask for the stage to be computed anew.
	fresh map[string]bool
}

// planCache computes every stage's key and looks its entry up. Without a store there is no
// plan. Nothing here fails the run: a key that cannot be computed, or a store that cannot be
// read, leaves stages out of the cache, with a warning.
func (rs *runState) planCache(ctx context.Context, opts RunOptions) *cachePlan {
	if rs.store == nil {
		return nil
	}
	p := rs.p
	cp := &cachePlan{hits: map[string]*storeEntry{}, write: map[string]bool{}, fresh: map[string]bool{}}
	var problems map[string]error
	cp.keys, problems = stageKeys(ctx, p, keyEnv{version: opts.Version, buildID: opts.BuildID, dataDir: opts.DataDir})
	refresh := downstreamOf(p, opts.Refresh)
	for _, sc := range p.Stages {
		slog := rs.log.With().Str("stage", sc.Name).Logger()
		key := cp.keys[sc.Name]
		rs.mu.Lock()
		rs.man.Stages[sc.Name].CacheKey = key
		rs.mu.Unlock()
		if err := problems[sc.Name]; err != nil {
			slog.Warn().Err(err).Msg("no cache key: the stage is not cached and runs")
			continue
		}
		if len(opts.Only) > 0 || opts.Remote != nil {
			// A spread run: the store is how stages reach each other, whatever their cache
			// settings. The stages before the one that runs are read back; it is stored.
			// A stage to compute anew is not read back, but its checkpoints are used: they
			// are what a retried attempt on another process continues from.
			if slices.Contains(opts.Only, sc.Name) {
				cp.write[sc.Name] = true
				if opts.NoCache || !sc.Cache() || refresh[sc.Name] {
					continue
				}
			}
			if opts.Remote != nil {
				// Only what the remote run reports finished is read back: a stage it never
				// reached is not this run's, even when an earlier run stored it.
				if rec := opts.Remote.Stages[sc.Name]; rec == nil || rec.Status != StatusSucceeded {
					continue
				}
			}
			if e, _, err := readEntry(ctx, rs.store, key, sc.Kind); err != nil {
				slog.Warn().Err(err).Str("key", key).Msg("cannot read the stage store")
			} else if e != nil {
				cp.hits[sc.Name] = e
			}
			continue
		}
		switch {
		case opts.NoCache:
			cp.fresh[sc.Name] = true
			continue
		case !sc.Spec.Cacheable:
			slog.Debug().Msgf("not cached: kind %s has not opted in to the cache (KindSpec.Cacheable)", sc.Kind)
			continue
		case !sc.Cache():
			cp.fresh[sc.Name] = true
			slog.Debug().Msg("not cached: cache = false")
			continue
		}
		cp.write[sc.Name] = true
		if refresh[sc.Name] {
			cp.fresh[sc.Name] = true
			slog.Debug().Msg("not read from the store: --refresh (the stage runs and its entry is written again)")
			continue
		}
		e, why, err := readEntry(ctx, rs.store, key, sc.Kind)
		switch {
		case err != nil:
			slog.Warn().Err(err).Str("key", key).Msg("cannot read the stage store: the stage runs")
		case e == nil:
			slog.Debug().Str("key", key).Msgf("cache miss: %s", why)
		default:
			cp.hits[sc.Name] = e
		}
	}
	return cp
}

// downstreamOf returns the named stages and every stage that reads, directly or not, their
// outputs.
func downstreamOf(p *Pipeline, names []string) map[string]bool {
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	for changed := true; changed; {
		changed = false
		for _, sc := range p.Stages {
			if out[sc.Name] {
				continue
			}
			for _, r := range sc.AllInputs() {
				if out[r.Stage] {
					out[sc.Name] = true
					changed = true
					break
				}
			}
		}
	}
	return out
}

// hit returns the entry a stage is read back from, or nil.
func (cp *cachePlan) hit(stage string) *storeEntry {
	if cp == nil {
		return nil
	}
	return cp.hits[stage]
}

// needed reports whether a stage that runs (is not read back) reads ref: a cached stage's
// output is read back at once only then; otherwise it is read back only if a reader asks
// for it after all (a cached stage whose entry could not be restored runs).
func (rs *runState) needed(ref Ref) bool {
	for _, sc := range rs.p.Stages {
		if rs.cache.hit(sc.Name) != nil {
			continue
		}
		for _, r := range sc.AllInputs() {
			if r == ref {
				return true
			}
		}
	}
	return false
}

// lazyOutput reads a cached stage's output back when a reader first asks for it.
type lazyOutput struct {
	once sync.Once
	load func() error
	err  error
}

func (l *lazyOutput) get() error {
	l.once.Do(func() { l.err = l.load() })
	return l.err
}

// restoreStage reads a cached stage back instead of running it: its files into its stage
// directory, its output tables and artifacts (at once when a stage that runs reads them,
// otherwise on first use), its manifest entry. ok is false when the entry could not be read
// back before any output was published: the stage then runs. An error after publishing
// fails the stage.
func (rs *runState) restoreStage(ctx context.Context, st *stageState, e *storeEntry, slog zerolog.Logger) (ok bool, err error) {
	sc := st.sc
	// The stage directory is created only when there are files to restore, as a stage that
	// runs creates it only when it writes one.
	dir := filepath.Join(rs.dir, "stages", st.cfg.Name)
	if err := restoreFiles(ctx, rs.store, e, dir); err != nil {
		return false, fmt.Errorf("files: %w", err)
	}
	var dec TransformDecoder
	if rs.p.reg != nil {
		dec = rs.p.reg.TransformDecoder()
	}
	type pending struct {
		ref    Ref
		slot   slot
		lazy   *lazyOutput
		stored tableSource // a needed table, streamed in once published
	}
	var outs []pending
	published := false
	defer func() {
		if published {
			return
		}
		for _, o := range outs {
			if o.stored != nil {
				o.stored.abandon()
				o.slot.table.Release()
			}
		}
	}()
	for _, port := range st.cfg.outputs {
		ref := Ref{Stage: st.cfg.Name, Port: port.Name, Kind: port.Kind}
		needed := rs.needed(ref)
		switch port.Kind {
		case PortTable:
			et := e.Tables[port.Name]
			if et == nil {
				return false, fmt.Errorf("the entry has no table %s", port.Name)
			}
			o, found := e.objectOf(et.Object)
			if !found {
				return false, fmt.Errorf("the entry lists no object %s", et.Object)
			}
			lineage, err := decodeLineage(et.Lineage, dec, rs.mem)
			if err != nil {
				return false, fmt.Errorf("output %s: %w", port.Name, err)
			}
			name := st.cfg.Name + "." + port.Name
			open := func(ctx context.Context) (tableSource, *Table, error) {
				stored, err := rs.openTable(ctx, e, o)
				if err != nil {
					return nil, nil, err
				}
				t := newTable(name, stored.schema(), lineage, rs.mem, rs.budget, filepath.Join(rs.dir, "spill"))
				t.stored = storedTableKey(e, o)
				return stored, t, nil
			}
			if needed {
				stored, t, err := open(ctx)
				if err != nil {
					return false, fmt.Errorf("output %s: %w", port.Name, err)
				}
				outs = append(outs, pending{ref: ref, slot: slot{table: t}, stored: stored})
				continue
			}
			l := &lazyOutput{load: func() error {
				stored, t, err := open(ctx)
				if err != nil {
					return err
				}
				if err := stored.fill(t); err != nil {
					t.Release()
					return err
				}
				rs.mu.Lock()
				rs.slots[ref].table = t
				rs.mu.Unlock()
				return nil
			}}
			outs = append(outs, pending{ref: ref, lazy: l})
		case PortArtifact:
			kind := e.Artifacts[port.Name]
			var load ArtifactLoader
			if rs.p.reg != nil {
				load = rs.p.reg.ArtifactLoader(kind)
			}
			if load == nil {
				return false, fmt.Errorf("output %s: no loader reads %q artifacts back", port.Name, kind)
			}
			if needed {
				a, err := load(ctx, dir)
				if err != nil {
					return false, fmt.Errorf("output %s: %w", port.Name, err)
				}
				outs = append(outs, pending{ref: ref, slot: slot{artifact: a}})
				continue
			}
			l := &lazyOutput{load: func() error {
				a, err := load(ctx, dir)
				if err != nil {
					return err
				}
				rs.mu.Lock()
				rs.slots[ref].artifact = a
				rs.mu.Unlock()
				return nil
			}}
			outs = append(outs, pending{ref: ref, lazy: l})
		}
	}
	// Everything could be opened: publish, then stream the needed tables in.
	published = true
	for i, o := range outs {
		if o.lazy != nil {
			rs.mu.Lock()
			rs.slots[o.ref].lazy = o.lazy
			rs.mu.Unlock()
		}
		if err := rs.publish(o.ref, &o.slot); err != nil {
			// The needed tables are not read: their sources are released (a TableCache's
			// other readers of them stop waiting), and the tables not published with them.
			for j, o := range outs {
				if o.stored != nil {
					o.stored.abandon()
					if j >= i {
						o.slot.table.Release()
					} else {
						o.slot.table.Close(err)
					}
				}
			}
			return true, err
		}
	}
	g := errgroup.Group{}
	for _, o := range outs {
		if o.stored != nil {
			g.Go(func() error { return o.stored.fill(o.slot.table) })
		}
	}
	if err := g.Wait(); err != nil {
		return true, fmt.Errorf("reading its stored outputs back (key %s): %w; run again with --refresh %s", e.Key, err, st.cfg.Name)
	}
	// The manifest entry, as the stage wrote it.
	m := e.Manifest
	sc.infoMu.Lock()
	for k, v := range m.Info {
		if sc.info == nil {
			sc.info = map[string]any{}
		}
		sc.info[k] = rewritePaths(v, e.StageDir, dir)
	}
	for _, n := range m.Notes {
		sc.notes = append(sc.notes, rewritePaths(n, e.StageDir, dir).(string))
	}
	sc.infoMu.Unlock()
	for k, v := range m.Metrics {
		sc.Metrics.Set(k, v)
	}
	if st.cfg.Spec.Restored != nil {
		if err := st.cfg.Spec.Restored(sc); err != nil {
			return true, err
		}
	}
	slog.Debug().Str("key", e.Key).Str("stored_by", e.RunID).Float64("saved_seconds", e.Seconds).Msg("read back from the stage store")
	return true, nil
}

// openTable opens the stored table o of entry e: from RunOptions.TableCache when the run
// has one, otherwise from the store.
func (rs *runState) openTable(ctx context.Context, e *storeEntry, o entryObject) (tableSource, error) {
	if rs.tableCache != nil {
		return rs.tableCache.open(ctx, rs.store, e, o, rs.p.MemoryBudget)
	}
	return openStoredTable(ctx, rs.store, e, o, rs.mem)
}

// finishCached fills the manifest entry of a stage read back from the store.
func (rs *runState) finishCached(st *stageState, e *storeEntry) {
	sc := st.sc
	rs.mu.Lock()
	m := st.man
	m.Status, m.Error, m.Cached = StatusSucceeded, "", true
	m.Seconds = max(time.Since(st.started)-sc.waited(), 0).Seconds()
	m.WaitedSeconds = sc.waited().Seconds()
	if rs.remote != nil {
		// The stage ran elsewhere in this run (or was in the store before it).
		if rec := rs.remote.Stages[st.cfg.Name]; rec != nil {
			m.Remote = rec
			if !rec.Stored {
				m.Cached, m.Seconds, m.WaitedSeconds = false, rec.Seconds, 0
			}
		}
	}
	m.RowsIn, m.RowsOut, m.Batches = e.Manifest.RowsIn, e.Manifest.RowsOut, e.Manifest.Batches
	m.Outputs = map[string]OutputInfo{}
	for k, v := range e.Manifest.Outputs {
		m.Outputs[k] = v
	}
	m.Metrics = sc.Metrics.Snapshot()
	sc.infoMu.Lock()
	if len(sc.info) > 0 {
		m.Info = sc.info
	}
	m.Notes = sc.notes
	sc.infoMu.Unlock()
	rs.outputsDoneLocked(st)
	rs.mu.Unlock()
	_ = rs.writeManifest() // logged; the final write decides
}

// storeIfCacheable stores a succeeded stage's outputs when the plan says so, then removes its
// checkpoints, which a finished stage no longer needs. A failure to store never fails the
// run: it is logged and listed in the manifest's warnings, and returned (for RunOptions.Only,
// where it does fail the run).
func (rs *runState) storeIfCacheable(ctx context.Context, st *stageState, slog zerolog.Logger) error {
	if rs.cache == nil {
		return errors.New("no stage store")
	}
	defer rs.dropCheckpoints(ctx, st, slog)
	if !rs.cache.write[st.cfg.Name] {
		return fmt.Errorf("its outputs cannot be stored: it has no key in the stage store (%s)", rs.man.Stages[st.cfg.Name].CacheKey)
	}
	rs.mu.Lock()
	why := rs.storable(st)
	rs.mu.Unlock()
	if why != "" {
		slog.Debug().Msgf("not stored in the stage store: %s", why)
		return fmt.Errorf("its outputs cannot be stored in the stage store: %s", why)
	}
	begin := time.Now()
	if err := rs.storeStage(ctx, st); err != nil {
		msg := fmt.Sprintf("stage %s: its outputs could not be stored in the stage store (%v); the run's own outputs are complete, and the stage runs again next time", st.cfg.Name, err)
		slog.Warn().Err(err).Msg("could not store the stage's outputs in the stage store; the run's own outputs are complete")
		rs.mu.Lock()
		rs.man.Warnings = append(rs.man.Warnings, msg)
		rs.mu.Unlock()
		return fmt.Errorf("store its outputs: %w", err)
	}
	slog.Debug().Str("key", st.sc.cacheKey).Float64("seconds", time.Since(begin).Seconds()).Msg("stored in the stage store")
	return nil
}

// dropCheckpoints removes the checkpoints of a stage that finished. A failure leaves them for
// pipe gc.
func (rs *runState) dropCheckpoints(ctx context.Context, st *stageState, slog zerolog.Logger) {
	key := rs.cache.keys[st.cfg.Name]
	if key == "" {
		return
	}
	objs, err := rs.store.List(ctx, checkpointKey(key, ""))
	if err != nil {
		slog.Debug().Err(err).Msg("could not list the stage's checkpoints")
		return
	}
	for _, o := range objs {
		if err := rs.store.Delete(ctx, o.Key); err != nil {
			slog.Debug().Err(err).Str("object", o.Key).Msg("could not remove a checkpoint")
		}
	}
}

// cleanStageDir empties a stage's directory before it runs again (a retry, or a cached stage
// whose entry could not be read back).
func (rs *runState) cleanStageDir(name string) error {
	return os.RemoveAll(filepath.Join(rs.dir, "stages", name))
}

// cachedStages lists the stages a plan reads back, sorted.
func (cp *cachePlan) cachedStages() []string {
	if cp == nil {
		return nil
	}
	out := make([]string, 0, len(cp.hits))
	for n := range cp.hits {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Info returns a value the stage recorded with SetInfo, or nil. For a stage read back from
// the stage store (KindSpec.Restored), the values are those of its stored manifest entry, as
// decoded from JSON (numbers are float64, tables map[string]any).
func (sc *StageContext) Info(key string) any {
	sc.infoMu.Lock()
	defer sc.infoMu.Unlock()
	return sc.info[key]
}

// heldOutputs are the outputs an attempt of a stage with retries has produced so far: they
// are published when the attempt succeeds and released when it fails, so that a retry starts
// clean and no other stage ever reads a failed attempt's rows.
type heldOutputs struct {
	mu    sync.Mutex
	refs  []Ref
	slots []*slot
}

// publish makes an output visible to the stages that read it, or holds it (see heldOutputs).
func (sc *StageContext) publish(ref Ref, s *slot) error {
	h := sc.held
	if h == nil {
		return sc.run.publish(ref, s)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.refs {
		if r == ref {
			return fmt.Errorf("output %s was already produced", ref)
		}
	}
	h.refs = append(h.refs, ref)
	h.slots = append(h.slots, s)
	return nil
}

// release publishes the held outputs (ok) or releases their tables.
func (h *heldOutputs) release(rs *runState, ok bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var err error
	for i, s := range h.slots {
		if ok {
			if perr := rs.publish(h.refs[i], s); perr != nil {
				err = errors.Join(err, perr)
				if s.table != nil {
					s.table.Release()
				}
			}
			continue
		}
		if s.table != nil {
			s.table.Close(errors.New("a failed attempt's output"))
			s.table.Release()
		}
	}
	h.refs, h.slots = nil, nil
	return err
}
