package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// ErrCanceled is the cause of a run stopped by the caller (SIGINT, SIGTERM).
var ErrCanceled = errors.New("run canceled")

// errUpstream marks a stage that stopped because an input's producer failed.
var errUpstream = errors.New("an upstream stage failed")

// Event is a progress report for displays.
type Event struct {
	Stage  string
	Status string // running, succeeded, failed, canceled, skipped, or "" for progress
	Done   int64
	Total  int64
	Unit   string
}

// RunOptions tune Run. The zero value works.
type RunOptions struct {
	// Dir is the run directory, used exactly. Default: <RunsDir>/<pipeline>/<run-id>.
	Dir string
	// RunsDir is the parent of run directories when Dir is empty. Default "runs".
	RunsDir string
	// LogWriter receives the human-facing log (zerolog JSON lines: wrap it in a
	// zerolog.ConsoleWriter for people); the run also writes every line to log.jsonl in its
	// directory. Default nil: no console output.
	LogWriter io.Writer
	// LogLevel filters what reaches LogWriter (log.jsonl gets everything from debug up).
	// Default: info.
	LogLevel zerolog.Level
	// Mem allocates every Arrow buffer. Default memory.DefaultAllocator.
	Mem memory.Allocator
	// DataDir is where stages look for datasets that are not embedded (MNIST's files).
	DataDir string
	// Progress, when set, receives progress events. It must not block.
	Progress func(Event)
	// Overrides are recorded in the manifest (they were applied at Load).
	Overrides []string
	// Version is pipe's version, recorded in the manifest.
	Version string
	// GEMM names the matrix-product backend, recorded in the manifest.
	GEMM string
	// Resume continues the interrupted run (canceled, failed or crashed) in Dir, in place: the
	// run keeps its id, its stages directory is cleared, and every stage runs again, its
	// outputs read back from the store when it had finished (the cache) and its training
	// continued from its checkpoints when it had not. The pipeline must be the one the run
	// ran (the caller compares the config hashes). Without Store, everything runs again.
	Resume bool
	// StoreLocation names the store (a directory or URL) in the manifest, so that a resumed
	// run finds it again.
	StoreLocation string
	// Store is the stage store: finished stages' outputs by cache key, and the checkpoints of
	// unfinished ones. nil: no cache, no checkpoints, and no cache keys in the manifest.
	Store Store
	// OpenStore, when set and Store is nil, opens the stage store once the run directory is
	// accepted, so that a refused run writes nothing, not even the store's directory. Its
	// error refuses the run (a *RefusedError, nothing runs); it may return a nil Store (no
	// store). Run does not close the store.
	OpenStore func(ctx context.Context) (Store, error)
	// NoCache: no stage is read back from the store, nor stored there (pipe run --no-cache).
	// Keys are still computed and recorded, and checkpoints still work. Default false.
	NoCache bool
	// Refresh names stages that run even when their key is in the store, with every stage
	// downstream of them; their entries are written again (pipe run --refresh). A name that
	// is not a stage of the pipeline is a *ConfigError, before anything runs.
	Refresh []string
	// BuildID identifies the build beside Version when Version alone does not change with the
	// code (a development build: the pipe command passes the SHA-256 of its executable). It
	// is part of every cache key. Default "".
	BuildID string
	// Heartbeat is how often the running run rewrites heartbeat_at in its manifest, by which
	// ReadRun tells a run on another host that died from one that runs. Default
	// DefaultHeartbeat (10 s).
	Heartbeat time.Duration

	// RunID is the run's id (it names the run directory under RunsDir). Default: NewRunID.
	// An engine that ran the run elsewhere passes the id it gave the run there.
	RunID string
	// Only runs the named stages alone, as one step of a run that an engine spreads over
	// several processes (see PartedStage and PlanStore): only they and the stages they read
	// from are in the run; those must be in the store (each is read back, and one that is not
	// fails the run, naming its key), and their outputs are written to the store whatever
	// their cache settings say, as that is how the stages after them get them (a failure to
	// store them fails the run). The named stages run as in a local run, concurrently, a
	// reader streaming its producer's tables. It needs a stage store. Default nil: the whole
	// pipeline runs.
	Only []string
	// Part, with one stage in Only, runs part *Part of the stage (a PartedStage) instead of
	// the whole stage: its result is saved as the stage's checkpoint and no output is produced
	// or stored. nil: the whole stage.
	Part *int
	// OnCheckpoint, when set, is called after a stage saved a checkpoint in the store, with
	// the stage, the checkpoint's name and its key in the store (an engine records it in its
	// heartbeats). It must not block.
	OnCheckpoint func(stage, name, key string)
	// Remote writes the run directory of a run that an engine ran elsewhere, from the stage
	// store and the engine's report: nothing runs here; every stage whose outputs are in the
	// store is read back (with the engine's record in its manifest entry), and the others
	// end with the status and error the engine reports. nil: the run runs here.
	Remote *RemoteRun
	// TableCache, when set, keeps the tables this run reads back from the stage store for
	// the runs after it in this process, and gives it those they read (see TableCache).
	// Default nil: every table is read from the store.
	TableCache *TableCache

	// Test seams; nil is the real thing.
	openLog   func(path string) (io.WriteCloser, error) // creates log.jsonl
	writeFile func(path string, data []byte) error      // writes manifest.json
}

