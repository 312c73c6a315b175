package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/cluster"
	"github.com/pipe-ml/pipe/pipeline"
)

// scheduleAbout is the one-line description of `pipe schedule`.
const scheduleAbout = "Runs a pipeline on a cron schedule on Temporal (a Temporal Schedule; pipe worker runs the stages): " +
	"create, list, describe, pause, unpause, trigger or delete a schedule."

// scheduleExtra is the end of `pipe schedule --help`.
const scheduleExtra = `Forms:
  pipe schedule create NAME FILE --cron SPEC [--set k=v]... [--store URL] [--runs DIR]
                          [--overlap POLICY] [--note TEXT] [--task-queue QUEUE]
                          validates FILE, puts it into the stage store (schedules/NAME/...) and
                          creates the schedule; FILE's data files are read when each run starts
  pipe schedule list      pipe's schedules: pipeline, cron, state, next run
  pipe schedule describe NAME
                          its cron, overlap policy, state and note, next runs, recent runs and
                          their status, where its runs are written
  pipe schedule pause NAME [--note TEXT]      starts no run until unpaused (trigger still does)
  pipe schedule unpause NAME [--note TEXT]
  pipe schedule trigger NAME                  starts a run now, under the overlap policy
  pipe schedule delete NAME                   runs in flight go on; the config stays in the store
--temporal, --namespace and --task-queue name the cluster, as for pipe run --engine temporal.
--cron is Temporal's cron: minute hour day-of-month month day-of-week ("0 2 * * *": 02:00 every
day), in UTC unless it starts with CRON_TZ=Zone; or @hourly, @daily, @weekly, "@every 6h".
--overlap, when a start comes while a run of the schedule still runs: skip (no new run),
buffer_one, buffer_all, cancel_other, terminate_other or allow_all.
Each run gets an id from its start time and writes its run directory, through a worker, into
--runs/<pipeline>/<run id>: --runs must be a directory every worker shares. pipe runs --temporal
lists the runs, pipe show WORKFLOW_ID --temporal shows one.
`

// scheduleSubcommands are the subcommands of pipe schedule and the flags each takes (besides
// --temporal and --namespace, which all take).
var scheduleSubcommands = map[string][]string{
	"create":   {"cron", "set", "store", "runs", "overlap", "note", "task-queue"},
	"list":     {"format"},
	"describe": {"format"},
	"pause":    {"note"},
	"unpause":  {"note"},
	"trigger":  {},
	"delete":   {},
}

var scheduleOrder = []string{"create", "list", "describe", "pause", "unpause", "trigger", "delete"}

