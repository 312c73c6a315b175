package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/pipe-ml/pipe/pipeline"
)

// RunWorkflow is the workflow of a pipe run (WorkflowName). It plans the run, runs every stage
// that is not in the store as an activity once its inputs have succeeded (an ensemble's members
// first, one activity each), and returns how each stage went. The first stage that fails
// cancels the activities still running, as a local run does; so does canceling the workflow.
// A failed or canceled run returns an error whose details are its RunResult.
//
// An empty in.RunID (a schedule's runs: one input for all of them) gets the id of
// WorkflowRunID, and every activity gets it with the input.
func RunWorkflow(ctx workflow.Context, in RunInput) (*RunResult, error) {
	if in.RunID == "" {
		info := workflow.GetInfo(ctx)
		in.RunID = WorkflowRunID(info.WorkflowStartTime, info.WorkflowExecution.RunID)
	}
	res := &RunResult{Stages: map[string]*pipeline.RemoteStage{}}
	prog := &Progress{Stages: map[string]StageProgress{}}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (*Progress, error) { return prog, nil }); err != nil {
		return nil, err
	}
	var plan Plan
	pctx := workflow.WithActivityOptions(ctx, in.Settings.Default.options())
	if err := workflow.ExecuteActivity(pctx, activityPlan, in).Get(ctx, &plan); err != nil {
		if temporal.IsCanceledError(err) {
			res.Status = pipeline.StatusCanceled
			return nil, temporal.NewCanceledError(res)
		}
		return nil, fmt.Errorf("plan the run: %w", err)
	}
	for _, sp := range plan.Stages {
		res.Order = append(res.Order, sp.Name)
		rec := &pipeline.RemoteStage{Status: pipeline.StatusPending}
		if sp.Stored {
			rec.Status, rec.Stored = pipeline.StatusSucceeded, true
		}
		res.Stages[sp.Name] = rec
		prog.Stages[sp.Name] = StageProgress{Status: rec.Status, Parts: sp.Parts}
	}
	prog.Order = res.Order

	runCtx, cancelRun := workflow.WithCancel(ctx)
	var firstErr string
	var maxPayload int
	fail := func(stage, msg string) {
		if firstErr == "" {
			firstErr = msg
			cancelRun()
		}
	}
	done := map[string]workflow.Future{}
	settle := map[string]workflow.Settable{}
	for _, sp := range plan.Stages {
		done[sp.Name], settle[sp.Name] = workflow.NewFuture(ctx)
	}
	for _, sp := range plan.Stages {
		workflow.Go(ctx, func(gctx workflow.Context) {
			rec := res.Stages[sp.Name]
			inputsOK := true
			for _, in := range sp.Inputs {
				var ok bool
				_ = done[in].Get(gctx, &ok)
				inputsOK = inputsOK && ok
			}
			setStatus := func(s string) {
				rec.Status = s
				p := prog.Stages[sp.Name]
				p.Status = s
				prog.Stages[sp.Name] = p
			}
			switch {
			case sp.Stored:
			case !inputsOK || runCtx.Err() != nil:
				setStatus(pipeline.StatusSkipped)
				if ctx.Err() != nil {
					setStatus(pipeline.StatusCanceled)
				}
			default:
				if sp.Key == "" {
					setStatus(pipeline.StatusFailed)
					rec.Error = clip(fmt.Sprintf("stage %q has no key in the stage store (%s): it cannot run on Temporal, where stages reach each other through the store", sp.Name, sp.Problem))
					fail(sp.Name, rec.Error)
					break
				}
				setStatus(pipeline.StatusRunning)
				status, msg := runStage(gctx, runCtx, in, sp, rec, prog, &maxPayload)
				if status == pipeline.StatusCanceled && ctx.Err() == nil {
					status = pipeline.StatusSkipped // stopped by another stage's failure
				}
				setStatus(status)
				if status == pipeline.StatusFailed {
					rec.Error = clip(msg)
					fail(sp.Name, rec.Error)
				}
			}
			settle[sp.Name].Set(rec.Status == pipeline.StatusSucceeded, nil)
		})
	}
	for _, sp := range plan.Stages {
		_ = done[sp.Name].Get(ctx, nil)
	}
	res.MaxPayloadBytes = maxPayload

	status := pipeline.StatusSucceeded
	switch {
	case ctx.Err() != nil:
		status = pipeline.StatusCanceled
	case firstErr != "":
		status = pipeline.StatusFailed
	}
	res.Status, res.Error = status, firstErr
	if in.RecordDir != "" {
		// Written whatever the outcome, as a local run writes its directory; on a context that
		// a cancellation does not stop.
		rctx := workflow.WithActivityOptions(ctx, in.Settings.Default.options())
		if status == pipeline.StatusCanceled {
			rctx, _ = workflow.NewDisconnectedContext(rctx)
		}
		var dir string
		if err := workflow.ExecuteActivity(rctx, activityRecord, in, res).Get(rctx, &dir); err != nil {
			workflow.GetLogger(ctx).Error("could not write the run directory", "error", err)
		}
		res.RecordDir = dir
	}
	switch status {
	case pipeline.StatusCanceled:
		return nil, temporal.NewCanceledError(res)
	case pipeline.StatusFailed:
		return nil, temporal.NewNonRetryableApplicationError("pipe run failed: "+firstErr, ErrTypeStageFailed, nil, res)
	}
	return res, nil
}