// Result is what a run produced.
type Result struct {
	Dir      string
	Manifest *Manifest
}

type slot struct {
	ready    chan struct{}
	table    *Table
	artifact Artifact
	err      error
	// lazy reads a cached stage's output back from the store when a reader first asks for
	// it (nil: the output is there once ready is closed).
	lazy *lazyOutput
	// consumers still to finish before the table can be released
	consumers int
	// producerDone: the producing stage has returned; a table is released only when its
	// producer and all its consumers are done.
	producerDone bool
}

type stageState struct {
	cfg     *StageConfig
	sc      *StageContext
	err     error // set when the stage itself failed
	man     *StageManifest
	started time.Time
	// waitedBefore is the time earlier attempts of the stage waited for inputs.
	waitedBefore time.Duration
}

type cpuBudget struct {
	size int
	sem  *semaphore.Weighted
}

func (c *cpuBudget) acquire(ctx context.Context, want int) (int, func(), error) {
	if want < 1 {
		want = 1
	}
	if want > c.size {
		want = c.size
	}
	if err := c.sem.Acquire(ctx, 1); err != nil {
		return 0, func() {}, context.Cause(ctx)
	}
	n := 1
	for n < want && c.sem.TryAcquire(1) {
		n++
	}
	var once sync.Once
	return n, func() { once.Do(func() { c.sem.Release(int64(n)) }) }, nil
}

type runState struct {
	p       *Pipeline
	dir     string
	mem     memory.Allocator
	budget  *memBudget
	cpu     *cpuBudget
	log     zerolog.Logger
	logFile *logFileWriter
	store   Store      // nil: no stage store
	cache   *cachePlan // nil: no stage store
	// only, part, remote and onCheckpoint are RunOptions' Only, Part, Remote, OnCheckpoint.
	only         map[string]bool // nil: every stage runs
	part         *int
	remote       *RemoteRun
	onCheckpoint func(stage, name, key string)
	tableCache   *TableCache

	mu       sync.Mutex
	slots    map[Ref]*slot
	man      *Manifest
	runInfoM map[string]any
	stages   map[string]*stageState

	// writeMu orders manifest writes, so that an older state never replaces a newer one.
	writeMu     sync.Mutex
	writeFile   func(path string, data []byte) error
	writeFailed bool // a manifest write failed and was logged: later failures are not
	// ownsDir, when set, says (as nil) that the run directory is still the one the run locked;
	// the manifest is not written into a directory that was removed or replaced.
	ownsDir     func() error
	logReported bool // the log file's failure is in the manifest's warnings
}

func (r *runState) slotOf(ref Ref) *slot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.slots[ref]
}

func (r *runState) publish(ref Ref, s *slot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.slots[ref]
	select {
	case <-cur.ready:
		return fmt.Errorf("output %s was already produced", ref)
	default:
	}
	cur.table, cur.artifact = s.table, s.artifact
	close(cur.ready)
	return nil
}

func (r *runState) setRunInfo(key string, v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runInfoM[key] = v
}

func (r *runState) runInfo(key string) any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runInfoM[key]
}

