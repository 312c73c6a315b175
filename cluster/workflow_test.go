package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/pipe-ml/pipe/pipeline"
)

// runIDsSeen runs RunWorkflow on in with fake activities (a plan of two stages, a record
// activity) in Temporal's test environment started at start, and returns the RunID each
// activity got and the workflow's own Temporal run id.
func runIDsSeen(t *testing.T, in RunInput, start time.Time) (map[string][]string, string) {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	ts.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := ts.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	var mu sync.Mutex
	seen := map[string][]string{}
	var wfRunID string
	note := func(ctx context.Context, what, runID string) {
		mu.Lock()
		defer mu.Unlock()
		seen[what] = append(seen[what], runID)
		wfRunID = activity.GetInfo(ctx).WorkflowExecution.RunID
	}
	env.RegisterActivityWithOptions(func(ctx context.Context, in RunInput) (*Plan, error) {
		note(ctx, "plan", in.RunID)
		return &Plan{Stages: []pipeline.StagePlan{{Name: "a", Key: "ka"}, {Name: "b", Kind: "train", Key: "kb", Inputs: []string{"a"}}}}, nil
	}, activity.RegisterOptions{Name: activityPlan})
	env.RegisterActivityWithOptions(func(ctx context.Context, task StageTask) (*StageResult, error) {
		note(ctx, "stage", task.Run.RunID)
		r := &StageResult{Worker: "w", Stages: map[string]StageOutcome{}}
		for _, n := range task.Stages {
			r.Stages[n] = StageOutcome{Status: pipeline.StatusSucceeded}
		}
		return r, nil
	}, activity.RegisterOptions{Name: activityStage})
	env.RegisterActivityWithOptions(func(ctx context.Context, in RunInput, r *RunResult) (string, error) {
		note(ctx, "record", in.RunID)
		return "/runs/p/" + in.RunID, nil
	}, activity.RegisterOptions{Name: activityRecord})
	env.ExecuteWorkflow(RunWorkflow, in)
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("workflow: completed %v, error %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	var res RunResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Status != pipeline.StatusSucceeded || res.RecordDir != "/runs/p/"+seen["record"][0] {
		t.Fatalf("result: %+v", res)
	}
	return seen, wfRunID
}

// TestWorkflowRunIDFromStartTime: a run started without a RunID (a schedule's) gets one from
// the workflow's start time, in NewRunID's format, with the hex digits of its Temporal run id's
// hash; the plan, every stage and the record activity get that same id. A given RunID is kept.
func TestWorkflowRunIDFromStartTime(t *testing.T) {
	start := time.Date(2026, 12, 4, 2, 0, 7, 0, time.FixedZone("CET", 3600))
	in := RunInput{Pipeline: "p", ConfigKey: "schedules/s/x/pipeline.toml", Settings: ParseSettings(nil), RecordDir: "/runs"}
	seen, wfRunID := runIDsSeen(t, in, start)
	sum := sha256.Sum256([]byte(wfRunID))
	want := start.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(sum[:3])
	if !regexp.MustCompile(`^20261204T010007Z-[0-9a-f]{6}$`).MatchString(want) || wfRunID == "" {
		t.Fatalf("expected id %q from run id %q", want, wfRunID)
	}
	if len(seen["plan"]) != 1 || len(seen["stage"]) != 2 || len(seen["record"]) != 1 {
		t.Fatalf("activities: %v", seen)
	}
	for what, ids := range seen {
		for _, id := range ids {
			if id != want {
				t.Errorf("%s activity got run id %q, want %q", what, id, want)
			}
		}
	}
	if got := WorkflowRunID(start, wfRunID); got != want {
		t.Errorf("WorkflowRunID = %q, want %q", got, want)
	}
	if a, b := WorkflowRunID(start, "run-1"), WorkflowRunID(start, "run-2"); a == b {
		t.Errorf("two workflow runs at the same second get the same id %q", a)
	}

	in.RunID = "20260101T000000Z-abcdef"
	seen, _ = runIDsSeen(t, in, start)
	for what, ids := range seen {
		for _, id := range ids {
			if id != in.RunID {
				t.Errorf("given run id: %s activity got %q, want %q", what, id, in.RunID)
			}
		}
	}
}

