package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/cluster"
	"github.com/pipe-ml/pipe/pipeline"
)

// remoteFlags are the flags of pipe runs and pipe show that read the runs of a Temporal
// cluster instead of a runs directory.
type remoteFlags struct {
	hostPort, namespace *string
}

func newRemoteFlags(fs *flag.FlagSet) remoteFlags {
	return remoteFlags{
		hostPort:  fs.String("temporal", "", "read the runs on the Temporal frontend `HOST:PORT` (pipe's workflows) instead of the runs directory"),
		namespace: fs.String("namespace", "default", "with --temporal: the Temporal `NAMESPACE`"),
	}
}

// check reports a wrong combination of the flags ("" when none): --namespace without
// --temporal, or a local flag with it.
func (r remoteFlags) check(fs *flag.FlagSet, local ...string) string {
	if *r.hostPort == "" {
		if flagSet(fs, "namespace") {
			return "--namespace goes with --temporal"
		}
		return ""
	}
	for _, name := range local {
		if flagSet(fs, name) {
			return fmt.Sprintf("--%s reads the local runs; with --temporal the runs are Temporal's", name)
		}
	}
	return ""
}

// dial connects to the cluster the flags name, printing why not to stderr.
func (r remoteFlags) dial(cmd string, stderr io.Writer) (*cluster.Engine, int) {
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05", NoColor: true}).With().Timestamp().Logger().Level(zerolog.WarnLevel)
	eng, err := cluster.Dial(*r.hostPort, *r.namespace, log)
	if err != nil {
		fmt.Fprintf(stderr, "pipe %s: %v (is a Temporal server running there?)\n", cmd, err)
		return nil, pipeline.ExitConfig
	}
	return eng, 0
}

// remoteRuns prints pipe's workflows on a Temporal cluster (pipe runs --temporal).
func remoteRuns(r remoteFlags, o cluster.ListRunsOptions, format string, stdout, stderr io.Writer) int {
	eng, code := r.dial("runs", stderr)
	if code != 0 {
		return code
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := cluster.ListRuns(ctx, eng.Client, o)
	if err != nil {
		fmt.Fprintf(stderr, "pipe runs: %v\n", err)
		return pipeline.ExitFailed
	}
	if format == "json" {
		return writeJSON(stdout, stderr, "runs", list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKFLOW ID\tPIPELINE\tSTATUS\tSTARTED\tDURATION\tSCHEDULE")
	for _, w := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", w.WorkflowID, orDash(w.Pipeline), w.Status, w.StartedAt.UTC().Format(time.RFC3339),
			formatDuration(w.Seconds), orDash(w.Schedule))
	}
	tw.Flush()
	return pipeline.ExitOK
}

// remoteShow prints one of pipe's workflows (pipe show WORKFLOW_ID --temporal).
func remoteShow(r remoteFlags, workflowID string, stdout, stderr io.Writer) int {
	eng, code := r.dial("show", stderr)
	if code != 0 {
		return code
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := cluster.DescribeRun(ctx, eng.Client, workflowID)
	if err != nil {
		fmt.Fprintf(stderr, "pipe show: %v\n", err)
		if errors.Is(err, cluster.ErrRunNotFound) {
			return pipeline.ExitConfig
		}
		return pipeline.ExitFailed
	}
	printRemoteRun(stdout, d)
	return pipeline.ExitOK
}

// printRemoteRun prints a run on Temporal: its workflow, status and time, each stage's state.
func printRemoteRun(w io.Writer, d *cluster.RunDetails) {
	fmt.Fprintf(w, "workflow %s (run %s): %s in %s\n", d.WorkflowID, d.RunID, d.Status, formatDuration(d.Seconds))
	if d.Pipeline != "" {
		fmt.Fprintf(w, "pipeline: %s\n", d.Pipeline)
	}
	if d.Schedule != "" {
		fmt.Fprintf(w, "schedule: %s\n", d.Schedule)
	}
	line := "started: " + d.StartedAt.UTC().Format(time.RFC3339)
	if d.ClosedAt != nil {
		line += ", ended: " + d.ClosedAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintln(w, line)
	if len(d.Stages) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  STAGE\tSTATUS\tMEMBERS\tWORKER\tATTEMPTS\tSECONDS")
		for _, s := range d.Stages {
			status := s.Status
			if s.Stored {
				status = "cached"
			}
			members, worker, attempts, secs := "-", orDash(s.Worker), "-", "-"
			if s.Parts > 0 {
				members = fmt.Sprintf("%d/%d", s.Done, s.Parts)
			}
			if s.Attempts > 0 {
				attempts = fmt.Sprint(s.Attempts)
			}
			if s.Seconds > 0 {
				secs = fmt.Sprintf("%.2f", s.Seconds)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", s.Name, status, members, worker, attempts, secs)
		}
		tw.Flush()
		for _, s := range d.Stages {
			if s.Error != "" {
				fmt.Fprintf(w, "stage %s: %s\n", s.Name, s.Error)
			}
		}
	}
	if d.StagesNote != "" {
		fmt.Fprintln(w, d.StagesNote)
	}
	if d.Error != "" {
		fmt.Fprintf(w, "error: %s\n", d.Error)
	}
	if d.RecordDir != "" {
		fmt.Fprintf(w, "run: %s\n", d.RecordDir)
	}
}
