package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/pipe-ml/pipe/pipeline"
)

// activities are what a worker runs. Their methods are registered under the activity names.
type activities struct {
	reg      *pipeline.Registry
	store    pipeline.Store
	storeURL string
	version  string
	buildID  string
	workDir  string
	identity string
	log      zerolog.Logger
	logOut   io.Writer // the worker's console, for the stages' logs (nil: none)
	payloads *payloadMeter
	tables   *pipeline.TableCache // nil: none
}

// load reads the run's pipeline from the store.
func (a *activities) load(ctx context.Context, in RunInput) (*pipeline.Pipeline, error) {
	r, err := a.store.Get(ctx, in.ConfigKey)
	if err != nil {
		if errors.Is(err, pipeline.ErrNotFound) {
			return nil, setupError(fmt.Errorf("the run's pipeline (%s) is not in this worker's stage store %s: the client (store %s) and every worker must use the same store", in.ConfigKey, a.storeURL, in.Store))
		}
		return nil, fmt.Errorf("read the run's pipeline from the store: %w", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read the run's pipeline from the store: %w", err)
	}
	p, err := pipeline.Parse(b, in.ConfigFile, in.ConfigDir, a.reg, pipeline.LoadOptions{})
	if err != nil {
		return nil, setupError(fmt.Errorf("the run's pipeline does not load on this worker (does it know every stage kind? `pipe worker` has the built-in kinds; a program's own kinds need its own worker): %w", err))
	}
	return p, nil
}

func setupError(err error) error {
	return temporal.NewNonRetryableApplicationError(clip(err.Error()), ErrTypeSetup, nil)
}

// runOptions are the options every activity's pipeline.Run shares.
func (a *activities) runOptions(in RunInput) pipeline.RunOptions {
	return pipeline.RunOptions{Store: a.store, StoreLocation: a.storeURL, Version: a.version, BuildID: a.buildID,
		DataDir: in.DataDir, NoCache: in.NoCache, Refresh: in.Refresh, Overrides: in.Overrides, RunID: in.RunID, TableCache: a.tables}
}

// Plan plans the run (pipeline.PlanStore).
func (a *activities) Plan(ctx context.Context, in RunInput) (*Plan, error) {
	if (in.Version != "" || in.BuildID != "") && (in.Version != a.version || in.BuildID != a.buildID) { // none: a schedule's run, on the workers' build
		return nil, setupError(fmt.Errorf("this worker is pipe %s (build %.12s), the client pipe %s (build %.12s): stages' keys would differ; run the same pipe build everywhere",
			a.version, a.buildID, in.Version, in.BuildID))
	}
	p, err := a.load(ctx, in)
	if err != nil {
		return nil, err
	}
	plan, err := pipeline.PlanStore(ctx, p, a.runOptions(in))
	if err != nil {
		return nil, err
	}
	return &Plan{Stages: plan.Stages}, nil
}

// Stage runs one stage (or one part of it) alone, heartbeating with its last checkpoint.
func (a *activities) Stage(ctx context.Context, t StageTask) (*StageResult, error) {
	info := activity.GetInfo(ctx)
	res := &StageResult{Worker: a.identity, Attempt: int(info.Attempt)}
	var prev heartbeat
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil && prev.Checkpoint != "" {
			res.Resumed = prev.Name
		}
	}
	what := "stage " + strings.Join(t.Stages, ", ")
	if len(t.Stages) > 1 {
		what = "stages " + strings.Join(t.Stages, ", ")
	}
	if t.Part != nil {
		what = fmt.Sprintf("%s part %d", what, *t.Part)
	}
	log := a.log.With().Str("workflow", info.WorkflowExecution.ID).Str("activity", what).Int("attempt", res.Attempt).Logger()
	if res.Resumed != "" {
		log.Info().Str("checkpoint", prev.Checkpoint).Msg("attempt after a lost one: continues from the checkpoint of the last heartbeat")
	}
	setup := time.Now()
	p, err := a.load(ctx, t.Run)
	if err != nil {
		return res, err
	}
	opts := a.runOptions(t.Run)
	plan, err := pipeline.PlanStore(ctx, p, opts)
	if err != nil {
		return res, err
	}
	if len(t.Keys) != len(t.Stages) {
		return res, setupError(fmt.Errorf("%s: %d keys for %d stages", what, len(t.Keys), len(t.Stages)))
	}
	for i, name := range t.Stages {
		if sp, ok := plan.Stage(name); !ok || sp.Key != t.Keys[i] {
			return res, setupError(fmt.Errorf("stage %s: this worker computes the key %q, the plan %q: every worker must be the same pipe build and see the same data", name, sp.Key, t.Keys[i]))
		}
	}
	dir, err := os.MkdirTemp(a.workDir, "pipe-activity-")
	if err != nil {
		return res, fmt.Errorf("a work directory: %w", err)
	}
	defer os.RemoveAll(dir)

	var mu sync.Mutex
	hb := prev
	beat := func() {
		mu.Lock()
		d := hb
		mu.Unlock()
		activity.RecordHeartbeat(ctx, d)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		every := info.HeartbeatTimeout / 3
		if every <= 0 || every > 10*time.Second {
			every = 10 * time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				beat()
			case <-stop:
				return
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	opts.Dir = filepath.Join(dir, "run")
	opts.Only, opts.Part = t.Stages, t.Part
	opts.OnCheckpoint = func(stage, name, key string) {
		mu.Lock()
		hb = heartbeat{Checkpoint: key, Name: name}
		mu.Unlock()
		beat() // at once: a worker that dies next leaves this checkpoint to the next attempt
	}
	if a.logOut != nil {
		opts.LogWriter = a.logOut
	}
	log.Info().Float64("setup_seconds", time.Since(setup).Seconds()).Msg("started")
	begin := time.Now()
	out, runErr := pipeline.Run(ctx, p, opts)
	res.Seconds = time.Since(begin).Seconds()
	res.MaxPayloadBytes = a.payloads.max()
	if out != nil && out.Manifest != nil {
		var failed []string
		if t.Part == nil {
			res.Stages = map[string]StageOutcome{}
		}
		for _, name := range t.Stages {
			st := out.Manifest.Stages[name]
			if st == nil {
				continue
			}
			if n, ok := st.Info["resumed_from_epoch"].(int); ok {
				res.ResumedEpoch = n
			}
			if res.Stages != nil {
				res.Stages[name] = StageOutcome{Status: st.Status, Seconds: st.Seconds, Error: clip(st.Error)}
			}
			if st.Status == pipeline.StatusFailed {
				failed = append(failed, st.Error)
			}
		}
		if runErr != nil && len(failed) > 0 && ctx.Err() == nil {
			log.Error().Str("error", failed[0]).Msg("failed")
			return res, temporal.NewNonRetryableApplicationError(clip(failed[0]), ErrTypeStageFailed, nil, res)
		}
	}
	switch {
	case ctx.Err() != nil:
		log.Info().Msg("canceled")
		return res, ctx.Err()
	case runErr != nil:
		var re *pipeline.RefusedError
		if errors.As(runErr, &re) {
			return res, fmt.Errorf("%s: %w", what, runErr) // this worker's problem: another may do
		}
		// An input that is not in the store, or a stage that failed before this one.
		return res, temporal.NewNonRetryableApplicationError(clip(fmt.Sprintf("%s: %v", what, runErr)), ErrTypeStageFailed, nil, res)
	}
	done := log.Info().Float64("seconds", res.Seconds)
	if a.tables != nil {
		st := a.tables.Stats()
		done = done.Int64("table_cache_hits", st.Hits).Int64("table_cache_misses", st.Misses).Int64("table_cache_bytes", st.Bytes).
			Int64("dense_cache_hits", st.ValueHits).Int64("dense_cache_misses", st.ValueMisses).Int64("dense_cache_bytes", st.ValueBytes)
	}
	done.Msg("done")
	return res, nil
}

// Ready returns the parts of a stepped stage (a search's trials) that can make progress now:
// pipeline.ReadyParts, from the stage's checkpoints in the store.
func (a *activities) Ready(ctx context.Context, t ReadyTask) (*ReadyResult, error) {
	p, err := a.load(ctx, t.Run)
	if err != nil {
		return nil, err
	}
	info := activity.GetInfo(ctx)
	log := a.log.With().Str("workflow", info.WorkflowExecution.ID).Logger()
	ready, finished, err := pipeline.ReadyParts(ctx, p, a.runOptions(t.Run), t.Stage, log)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(clip(fmt.Sprintf("stage %s: %v", t.Stage, err)), ErrTypeStageFailed, nil)
	}
	return &ReadyResult{Parts: ready, Finished: finished}, nil
}

// Record writes the run directory of a run no client waits for, under in.RecordDir, and
// returns it.
func (a *activities) Record(ctx context.Context, in RunInput, r *RunResult) (string, error) {
	p, err := a.load(ctx, in)
	if err != nil {
		return "", err
	}
	opts := a.runOptions(in)
	opts.RunsDir = in.RecordDir
	info := activity.GetInfo(ctx)
	opts.Remote = &pipeline.RemoteRun{Engine: "temporal", Namespace: info.Namespace, TaskQueue: info.TaskQueue,
		WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, Canceled: r.Status == pipeline.StatusCanceled,
		MaxPayloadBytes: r.MaxPayloadBytes, Stages: r.Stages}
	out, err := pipeline.Run(context.WithoutCancel(ctx), p, opts)
	if out == nil {
		return "", err
	}
	return out.Dir, nil
}

// putConfig stores a pipeline's resolved config for the workers and returns its key.
func putConfig(ctx context.Context, s pipeline.Store, runID string, p *pipeline.Pipeline) (string, error) {
	key := "runs/" + p.Name + "/" + runID + "/pipeline.toml"
	if err := s.Put(ctx, key, bytes.NewReader(p.Resolved())); err != nil {
		return "", fmt.Errorf("put the pipeline into the stage store: %w", err)
	}
	return key, nil
}