func (a *app) cmdSchedule(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("schedule", stderr)
	cron := fs.String("cron", "", "create: when to run, a cron `SPEC` (\"0 2 * * *\"; see below)")
	var sets stringList
	fs.Var(&sets, "set", "create: override a key, `stage.key=value`; the value is read as TOML (repeatable)")
	storeLoc := fs.String("store", "", "create: the stage store every worker shares, a directory or a `URL` (default: [pipeline] store, else .store in --runs)")
	runs := fs.String("runs", "runs", "create: the runs `DIR`, shared by the workers, into which each run's directory is written")
	overlap := fs.String("overlap", "skip", "create: what a start does while a run of the schedule runs, `POLICY` (see below)")
	note := fs.String("note", "", "create, pause, unpause: the schedule's note, `TEXT`")
	format := fs.String("format", "table", "list, describe: print as `table|json`")
	tf := temporalFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return a.usageError(stderr, "schedule", "")
	}
	if len(pos) == 0 {
		return a.usageError(stderr, "schedule", "takes a subcommand: "+strings.Join(scheduleOrder, ", "))
	}
	sub, pos := pos[0], pos[1:]
	allowed, ok := scheduleSubcommands[sub]
	if !ok {
		msg := fmt.Sprintf("unknown subcommand %q; it is one of %s", sub, strings.Join(scheduleOrder, ", "))
		if s := pipeline.Suggest(sub, scheduleOrder); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return a.usageError(stderr, "schedule", msg)
	}
	var wrong []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "temporal" && f.Name != "namespace" && !contains(allowed, f.Name) {
			wrong = append(wrong, "--"+f.Name)
		}
	})
	if len(wrong) > 0 {
		return a.usageError(stderr, "schedule", fmt.Sprintf("%s does not take %s", sub, strings.Join(wrong, ", ")))
	}
	wantArgs, argNames := 1, "a schedule NAME"
	switch sub {
	case "create":
		wantArgs, argNames = 2, "a schedule NAME and a pipeline FILE"
	case "list":
		wantArgs, argNames = 0, "no arguments"
	}
	if len(pos) != wantArgs {
		return a.usageError(stderr, "schedule", fmt.Sprintf("%s takes %s", sub, argNames))
	}
	if *format != "table" && *format != "json" {
		return a.usageError(stderr, "schedule", fmt.Sprintf("--format must be table or json, not %q", *format))
	}
	name := ""
	if wantArgs > 0 {
		name = pos[0]
		if err := cluster.CheckScheduleName(name); err != nil {
			fmt.Fprintf(stderr, "pipe schedule %s: %v\n", sub, err)
			return pipeline.ExitConfig
		}
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pipe schedule %s: %v\n", sub, err)
		switch {
		case errors.Is(err, cluster.ErrScheduleNotFound):
			fmt.Fprintf(stderr, "pipe schedule list lists the schedules in namespace %s at %s\n", *tf.namespace, tf.addr())
			return pipeline.ExitConfig
		case errors.Is(err, cluster.ErrScheduleExists), errors.Is(err, cluster.ErrNotPipeSchedule), errors.Is(err, cluster.ErrBadSchedule):
			return pipeline.ExitConfig
		}
		return pipeline.ExitFailed
	}

	var p *pipeline.Pipeline
	var recordDir string
	if sub == "create" {
		// Everything that can be checked here is, before Temporal or the store is reached.
		if *cron == "" {
			return a.usageError(stderr, "schedule", "create needs --cron SPEC (e.g. --cron \"0 2 * * *\": 02:00 UTC every day)")
		}
		if err := cluster.CheckCron(*cron); err != nil {
			fmt.Fprintf(stderr, "pipe schedule create: --cron: %v\n", err)
			return pipeline.ExitConfig
		}
		if _, err := cluster.ParseOverlap(*overlap); err != nil {
			fmt.Fprintf(stderr, "pipe schedule create: --overlap: %v\n", err)
			return pipeline.ExitConfig
		}
		var code int
		if p, code = a.load(pos[1], sets, stderr); code != 0 {
			fmt.Fprintf(stderr, "pipe schedule create: %s is not a valid pipeline; no schedule was created\n", pos[1])
			return code
		}
		if recordDir, err = filepath.Abs(*runs); err != nil {
			fmt.Fprintf(stderr, "pipe schedule create: --runs %s: %v\n", *runs, err)
			return pipeline.ExitConfig
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05", NoColor: true}).With().Timestamp().Logger().Level(zerolog.WarnLevel)
	eng, err := cluster.Dial(tf.addr(), *tf.namespace, log)
	if err != nil {
		fmt.Fprintf(stderr, "pipe schedule %s: %v (is a Temporal server running there? --temporal HOST:PORT names another)\n", sub, err)
		return pipeline.ExitConfig
	}
	defer eng.Close()
	c := eng.Client

	switch sub {
	case "create":
		loc := *storeLoc
		if loc == "" {
			loc = p.Store
		}
		if loc == "" {
			loc = filepath.Join(*runs, ".store")
		}
		loc = absLocation(loc)
		s, closeStore, err := openStore(ctx, loc)
		if err != nil {
			fmt.Fprintf(stderr, "pipe schedule create: --store %s: %v\n", loc, err)
			return pipeline.ExitConfig
		}
		defer closeStore()
		opts := pipeline.RunOptions{Store: s, StoreLocation: loc, Overrides: sets}
		so := cluster.ScheduleOptions{Name: name, Cron: *cron, Overlap: *overlap, TaskQueue: *tf.queue, RecordDir: recordDir, Note: *note}
		if err := cluster.CreateSchedule(ctx, c, p, opts, so); err != nil {
			if errors.Is(err, cluster.ErrBadSchedule) {
				fmt.Fprintf(stderr, "pipe schedule create: --cron: %v\n", err)
				return pipeline.ExitConfig
			}
			return fail(err)
		}
		fmt.Fprintf(stdout, "schedule %s: created: pipeline %s, cron %q, overlap %s\n", name, p.Name, *cron, *overlap)
		fmt.Fprintf(stdout, "pipeline config in the stage store %s: %s\n", loc, cluster.ScheduleConfigKey(name, p))
		fmt.Fprintf(stdout, "run directories, written by a worker: %s\n", filepath.Join(recordDir, p.Name, "<run id>"))
		if d, err := cluster.DescribeSchedule(ctx, c, name); err == nil && len(d.Next) > 0 {
			fmt.Fprintf(stdout, "next run: %s\n", d.Next[0].UTC().Format(time.RFC3339))
		}
	case "list":
		list, err := cluster.ListSchedules(ctx, c)
		if err != nil {
			return fail(err)
		}
		if *format == "json" {
			return writeJSON(stdout, stderr, "schedule list", list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tPIPELINE\tCRON\tSTATE\tNEXT RUN")
		for _, s := range list {
			next := "-"
			if len(s.Next) > 0 {
				next = s.Next[0].UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, orDash(s.Pipeline), orDash(s.Cron), scheduleState(s.Paused), next)
		}
		tw.Flush()
	case "describe":
		d, err := cluster.DescribeSchedule(ctx, c, name)
		if err != nil {
			return fail(err)
		}
		if *format == "json" {
			return writeJSON(stdout, stderr, "schedule describe", d)
		}
		printSchedule(stdout, d)
	case "pause":
		if err := cluster.PauseSchedule(ctx, c, name, *note); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "schedule %s: paused\n", name)
	case "unpause":
		if err := cluster.UnpauseSchedule(ctx, c, name, *note); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "schedule %s: active\n", name)
	case "trigger":
		if err := cluster.TriggerSchedule(ctx, c, name); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "schedule %s: triggered a run (pipe schedule describe %s shows it)\n", name, name)
	case "delete":
		if err := cluster.DeleteSchedule(ctx, c, name); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "schedule %s: deleted\n", name)
	}
	return pipeline.ExitOK
}