// NewRunID returns a sortable, unique run id: UTC time plus 6 random hex digits.
func NewRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Run executes the pipeline. Every stage runs in its own goroutine within one errgroup; a stage
// blocks only on the inputs it reads, so independent stages run concurrently and a consumer
// streams a table while its producer writes it. The first error cancels the run. ctx canceled
// by the caller ends the run "canceled" (use context.WithCancelCause with ErrCanceled).
//
// The run directory is opts.Dir exactly, which must be absent or empty, or a new
// <RunsDir>/<pipeline>/<run-id>. Before anything runs, Run refuses, with a *RefusedError and
// nothing written, a directory that is not empty, already holds a run, is a file or a system
// directory, or is locked by another run. The run holds the directory's lock (LockFile) for
// its whole life.
//
// Once it has started, Run always writes the run directory and its manifest, even when it
// fails; the returned error is the first stage error (nil when the run succeeded or ended
// degraded).
func Run(ctx context.Context, p *Pipeline, opts RunOptions) (*Result, error) {
	for _, name := range opts.Refresh {
		if _, ok := p.byName[name]; !ok {
			names := make([]string, 0, len(p.Stages))
			for _, sc := range p.Stages {
				names = append(names, sc.Name)
			}
			ce := &ConfigError{Arg: "--refresh " + name, Stage: name, Msg: "no such stage to refresh", Hint: "stages: " + ListNames(names, 20)}
			if s := Suggest(name, names); s != "" {
				ce.Hint = fmt.Sprintf("did you mean %q?", s)
			}
			return nil, ce
		}
	}
	var only map[string]bool
	if len(opts.Only) > 0 {
		if opts.Store == nil && opts.OpenStore == nil {
			return nil, &RefusedError{Reason: "running stages alone (Only) needs a stage store"}
		}
		q, err := p.only(opts.Only...)
		if err != nil {
			return nil, &RefusedError{Reason: err.Error()}
		}
		p = q
		only = map[string]bool{}
		for _, n := range opts.Only {
			only[n] = true
		}
	}
	if opts.Part != nil {
		if len(opts.Only) != 1 {
			return nil, &RefusedError{Reason: "a part of a stage (Part) needs the stage, alone (Only)"}
		}
		st, _ := p.Stage(opts.Only[0])
		ps, ok := st.stage.(PartedStage)
		switch {
		case !ok:
			return nil, &RefusedError{Reason: fmt.Sprintf("stage %s (kind %s) does not split into parts", st.Name, st.Kind)}
		case *opts.Part < 0 || *opts.Part >= ps.Parts():
			return nil, &RefusedError{Reason: fmt.Sprintf("stage %s has %d parts: there is no part %d", st.Name, ps.Parts(), *opts.Part)}
		}
	}
	if opts.Remote != nil && opts.Store == nil && opts.OpenStore == nil {
		return nil, &RefusedError{Reason: "the run directory of a remote run (Remote) is read back from its stage store: none given"}
	}
	start := time.Now()
	runID := opts.RunID
	if runID == "" {
		runID = NewRunID(start)
	} else if why := checkPlainName(runID); why != "" {
		return nil, &RefusedError{Reason: fmt.Sprintf("run id %q %s", runID, why)}
	}
	var rd *runDir
	var err error
	var resumed *Manifest
	switch {
	case opts.Resume:
		if opts.Dir == "" {
			return nil, &RefusedError{Reason: "resume needs the run directory"}
		}
		if rd, resumed, err = openRunDirForResume(opts.Dir); err == nil {
			runID = resumed.RunID
		}
	case opts.Dir != "":
		rd, err = openRunDir(opts.Dir)
	default:
		root := opts.RunsDir
		if root == "" {
			root = "runs"
		}
		rd, runID, err = newRunDir(ctx, root, p.Name, runID)
	}
	if err != nil {
		return nil, err
	}
	defer rd.lock.release() // last: after the final manifest
	dir := rd.path
	if opts.Store == nil && opts.OpenStore != nil {
		s, err := opts.OpenStore(ctx)
		if err != nil {
			rd.abandon()
			return nil, &RefusedError{Dir: dir, Reason: "the stage store cannot be opened", Err: err}
		}
		opts.Store = s
	}
	mem := opts.Mem
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	heartbeat := opts.Heartbeat
	if heartbeat <= 0 {
		heartbeat = DefaultHeartbeat
	}
	openLog := opts.openLog
	if openLog == nil {
		openLog = func(path string) (io.WriteCloser, error) { return os.Create(path) }
		if resumed != nil { // the interrupted attempt's log stays, the resumed one follows
			openLog = func(path string) (io.WriteCloser, error) {
				return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, fileMode)
			}
		}
	}
	lf, err := openLog(filepath.Join(dir, "log.jsonl"))
	if err != nil {
		rd.abandon()
		return nil, &RefusedError{Dir: dir, Reason: "cannot create log.jsonl", Err: err}
	}
	defer lf.Close()
	logFile := &logFileWriter{w: lf}
	var w io.Writer = logFile
	if opts.LogWriter != nil {
		level := opts.LogLevel
		if level == zerolog.NoLevel || level < zerolog.DebugLevel {
			level = zerolog.InfoLevel
		}
		w = zerolog.MultiLevelWriter(logFile, &levelWriter{w: opts.LogWriter, min: level})
	}
	log := zerolog.New(w).With().Timestamp().Str("run", runID).Logger()

	me := thisProcess()
	man := &Manifest{
		FormatVersion: ManifestVersion, Pipeline: p.Name, Description: p.Description, RunID: runID,
		Status: StatusRunning, Seed: p.Seed, ConfigHash: p.Hash(), ConfigFile: p.File, Overrides: opts.Overrides,
		Workers: p.Workers, MemoryBudget: p.MemoryBudget, GoVersion: runtime.Version(), PipeVersion: opts.Version,
		Modules: moduleVersions(), GEMM: opts.GEMM, StartedAt: start.UTC(), Stages: map[string]*StageManifest{},
		PID: me.PID, Host: me.Host, HeartbeatSeconds: heartbeat.Seconds(),
	}
	man.Store = opts.StoreLocation
	man.Remote = opts.Remote
	if resumed != nil {
		man.StartedAt = resumed.StartedAt
		man.Resumptions = append(append([]Resumption(nil), resumed.Resumptions...), Resumption{At: start.UTC(), From: resumed.Status})
	}
	if cores := runtime.NumCPU(); p.Workers > cores {
		man.Warnings = append(man.Warnings, fmt.Sprintf("workers = %d is more than the %d cores of this machine: "+
			"stages compete for cores (results are the same, runs slower); set [pipeline] workers to %d or less", p.Workers, cores, cores))
	}
	rs := &runState{p: p, dir: dir, mem: mem, budget: &memBudget{limit: p.MemoryBudget},
		cpu: &cpuBudget{size: p.Workers, sem: semaphore.NewWeighted(int64(p.Workers))}, log: log, logFile: logFile,
		slots: map[Ref]*slot{}, man: man, runInfoM: map[string]any{}, stages: map[string]*stageState{},
		writeFile: opts.writeFile, store: opts.Store, only: only, part: opts.Part, remote: opts.Remote,
		onCheckpoint: opts.OnCheckpoint, tableCache: opts.TableCache}
	if rs.writeFile == nil {
		rs.writeFile = WriteFileAtomic
	}
	rs.ownsDir = rd.lock.holds
	if limit, restore := applyMemoryLimit(p.MemoryBudget, os.Getenv); limit > 0 {
		defer restore()
		rs.runInfoM["go_memory_limit_bytes"] = limit
	}
	for _, sc := range p.Stages {
		man.StageOrder = append(man.StageOrder, sc.Name)
		sm := &StageManifest{Kind: sc.Kind, Status: StatusPending, Outputs: map[string]OutputInfo{}, Metrics: map[string]float64{}}
		man.Stages[sc.Name] = sm
		for _, port := range sc.outputs {
			rs.slots[Ref{Stage: sc.Name, Port: port.Name, Kind: port.Kind}] = &slot{ready: make(chan struct{})}
		}
		rs.stages[sc.Name] = &stageState{cfg: sc, man: sm}
	}
	for _, sc := range p.Stages {
		for _, ref := range sc.AllInputs() {
			rs.slots[ref].consumers++
		}
	}
	// Nothing has run yet: a directory that cannot take the run's files refuses the run.
	if err := rs.writeManifest(); err != nil {
		rd.abandon("log.jsonl", "manifest.json")
		return nil, &RefusedError{Dir: dir, Reason: "cannot write the manifest", Err: err}
	}
	if err := WriteFileAtomic(filepath.Join(dir, "pipeline.toml"), p.Resolved()); err != nil {
		rd.abandon("log.jsonl", "manifest.json", "pipeline.toml")
		return nil, &RefusedError{Dir: dir, Reason: "cannot write pipeline.toml", Err: err}
	}
	if err := reserveSpace(dir); err != nil {
		man.Warnings = append(man.Warnings, fmt.Sprintf("could not set aside space for the final manifest (%v): on a full disk the run may end without one", err))
	}
	log.Info().Str("pipeline", p.Name).Str("dir", dir).Int("stages", len(p.Stages)).Int("workers", p.Workers).
		Uint64("seed", p.Seed).Int("pid", me.PID).Str("host", me.Host).Msg("run started")
	for _, w := range man.Warnings {
		log.Warn().Msg(w)
	}

	// The heartbeat: a running run rewrites its manifest at least this often.
	stopBeat, beatDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(beatDone)
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				rs.checkLogFile()
				_ = rs.writeManifest() // logged; the final write decides
			case <-stopBeat:
				return
			}
		}
	}()

	rs.cache = rs.planCache(ctx, opts)
	if cached := rs.cache.cachedStages(); len(cached) > 0 {
		log.Info().Strs("stages", cached).Msgf("%d of %d stages are read back from the stage store (cached)", len(cached), len(p.Stages))
	}
	_ = rs.writeManifest() // with the cache keys; logged, the final write decides

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	g, gctx := errgroup.WithContext(runCtx)
	for _, sc := range p.Stages {
		st := rs.stages[sc.Name]
		g.Go(func() error { return rs.runStage(ctx, gctx, st, opts) })
	}
	runErr := g.Wait()
	close(stopBeat)
	<-beatDone
	if runErr != nil {
		// Report the stage that failed first, not a stage that stopped because of it.
		for _, sc := range p.Stages {
			if st := rs.stages[sc.Name]; st.err != nil {
				runErr = st.err
				break
			}
		}
	}

	// Release whatever is left (tables without consumers, or of a failed run).
	rs.mu.Lock()
	for _, s := range rs.slots {
		if s.table != nil {
			s.table.Release()
		}
	}
	rs.mu.Unlock()

	rs.checkLogFile()
	fin := time.Now().UTC()
	rs.mu.Lock()
	man.FinishedAt = &fin
	man.Seconds = fin.Sub(start).Seconds()
	if opts.Remote != nil && opts.Remote.Seconds > 0 {
		// The run's time is the remote run's, from its submission; reading it back is part of it.
		man.Seconds += opts.Remote.Seconds
		man.StartedAt = start.Add(-time.Duration(opts.Remote.Seconds * float64(time.Second))).UTC()
	}
	man.PeakTableMem = rs.budget.peak.Load()
	if len(rs.runInfoM) > 0 {
		man.Run = rs.runInfoM
	}
	switch {
	case ctx.Err() != nil:
		man.Status = StatusCanceled
		man.Error = "canceled: " + context.Cause(ctx).Error()
		runErr = context.Cause(ctx)
	case opts.Remote != nil && opts.Remote.Canceled:
		man.Status = StatusCanceled
		man.Error = "canceled on " + opts.Remote.Engine
		runErr = ErrCanceled
	case opts.Remote != nil && opts.Remote.Error != "" && runErr == nil || errors.Is(runErr, errUpstream) && opts.Remote != nil && opts.Remote.Error != "":
		man.Status = StatusFailed
		man.Error = opts.Remote.Error
		runErr = errors.New(opts.Remote.Error)
	case runErr != nil:
		man.Status = StatusFailed
		man.Error = runErr.Error()
	case len(man.Dropped) > 0:
		man.Status = StatusDegraded
	default:
		man.Status = StatusSucceeded
	}
	man.ExitCode = ExitCode(man.Status)
	rs.mu.Unlock()
	err = rs.writeManifest()
	replaced := errors.Is(err, ErrDirReplaced) // the reserve file there is another run's
	if err != nil && !replaced && freeReserve(dir) {
		// A full disk: the space set aside at the start takes the final manifest.
		err = rs.writeManifest()
	}
	if !replaced {
		freeReserve(dir)
	}
	if err != nil {
		// Without a manifest the run cannot be trusted, whatever its stages did.
		rs.mu.Lock()
		man.Status, man.Error = StatusFailed, err.Error()
		man.ExitCode = ExitCode(man.Status)
		rs.mu.Unlock()
		runErr = errors.Join(runErr, err)
	}
	ev := log.Info()
	if man.Status != StatusSucceeded {
		ev = log.Error()
	}
	ev.Str("status", man.Status).Float64("seconds", man.Seconds).Msg("run finished")
	return &Result{Dir: dir, Manifest: man}, runErr
}

