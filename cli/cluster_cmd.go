package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/cluster"
	"github.com/pipe-ml/pipe/pipeline"
)

// defaultTemporal is the Temporal frontend when neither --temporal nor PIPE_TEMPORAL says.
const defaultTemporal = "localhost:7233"

// tflags are the flags that name a Temporal cluster.
type tflags struct {
	hostPort, namespace, queue *string
}

func temporalFlags(fs *flag.FlagSet) tflags {
	return tflags{
		hostPort:  fs.String("temporal", "", "the Temporal frontend `HOST:PORT` (default $PIPE_TEMPORAL, else "+defaultTemporal+")"),
		namespace: fs.String("namespace", "default", "the Temporal `NAMESPACE`"),
		queue:     fs.String("task-queue", cluster.DefaultTaskQueue, "the Temporal task `QUEUE` of pipe's workflows and activities (workers and runs must agree)"),
	}
}

func (t tflags) addr() string {
	switch {
	case *t.hostPort != "":
		return *t.hostPort
	case os.Getenv("PIPE_TEMPORAL") != "":
		return os.Getenv("PIPE_TEMPORAL")
	}
	return defaultTemporal
}

func (t tflags) set(fs *flag.FlagSet) bool {
	return flagSet(fs, "temporal") || flagSet(fs, "namespace") || flagSet(fs, "task-queue")
}

// detachRun submits a run to Temporal and prints its workflow id.
func (a *app) detachRun(ctx context.Context, eng *cluster.Engine, p *pipeline.Pipeline, opts pipeline.RunOptions, runs string, stdout, stderr io.Writer) int {
	s, err := opts.OpenStore(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pipe run: %v\n", err)
		return pipeline.ExitConfig
	}
	opts.Store = s
	abs, err := filepath.Abs(runs)
	if err != nil {
		fmt.Fprintf(stderr, "pipe run: --runs %s: %v\n", runs, err)
		return pipeline.ExitConfig
	}
	run, err := eng.Submit(ctx, p, opts, abs)
	if err != nil {
		fmt.Fprintf(stderr, "pipe run: %v\n", err)
		return pipeline.ExitFailed
	}
	fmt.Fprintf(stdout, "workflow: %s\n", run.GetID())
	fmt.Fprintf(stdout, "run directory, written by a worker when the run ends: %s\n", filepath.Join(abs, p.Name, "<run id in the workflow id>"))
	return pipeline.ExitOK
}

// cmdWorker runs a worker until SIGINT or SIGTERM.
func (a *app) cmdWorker(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("worker", stderr)
	tf := temporalFlags(fs)
	storeLoc := fs.String("store", "", "the stage store every worker and client share: a directory on a shared filesystem, or a `URL` (file:///shared/dir, s3://bucket/prefix); required")
	workers := fs.Int("workers", 1, "how many activities (stages, ensemble members) this worker runs at once, `N`; each uses the cores [pipeline] workers gives it")
	workDir := fs.String("work-dir", "", "the `DIR` for the activities' temporary run directories (default: the system's temporary directory)")
	identity := fs.String("identity", "", "the worker's `NAME` in Temporal and in manifests (default pid@host)")
	logFormat := fs.String("log-format", "console", "write log lines to stderr as `console|json`")
	logLevel := fs.String("log-level", "info", "show log lines of this level and above, `debug|info|warn|error`")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return a.usageError(stderr, "worker", "")
	}
	if len(pos) != 0 {
		return a.usageError(stderr, "worker", "takes no arguments")
	}
	if *storeLoc == "" {
		return a.usageError(stderr, "worker", "--store is required: the stage store the client and every worker share")
	}
	if strings.HasPrefix(strings.ToLower(*storeLoc), "mem://") {
		return a.usageError(stderr, "worker", "--store mem:// is this process's memory, which no client or other worker sees: give a shared directory or s3://")
	}
	if *logFormat != "console" && *logFormat != "json" {
		return a.usageError(stderr, "worker", fmt.Sprintf("--log-format must be console or json, not %q", *logFormat))
	}
	level, err := zerolog.ParseLevel(*logLevel)
	if err != nil {
		return a.usageError(stderr, "worker", "--log-level: "+err.Error())
	}
	var logw io.Writer = stderr
	if *logFormat == "console" {
		logw = zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05", NoColor: true, PartsExclude: []string{"run"}, FieldsExclude: []string{"run"}}
	}
	log := zerolog.New(logw).With().Timestamp().Logger().Level(level)
	reg, err := a.cmd.Registry()
	if err != nil {
		fmt.Fprintf(stderr, "pipe worker: %v\n", err)
		return pipeline.ExitConfig
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, closeStore, err := openStore(ctx, absLocation(*storeLoc))
	if err != nil {
		fmt.Fprintf(stderr, "pipe worker: --store %s: %v\n", *storeLoc, err)
		return pipeline.ExitConfig
	}
	defer closeStore()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		s := <-sigs
		log.Info().Str("signal", s.String()).Msg("stopping: running activities are canceled and retried elsewhere")
		cancel()
	}()
	err = cluster.Worker(ctx, cluster.WorkerOptions{HostPort: tf.addr(), Namespace: *tf.namespace, TaskQueue: *tf.queue,
		Store: s, StoreURL: absLocation(*storeLoc), Registry: reg, Workers: *workers, Version: Version(), BuildID: buildID(Version()),
		WorkDir: *workDir, Identity: *identity, Log: log, StageLog: logw})
	if err != nil {
		fmt.Fprintf(stderr, "pipe worker: %v\n", err)
		return pipeline.ExitFailed
	}
	return pipeline.ExitOK
}
