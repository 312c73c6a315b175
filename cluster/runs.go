package cluster

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/pipe-ml/pipe/pipeline"
)

// ErrRunNotFound: Temporal has no workflow of that id (or it is not a pipe run).
var ErrRunNotFound = errors.New("no such pipe run on Temporal")

// WorkflowRun is one of pipe's workflows as Temporal lists it.
type WorkflowRun struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"workflow_run_id"`
	// Pipeline is the pipeline's name, and Schedule the schedule that started the run ("":
	// pipe run started it).
	Pipeline string `json:"pipeline,omitempty"`
	Schedule string `json:"schedule,omitempty"`
	// Status is RunStatus's.
	Status    string     `json:"status"`
	StartedAt time.Time  `json:"started_at"`
	ClosedAt  *time.Time `json:"closed_at,omitempty"`
	// Seconds is the run's time, so far for a running one.
	Seconds float64 `json:"seconds"`
}

// RunStatus names a workflow's status in pipe's words: running, succeeded (the workflow
// completed: a pipe run completes only when it succeeded), failed, canceled, terminated,
// timed_out, or continued_as_new.
func RunStatus(s enumspb.WorkflowExecutionStatus) string {
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return pipeline.StatusRunning
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return pipeline.StatusSucceeded
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return pipeline.StatusFailed
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return pipeline.StatusCanceled
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return "terminated"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return "timed_out"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return "continued_as_new"
	}
	return "unknown"
}

// runWorkflowID is the id of a workflow that pipe run started (WorkflowID).
var runWorkflowID = regexp.MustCompile(`^pipe-(.+)-\d{8}T\d{6}Z-[0-9a-f]{6}$`)

func workflowRun(info *workflowpb.WorkflowExecutionInfo, now time.Time) WorkflowRun {
	r := WorkflowRun{WorkflowID: info.GetExecution().GetWorkflowId(), RunID: info.GetExecution().GetRunId(),
		Status: RunStatus(info.GetStatus()), StartedAt: info.GetStartTime().AsTime().UTC()}
	memo(info.GetMemo(), memoPipeline, &r.Pipeline)
	memo(info.GetMemo(), memoSchedule, &r.Schedule)
	if m := runWorkflowID.FindStringSubmatch(r.WorkflowID); r.Pipeline == "" && m != nil {
		r.Pipeline = m[1]
	}
	end := now
	if ct := info.GetCloseTime(); ct != nil && info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t := ct.AsTime().UTC()
		r.ClosedAt, end = &t, t
	}
	r.Seconds = max(0, end.Sub(r.StartedAt).Seconds())
	return r
}

// ListRunsOptions narrow ListRuns.
type ListRunsOptions struct {
	// Pipeline keeps the runs of that pipeline only ("": all).
	Pipeline string
	// Limit keeps the newest Limit runs (0: all).
	Limit int
}

// ListRuns lists pipe's workflows (WorkflowName) in c's namespace, newest first.
func ListRuns(ctx context.Context, c client.Client, o ListRunsOptions) ([]WorkflowRun, error) {
	now := time.Now()
	out := []WorkflowRun{}
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = '%s'", WorkflowName), NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list pipe's workflows: %w", err)
		}
		for _, info := range resp.GetExecutions() {
			r := workflowRun(info, now)
			if o.Pipeline == "" || r.Pipeline == o.Pipeline {
				out = append(out, r)
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartedAt.After(out[j].StartedAt) })
	if o.Limit > 0 && len(out) > o.Limit {
		out = out[:o.Limit]
	}
	return out, nil
}

// RunDetails is one pipe run on Temporal: its workflow and how far each stage got.
type RunDetails struct {
	WorkflowRun
	// Stages are the run's stages in order: from the progress query while it runs, from its
	// result when it ended. None when neither could be had (StagesNote says why).
	Stages     []StageState `json:"stages"`
	StagesNote string       `json:"stages_note,omitempty"`
	// Error is why the run failed.
	Error string `json:"error,omitempty"`
	// RecordDir is the run directory a worker wrote (runs that a schedule or pipe run
	// --detach started).
	RecordDir string `json:"record_dir,omitempty"`
}

// StageState is how one stage of a run on Temporal stands.
type StageState struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// Stored: its outputs were in the stage store before the run.
	Stored bool `json:"stored,omitempty"`
	// Done and Parts count an ensemble's members (parts done, parts in all).
	Done     int     `json:"done,omitempty"`
	Parts    int     `json:"parts,omitempty"`
	Worker   string  `json:"worker,omitempty"`
	Attempts int     `json:"attempts,omitempty"`
	Seconds  float64 `json:"seconds,omitempty"`
	Error    string  `json:"error,omitempty"`
}

// DescribeRun describes pipe's workflow workflowID (its latest run): its status, and its
// stages' states (the progress query of a running workflow, which a worker answers; the
// result of one that ended).
func DescribeRun(ctx context.Context, c client.Client, workflowID string) (*RunDetails, error) {
	desc, err := c.DescribeWorkflow(ctx, workflowID, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("workflow %s: %w (pipe runs --temporal lists them)", workflowID, ErrRunNotFound)
		}
		return nil, fmt.Errorf("workflow %s: %w", workflowID, err)
	}
	info := desc.RawResponse.GetWorkflowExecutionInfo()
	if t := info.GetType().GetName(); t != WorkflowName {
		return nil, fmt.Errorf("workflow %s is a %s, not a pipe run (%s): %w", workflowID, t, WorkflowName, ErrRunNotFound)
	}
	d := &RunDetails{WorkflowRun: workflowRun(info, time.Now()), Stages: []StageState{}}
	runID := d.RunID
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		v, err := c.QueryWorkflow(qctx, workflowID, runID, QueryProgress)
		var p Progress
		if err == nil {
			err = v.Get(&p)
		}
		if err != nil {
			d.StagesNote = fmt.Sprintf("no stages: the progress query was not answered (is a pipe worker running on the task queue?): %v", err)
			return d, nil
		}
		if len(p.Order) == 0 {
			d.StagesNote = "no stages yet: the run is being planned"
		}
		for _, name := range p.Order {
			s := p.Stages[name]
			d.Stages = append(d.Stages, StageState{Name: name, Status: s.Status, Done: s.Done, Parts: s.Parts})
		}
		return d, nil
	}
	var res RunResult
	getErr := c.GetWorkflow(ctx, workflowID, runID).Get(ctx, &res)
	r, _, err := (&Engine{}).outcome(&res, getErr)
	if err != nil {
		d.Error = err.Error()
		d.StagesNote = "no stages: the run ended without a result"
		return d, nil
	}
	d.Error, d.RecordDir = r.Error, r.RecordDir
	for _, name := range r.Order {
		s := r.Stages[name]
		if s == nil {
			continue
		}
		st := StageState{Name: name, Status: s.Status, Stored: s.Stored, Worker: s.Worker, Attempts: s.Attempts, Seconds: s.Seconds, Error: s.Error}
		st.Parts = len(s.Parts)
		for _, p := range s.Parts {
			if p.Error == "" && p.Worker != "" {
				st.Done++
			}
		}
		d.Stages = append(d.Stages, st)
	}
	return d, nil
}
