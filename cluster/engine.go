package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/pipe-ml/pipe/pipeline"
)

// Engine runs pipelines on Temporal: it implements the same contract as pipeline.Run (a
// pipeline.Engine), so that `pipe run --engine temporal` writes the same run directory, with
// the same statuses and exit codes, as a local run.
type Engine struct {
	// Client is connected to the Temporal frontend (Dial).
	Client client.Client
	// Address and Namespace name it in the manifest; TaskQueue defaults to DefaultTaskQueue.
	Address, Namespace, TaskQueue string
	// Log receives the engine's own lines (submitted, canceled...).
	Log zerolog.Logger
	// Poll is how often the client asks the workflow for its progress. Default 1s.
	Poll time.Duration

	meter *payloadMeter
}

// Dial connects to Temporal with pipe's data converter (which measures payloads).
func Dial(hostPort, namespace string, log zerolog.Logger) (*Engine, error) {
	if namespace == "" {
		namespace = "default"
	}
	m := &payloadMeter{}
	c, err := client.Dial(client.Options{HostPort: hostPort, Namespace: namespace, Logger: newTemporalLogger(log), DataConverter: m.dataConverter()})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", hostPort, err)
	}
	return &Engine{Client: c, Address: hostPort, Namespace: namespace, Log: log, meter: m}, nil
}

// Close closes the client.
func (e *Engine) Close() { e.Client.Close() }

func (e *Engine) queue() string {
	if e.TaskQueue == "" {
		return DefaultTaskQueue
	}
	return e.TaskQueue
}

// WorkflowID is the id of a run's workflow.
func WorkflowID(pipelineName, runID string) string { return "pipe-" + pipelineName + "-" + runID }

// Input prepares a run's workflow input: it puts the pipeline into the store. opts are those
// of pipeline.Run (Store, Version, BuildID, DataDir, NoCache, Refresh, Overrides, RunID).
func Input(ctx context.Context, p *pipeline.Pipeline, opts pipeline.RunOptions) (RunInput, error) {
	if opts.Store == nil {
		return RunInput{}, errors.New("a run on Temporal needs a stage store that every worker shares (--store)")
	}
	runID := opts.RunID
	if runID == "" {
		runID = pipeline.NewRunID(time.Now())
	}
	key, err := putConfig(ctx, opts.Store, runID, p)
	if err != nil {
		return RunInput{}, err
	}
	return RunInput{RunID: runID, Pipeline: p.Name, ConfigKey: key, ConfigFile: p.File, ConfigDir: p.Dir, Overrides: opts.Overrides,
		Version: opts.Version, BuildID: opts.BuildID, DataDir: opts.DataDir, NoCache: opts.NoCache, Refresh: opts.Refresh,
		Settings: ParseSettings(p.Temporal), Store: opts.StoreLocation}, nil
}

// Submit starts a run's workflow and returns its id and run id at once (pipe run --detach).
// recordDir is where a worker writes the run directory when the run ends (a runs directory
// on the workers' shared filesystem).
func (e *Engine) Submit(ctx context.Context, p *pipeline.Pipeline, opts pipeline.RunOptions, recordDir string) (client.WorkflowRun, error) {
	in, err := Input(ctx, p, opts)
	if err != nil {
		return nil, err
	}
	in.RecordDir = recordDir
	return e.start(ctx, in)
}

func (e *Engine) start(ctx context.Context, in RunInput) (client.WorkflowRun, error) {
	run, err := e.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: WorkflowID(in.Pipeline, in.RunID), TaskQueue: e.queue(),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE}, WorkflowName, in)
	if err != nil {
		return nil, fmt.Errorf("start the workflow on Temporal at %s: %w", e.Address, err)
	}
	return run, nil
}

// Run runs p on Temporal and writes its run directory here, as pipeline.Run does for a local
// run (opts are pipeline.Run's; Store is required and must be the workers' store). It shows
// progress through opts.Progress while the workflow runs. Canceling ctx cancels the workflow
// and its activities; the run then ends canceled.
func (e *Engine) Run(ctx context.Context, p *pipeline.Pipeline, opts pipeline.RunOptions) (*pipeline.Result, error) {
	if opts.Store == nil && opts.OpenStore != nil {
		s, err := opts.OpenStore(ctx)
		if err != nil {
			return nil, &pipeline.RefusedError{Reason: "the stage store cannot be opened", Err: err}
		}
		opts.Store, opts.OpenStore = s, nil
	}
	if opts.RunID == "" {
		opts.RunID = pipeline.NewRunID(time.Now())
	}
	in, err := Input(ctx, p, opts)
	if err != nil {
		return nil, &pipeline.RefusedError{Reason: err.Error()}
	}
	begin := time.Now()
	run, err := e.start(ctx, in)
	if err != nil {
		return nil, &pipeline.RefusedError{Reason: err.Error()}
	}
	e.Log.Info().Str("workflow", run.GetID()).Str("temporal", e.Address).Str("task_queue", e.queue()).Msg("submitted to Temporal")
	res, canceled, err := e.wait(ctx, run, opts.Progress)
	if err != nil {
		res = &RunResult{Error: err.Error()}
	}
	remote := &pipeline.RemoteRun{Error: res.Error, Engine: "temporal", Address: e.Address, Namespace: e.Namespace, TaskQueue: e.queue(),
		WorkflowID: run.GetID(), RunID: run.GetRunID(), Seconds: time.Since(begin).Seconds(), Canceled: canceled,
		MaxPayloadBytes: max(res.MaxPayloadBytes, e.meter.max()), Stages: res.Stages}
	opts.Remote = remote
	opts.Progress = nil // the workflow's progress was shown
	// The run directory is written even when ctx was canceled: the run must say it was.
	return pipeline.Run(context.WithoutCancel(ctx), p, opts)
}