// checkLogFile reports, once, that log.jsonl could no longer be written: in the manifest's
// warnings and on the log's other output (the file itself takes no more lines).
func (rs *runState) checkLogFile() {
	err := rs.logFile.failure()
	if err == nil {
		return
	}
	rs.mu.Lock()
	first := !rs.logReported
	rs.logReported = true
	rs.mu.Unlock()
	if first {
		rs.log.Error().Err(err).Msg("log.jsonl could not be written (a full disk?): the log file ends here; the manifest is still written")
		rs.mu.Lock()
		rs.man.Warnings = append(rs.man.Warnings, fmt.Sprintf("log.jsonl could not be written from %s on (%v): the log file is incomplete", time.Now().UTC().Format(time.RFC3339), err))
		rs.mu.Unlock()
	}
}

// levelWriter forwards log lines at or above min. Writes are serialised: stages log from
// several goroutines.
type levelWriter struct {
	mu  sync.Mutex
	w   io.Writer
	min zerolog.Level
}

func (w *levelWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (w *levelWriter) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	if level < w.min {
		return len(p), nil
	}
	return w.Write(p)
}

func (rs *runState) runStage(parent, ctx context.Context, st *stageState, opts RunOptions) (err error) {
	sc := st.cfg
	if rs.ownsDir != nil {
		// A stage writes into the run directory: not into one that replaced it.
		if err := rs.ownsDir(); err != nil {
			return err
		}
	}
	slog := rs.log.With().Str("stage", sc.Name).Str("kind", sc.Kind).Logger()
	st.sc = rs.newStageContext(st, opts, slog)
	st.started = time.Now()
	rs.setStatus(st, StatusRunning, "")
	slog.Debug().Msg("stage started")
	if opts.Progress != nil {
		opts.Progress(Event{Stage: sc.Name, Status: StatusRunning})
	}
	if e := rs.cache.hit(sc.Name); e != nil {
		restored, rerr := rs.restoreStage(parent, st, e, slog)
		if restored {
			return rs.endCached(st, e, rerr, opts, slog)
		}
		// Nothing was published: the stage runs, from a clean directory.
		if cerr := rs.cleanStageDir(sc.Name); cerr != nil {
			rerr = errors.Join(rerr, fmt.Errorf("clean its directory: %w", cerr))
		}
		slog.Warn().Err(rerr).Str("key", e.Key).Msg("could not read the stage back from the stage store: it runs")
		rs.mu.Lock()
		rs.man.Warnings = append(rs.man.Warnings, fmt.Sprintf("stage %s: its stored outputs (key %s) could not be read back (%v); it ran instead", sc.Name, e.Key, rerr))
		rs.mu.Unlock()
		st.waitedBefore += st.sc.waited()
		st.sc = rs.newStageContext(st, opts, slog)
	}
	switch {
	case rs.remote != nil:
		err = rs.remoteOutcome(st)
	case rs.only != nil && !rs.only[sc.Name]:
		key := ""
		if rs.cache != nil {
			key = rs.cache.keys[sc.Name]
		}
		err = fmt.Errorf("stage %q, which stage %s reads, is not in the stage store (key %q): its outputs are stored when it succeeds; run it first, with the same pipe build and store",
			sc.Name, rs.readerOf(sc.Name), key)
	case rs.part != nil:
		err = rs.runPart(ctx, st)
	default:
		err = rs.runAttempts(ctx, st, opts, slog)
	}
	// Classify the outcome: a stage stopped by another stage's failure or by the caller is not
	// itself a failure.
	status, msg := StatusSucceeded, ""
	switch {
	case err == nil:
	case errors.Is(err, errRemoteCanceled):
		status, msg = StatusCanceled, "canceled"
	case errors.Is(err, errUpstream):
		status, msg = StatusSkipped, err.Error()
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.Cause(ctx))):
		status, msg = StatusSkipped, "stopped: "+context.Cause(ctx).Error()
		if parent.Err() != nil {
			status, msg = StatusCanceled, "canceled"
		}
	default:
		status, msg = StatusFailed, err.Error()
		var de *DataError
		var ce *ConfigError
		var re *errRemote
		if !errors.As(err, &de) && !errors.As(err, &ce) && !errors.As(err, &re) {
			err = fmt.Errorf("stage %q: %w", sc.Name, err)
			msg = err.Error()
		}
	}
	rs.closeOutputs(st, err)
	if status == StatusFailed {
		rs.mu.Lock()
		st.err = err
		rs.mu.Unlock()
	}
	rs.collectStage(st, status, msg)
	if status == StatusSucceeded && rs.part == nil {
		// Stored before the tables may be released; a successful stage is stored even when
		// another stage has failed meanwhile (a later run, or a resumed one, reuses it).
		serr := rs.storeIfCacheable(parent, st, slog)
		if serr != nil && rs.only[sc.Name] {
			// Alone, the stage is for the stages after it: without its outputs stored, it failed.
			status, err = StatusFailed, fmt.Errorf("stage %q: %w", sc.Name, serr)
			rs.mu.Lock()
			st.err = err
			st.man.Status, st.man.Error = status, err.Error()
			rs.mu.Unlock()
		}
	}
	rs.mu.Lock()
	rs.outputsDoneLocked(st)
	rs.mu.Unlock()
	_ = rs.writeManifest() // logged; the final write decides
	if opts.Progress != nil {
		opts.Progress(Event{Stage: sc.Name, Status: status})
	}
	switch status {
	case StatusFailed:
		slog.Error().Err(err).Msg("stage failed")
	case StatusSucceeded:
		slog.Info().Float64("seconds", st.man.Seconds).Int64("rows_in", st.man.RowsIn).Int64("rows_out", st.man.RowsOut).Msg("stage done")
	}
	if status == StatusSkipped || status == StatusCanceled {
		return errUpstream
	}
	return err
}

