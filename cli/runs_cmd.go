package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pipe-ml/pipe/cluster"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/runinfo"
)

// runsJSONDoc is the end of `pipe runs --help`: what --format json prints.
const runsJSONDoc = `--format json prints a JSON array, newest run first; each element has: id, pipeline, dir,
status (succeeded, failed, canceled, degraded, running, crashed or unreadable), error (the
run's error, or why its manifest is unreadable), started_at and finished_at (RFC 3339; absent
when unknown), seconds (so far for a running run; to its last heartbeat for a crashed one),
stages, cached (how many stages were read back from the stage store) and headline (a list of
{stage, key, split, metric, value}: per evaluate stage, each model's and head's test accuracy
or test r2, or val when there is no test).
With --temporal it lists pipe's workflows on that Temporal cluster instead, newest first:
workflow id, pipeline, status (running, succeeded, failed, canceled, terminated, timed_out),
start, duration, and the schedule that started it; --format json prints workflow_id,
workflow_run_id, pipeline, schedule, status, started_at, closed_at and seconds.
`

func (a *app) cmdRuns(args []string, stdout, stderr io.Writer) int {
	flags := newFlags("runs", stderr)
	root := flags.String("runs", "runs", "the runs `DIR` that pipe run writes <pipeline>/<run-id> into")
	format := flags.String("format", "table", "print the runs as `table|json` (json: for scripts, see below)")
	limit := flags.Int("limit", 0, "list only the newest `N` runs (0: all)")
	remote := newRemoteFlags(flags)
	pos, err := parseInterspersed(flags, args)
	if err != nil {
		return a.usageError(stderr, "runs", "")
	}
	if msg := remote.check(flags, "runs"); msg != "" {
		return a.usageError(stderr, "runs", msg)
	}
	if len(pos) > 1 {
		return a.usageError(stderr, "runs", "takes at most one pipeline name")
	}
	if *format != "table" && *format != "json" {
		return a.usageError(stderr, "runs", fmt.Sprintf("--format must be table or json, not %q", *format))
	}
	if *limit < 0 {
		return a.usageError(stderr, "runs", fmt.Sprintf("--limit must be 0 (all) or more, not %d", *limit))
	}
	if *remote.hostPort != "" {
		o := cluster.ListRunsOptions{Limit: *limit}
		if len(pos) == 1 {
			o.Pipeline = pos[0]
		}
		return remoteRuns(remote, o, *format, stdout, stderr)
	}
	opts := runinfo.ListOptions{Limit: *limit}
	if len(pos) == 1 {
		opts.Pipeline = pos[0]
	}
	list, err := runinfo.List(*root, opts)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		list = []runinfo.Run{}
		if *format == "table" {
			fmt.Fprintf(stderr, "pipe runs: there is no runs directory %s (pipe run writes runs there; --runs DIR names another)\n", *root)
		}
	case err != nil:
		fmt.Fprintf(stderr, "pipe runs: %v\n", err)
		return pipeline.ExitFailed
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(list); err != nil {
			fmt.Fprintf(stderr, "pipe runs: %v\n", err)
			return pipeline.ExitFailed
		}
		return 0
	}
	printRuns(stdout, list)
	return 0
}

// printRuns prints the runs as a table, one line each.
func printRuns(w io.Writer, list []runinfo.Run) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPIPELINE\tSTATUS\tSTARTED\tDURATION\tCACHED\tHEADLINE")
	for _, r := range list {
		started := "-"
		if r.StartedAt != nil {
			started = r.StartedAt.UTC().Format(time.RFC3339)
		}
		duration, cached, last := formatDuration(r.Seconds), fmt.Sprintf("%d/%d", r.Cached, r.Stages), headlineText(r.Headline)
		if r.Status == runinfo.StatusUnreadable {
			duration, cached, last = "-", "-", r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Pipeline, r.Status, started, duration, cached, last)
	}
	tw.Flush()
}

// headlineText is the headline metrics on one line: "eval test_accuracy 0.9815, ...".
func headlineText(hs []runinfo.Metric) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = fmt.Sprintf("%s %s %s", h.Stage, h.Key, formatMetric(h.Key, h.Value))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// formatDuration prints seconds as 4.2s, 3m07s or 2h05m.
func formatDuration(s float64) string {
	switch {
	case s < 60:
		return fmt.Sprintf("%.1fs", s)
	case s < 3600:
		n := int(s)
		return fmt.Sprintf("%dm%02ds", n/60, n%60)
	}
	n := int(s) / 60
	return fmt.Sprintf("%dh%02dm", n/60, n%60)
}

// resolveRun finds the run directory an argument names: a directory as it is, or a run id
// (no path separator, no such directory here) looked up as <root>/<pipeline>/<id>.
func resolveRun(arg, root string) (string, error) {
	if fi, err := os.Stat(arg); err == nil {
		if !fi.IsDir() {
			return "", fmt.Errorf("%s is a file, not a run directory", arg)
		}
		return arg, nil
	}
	if strings.ContainsRune(arg, filepath.Separator) || strings.ContainsRune(arg, '/') {
		return "", fmt.Errorf("run directory %s: %w", arg, fs.ErrNotExist)
	}
	matches, _ := filepath.Glob(filepath.Join(root, "*", arg))
	var dirs []string
	for _, m := range matches {
		if _, err := os.Stat(filepath.Join(m, "manifest.json")); err == nil {
			dirs = append(dirs, m)
		}
	}
	switch len(dirs) {
	case 1:
		return dirs[0], nil
	case 0:
		return "", fmt.Errorf("%s is neither a directory nor the id of a run under %s (pipe runs lists them): %w", arg, root, fs.ErrNotExist)
	}
	return "", fmt.Errorf("run id %s is ambiguous: %s; give the directory", arg, strings.Join(dirs, ", "))
}
