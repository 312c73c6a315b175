package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"

	"github.com/rs/zerolog"
)

// Spreading a run over several processes.
//
// An engine that runs a pipeline on several machines (pipe's Temporal engine, package cluster)
// does it with three things of this package, and stages do not know which engine runs them:
//
//   - PlanStore tells, before anything runs, every stage's key in the stage store, which
//     stages are there already (they do not run) and which stages split into parts.
//   - Run with RunOptions.Only runs one stage alone, in a process of its own: the stages it
//     reads from are read back from the store, and its outputs go to the store, which is how
//     the stages after it, in other processes, get them. With RunOptions.Part it runs one part
//     of a PartedStage (an ensemble's member), whose result is saved as a checkpoint of the
//     stage; the stage itself, run after all its parts, finds them there and does the rest.
//     The parts of a SteppedStage (a search's trials) run in segments, as its ReadyParts
//     (the function of the same name) allows.
//   - Run with RunOptions.Remote writes the run directory of a run that ran elsewhere: every
//     stage that succeeded is read back from the store, and the others are recorded with the
//     status and error the engine reports.
//
// Everything that crosses between the processes goes through the store; the engine passes
// only the pipeline, stage names, part numbers and keys.

// PartedStage is a Stage whose work splits into independent parts that an engine may run
// apart, in other processes or on other machines: the members of an ensemble. An engine that
// spreads a run calls RunPart once for every part (in any order, concurrently, and again after
// a failed or interrupted attempt), and then Run, which finds the parts' results where RunPart
// saved them (the stage's checkpoints: StageContext.SaveCheckpoint) and does the rest; the
// outputs must be those of a Run alone, bit for bit. The local engine only calls Run.
type PartedStage interface {
	Stage
	// Parts returns the number of parts of the stage (0: it does not split).
	Parts() int
	// RunPart does part i (0 ≤ i < Parts()) and saves its result as a checkpoint of the stage.
	// It publishes no output.
	RunPart(ctx context.Context, sc *StageContext, part int) error
}

// SteppedStage is a PartedStage whose parts may have to wait for each other: a search's
// trials, which wait for the trials they are drawn from (the rounds before theirs, or the
// trials below them with the TPE sampler) and, at a pruning decision, for the trials below
// them. An engine asks ReadyParts which parts can make
// progress now and runs those (RunPart); a RunPart that reaches a point where it would wait
// saves its state as a checkpoint and returns (nil), and a later RunPart of the same part,
// once ReadyParts lists it again, continues from there. The engine repeats until ReadyParts
// says every part is done, then calls Run, as for a PartedStage. No RunPart ever waits for
// another, so no number of workers, order or lost attempt can deadlock the stage, and the
// outputs must be those of a Run alone, bit for bit.
type SteppedStage interface {
	PartedStage
	// ReadyParts reads the stage's checkpoints (sc.LoadCheckpoint) and returns the parts that
	// can make progress now, in increasing order (those running now among them), and how many
	// parts have finished (all Parts(): the parts are done, and ready is empty). sc has the
	// stage's Config, Name, Log, Seed and checkpoints only: no inputs, outputs or directory.
	ReadyParts(ctx context.Context, sc *StageContext) (ready []int, finished int, err error)
}

// ReadyParts calls the ReadyParts of the named SteppedStage with its checkpoints in
// opts.Store (which must be set), under the stage's key as PlanStore computes it; the stage
// logs to log.
func ReadyParts(ctx context.Context, p *Pipeline, opts RunOptions, stage string, log zerolog.Logger) (ready []int, finished int, err error) {
	if opts.Store == nil {
		return nil, 0, errors.New("ready parts: no stage store")
	}
	sc, ok := p.byName[stage]
	if !ok {
		return nil, 0, fmt.Errorf("ready parts: no stage %q in pipeline %s", stage, p.Name)
	}
	ss, ok := sc.stage.(SteppedStage)
	if !ok {
		return nil, 0, fmt.Errorf("ready parts: stage %s (kind %s) does not run in steps", stage, sc.Kind)
	}
	keys, problems := stageKeys(ctx, p, keyEnv{version: opts.Version, buildID: opts.BuildID, dataDir: opts.DataDir})
	if err := problems[stage]; err != nil {
		return nil, 0, fmt.Errorf("ready parts: stage %s has no key in the stage store: %w", stage, err)
	}
	ctxStage := &StageContext{Config: sc, Name: sc.Name, Log: log.With().Str("stage", stage).Logger(), Metrics: NewMetrics(), DataDir: opts.DataDir,
		run: &runState{p: p, store: opts.Store, onCheckpoint: opts.OnCheckpoint}, cacheKey: keys[stage]}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stage %q: ready parts: internal error (panic): %v\n%s", stage, r, debug.Stack())
		}
	}()
	return ss.ReadyParts(ctx, ctxStage)
}

