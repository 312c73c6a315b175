package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/term"

	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/runinfo"
)

// showAbout is the one-line description of `pipe show`.
const showAbout = "Prints a run's summary, a stage's manifest entry and files, or a table file (Parquet, Arrow IPC, CSV) of a run;\n" +
	"RUN is a run directory or a run id under --runs. `pipe show FILE` prints any table file."

// showExtra is the end of `pipe show --help`.
const showExtra = `Forms:
  pipe show RUN                 the run's summary, as pipe run prints it at its end
  pipe show RUN STAGE           the stage's whole manifest entry (status, time, rows, outputs,
                                metrics, info, notes, attempts, cache key) and its files
  pipe show RUN STAGE FILE      the table file RUN/stages/STAGE/FILE (e.g. worst_test_out.parquet)
  pipe show FILE                a table file by its path: .parquet, .arrow, .ipc, .feather, .csv, .csv.gz
  pipe show WORKFLOW_ID --temporal HOST:PORT
                                a run on Temporal: its status and time, each stage's state (and
                                members done) from the running workflow or from its result, the
                                run directory a worker wrote
A table prints its first --rows rows under each column's name and type; columns that do not fit
in --width are left out and named at the end.
`

func (a *app) cmdShow(args []string, stdout, stderr io.Writer) int {
	flags := newFlags("show", stderr)
	rows := flags.Int("rows", 20, "print at most `N` rows of a table file")
	width := flags.Int("width", 0, "fit a table in `COLS` columns (0: the terminal's width, or 120 when stdout is not a terminal)")
	root := flags.String("runs", "runs", "the runs `DIR` in which a run id is looked up")
	remote := newRemoteFlags(flags)
	pos, err := parseInterspersed(flags, args)
	if err != nil {
		return a.usageError(stderr, "show", "")
	}
	if msg := remote.check(flags, "runs", "rows", "width"); msg != "" {
		return a.usageError(stderr, "show", msg)
	}
	if *remote.hostPort != "" {
		if len(pos) != 1 {
			return a.usageError(stderr, "show", "with --temporal it takes one workflow id (pipe runs --temporal lists them)")
		}
		return remoteShow(remote, pos[0], stdout, stderr)
	}
	if len(pos) < 1 || len(pos) > 3 {
		return a.usageError(stderr, "show", "takes a run and optionally a stage and a file, or a table file")
	}
	if *rows < 0 || *width < 0 {
		return a.usageError(stderr, "show", "--rows and --width must not be negative")
	}
	view := tableView{Rows: *rows, Width: *width}
	if view.Width == 0 {
		view.Width = terminalWidth(stdout)
	}
	mem := memory.NewGoAllocator()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pipe show: %v\n", err)
		if errors.Is(err, fs.ErrNotExist) {
			return pipeline.ExitConfig
		}
		return pipeline.ExitFailed
	}
	if len(pos) == 1 {
		if fi, err := os.Stat(pos[0]); err == nil && !fi.IsDir() {
			if _, _, ferr := tableio.FormatOf(pos[0]); ferr != nil {
				return fail(fmt.Errorf("%s is neither a run directory nor a table file: %w", pos[0], ferr))
			}
			if err := view.print(stdout, pos[0], mem); err != nil {
				return fail(err)
			}
			return 0
		}
	}
	dir, err := resolveRun(pos[0], *root)
	if err != nil {
		return fail(err)
	}
	if len(pos) == 3 {
		file := filepath.FromSlash(pos[2])
		if !filepath.IsLocal(file) || !filepath.IsLocal(pos[1]) {
			return a.usageError(stderr, "show", fmt.Sprintf("STAGE and FILE name a file inside the run's stages/ directory; %q/%q does not", pos[1], pos[2]))
		}
		path := filepath.Join(dir, "stages", pos[1], file)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			var names []string
			if ents, err := os.ReadDir(filepath.Dir(path)); err == nil {
				for _, e := range ents {
					if _, _, err := tableio.FormatOf(e.Name()); err == nil && !e.IsDir() {
						names = append(names, e.Name())
					}
				}
			}
			msg := fmt.Sprintf("run %s has no file %s", dir, filepath.Join("stages", pos[1], file))
			if len(names) > 0 {
				msg += fmt.Sprintf("; the table files of stage %s: %s", pos[1], strings.Join(names, ", "))
			} else {
				msg += fmt.Sprintf("; pipe show %s %s lists the stage's files", dir, pos[1])
			}
			fmt.Fprintf(stderr, "pipe show: %s\n", msg)
			return pipeline.ExitConfig
		}
		if err := view.print(stdout, path, mem); err != nil {
			return fail(err)
		}
		return 0
	}
	m, status, err := pipeline.ReadRun(dir)
	if err != nil {
		return fail(fmt.Errorf("run %s: %w", dir, err))
	}
	if len(pos) == 2 {
		s, ok := m.Stages[pos[1]]
		if !ok {
			names := make([]string, 0, len(m.Stages))
			for n := range m.Stages {
				names = append(names, n)
			}
			sort.Strings(names)
			msg := fmt.Sprintf("run %s has no stage %q", dir, pos[1])
			if sug := pipeline.Suggest(pos[1], names); sug != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sug)
			}
			fmt.Fprintf(stderr, "pipe show: %s; its stages: %s\n", msg, strings.Join(names, ", "))
			return pipeline.ExitConfig
		}
		printStage(stdout, dir, pos[1], s)
		return 0
	}
	printRunSummary(stdout, dir, m, status, time.Now())
	return 0
}