// newStageContext returns a fresh context for one attempt of a stage.
func (rs *runState) newStageContext(st *stageState, opts RunOptions, slog zerolog.Logger) *StageContext {
	sc := st.cfg
	ctxStage := &StageContext{Config: sc, Name: sc.Name, Mem: rs.mem, Log: slog, Metrics: NewMetrics(), DataDir: opts.DataDir, run: rs, st: st}
	if rs.cache != nil {
		ctxStage.cacheKey = rs.cache.keys[sc.Name]
		ctxStage.freshStart = rs.cache.fresh[sc.Name]
	}
	if sc.Retries() > 0 {
		ctxStage.held = &heldOutputs{}
	}
	if opts.Progress != nil {
		ctxStage.progress = func(done, total int64, unit string) {
			opts.Progress(Event{Stage: sc.Name, Done: done, Total: total, Unit: unit})
		}
	}
	return ctxStage
}

// callStage runs one attempt of a stage, recovering a panic into an error.
func callStage(ctx context.Context, sc *StageContext) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stage %q: internal error (panic): %v\n%s", sc.Name, r, debug.Stack())
		}
	}()
	return sc.Config.stage.Run(ctx, sc)
}

// runAttempts runs a stage, and again after a failed attempt as its retries key allows: an
// attempt that failed with an error that is not a config error, not a cancellation and not an
// upstream failure is tried again from a clean stage directory after retryDelay. The outputs
// of a stage that declares retries are held until an attempt succeeds (StageContext.held), so
// that no other stage reads a failed attempt's rows: such a stage does not stream its tables
// to its readers. Every attempt of a stage that declares retries goes into its manifest
// entry's attempts.
func (rs *runState) runAttempts(ctx context.Context, st *stageState, opts RunOptions, slog zerolog.Logger) error {
	retries := st.cfg.Retries()
	for attempt := 0; ; attempt++ {
		begin := time.Now()
		err := callStage(ctx, st.sc)
		if h := st.sc.held; h != nil {
			if herr := h.release(rs, err == nil); err == nil {
				err = herr
			}
		}
		if retries > 0 {
			a := Attempt{StartedAt: begin.UTC(), Seconds: time.Since(begin).Seconds()}
			if err != nil {
				a.Error = err.Error()
			}
			rs.mu.Lock()
			st.man.Attempts = append(st.man.Attempts, a)
			rs.mu.Unlock()
		}
		if err == nil || attempt >= retries {
			return err
		}
		if why := rs.noRetry(ctx, st, err); why != "" {
			slog.Debug().Msgf("not retried: %s", why)
			return err
		}
		delay := retryDelay(st.cfg.RetryBackoff(), attempt)
		slog.Warn().Err(err).Int("attempt", attempt+1).Int("attempts", retries+1).Dur("retry_in", delay).Msg("stage attempt failed: retrying")
		st.waitedBefore += st.sc.waited()
		if cerr := rs.cleanStageDir(st.cfg.Name); cerr != nil {
			return errors.Join(err, fmt.Errorf("clean the stage directory for a retry: %w", cerr))
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
		st.sc = rs.newStageContext(st, opts, slog)
	}
}

// noRetry says why a failed attempt is not tried again, or "".
func (rs *runState) noRetry(ctx context.Context, st *stageState, err error) string {
	var ce *ConfigError
	switch {
	case ctx.Err() != nil:
		return "the run is stopping"
	case errors.Is(err, errUpstream):
		return "an input failed"
	case errors.As(err, &ce):
		return "a config error"
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, port := range st.cfg.outputs {
		select {
		case <-rs.slots[Ref{Stage: st.cfg.Name, Port: port.Name, Kind: port.Kind}].ready:
			return fmt.Sprintf("output %s was published: other stages may already have read it", port.Name)
		default:
		}
	}
	return ""
}

// retryDelay is the delay before retry number attempt+1: base, doubled per earlier retry,
// capped at MaxRetryBackoff. It is the same in every run (no jitter).
func retryDelay(base time.Duration, attempt int) time.Duration {
	d := base
	for i := 0; i < attempt && d < MaxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, MaxRetryBackoff)
}

// endCached ends a stage read back from the store (err: reading it back failed after its
// outputs were published, which fails the stage).
func (rs *runState) endCached(st *stageState, e *storeEntry, err error, opts RunOptions, slog zerolog.Logger) error {
	name := st.cfg.Name
	if err != nil {
		err = fmt.Errorf("stage %q: %w", name, err)
		rs.closeOutputs(st, err)
		rs.mu.Lock()
		st.err = err
		rs.mu.Unlock()
		rs.collectStage(st, StatusFailed, err.Error())
		rs.mu.Lock()
		st.man.CacheKey = e.Key
		rs.outputsDoneLocked(st)
		rs.mu.Unlock()
		_ = rs.writeManifest()
		if opts.Progress != nil {
			opts.Progress(Event{Stage: name, Status: StatusFailed})
		}
		slog.Error().Err(err).Msg("stage failed")
		return err
	}
	rs.closeOutputs(st, nil)
	rs.finishCached(st, e)
	if opts.Progress != nil {
		opts.Progress(Event{Stage: name, Status: StatusSucceeded})
	}
	if rec := st.man.Remote; rec != nil && !rec.Stored {
		slog.Info().Str("worker", rec.Worker).Int("attempts", rec.Attempts).Float64("seconds", st.man.Seconds).Msgf("stage ran on %s: outputs read back from the stage store", rs.remote.Engine)
		return nil
	}
	slog.Info().Str("key", e.Key).Float64("seconds", st.man.Seconds).Float64("saved_seconds", e.Seconds).Msg("stage cached: read back from the stage store")
	return nil
}

// closeOutputs closes the stage's output tables, fails the ports that were never produced,
// and releases the stage's hold on its inputs.
func (rs *runState) closeOutputs(st *stageState, err error) {
	sc := st.cfg
	rs.mu.Lock()
	for _, port := range sc.outputs {
		s := rs.slots[Ref{Stage: sc.Name, Port: port.Name, Kind: port.Kind}]
		select {
		case <-s.ready:
		default:
			if err != nil {
				s.err = errUpstream
			} else {
				s.err = fmt.Errorf("stage %q finished without producing %q", sc.Name, port.Name)
			}
			close(s.ready)
		}
		if s.table != nil {
			s.table.Close(func() error {
				if err != nil {
					return errUpstream
				}
				return nil
			}())
		}
	}
	rs.mu.Unlock()
	// This stage no longer reads its inputs: release tables nobody else needs.
	for _, ref := range sc.AllInputs() {
		rs.consumed(ref)
	}
}

func (rs *runState) consumed(ref Ref) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	s := rs.slots[ref]
	s.consumers--
	if s.consumers == 0 && s.producerDone && s.table != nil {
		s.table.Release()
	}
}