// StorePlan is what the stage store holds of a pipeline before it runs: see PlanStore.
type StorePlan struct {
	Stages []StagePlan
}

// StagePlan is one stage in a StorePlan.
type StagePlan struct {
	Name string
	Kind string
	// Inputs are the stages it reads from, in the order of AllInputs, without repeats.
	Inputs []string
	// Key is the stage's key in the stage store ("" when it cannot be computed: Problem says
	// why, and the stage cannot run spread).
	Key     string
	Problem string
	// Stored: the stage's outputs are in the store under Key and it does not run (a cache
	// hit, as Run would decide with the same options).
	Stored bool
	// Parts is the number of parts of a PartedStage (0: none).
	Parts int
	// Stepped: the stage is a SteppedStage (its parts run as ReadyParts allows).
	Stepped bool
}

// Stage returns the plan of the named stage.
func (sp *StorePlan) Stage(name string) (StagePlan, bool) {
	for _, s := range sp.Stages {
		if s.Name == name {
			return s, true
		}
	}
	return StagePlan{}, false
}

// PlanStore computes every stage's key in opts.Store (which must be set) and looks it up, as
// Run does before its stages start, with the same options (NoCache, Refresh, the stages' cache
// keys): a stage whose outputs are there is Stored. It changes nothing in the store.
func PlanStore(ctx context.Context, p *Pipeline, opts RunOptions) (*StorePlan, error) {
	if opts.Store == nil {
		return nil, errors.New("plan: no stage store")
	}
	keys, problems := stageKeys(ctx, p, keyEnv{version: opts.Version, buildID: opts.BuildID, dataDir: opts.DataDir})
	refresh := downstreamOf(p, opts.Refresh)
	plan := &StorePlan{}
	for _, sc := range p.Stages {
		sp := StagePlan{Name: sc.Name, Kind: sc.Kind, Key: keys[sc.Name]}
		for _, r := range sc.AllInputs() {
			if !slices.Contains(sp.Inputs, r.Stage) {
				sp.Inputs = append(sp.Inputs, r.Stage)
			}
		}
		if ps, ok := sc.stage.(PartedStage); ok {
			sp.Parts = ps.Parts()
			_, sp.Stepped = sc.stage.(SteppedStage)
			sp.Stepped = sp.Stepped && sp.Parts > 0
		}
		if err := problems[sc.Name]; err != nil {
			sp.Problem = err.Error()
		} else if !opts.NoCache && sc.Spec.Cacheable && sc.Cache() && !refresh[sc.Name] {
			e, _, err := readEntry(ctx, opts.Store, sp.Key, sc.Kind)
			if err != nil {
				return nil, fmt.Errorf("plan: read the stage store for stage %s: %w", sc.Name, err)
			}
			sp.Stored = e != nil
		}
		plan.Stages = append(plan.Stages, sp)
	}
	return plan, nil
}

// only returns the pipeline cut down to the named stages and the stages they read from,
// directly or not, in their order.
func (p *Pipeline) only(names ...string) (*Pipeline, error) {
	keep := map[string]bool{}
	for _, name := range names {
		if _, ok := p.byName[name]; !ok {
			return nil, fmt.Errorf("no stage %q in pipeline %s", name, p.Name)
		}
		keep[name] = true
	}
	for changed := true; changed; {
		changed = false
		for _, sc := range p.Stages {
			if !keep[sc.Name] {
				continue
			}
			for _, r := range sc.AllInputs() {
				if !keep[r.Stage] {
					keep[r.Stage], changed = true, true
				}
			}
		}
	}
	q := *p
	q.Stages, q.byName = nil, map[string]*StageConfig{}
	for _, sc := range p.Stages {
		if keep[sc.Name] {
			q.Stages = append(q.Stages, sc)
			q.byName[sc.Name] = sc
		}
	}
	return &q, nil
}