// printRunSummary prints the summary pipe run prints at its end for a run read from disk,
// with the status ReadRun told (crashed, for a running manifest whose process is gone) and a
// running run's time so far.
func printRunSummary(w io.Writer, dir string, m *pipeline.Manifest, status string, now time.Time) {
	shown := *m
	shown.Status = status
	shown.Seconds = runinfo.Seconds(m, status, now)
	printSummary(w, &shown)
	switch status {
	case pipeline.StatusCrashed:
		fmt.Fprintf(w, "crashed: the manifest says running, but its process (pid %d on host %s) is gone\n", m.PID, m.Host)
	case pipeline.StatusRunning:
		fmt.Fprintf(w, "running: pid %d on host %s\n", m.PID, m.Host)
	}
	if m.Error != "" {
		fmt.Fprintf(w, "error: %s\n", m.Error)
	}
	for _, warn := range m.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	fmt.Fprintf(w, "run: %s\n", dir)
}

// printStage prints a stage's whole manifest entry, then the files of its directory.
func printStage(w io.Writer, dir, name string, s *pipeline.StageManifest) {
	fmt.Fprintf(w, "stage %s (%s): %s\n", name, s.Kind, s.Status)
	if s.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", s.Error)
	}
	line := fmt.Sprintf("  seconds: %.2f", s.Seconds)
	if s.WaitedSeconds > 0 {
		line += fmt.Sprintf(" (and %.2f waiting for inputs)", s.WaitedSeconds)
	}
	fmt.Fprintln(w, line)
	fmt.Fprintf(w, "  rows: %d in, %d out, %d batches\n", s.RowsIn, s.RowsOut, s.Batches)
	switch {
	case s.Cached:
		fmt.Fprintf(w, "  cache: read from the stage store, key %s\n", s.CacheKey)
	case s.CacheKey != "":
		fmt.Fprintf(w, "  cache: ran, stored under key %s\n", s.CacheKey)
	}
	if len(s.Outputs) > 0 {
		fmt.Fprintln(w, "  outputs:")
		for _, port := range sortedKeys(s.Outputs) {
			o := s.Outputs[port]
			desc := o.Kind
			if o.Type != "" {
				desc += " " + o.Type
			}
			if o.Kind == "table" {
				desc += fmt.Sprintf(", %d rows, %d batches", o.Rows, o.Batches)
				if o.Split != "" {
					desc += ", split " + o.Split
				}
				if o.Spilled {
					desc += ", spilled to disk"
				}
			}
			fmt.Fprintf(w, "    %-16s %s\n", port, desc)
		}
	}
	if len(s.Metrics) > 0 {
		fmt.Fprintln(w, "  metrics:")
		keys := sortedKeys(s.Metrics)
		width := 0
		for _, k := range keys {
			width = max(width, len(k))
		}
		for _, k := range keys {
			fmt.Fprintf(w, "    %-*s  %s\n", width, k, formatMetric(k, s.Metrics[k]))
		}
	}
	if len(s.Info) > 0 {
		fmt.Fprintln(w, "  info:")
		for _, k := range sortedKeys(s.Info) {
			b, err := json.MarshalIndent(s.Info[k], "    ", "  ")
			if err != nil {
				b = []byte(fmt.Sprint(s.Info[k]))
			}
			fmt.Fprintf(w, "    %s: %s\n", k, b)
		}
	}
	for _, list := range []struct {
		title string
		items []string
	}{{"notes", s.Notes}, {"dropped", s.Dropped}} {
		if len(list.items) > 0 {
			fmt.Fprintf(w, "  %s:\n", list.title)
			for _, n := range list.items {
				fmt.Fprintf(w, "    - %s\n", n)
			}
		}
	}
	if len(s.Attempts) > 0 {
		fmt.Fprintln(w, "  attempts:")
		for i, at := range s.Attempts {
			outcome := "succeeded"
			if at.Error != "" {
				outcome = "failed: " + at.Error
			}
			fmt.Fprintf(w, "    %d. %s  %.2fs  %s\n", i+1, at.StartedAt.UTC().Format(time.RFC3339), at.Seconds, outcome)
		}
	}
	sdir := filepath.Join(dir, "stages", name)
	ents, err := os.ReadDir(sdir)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "  files in %s:\n", sdir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	tables := false
	for _, e := range ents {
		if e.IsDir() {
			fmt.Fprintf(tw, "    %s/\t\tdirectory\n", e.Name())
			continue
		}
		size, kind := "", ""
		if fi, err := e.Info(); err == nil {
			size = formatBytes(fi.Size())
		}
		if _, _, err := tableio.FormatOf(e.Name()); err == nil {
			kind, tables = "table", true
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\n", e.Name(), size, kind)
	}
	tw.Flush()
	if tables {
		fmt.Fprintf(w, "  (pipe show %s %s FILE prints a table)\n", dir, name)
	}
}

// formatBytes prints a size as 512 B, 2.0 KiB, 3.4 MiB or 1.2 GiB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// terminalWidth is the width of w when it is a terminal, or 120.
func terminalWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
	}
	return 120
}