// wait follows the workflow to its end, sending progress events; when ctx ends it cancels the
// workflow and waits for it to stop. It returns the run's result (also of a failed or
// canceled run), whether it was canceled, and an error only when the result cannot be had.
func (e *Engine) wait(ctx context.Context, run client.WorkflowRun, progress func(pipeline.Event)) (*RunResult, bool, error) {
	poll := e.Poll
	if poll <= 0 {
		poll = time.Second
	}
	result := make(chan error, 1)
	var res RunResult
	bg := context.WithoutCancel(ctx)
	go func() {
		for {
			// Get long-polls; a poll that times out (a run longer than the server's poll
			// limit) is not the run's end.
			err := run.Get(bg, &res)
			if err != nil && (errors.Is(err, context.DeadlineExceeded) || isUnavailable(err)) {
				time.Sleep(time.Second)
				continue
			}
			result <- err
			return
		}
	}()
	started := time.Now()
	pollersChecked := false
	seen := map[string]StageProgress{}
	t := time.NewTicker(poll)
	defer t.Stop()
	cancelSent := false
	for {
		select {
		case err := <-result:
			e.report(bg, run, progress, seen)
			return e.outcome(&res, err)
		case <-ctx.Done():
			if !cancelSent {
				cancelSent = true
				e.Log.Warn().Str("workflow", run.GetID()).Msg("canceling the workflow and its activities")
				if err := e.Client.CancelWorkflow(bg, run.GetID(), run.GetRunID()); err != nil {
					e.Log.Error().Err(err).Msg("could not cancel the workflow")
				}
			}
			ctx = context.Background() // wait for the workflow to stop
		case <-t.C:
			e.report(bg, run, progress, seen)
			if !pollersChecked && time.Since(started) > 10*time.Second {
				pollersChecked = true
				e.checkPollers(bg)
			}
		}
	}
}

// report queries the workflow's progress and sends what changed as events.
func (e *Engine) report(ctx context.Context, run client.WorkflowRun, progress func(pipeline.Event), seen map[string]StageProgress) {
	if progress == nil {
		return
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := e.Client.QueryWorkflow(qctx, run.GetID(), run.GetRunID(), QueryProgress)
	if err != nil {
		return
	}
	var p Progress
	if err := v.Get(&p); err != nil {
		return
	}
	for _, name := range p.Order {
		s := p.Stages[name]
		old, ok := seen[name]
		if ok && old == s {
			continue
		}
		seen[name] = s
		if s.Parts > 0 && s.Done != old.Done {
			progress(pipeline.Event{Stage: name, Done: int64(s.Done), Total: int64(s.Parts), Unit: s.Unit})
		}
		if !ok || s.Status != old.Status {
			if s.Status != pipeline.StatusPending {
				progress(pipeline.Event{Stage: name, Status: s.Status})
			}
		}
	}
}

// outcome takes the run's result from the workflow's end.
func (e *Engine) outcome(res *RunResult, err error) (*RunResult, bool, error) {
	if err == nil {
		return res, false, nil
	}
	var ce *temporal.CanceledError
	if errors.As(err, &ce) {
		var r RunResult
		if ce.HasDetails() && ce.Details(&r) == nil {
			return &r, true, nil
		}
		return &RunResult{Status: pipeline.StatusCanceled}, true, nil
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.Type() == ErrTypeStageFailed && ae.HasDetails() {
		var r RunResult
		if ae.Details(&r) == nil {
			return &r, false, nil
		}
	}
	return nil, false, fmt.Errorf("the run on Temporal failed: %s", rootMessage(err))
}

// rootMessage is the message of the innermost application error in err (the activity's own
// words, without the wrappers Temporal adds), or err's message.
func rootMessage(err error) string {
	msg := err.Error()
	prefix := ""
	for e := err; e != nil; e = errors.Unwrap(e) {
		var ae *temporal.ApplicationError
		if errors.As(e, &ae) {
			msg = ae.Message()
			if prefix == "" && strings.Contains(err.Error(), "plan the run") {
				prefix = "plan the run: "
			}
			e = ae
		}
	}
	return prefix + msg
}

// isUnavailable reports a server that cannot be reached now (restarting).
func isUnavailable(err error) bool {
	var u *serviceerror.Unavailable
	return errors.As(err, &u)
}

// checkPollers warns when no worker polls the run's task queue: the run waits for one.
func (e *Engine) checkPollers(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := e.Client.DescribeTaskQueue(qctx, e.queue(), enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil || len(resp.GetPollers()) > 0 {
		return
	}
	e.Log.Warn().Str("task_queue", e.queue()).Str("temporal", e.Address).
		Msg("no pipe worker polls this task queue: the run waits until one does (start one with pipe worker --temporal ... --store ...)")
}