// WorkflowRunID is the pipe run id of a workflow started without one: its start time, as
// pipeline.NewRunID writes it ("20060102T150405Z-xxxxxx"), with 6 hex digits of the SHA-256
// of its Temporal run id instead of random ones, so that every replay gets the same id.
func WorkflowRunID(start time.Time, workflowRunID string) string {
	sum := sha256.Sum256([]byte(workflowRunID))
	return start.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(sum[:3])
}

// runStage runs one stage's activities: its parts, if any, then the stage. It returns the
// stage's status and, when it failed, why. gctx is the calling workflow goroutine's context,
// on which it blocks; ctx (the run's, canceled when a stage fails) schedules the activities.
func runStage(gctx, ctx workflow.Context, in RunInput, sp pipeline.StagePlan, rec *pipeline.RemoteStage, prog *Progress, maxPayload *int) (string, string) {
	opts := in.Settings.For(sp.Kind).options()
	actx := workflow.WithActivityOptions(ctx, opts)
	if sp.Parts > 0 {
		pctx, cancelParts := workflow.WithCancel(actx)
		futures := make([]workflow.Future, sp.Parts)
		for i := range sp.Parts {
			part := i
			futures[i] = workflow.ExecuteActivity(pctx, activityStage, StageTask{Run: in, Stage: sp.Name, Part: &part, Key: sp.Key})
		}
		rec.Parts = make([]pipeline.RemotePart, sp.Parts)
		var partErr error
		// Collected in completion order, so that the first failure cancels the others at once.
		sel := workflow.NewSelector(gctx)
		for i, f := range futures {
			sel.AddFuture(f, func(f workflow.Future) {
				var r StageResult
				err := f.Get(gctx, &r)
				rp := pipeline.RemotePart{Part: i, Worker: r.Worker, Attempts: r.Attempt, Seconds: r.Seconds}
				if r.Resumed != "" || r.ResumedEpoch > 0 {
					rp.Resumed = []string{fmt.Sprintf("%s (epoch %d)", r.Resumed, r.ResumedEpoch)}
				}
				*maxPayload = max(*maxPayload, r.MaxPayloadBytes)
				if err != nil {
					rp.Error = clip(activityMessage(err))
					if partErr == nil {
						partErr = err
						cancelParts()
					}
				} else {
					p := prog.Stages[sp.Name]
					p.Done++
					prog.Stages[sp.Name] = p
				}
				rec.Parts[i] = rp
			})
		}
		for range futures {
			sel.Select(gctx)
		}
		if partErr != nil {
			return outcome(ctx, partErr)
		}
	}
	var r StageResult
	err := workflow.ExecuteActivity(actx, activityStage, StageTask{Run: in, Stage: sp.Name, Key: sp.Key}).Get(gctx, &r)
	*maxPayload = max(*maxPayload, r.MaxPayloadBytes)
	rec.Worker, rec.Attempts, rec.Seconds = r.Worker, r.Attempt, r.Seconds
	if err != nil {
		return outcome(ctx, err)
	}
	return pipeline.StatusSucceeded, ""
}

// outcome classifies an activity's error.
func outcome(ctx workflow.Context, err error) (string, string) {
	if temporal.IsCanceledError(err) || ctx.Err() != nil {
		return pipeline.StatusCanceled, ""
	}
	return pipeline.StatusFailed, activityMessage(err)
}

// activityMessage is the stage's own message in an activity's error.
func activityMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return fmt.Sprintf("timed out (%s): %v", te.TimeoutType(), err)
	}
	return err.Error()
}

// sortedKeys returns m's keys in order (workflow code must not range over maps).
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
