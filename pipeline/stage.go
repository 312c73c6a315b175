package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/schema"
)

// Stage is one configured stage of a pipeline. Run reads the stage's inputs and writes its
// outputs through sc, and returns when it is done. It must stop promptly when ctx is canceled.
// The executor closes the stage's output tables when Run returns.
type Stage interface {
	Run(ctx context.Context, sc *StageContext) error
}

// StageFunc adapts a function to Stage.
type StageFunc func(ctx context.Context, sc *StageContext) error

// Run calls f.
func (f StageFunc) Run(ctx context.Context, sc *StageContext) error { return f(ctx, sc) }

// Artifact is a fitted thing that flows on an artifact edge: a transform, a model bundle, an
// ensemble, a metrics table.
type Artifact interface {
	// ArtifactKind names the kind of artifact ("transform", "bundle", "ensemble", ...).
	ArtifactKind() string
}

// StageContext is what a running stage sees: its config, its inputs and outputs, its share of
// the run's resources, its directory, its logger and its metrics.
type StageContext struct {
	Config  *StageConfig
	Name    string
	Mem     memory.Allocator
	Log     zerolog.Logger
	Metrics *Metrics
	// DataDir is where datasets that are not embedded are looked for first ("" when unset).
	DataDir string

	run      *runState
	st       *stageState
	cacheKey string // the stage's key in the stage store ("" without a store)
	// freshStart: the stage is to be computed anew (--no-cache, --refresh, cache = false), so
	// an earlier attempt's checkpoints are not continued from.
	freshStart bool
	// held, when not nil, keeps the outputs of an attempt of a stage that declares retries
	// from other stages until the attempt succeeds (see runAttempts).
	held     *heldOutputs
	dirOnce  sync.Once
	dir      string
	dirErr   error
	readRows int64
	readMu   sync.Mutex
	infoMu   sync.Mutex
	info     map[string]any
	notes    []string
	degraded []string
	progress func(done, total int64, unit string)

	// Time blocked waiting for inputs not produced yet, which is not the stage's own time:
	// waitedFor is the total of past waits, waiting the number of goroutines blocked now
	// (a stage may wait in several), since when at least one has been.
	waitMu    sync.Mutex
	waitedFor time.Duration
	waiting   int
	waitSince time.Time
}

// Seed derives the seed of one random step of this stage from the run seed, the stage name
// and the given indexes (member, trial, epoch...).
func (sc *StageContext) Seed(index ...uint64) uint64 {
	return DeriveSeed(sc.Config.RunSeed, sc.Name, index...)
}

// Rand returns a generator seeded with Seed(index...).
func (sc *StageContext) Rand(index ...uint64) *rand.Rand { return NewRand(sc.Seed(index...)) }

// Dir returns the stage's directory in the run directory (stages/<name>/), creating it.
func (sc *StageContext) Dir() (string, error) {
	sc.dirOnce.Do(func() {
		sc.dir = filepath.Join(sc.run.dir, "stages", sc.Name)
		sc.dirErr = os.MkdirAll(sc.dir, 0o755)
	})
	return sc.dir, sc.dirErr
}

// Input returns the table an input field references, waiting until its producer has created
// it. Reading rows from it is counted in the stage's rows_in.
func (sc *StageContext) Input(ctx context.Context, field string) (*Table, error) {
	ref, ok := sc.Config.Input(field)
	if !ok {
		return nil, fmt.Errorf("stage %q has no input %q", sc.Name, field)
	}
	return sc.tableOf(ctx, ref)
}