func scheduleState(paused bool) string {
	if paused {
		return "paused"
	}
	return "active"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeJSON prints v as indented JSON.
func writeJSON(stdout, stderr io.Writer, what string, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "pipe %s: %v\n", what, err)
		return pipeline.ExitFailed
	}
	return pipeline.ExitOK
}

// printSchedule prints what pipe schedule describe shows.
func printSchedule(w io.Writer, s *cluster.Schedule) {
	fmt.Fprintf(w, "schedule %s: %s\n", s.Name, scheduleState(s.Paused))
	fmt.Fprintf(w, "  pipeline:   %s\n", orDash(s.Pipeline))
	fmt.Fprintf(w, "  cron:       %s\n", orDash(s.Cron))
	fmt.Fprintf(w, "  overlap:    %s\n", s.Overlap)
	if s.Note != "" {
		fmt.Fprintf(w, "  note:       %s\n", s.Note)
	}
	fmt.Fprintf(w, "  task queue: %s\n", orDash(s.TaskQueue))
	fmt.Fprintf(w, "  runs dir:   %s\n", orDash(s.RunsDir))
	fmt.Fprintf(w, "  store:      %s (config %s)\n", orDash(s.Store), orDash(s.ConfigKey))
	fmt.Fprintf(w, "  created:    %s; runs started: %d; starts skipped by the overlap policy: %d\n", s.CreatedAt.UTC().Format(time.RFC3339), s.Actions, s.SkippedOverlap)
	if len(s.Next) == 0 {
		fmt.Fprintln(w, "  next runs:  none")
	} else {
		fmt.Fprintln(w, "  next runs:")
		for i, t := range s.Next {
			if i == 5 {
				break
			}
			fmt.Fprintf(w, "    %s\n", t.UTC().Format(time.RFC3339))
		}
	}
	if len(s.Recent) == 0 {
		fmt.Fprintln(w, "  recent runs: none")
		return
	}
	fmt.Fprintln(w, "  recent runs:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    WORKFLOW ID\tSTARTED\tSTATUS")
	for _, r := range s.Recent {
		fmt.Fprintf(tw, "    %s\t%s\t%s\n", orDash(r.WorkflowID), r.StartedAt.UTC().Format(time.RFC3339), r.Status)
	}
	tw.Flush()
}