func (rs *runState) setStatus(st *stageState, status, msg string) {
	rs.mu.Lock()
	st.man.Status = status
	st.man.Error = msg
	rs.mu.Unlock()
	_ = rs.writeManifest() // logged; the final write decides
}

// collectStage fills a stage's manifest entry when it ends: status, time, rows, outputs,
// metrics, info and notes.
func (rs *runState) collectStage(st *stageState, status, msg string) {
	sc := st.sc
	rs.mu.Lock()
	defer rs.mu.Unlock()
	m := st.man
	m.Status, m.Error = status, msg
	total, waited := time.Since(st.started), st.waitedBefore+sc.waited()
	m.Seconds, m.WaitedSeconds = max(total-waited, 0).Seconds(), waited.Seconds()
	sc.readMu.Lock()
	m.RowsIn = sc.readRows
	sc.readMu.Unlock()
	m.RowsOut, m.Batches = 0, 0
	for _, port := range st.cfg.outputs {
		s := rs.slots[Ref{Stage: st.cfg.Name, Port: port.Name, Kind: port.Kind}]
		oi := OutputInfo{Kind: port.Kind.String()}
		if s.table != nil {
			oi.Rows, oi.Batches, oi.Split, oi.Spilled = s.table.Rows(), s.table.NumBatches(), s.table.Split(), s.table.Spilled()
			m.RowsOut += oi.Rows
			m.Batches += oi.Batches
		}
		if s.artifact != nil {
			oi.Type = s.artifact.ArtifactKind()
		}
		m.Outputs[port.Name] = oi
	}
	m.Metrics = sc.Metrics.Snapshot()
	sc.infoMu.Lock()
	// JSON has no NaN or Inf: such a metric (an AUC of a one-class split, a diverged loss) is
	// moved to a note that says so, never dropped silently.
	for k, v := range m.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(m.Metrics, k)
			sc.notes = append(sc.notes, fmt.Sprintf("metric %s is %v (not representable in the manifest's JSON)", k, v))
		}
	}
	if len(sc.info) > 0 {
		m.Info = sc.info
	}
	m.Notes = sc.notes
	m.Dropped = sc.degraded
	for _, d := range sc.degraded {
		rs.man.Dropped = append(rs.man.Dropped, st.cfg.Name+": "+d)
	}
	sc.infoMu.Unlock()
}

