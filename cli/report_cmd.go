package cli

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/report"
)

// reportFile is the name of the report page in a run directory.
const reportFile = "report.html"

// reportAbout is the one-line description of `pipe report`.
const reportAbout = "Writes a run's report.html again from its run directory: for older runs, or runs made elsewhere."

// buildReport reads a run directory into its report. A test replaces it.
var buildReport = report.Build

func (a *app) cmdReport(args []string, stdout, stderr io.Writer) int {
	flags := newFlags("report", stderr)
	out := flags.String("out", "", "write the page to `FILE` instead of RUN_DIR/report.html")
	pos, err := parseInterspersed(flags, args)
	if err != nil {
		return a.usageError(stderr, "report", "")
	}
	if len(pos) != 1 {
		return a.usageError(stderr, "report", "takes one run directory")
	}
	dir := pos[0]
	if _, _, err := pipeline.ReadRun(dir); err != nil {
		fmt.Fprintf(stderr, "pipe report: %s holds no run: %v (give a run directory, one with a manifest.json, as pipe run prints it)\n", dir, err)
		return pipeline.ExitConfig
	}
	path := *out
	if path == "" {
		path = filepath.Join(dir, reportFile)
	}
	if err := writeReport(dir, path); err != nil {
		fmt.Fprintf(stderr, "pipe report: %v\n", err)
		return pipeline.ExitFailed
	}
	fmt.Fprintf(stdout, "report: %s\n", path)
	return 0
}

// writeReport builds the report of the run in dir and writes it to path atomically.
func writeReport(dir, path string) error {
	r, err := buildReport(dir)
	if err != nil {
		return fmt.Errorf("the report of run %s: %w", dir, err)
	}
	return report.WriteFile(path, r)
}

// writeRunReport writes report.html into the directory of a run that has ended (succeeded,
// failed, degraded or canceled: the report shows what ran). A report that cannot be built or
// written is a warning in the run's log format on stderr, never a change of the run's exit
// code; `pipe report` can try again.
func writeRunReport(dir string, stderr io.Writer, jsonLogs bool) {
	err := writeReport(dir, filepath.Join(dir, reportFile))
	if err == nil {
		return
	}
	var w io.Writer = stderr
	if !jsonLogs {
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05", NoColor: true}
	}
	l := zerolog.New(w).With().Timestamp().Logger()
	l.Warn().Err(err).Str("dir", dir).Msg("report.html was not written; pipe report " + dir + " tries again")
}
