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
		unit := "members"
		if sp.Stepped {
			unit = "trials"
		}
		prog.Stages[sp.Name] = StageProgress{Status: rec.Status, Parts: sp.Parts, Unit: unit}
	}
	prog.Order = res.Order

	runCtx, cancelRun := workflow.WithCancel(ctx)
	var firstErr string
	var maxPayload int
	fail := func(msg string) {
		if firstErr == "" {
			firstErr = msg
			cancelRun()
		}
	}
	setStatus := func(name, s string) {
		res.Stages[name].Status = s
		p := prog.Stages[name]
		p.Status = s
		prog.Stages[name] = p
	}
	units := groupStages(plan.Stages)
	done := make([]workflow.Future, len(units))
	settle := make([]workflow.Settable, len(units))
	for i := range units {
		done[i], settle[i] = workflow.NewFuture(ctx)
	}
	for i, u := range units {
		workflow.Go(ctx, func(gctx workflow.Context) {
			inputsOK := true
			for _, d := range u.after {
				var ok bool
				_ = done[d].Get(gctx, &ok)
				inputsOK = inputsOK && ok
			}
			ok := true
			switch {
			case !inputsOK || runCtx.Err() != nil:
				status := pipeline.StatusSkipped
				if ctx.Err() != nil {
					status = pipeline.StatusCanceled
				}
				for _, sp := range u.stages {
					setStatus(sp.Name, status)
				}
				ok = false
			default:
				for _, sp := range u.stages {
					if sp.Key == "" {
						msg := clip(fmt.Sprintf("stage %q has no key in the stage store (%s): it cannot run on Temporal, where stages reach each other through the store", sp.Name, sp.Problem))
						for _, sq := range u.stages {
							setStatus(sq.Name, pipeline.StatusSkipped)
						}
						setStatus(sp.Name, pipeline.StatusFailed)
						res.Stages[sp.Name].Error = msg
						fail(msg)
						ok = false
						break
					}
				}
				if !ok {
					break
				}
				for _, sp := range u.stages {
					setStatus(sp.Name, pipeline.StatusRunning)
				}
				msg := runUnit(gctx, runCtx, in, u, res, prog, &maxPayload)
				for _, sp := range u.stages {
					rec := res.Stages[sp.Name]
					if rec.Status == pipeline.StatusCanceled && ctx.Err() == nil {
						rec.Status = pipeline.StatusSkipped // stopped by another stage's failure
					}
					setStatus(sp.Name, rec.Status)
					ok = ok && rec.Status == pipeline.StatusSucceeded
				}
				if msg != "" {
					fail(msg)
				}
			}
			settle[i].Set(ok, nil)
		})
	}
	for i := range units {
		_ = done[i].Get(ctx, nil)
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

// unit is what the workflow runs as one activity: a group of stages that stream into each
// other in one process, or one stage that splits into parts (its parts' activities first).
type unit struct {
	stages []pipeline.StagePlan // in an order where inputs come first
	after  []int                // the units it reads from
}

// groupStages makes the run's units from its plan. Stages stored already are no unit. A stage
// that does not train (not of the built-in training kinds, no parts) joins a unit of such
// stages that holds or comes after all its inputs, when that delays neither the stage nor the
// unit: a source, its split and its scaler run together, their tables streaming as in a local
// run instead of going through the store to the next worker, and so do an ensemble's combiners
// and the evaluation after them. A training stage is a unit of its own, so that trainings
// spread over the workers.
func groupStages(plan []pipeline.StagePlan) []unit {
	light := func(sp pipeline.StagePlan) bool { return sp.Parts == 0 && !isTrainingKind(sp.Kind) }
	byName := map[string]pipeline.StagePlan{}
	for _, sp := range plan {
		byName[sp.Name] = sp
	}
	// A topological order, stable in plan order.
	var order []pipeline.StagePlan
	placed := map[string]bool{}
	for len(order) < len(plan) {
		progress := false
		for _, sp := range plan {
			if placed[sp.Name] {
				continue
			}
			ready := true
			for _, in := range sp.Inputs {
				ready = ready && placed[in]
			}
			if ready {
				order, placed[sp.Name], progress = append(order, sp), true, true
			}
		}
		if !progress { // a cycle cannot load; keep the rest in plan order
			for _, sp := range plan {
				if !placed[sp.Name] {
					order, placed[sp.Name] = append(order, sp), true
				}
			}
		}
	}
	var units []unit
	unitOf := map[string]int{}
	lightUnit := map[int]bool{}
	// closure returns the given units and every unit they run after, directly or not.
	closure := func(us map[int]bool) map[int]bool {
		out := map[int]bool{}
		var visit func(int)
		visit = func(u int) {
			if out[u] {
				return
			}
			out[u] = true
			for _, d := range units[u].after {
				visit(d)
			}
		}
		for u := range us {
			visit(u)
		}
		return out
	}
	for _, sp := range order {
		if sp.Stored {
			continue
		}
		deps := map[int]bool{}
		for _, in := range sp.Inputs {
			if u, ok := unitOf[in]; ok {
				deps[u] = true
			}
		}
		if light(sp) && len(deps) > 0 {
			// Join a unit of stages that do not train when that neither makes the stage wait
			// for more than its inputs nor makes the unit wait for more than its own: every
			// input is in the unit or before it, and the unit runs after nothing the stage
			// does not run after anyway.
			need := closure(deps)
			for u := range units {
				if !lightUnit[u] {
					continue
				}
				before := closure(map[int]bool{u: true})
				fits := true
				for d := range deps {
					fits = fits && before[d]
				}
				for _, a := range units[u].after {
					fits = fits && need[a]
				}
				if fits {
					units[u].stages = append(units[u].stages, sp)
					unitOf[sp.Name] = u
					break
				}
			}
			if _, joined := unitOf[sp.Name]; joined {
				continue
			}
		}
		u := len(units)
		units = append(units, unit{stages: []pipeline.StagePlan{sp}})
		for d := range deps {
			units[u].after = append(units[u].after, d)
		}
		sort.Ints(units[u].after)
		unitOf[sp.Name] = u
		lightUnit[u] = light(sp)
	}
	return units
}

func isTrainingKind(kind string) bool {
	for _, k := range trainingKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// runUnit runs a unit's activities: a parted stage's parts first, then the unit's stages in
// one activity. It records each stage's outcome in res and returns the first failure's
// message ("" when none failed). gctx is the calling workflow goroutine's context, on which it
// blocks; ctx (the run's, canceled when a stage fails) schedules the activities.
func runUnit(gctx, ctx workflow.Context, in RunInput, u unit, res *RunResult, prog *Progress, maxPayload *int) string {
	first := u.stages[0]
	actx := workflow.WithActivityOptions(ctx, in.Settings.For(first.Kind).options())
	names, keys := make([]string, len(u.stages)), make([]string, len(u.stages))
	for i, sp := range u.stages {
		names[i], keys[i] = sp.Name, sp.Key
	}
	setAll := func(status, msg string) string {
		for _, n := range names {
			res.Stages[n].Status = status
		}
		if status == pipeline.StatusFailed {
			res.Stages[names[0]].Error = clip(msg)
			return clip(msg)
		}
		return ""
	}
	if first.Parts > 0 && first.Stepped {
		if err := runSteps(gctx, actx, in, first, names, keys, res.Stages[first.Name], prog, maxPayload); err != nil {
			if temporal.IsCanceledError(err) || ctx.Err() != nil {
				return setAll(pipeline.StatusCanceled, "")
			}
			return setAll(pipeline.StatusFailed, fmt.Sprintf("stage %q: %s", first.Name, activityMessage(err)))
		}
	} else if first.Parts > 0 {
		rec := res.Stages[first.Name]
		pctx, cancelParts := workflow.WithCancel(actx)
		futures := make([]workflow.Future, first.Parts)
		for i := range first.Parts {
			part := i
			futures[i] = workflow.ExecuteActivity(pctx, activityStage, StageTask{Run: in, Stages: names, Keys: keys, Part: &part})
		}
		rec.Parts = make([]pipeline.RemotePart, first.Parts)
		var partErr error
		// Collected in completion order, so that the first failure cancels the others at once.
		sel := workflow.NewSelector(gctx)
		for i, f := range futures {
			sel.AddFuture(f, func(f workflow.Future) {
				var r StageResult
				err := f.Get(gctx, &r)
				if err != nil {
					r = resultOf(err)
				}
				rp := pipeline.RemotePart{Part: i, Worker: r.Worker, Attempts: r.Attempt, Seconds: r.Seconds}
				if r.Resumed != "" || r.ResumedEpoch > 0 {
					from := r.Resumed
					if from == "" { // the dead attempt's last heartbeat never left its worker
						from = "its checkpoint in the store"
					}
					rp.Resumed = []string{fmt.Sprintf("%s (epoch %d)", from, r.ResumedEpoch)}
				}
				*maxPayload = max(*maxPayload, r.MaxPayloadBytes)
				if err != nil {
					rp.Error = clip(activityMessage(err))
					if partErr == nil {
						partErr = err
						cancelParts()
					}
				} else {
					p := prog.Stages[first.Name]
					p.Done++
					prog.Stages[first.Name] = p
				}
				rec.Parts[i] = rp
			})
		}
		for range futures {
			sel.Select(gctx)
		}
		if partErr != nil {
			if temporal.IsCanceledError(partErr) || ctx.Err() != nil {
				return setAll(pipeline.StatusCanceled, "")
			}
			return setAll(pipeline.StatusFailed, fmt.Sprintf("stage %q: %s", first.Name, activityMessage(partErr)))
		}
	}
	var r StageResult
	err := workflow.ExecuteActivity(actx, activityStage, StageTask{Run: in, Stages: names, Keys: keys}).Get(gctx, &r)
	if err != nil {
		r = resultOf(err)
	}
	*maxPayload = max(*maxPayload, r.MaxPayloadBytes)
	for _, n := range names {
		rec := res.Stages[n]
		rec.Worker, rec.Attempts = r.Worker, r.Attempt
		if o, ok := r.Stages[n]; ok {
			rec.Status, rec.Seconds, rec.Error = o.Status, o.Seconds, o.Error
		}
	}
	switch {
	case err == nil:
		return ""
	case temporal.IsCanceledError(err) || ctx.Err() != nil:
		for _, n := range names {
			if s := res.Stages[n].Status; s != pipeline.StatusSucceeded && s != pipeline.StatusFailed {
				res.Stages[n].Status = pipeline.StatusCanceled
			}
		}
		return ""
	}
	// The stage that failed says why; without a report (a lost worker, a timeout), the
	// unit's stages failed with the activity's error.
	for _, n := range names {
		if rec := res.Stages[n]; rec.Status == pipeline.StatusFailed && rec.Error != "" {
			return rec.Error
		}
	}
	return setAll(pipeline.StatusFailed, activityMessage(err))
}

// runSteps runs the parts of a stepped stage (pipeline.SteppedStage: a search's trials) as
// the stage allows: it asks a worker which parts can make progress (the ready activity, which
// reads the stage's checkpoints: the decisions are made there, from the store, so that this
// workflow code stays deterministic), runs those that are not running yet, one activity each,
// and asks again each time one ends, until every part has finished. A part's activity runs
// it until it finishes or reaches a point where it would wait for others (then it saves its
// state and ends), so no activity waits for another, whatever the number of workers. The
// first failure cancels the others and is returned.
func runSteps(gctx, actx workflow.Context, in RunInput, sp pipeline.StagePlan, names, keys []string, rec *pipeline.RemoteStage, prog *Progress, maxPayload *int) error {
	pctx, cancelParts := workflow.WithCancel(actx)
	defer cancelParts()
	rec.Parts = make([]pipeline.RemotePart, sp.Parts)
	for i := range rec.Parts {
		rec.Parts[i].Part = i
	}
	running := map[int]bool{}
	sel := workflow.NewSelector(gctx)
	var partErr error
	for {
		var rr ReadyResult
		if err := workflow.ExecuteActivity(actx, activityReady, ReadyTask{Run: in, Stage: sp.Name}).Get(gctx, &rr); err != nil {
			return err
		}
		p := prog.Stages[sp.Name]
		p.Done = rr.Finished
		prog.Stages[sp.Name] = p
		if rr.Finished >= sp.Parts && len(running) == 0 {
			return nil
		}
		for _, i := range rr.Parts {
			if running[i] || i < 0 || i >= sp.Parts {
				continue
			}
			running[i] = true
			part := i
			f := workflow.ExecuteActivity(pctx, activityStage, StageTask{Run: in, Stages: names, Keys: keys, Part: &part})
			sel.AddFuture(f, func(f workflow.Future) {
				var r StageResult
				err := f.Get(gctx, &r)
				if err != nil {
					r = resultOf(err)
				}
				delete(running, part)
				rp := &rec.Parts[part]
				rp.Segments++
				rp.Attempts += r.Attempt
				rp.Seconds += r.Seconds
				if r.Worker != "" {
					rp.Worker = r.Worker
					rp.Workers = append(rp.Workers, r.Worker)
				}
				*maxPayload = max(*maxPayload, r.MaxPayloadBytes)
				if err != nil {
					rp.Error = clip(activityMessage(err))
					if partErr == nil {
						partErr = err
						cancelParts()
					}
				}
			})
		}
		if len(running) == 0 {
			return fmt.Errorf("no part of stage %s can make progress and none is running (%d of %d finished): the stage's checkpoints in the store are not what its parts saved", sp.Name, rr.Finished, sp.Parts)
		}
		sel.Select(gctx)
		if partErr != nil {
			for len(running) > 0 {
				sel.Select(gctx)
			}
			return partErr
		}
	}
}

// resultOf returns the StageResult an activity's error carries (see activities.Stage).
func resultOf(err error) StageResult {
	var r StageResult
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.HasDetails() {
		_ = ae.Details(&r)
	}
	return r
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