// TestGroupStages: a source, its split and its scaler run as one unit, and so do an
// ensemble's combiners and the evaluation after them; an ensemble (parts) and a train run
// alone, and so does a stage that would wait for a training it does not read (pred joins no
// unit: the combiners' unit comes after the ensemble); stored stages are no unit.
func TestGroupStages(t *testing.T) {
	plan := []pipeline.StagePlan{
		{Name: "eval", Kind: "evaluate", Inputs: []string{"vote", "mean", "scale"}},
		{Name: "load", Kind: "dataset"},
		{Name: "split", Kind: "split", Inputs: []string{"load"}},
		{Name: "scale", Kind: "normalize", Inputs: []string{"split"}},
		{Name: "members", Kind: "ensemble", Parts: 8, Inputs: []string{"scale"}},
		{Name: "vote", Kind: "combine", Inputs: []string{"members"}},
		{Name: "mean", Kind: "combine", Inputs: []string{"members"}},
		{Name: "model", Kind: "train", Inputs: []string{"scale"}},
		{Name: "pred", Kind: "predict", Inputs: []string{"model", "scale"}},
		{Name: "old", Kind: "dataset", Stored: true},
		{Name: "old_split", Kind: "split", Inputs: []string{"old"}},
		{Name: "old_scale", Kind: "normalize", Inputs: []string{"old_split"}},
	}
	var got []string
	names := map[int]string{}
	for i, u := range groupStages(plan) {
		var ns []string
		for _, sp := range u.stages {
			ns = append(ns, sp.Name)
		}
		names[i] = strings.Join(ns, "+")
		var after []string
		for _, d := range u.after {
			after = append(after, names[d])
		}
		got = append(got, names[i]+" after ["+strings.Join(after, " ")+"]")
	}
	want := []string{
		"load+split+scale after []",
		"members after [load+split+scale]",
		"vote+mean+eval after [members]",
		"model after [load+split+scale]",
		"pred after [load+split+scale model]",
		"old_split+old_scale after []",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("units:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestWorkflowRunsSteppedParts: a stepped stage's parts run as the ready activity allows (a
// part's second segment waits until the part below has finished, as a trial's paused
// decision waits on lower trials), none twice at once; the stage's own activity runs after
// every part has finished, and the result records each part's segments.
func TestWorkflowRunsSteppedParts(t *testing.T) {
	const parts = 4
	var ts testsuite.WorkflowTestSuite
	ts.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := ts.NewTestWorkflowEnvironment()
	var mu sync.Mutex
	segments := make([]int, parts)
	finished := make([]bool, parts)
	running := make([]bool, parts)
	var problems []string
	countDone := func() int {
		n := 0
		for _, f := range finished {
			if f {
				n++
			}
		}
		return n
	}
	env.RegisterActivityWithOptions(func(ctx context.Context, in RunInput) (*Plan, error) {
		return &Plan{Stages: []pipeline.StagePlan{{Name: "tune", Kind: "search", Key: "kt", Parts: parts, Stepped: true}}}, nil
	}, activity.RegisterOptions{Name: activityPlan})
	env.RegisterActivityWithOptions(func(ctx context.Context, task ReadyTask) (*ReadyResult, error) {
		mu.Lock()
		defer mu.Unlock()
		r := &ReadyResult{Finished: countDone()}
		for i := range parts {
			if !finished[i] && (segments[i] == 0 || i == 0 || finished[i-1]) {
				r.Parts = append(r.Parts, i)
			}
		}
		return r, nil
	}, activity.RegisterOptions{Name: activityReady})
	env.RegisterActivityWithOptions(func(ctx context.Context, task StageTask) (*StageResult, error) {
		mu.Lock()
		defer mu.Unlock()
		if task.Part == nil {
			if n := countDone(); n != parts {
				problems = append(problems, "the stage ran with parts unfinished")
			}
			return &StageResult{Worker: "w", Stages: map[string]StageOutcome{"tune": {Status: pipeline.StatusSucceeded}}}, nil
		}
		i := *task.Part
		if running[i] {
			problems = append(problems, "a part ran twice at once")
		}
		running[i] = true
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		running[i] = false
		segments[i]++
		finished[i] = i == 0 || segments[i] >= 2 // the first segment of a part above 0 pauses
		return &StageResult{Worker: "w" + string(rune('a'+i%2)), Attempt: 1}, nil
	}, activity.RegisterOptions{Name: activityStage})
	env.ExecuteWorkflow(RunWorkflow, RunInput{Pipeline: "p", RunID: "r", ConfigKey: "k", Settings: ParseSettings(nil)})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("workflow: completed %v, error %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	var res RunResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatal(strings.Join(problems, "; "))
	}
	rec := res.Stages["tune"]
	if res.Status != pipeline.StatusSucceeded || rec.Status != pipeline.StatusSucceeded || len(rec.Parts) != parts {
		t.Fatalf("result %s, stage %+v", res.Status, rec)
	}
	for i, p := range rec.Parts {
		if p.Segments != segments[i] || len(p.Workers) != segments[i] || !finished[i] {
			t.Errorf("part %d: recorded %d segments on %v, ran %d (finished %v)", i, p.Segments, p.Workers, segments[i], finished[i])
		}
	}
	if segments[parts-1] != 2 {
		t.Errorf("the top part ran %d segments, want 2 (one paused)", segments[parts-1])
	}
}

// TestWorkflowSteppedPartsStuck: when no part is ready and none runs, the stage fails
// instead of waiting forever.
func TestWorkflowSteppedPartsStuck(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	ts.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivityWithOptions(func(ctx context.Context, in RunInput) (*Plan, error) {
		return &Plan{Stages: []pipeline.StagePlan{{Name: "tune", Kind: "search", Key: "kt", Parts: 2, Stepped: true}}}, nil
	}, activity.RegisterOptions{Name: activityPlan})
	env.RegisterActivityWithOptions(func(ctx context.Context, task ReadyTask) (*ReadyResult, error) {
		return &ReadyResult{Finished: 1}, nil
	}, activity.RegisterOptions{Name: activityReady})
	env.RegisterActivityWithOptions(func(ctx context.Context, task StageTask) (*StageResult, error) {
		return &StageResult{}, nil
	}, activity.RegisterOptions{Name: activityStage})
	env.ExecuteWorkflow(RunWorkflow, RunInput{Pipeline: "p", RunID: "r", ConfigKey: "k", Settings: ParseSettings(nil)})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "no part of stage tune can make progress") {
		t.Fatalf("workflow error %v", err)
	}
}