// Inputs returns the tables an input-list field references, in order.
func (sc *StageContext) Inputs(ctx context.Context, field string) ([]*Table, error) {
	var out []*Table
	for _, ref := range sc.Config.Inputs(field) {
		t, err := sc.tableOf(ctx, ref)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (sc *StageContext) tableOf(ctx context.Context, ref Ref) (*Table, error) {
	if ref.Kind != PortTable {
		return nil, fmt.Errorf("input %s is an artifact, not a table", ref)
	}
	s, err := sc.await(ctx, ref)
	if err != nil {
		return nil, err
	}
	return s.table, nil
}

// Scan reads a table and counts its rows in this stage's rows_in.
func (sc *StageContext) Scan(ctx context.Context, t *Table) *TableReader {
	r := t.Scan(ctx)
	r.onRow = func(n int64) {
		sc.readMu.Lock()
		sc.readRows += n
		sc.readMu.Unlock()
	}
	return r
}

// Artifact returns the artifact an input field references, waiting until it is produced.
func (sc *StageContext) Artifact(ctx context.Context, field string) (Artifact, error) {
	ref, ok := sc.Config.Input(field)
	if !ok {
		return nil, fmt.Errorf("stage %q has no input %q", sc.Name, field)
	}
	return sc.ArtifactOf(ctx, ref)
}

// ArtifactOf returns the artifact a reference points to, waiting until it is produced.
func (sc *StageContext) ArtifactOf(ctx context.Context, ref Ref) (Artifact, error) {
	if ref.Kind != PortArtifact {
		return nil, fmt.Errorf("input %s is a table, not an artifact", ref)
	}
	s, err := sc.await(ctx, ref)
	if err != nil {
		return nil, err
	}
	return s.artifact, nil
}

// await waits until ref's producer has created it (or failed). The time blocked counts in the
// stage's waited_seconds, not in its seconds.
func (sc *StageContext) await(ctx context.Context, ref Ref) (*slot, error) {
	s := sc.run.slotOf(ref)
	if s == nil {
		return nil, fmt.Errorf("unknown input %s", ref)
	}
	select {
	case <-s.ready:
	default:
		sc.waitBegins()
		select {
		case <-s.ready:
		case <-ctx.Done():
			sc.waitEnds()
			return nil, context.Cause(ctx)
		}
		sc.waitEnds()
	}
	if s.err != nil {
		return nil, fmt.Errorf("input %s: %w", ref, s.err)
	}
	if s.lazy != nil {
		// A cached stage's output that no running stage was expected to read: read back now.
		sc.waitBegins()
		err := s.lazy.get()
		sc.waitEnds()
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", ref, err)
		}
	}
	return s, nil
}

func (sc *StageContext) waitBegins() {
	sc.waitMu.Lock()
	defer sc.waitMu.Unlock()
	if sc.waiting == 0 {
		sc.waitSince = time.Now()
	}
	sc.waiting++
}

func (sc *StageContext) waitEnds() {
	sc.waitMu.Lock()
	defer sc.waitMu.Unlock()
	sc.waiting--
	if sc.waiting == 0 {
		sc.waitedFor += time.Since(sc.waitSince)
	}
}

// waited is the time the stage has spent blocked on inputs so far.
func (sc *StageContext) waited() time.Duration {
	sc.waitMu.Lock()
	defer sc.waitMu.Unlock()
	d := sc.waitedFor
	if sc.waiting > 0 {
		d += time.Since(sc.waitSince)
	}
	return d
}

// NewTable creates the table of an output port. split is its split role (recorded in the
// schema metadata); lineage is the chain of fitted transforms that produced it. Readers may
// start as soon as it exists; the executor closes it when Run returns.
func (sc *StageContext) NewTable(port string, s *arrow.Schema, split string, lineage []LineageStep) (*Table, error) {
	p, ok := sc.port(port)
	if !ok || p.Kind != PortTable {
		return nil, fmt.Errorf("stage %q has no table output %q", sc.Name, port)
	}
	if split != "" {
		s = schema.WithSplit(s, split)
	}
	lineage = sc.lineageOf(lineage)
	t := newTable(sc.Name+"."+port, s, lineage, sc.Mem, sc.run.budget, filepath.Join(sc.run.dir, "spill"))
	if err := sc.publish(Ref{Stage: sc.Name, Port: port, Kind: PortTable}, &slot{table: t}); err != nil {
		t.Release()
		return nil, err
	}
	return t, nil
}

// lineageOf is the lineage an output table gets: the one the stage gives, plus a step that
// cannot be replayed when the stage reads tables, does not declare KeepsFeatures and did not
// record a step of its own.
func (sc *StageContext) lineageOf(given []LineageStep) []LineageStep {
	if sc.Config.Spec == nil || sc.Config.Spec.KeepsFeatures {
		return given
	}
	if n := len(given); n > 0 && given[n-1].Stage == sc.Name {
		return given // the stage recorded its own step
	}
	readsTables := false
	for _, r := range sc.Config.AllInputs() {
		if r.Kind == PortTable {
			readsTables = true
			break
		}
	}
	if !readsTables {
		return given // a source: its table is where lineage starts
	}
	return append(append([]LineageStep(nil), given...), LineageStep{Stage: sc.Name, Kind: sc.Config.Kind})
}

// SaveCheckpoint stores data as the stage's checkpoint called name, replacing an earlier one,
// so that the stage, interrupted and run again with the same cache key (pipe run --resume),
// continues from it (LoadCheckpoint). Without a stage store it does nothing. The store makes it
// visible whole or not at all.
func (sc *StageContext) SaveCheckpoint(ctx context.Context, name string, data []byte) error {
	if sc.run.store == nil || sc.cacheKey == "" {
		return nil
	}
	key := checkpointKey(sc.cacheKey, name)
	if err := sc.run.store.Put(ctx, key, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", name, err)
	}
	if f := sc.run.onCheckpoint; f != nil {
		f(sc.Name, name, key)
	}
	return nil
}

// LoadCheckpoint returns the checkpoint called name that an earlier, interrupted run of this
// stage (the same cache key: the same kind, config, inputs, seed and code) saved, or an error
// wrapping ErrNotFound when there is none (or no stage store, or the stage is to be computed
// anew: --no-cache, --refresh, cache = false).
func (sc *StageContext) LoadCheckpoint(ctx context.Context, name string) ([]byte, error) {
	if sc.run.store == nil || sc.cacheKey == "" || sc.freshStart {
		return nil, ErrNotFound
	}
	r, err := sc.run.store.Get(ctx, checkpointKey(sc.cacheKey, name))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// checkpointKey is where the stage store keeps a stage's checkpoint.
func checkpointKey(cacheKey, name string) string { return "checkpoints/" + cacheKey + "/" + name }

// SetArtifact publishes the artifact of an output port.
func (sc *StageContext) SetArtifact(port string, a Artifact) error {
	p, ok := sc.port(port)
	if !ok || p.Kind != PortArtifact {
		return fmt.Errorf("stage %q has no artifact output %q", sc.Name, port)
	}
	return sc.publish(Ref{Stage: sc.Name, Port: port, Kind: PortArtifact}, &slot{artifact: a})
}

func (sc *StageContext) port(name string) (Port, bool) {
	for _, p := range sc.Config.outputs {
		if p.Name == name {
			return p, true
		}
	}
	return Port{}, false
}

// CPU takes up to want tokens of the run-wide CPU budget, waiting for at least one. The stage
// uses n goroutines (or GEMM threads) and calls release when done. Concurrent stages, ensemble
// members and GEMM threads share the same budget, so the machine is never oversubscribed.
func (sc *StageContext) CPU(ctx context.Context, want int) (n int, release func(), err error) {
	return sc.run.cpu.acquire(ctx, want)
}

// Workers is the size of the run-wide CPU budget.
func (sc *StageContext) Workers() int { return sc.run.cpu.size }

// SetInfo records a value in the stage's manifest entry under info.<key> (split ratios,
// counts, the carved validation share...).
func (sc *StageContext) SetInfo(key string, v any) {
	sc.infoMu.Lock()
	defer sc.infoMu.Unlock()
	if sc.info == nil {
		sc.info = map[string]any{}
	}
	// The manifest is JSON: a value JSON cannot hold (a NaN, an Inf, a channel) is kept as its
	// printed form rather than breaking the manifest.
	if _, err := json.Marshal(v); err != nil {
		v = fmt.Sprint(v)
	}
	sc.info[key] = v
}

// Note adds a line to the stage's manifest notes and logs it at info level.
func (sc *StageContext) Note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	sc.infoMu.Lock()
	sc.notes = append(sc.notes, msg)
	sc.infoMu.Unlock()
	sc.Log.Info().Msg(msg)
}

// Degrade records that the stage finished but dropped something (an ensemble member, say).
// The run then ends "degraded" with its own exit code.
func (sc *StageContext) Degrade(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	sc.infoMu.Lock()
	sc.degraded = append(sc.degraded, msg)
	sc.infoMu.Unlock()
	sc.Log.Warn().Msg(msg)
}

// SetRunInfo records a run-level object in the manifest (for example "leakage").
func (sc *StageContext) SetRunInfo(key string, v any) { sc.run.setRunInfo(key, v) }

// RunInfoOrInit returns the run-level object under key, first storing init() there if there is
// none, atomically: concurrent stages share one object (which must be safe for concurrent use
// and for json.Marshal while stages run).
func (sc *StageContext) RunInfoOrInit(key string, init func() any) any {
	r := sc.run
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.runInfoM[key]; ok {
		return v
	}
	v := init()
	r.runInfoM[key] = v
	return v
}

// RunInfo returns a run-level object set by an earlier SetRunInfo, or nil.
func (sc *StageContext) RunInfo(key string) any { return sc.run.runInfo(key) }

// Progress reports how far the stage is (epochs, rows, members), for the progress display.
func (sc *StageContext) Progress(done, total int64, unit string) {
	if sc.progress != nil {
		sc.progress(done, total, unit)
	}
}

// Metrics collects a stage's metrics for the manifest. Keys read [<task>/]<split>_<metric>,
// with member_NN/ and <combiner>/ prefixes in ensembles. It is safe for concurrent use.
type Metrics struct {
	mu     sync.Mutex
	values map[string]float64
	prefix string
	root   *Metrics
}

// NewMetrics returns an empty reporter.
func NewMetrics() *Metrics { return &Metrics{values: map[string]float64{}} }

// Set records one metric.
func (m *Metrics) Set(key string, v float64) {
	r := m.rootOf()
	r.mu.Lock()
	r.values[m.prefix+key] = v
	r.mu.Unlock()
}

// With returns a reporter that prefixes keys ("member_03/", "vote/").
func (m *Metrics) With(prefix string) *Metrics {
	return &Metrics{prefix: m.prefix + prefix, root: m.rootOf()}
}

func (m *Metrics) rootOf() *Metrics {
	if m.root != nil {
		return m.root
	}
	return m
}

// Get returns a metric and whether it was set.
func (m *Metrics) Get(key string) (float64, bool) {
	r := m.rootOf()
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.values[m.prefix+key]
	return v, ok
}

// Snapshot returns a copy of every metric, keys sorted when marshalled.
func (m *Metrics) Snapshot() map[string]float64 {
	r := m.rootOf()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]float64, len(r.values))
	for k, v := range r.values {
		out[k] = v
	}
	return out
}

// Keys returns the metric keys in sorted order.
func (m *Metrics) Keys() []string {
	s := m.Snapshot()
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