// RemoteRun is how a run that an engine spread over other processes went, as the engine
// reports it (RunOptions.Remote): Run writes its run directory from it and the store.
type RemoteRun struct {
	// Engine names the engine ("temporal"); the rest identify the run there.
	Engine     string `json:"engine"`
	Address    string `json:"address,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	TaskQueue  string `json:"task_queue,omitempty"`
	WorkflowID string `json:"workflow_id,omitempty"`
	RunID      string `json:"workflow_run_id,omitempty"`
	// Seconds is the remote run's wall time, from submission to its end.
	Seconds float64 `json:"seconds"`
	// MaxPayloadBytes is the largest payload the engine sent or received for the run.
	MaxPayloadBytes int `json:"max_payload_bytes,omitempty"`
	// Canceled: the run was canceled (its stages' statuses say where it stopped).
	Canceled bool `json:"canceled,omitempty"`
	// Error is why the run failed there when no stage's error says it (the engine could not
	// plan or start it).
	Error string `json:"error,omitempty"`
	// Stages is each stage's record, by name; a stage without one never started.
	Stages map[string]*RemoteStage `json:"-"`
}

// RemoteStage is how one stage of a RemoteRun went.
type RemoteStage struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Stored: the stage did not run: its outputs were in the store before the run.
	Stored bool `json:"stored,omitempty"`
	// Worker is the process that ran the stage (its last attempt); Attempts how many attempts
	// it took; Seconds the last attempt's time there.
	Worker   string       `json:"worker,omitempty"`
	Attempts int          `json:"attempts,omitempty"`
	Seconds  float64      `json:"seconds,omitempty"`
	Parts    []RemotePart `json:"parts,omitempty"`
}

// RemotePart is how one part of a PartedStage went.
type RemotePart struct {
	Part     int     `json:"part"`
	Worker   string  `json:"worker,omitempty"`
	Attempts int     `json:"attempts"`
	Seconds  float64 `json:"seconds"`
	// Segments is how many activities a part of a SteppedStage took (each ran it until it
	// paused or finished), and Workers the processes that ran them, in order (0 and nil for
	// a PartedStage's parts: Worker and Attempts say it).
	Segments int      `json:"segments,omitempty"`
	Workers  []string `json:"workers,omitempty"`
	// Resumed lists, per attempt after the first, the checkpoint it continued from (its
	// name and epoch as the stage reported them), or "" when it started from the beginning.
	Resumed []string `json:"resumed,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// errRemoteCanceled is a stage of a remote run that was canceled there.
var errRemoteCanceled = errors.New("canceled")

// errRemote is a stage that failed elsewhere, as the engine reported it.
type errRemote struct{ stage, msg string }

func (e *errRemote) Error() string { return e.msg }

// remoteOutcome ends, without running it, a stage of a remote run that is not in the store.
func (rs *runState) remoteOutcome(st *stageState) error {
	rec := rs.remote.Stages[st.cfg.Name]
	switch {
	case rec == nil || rec.Status == "" || rec.Status == StatusPending || rec.Status == StatusSkipped:
		return errUpstream
	case rec.Status == StatusCanceled:
		return errRemoteCanceled
	case rec.Status == StatusFailed:
		return &errRemote{stage: st.cfg.Name, msg: rec.Error}
	default:
		key := ""
		if rs.cache != nil {
			key = rs.cache.keys[st.cfg.Name]
		}
		return fmt.Errorf("stage %q %s on %s, but its outputs are not in the stage store under key %s: is every worker and this client the same pipe build, on the same store?",
			st.cfg.Name, rec.Status, rs.remote.Engine, key)
	}
}

// runPart runs part *rs.part of a PartedStage (RunOptions.Part), recovering a panic.
func (rs *runState) runPart(ctx context.Context, st *stageState) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stage %q: part %d: internal error (panic): %v\n%s", st.cfg.Name, *rs.part, r, debug.Stack())
		}
	}()
	return st.cfg.stage.(PartedStage).RunPart(ctx, st.sc, *rs.part)
}

// Engine runs a pipeline: Local runs it in this process (Run); package cluster's Engine on
// Temporal's workers. Both write the same run directory, and stages do not know which one
// runs them.
type Engine interface {
	Run(ctx context.Context, p *Pipeline, opts RunOptions) (*Result, error)
}

// Local is the engine that runs a pipeline in this process: Run.
type Local struct{}

// Run calls Run.
func (Local) Run(ctx context.Context, p *Pipeline, opts RunOptions) (*Result, error) {
	return Run(ctx, p, opts)
}

// readerOf names, quoted, a stage of rs.only that reads the named stage's outputs, directly or
// not.
func (rs *runState) readerOf(name string) string {
	for _, sc := range rs.p.Stages {
		if rs.only[sc.Name] && downstreamOf(rs.p, []string{name})[sc.Name] {
			return fmt.Sprintf("%q", sc.Name)
		}
	}
	return "(none)"
}
