package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/pipe-ml/pipe/pipeline"
)

// WorkerOptions configure Worker.
type WorkerOptions struct {
	// HostPort is the Temporal frontend ("localhost:7233"); Namespace defaults to "default",
	// TaskQueue to DefaultTaskQueue.
	HostPort  string
	Namespace string
	TaskQueue string
	// Store is the stage store, shared with the client and every other worker; StoreURL names
	// it in messages.
	Store    pipeline.Store
	StoreURL string
	// Registry has the stage kinds the worker can run: the built-in ones (stages.Register),
	// and a program's own.
	Registry *pipeline.Registry
	// Workers is how many activities (stages, members) the worker runs at once. Default 1: a
	// training stage uses the cores of the machine by itself ([pipeline] workers).
	Workers int
	// Version and BuildID are this pipe build's (they must be the client's).
	Version, BuildID string
	// WorkDir holds the activities' temporary run directories. Default os.TempDir().
	WorkDir string
	// Identity names the worker in Temporal and in the manifests. Default "pid@host".
	Identity string
	// NoTableCache turns off the worker's cache of the tables its activities read back from
	// the store (pipeline.TableCache: each of a run's activities on this worker that reads a
	// table another one read takes it from memory, within the run's memory budget), and of
	// the dense copies of those tables that its training activities build and share. Default
	// false: the cache is on.
	NoTableCache bool
	// Log receives the worker's log (zerolog); StageLog, when set, the stages' own logs.
	Log      zerolog.Logger
	StageLog io.Writer
}

// Worker runs pipe's workflow and activities until ctx ends.
func Worker(ctx context.Context, o WorkerOptions) error {
	if o.Registry == nil || o.Store == nil {
		return errors.New("worker: a registry and a stage store are needed")
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.TaskQueue == "" {
		o.TaskQueue = DefaultTaskQueue
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Identity == "" {
		host, _ := os.Hostname()
		o.Identity = strconv.Itoa(os.Getpid()) + "@" + host
	}
	meter := &payloadMeter{}
	// A worker outlives the server's restarts, and may start before it: it tries to connect
	// until it can, or until ctx ends.
	var c client.Client
	var warned time.Time
	for wait := time.Second; ; wait = min(2*wait, 15*time.Second) {
		var err error
		c, err = client.DialContext(ctx, client.Options{HostPort: o.HostPort, Namespace: o.Namespace, Identity: o.Identity,
			Logger: newTemporalLogger(o.Log), DataConverter: meter.dataConverter()})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("connect to Temporal at %s: %w", o.HostPort, err)
		}
		if time.Since(warned) > time.Minute {
			o.Log.Warn().Err(err).Str("temporal", o.HostPort).Msg("cannot reach Temporal yet: trying again")
			warned = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connect to Temporal at %s: %w", o.HostPort, err)
		case <-time.After(wait):
		}
	}
	defer c.Close()
	w := worker.New(c, o.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize: o.Workers,
		Identity:                           o.Identity,
	})
	a := &activities{reg: o.Registry, store: o.Store, storeURL: o.StoreURL, version: o.Version, buildID: o.BuildID,
		workDir: o.WorkDir, identity: o.Identity, log: o.Log, logOut: o.StageLog, payloads: meter}
	if !o.NoTableCache {
		a.tables = pipeline.NewTableCache(nil)
		defer a.tables.Close()
	}
	w.RegisterWorkflowWithOptions(RunWorkflow, workflow.RegisterOptions{Name: WorkflowName})
	w.RegisterActivityWithOptions(a.Plan, activity.RegisterOptions{Name: activityPlan})
	w.RegisterActivityWithOptions(a.Stage, activity.RegisterOptions{Name: activityStage})
	w.RegisterActivityWithOptions(a.Record, activity.RegisterOptions{Name: activityRecord})
	w.RegisterActivityWithOptions(a.Ready, activity.RegisterOptions{Name: activityReady})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start the worker: %w", err)
	}
	o.Log.Info().Str("temporal", o.HostPort).Str("namespace", o.Namespace).Str("task_queue", o.TaskQueue).
		Str("store", o.StoreURL).Int("activities", o.Workers).Int("cores", runtime.NumCPU()).Str("identity", o.Identity).Msg("worker started")
	<-ctx.Done()
	w.Stop()
	o.Log.Info().Int("max_payload_bytes", meter.max()).Msg("worker stopped")
	return nil
}
