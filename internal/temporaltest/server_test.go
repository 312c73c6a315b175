package temporaltest_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/pipe-ml/pipe/internal/temporaltest"
)

const (
	stepsWorkflowName = "TwoSteps"
	stepActivityName  = "Step"
	goSignal          = "go"
	stageQuery        = "stage"
	stageWaiting      = "waiting for the signal"
)

// stepResult is what the Step activity returns for its arguments.
func stepResult(phase, arg string) string { return phase + ":" + strings.ToUpper(arg) }

// twoSteps runs Step("before", name), waits for the "go" signal, runs Step("after", the
// signal's word) and returns both results. Its "stage" query says where it is.
func twoSteps(ctx workflow.Context, name string) (string, error) {
	stage := "first step"
	if err := workflow.SetQueryHandler(ctx, stageQuery, func() (string, error) { return stage, nil }); err != nil {
		return "", err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var first string
	if err := workflow.ExecuteActivity(ctx, stepActivityName, "before", name).Get(ctx, &first); err != nil {
		return "", err
	}
	stage = stageWaiting
	var word string
	workflow.GetSignalChannel(ctx, goSignal).Receive(ctx, &word)
	stage = "second step"
	var second string
	if err := workflow.ExecuteActivity(ctx, stepActivityName, "after", word).Get(ctx, &second); err != nil {
		return "", err
	}
	return first + " " + second, nil
}

// steps is the Step activity; it counts its calls per phase.
type steps struct {
	mu    sync.Mutex
	calls map[string]int
}

func (s *steps) Step(_ context.Context, phase, arg string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[phase]++
	return stepResult(phase, arg), nil
}

func (s *steps) count(phase string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[phase]
}

// startWorker runs a worker for twoSteps and Step on taskQueue until tb ends.
func startWorker(tb testing.TB, c client.Client, taskQueue string) *steps {
	tb.Helper()
	act := &steps{calls: map[string]int{}}
	w := worker.New(c, taskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(twoSteps, workflow.RegisterOptions{Name: stepsWorkflowName})
	w.RegisterActivityWithOptions(act.Step, activity.RegisterOptions{Name: stepActivityName})
	if err := w.Start(); err != nil {
		tb.Fatalf("start worker: %v", err)
	}
	tb.Cleanup(w.Stop)
	return act
}

// waitStage polls the workflow's stage query until it says want.
func waitStage(ctx context.Context, t *testing.T, c client.Client, id, want string) {
	t.Helper()
	var got string
	var lastErr error
	for ctx.Err() == nil {
		v, err := c.QueryWorkflow(ctx, id, "", stageQuery)
		lastErr = err
		if err == nil {
			if err := v.Get(&got); err != nil {
				t.Fatalf("decode stage: %v", err)
			}
			if got == want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("workflow %s never reached stage %q (last: %q, error %v)", id, want, got, lastErr)
}

// TestRestartMidWorkflow runs a workflow through an in-process worker and restarts the server
// between its two activities: the workflow started before the restart takes the signal sent
// after it and completes, and its first activity is not run again.
func TestRestartMidWorkflow(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(*temporaltest.Server)
	}{
		{"graceful", (*temporaltest.Server).Stop},
		{"kill", (*temporaltest.Server).Kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := temporaltest.Start(t)
			c := srv.Dial(t)
			taskQueue := "tq-" + tc.name
			act := startWorker(t, c, taskQueue)

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const name, word = "pipe", "stages"
			id := "two-steps-" + tc.name
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue}, stepsWorkflowName, name)
			if err != nil {
				t.Fatalf("start workflow: %v", err)
			}
			waitStage(ctx, t, c, id, stageWaiting)

			before := time.Now()
			tc.stop(srv)
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s stop and restart: %v", tc.name, time.Since(before).Round(time.Millisecond))

			if err := c.SignalWorkflow(ctx, id, run.GetRunID(), goSignal, word); err != nil {
				t.Fatalf("signal the workflow after the restart: %v", err)
			}
			var got string
			if err := run.Get(ctx, &got); err != nil {
				t.Fatalf("workflow after the restart: %v", err)
			}
			t.Logf("%s: restart to completion: %v", tc.name, time.Since(before).Round(time.Millisecond))
			if want := stepResult("before", name) + " " + stepResult("after", word); got != want {
				t.Errorf("result %q, want %q", got, want)
			}
			if n := act.count("before"); n != 1 {
				t.Errorf("the first step ran %d times, want once (the restart lost its completion)", n)
			}
			if n := act.count("after"); n != 1 {
				t.Errorf("the second step ran %d times, want once", n)
			}
		})
	}
}

// TestDBFileOutlivesServer starts a workflow on a server whose state is in a given file, stops
// that server, and finds the workflow, still running, on a new server on the same file; on a
// server with a file of its own it is not found.
func TestDBFileOutlivesServer(t *testing.T) {
	db := filepath.Join(t.TempDir(), "kept.db")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const id = "kept-workflow"

	first := temporaltest.Start(t, temporaltest.WithDBFile(db))
	if first.DBFile() != db {
		t.Fatalf("DBFile() = %q, want %q", first.DBFile(), db)
	}
	c1 := first.Dial(t)
	// No worker polls this task queue: the workflow stays running.
	if _, err := c1.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "nobody"}, stepsWorkflowName, "x"); err != nil {
		t.Fatalf("start workflow: %v", err)
	}
	c1.Close()
	first.Stop()

	second := temporaltest.Start(t, temporaltest.WithDBFile(db))
	desc, err := second.Dial(t).DescribeWorkflow(ctx, id, "")
	if err != nil {
		t.Fatalf("describe the workflow on a new server on the same file: %v", err)
	}
	if st := desc.Status; st != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Errorf("status %v, want running", st)
	}

	other := temporaltest.Start(t)
	_, err = other.Dial(t).DescribeWorkflow(ctx, id, "")
	if _, ok := errors.AsType[*serviceerror.NotFound](err); !ok {
		t.Errorf("on a server with its own file: error %v, want NotFound", err)
	}
}

// TestDynamicConfig sets limit.blobSize.warn and limit.blobSize.error on the server (the error
// limit is checked only past the warning one): a workflow input over the error limit is
// refused, one under it is accepted.
func TestDynamicConfig(t *testing.T) {
	const limit = 2000
	srv := temporaltest.Start(t,
		temporaltest.WithDynamicConfig("limit.blobSize.warn", strconv.Itoa(limit/4)),
		temporaltest.WithDynamicConfig("limit.blobSize.error", strconv.Itoa(limit)))
	c := srv.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := func(id string, inputBytes int) error {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "nobody"}, stepsWorkflowName, strings.Repeat("w", inputBytes))
		return err
	}
	err := start("over", 2*limit)
	if _, ok := errors.AsType[*serviceerror.InvalidArgument](err); !ok {
		t.Errorf("input of %d bytes with limit.blobSize.error=%d: error %v, want InvalidArgument", 2*limit, limit, err)
	}
	if err := start("under", limit/2); err != nil {
		t.Errorf("input of %d bytes with limit.blobSize.error=%d: %v", limit/2, limit, err)
	}
}