// outputsDoneLocked marks the stage's outputs as no longer written: a table whose readers are
// all done (or that nobody reads) is released now. rs.mu is held.
func (rs *runState) outputsDoneLocked(st *stageState) {
	for _, port := range st.cfg.outputs {
		s := rs.slots[Ref{Stage: st.cfg.Name, Port: port.Name, Kind: port.Kind}]
		s.producerDone = true
		if s.consumers == 0 && s.table != nil {
			s.table.Release()
		}
	}
}

// writeManifest writes manifest.json atomically, with a fresh heartbeat_at. The first failure
// is logged (later ones are not: a full disk would repeat it at every stage event); the run's
// final write also returns it, so that a run whose manifest could not be written does not
// report success.
func (rs *runState) writeManifest() error {
	rs.writeMu.Lock()
	defer rs.writeMu.Unlock()
	rs.mu.Lock()
	now := time.Now().UTC()
	rs.man.HeartbeatAt = &now
	b, err := json.MarshalIndent(rs.man, "", "  ")
	rs.mu.Unlock()
	if err == nil && rs.ownsDir != nil {
		err = rs.ownsDir()
	}
	if err == nil {
		err = rs.writeFile(filepath.Join(rs.dir, "manifest.json"), append(b, '\n'))
	}
	if err != nil {
		if !rs.writeFailed {
			rs.writeFailed = true
			rs.log.Error().Err(err).Msg("write manifest.json")
		}
		return fmt.Errorf("write manifest.json: %w", err)
	}
	return nil
}

func moduleVersions() map[string]string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	out := map[string]string{"main": bi.Main.Version}
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/apache/arrow-go/v18", "gonum.org/v1/gonum", "github.com/pelletier/go-toml/v2", "github.com/rs/zerolog":
			out[d.Path] = d.Version
		}
	}
	return out
}
