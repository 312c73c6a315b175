package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/runinfo"
)

// compareExtra is the end of `pipe compare --help`.
const compareExtra = `It prints the seed, pipe version and config hash of both runs; every key of their resolved
configs (pipeline.toml) that differs, named as --set names it (model.optimizer.lr,
model.layers[1].dense, pipeline.seed); the stages whose status differs, or that were read from
the stage store in one run and not the other; and every metric of either run with A, B and B-A.
--format json prints the same as one JSON object: {a, b, config, stages, metrics}.
`

func (a *app) cmdCompare(args []string, stdout, stderr io.Writer) int {
	flags := newFlags("compare", stderr)
	format := flags.String("format", "table", "print the comparison as `table|json`")
	root := flags.String("runs", "runs", "the runs `DIR` in which a run id is looked up")
	pos, err := parseInterspersed(flags, args)
	if err != nil {
		return a.usageError(stderr, "compare", "")
	}
	if len(pos) != 2 {
		return a.usageError(stderr, "compare", "takes two runs")
	}
	if *format != "table" && *format != "json" {
		return a.usageError(stderr, "compare", fmt.Sprintf("--format must be table or json, not %q", *format))
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pipe compare: %v\n", err)
		if errors.Is(err, fs.ErrNotExist) {
			return pipeline.ExitConfig
		}
		return pipeline.ExitFailed
	}
	var dirs [2]string
	for i, arg := range pos {
		if dirs[i], err = resolveRun(arg, *root); err != nil {
			return fail(err)
		}
	}
	c, err := runinfo.Compare(dirs[0], dirs[1])
	if err != nil {
		return fail(err)
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(c); err != nil {
			return fail(err)
		}
		return 0
	}
	printComparison(stdout, c)
	return 0
}

// printComparison prints a comparison as text.
func printComparison(w io.Writer, c *runinfo.Comparison) {
	for _, s := range []struct {
		name string
		side runinfo.Side
	}{{"A", c.A}, {"B", c.B}} {
		started := ""
		if s.side.StartedAt != nil {
			started = ", started " + s.side.StartedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s  %s  (%s %s, %s%s)\n", s.name, s.side.Dir, s.side.Pipeline, s.side.ID, s.side.Status, started)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	pair := func(label, a, b string) {
		if a == b {
			fmt.Fprintf(tw, "%s\t%s (same)\n", label, a)
		} else {
			fmt.Fprintf(tw, "%s\t%s | %s\n", label, a, b)
		}
	}
	pair("seed", fmt.Sprint(c.A.Seed), fmt.Sprint(c.B.Seed))
	pair("pipe version", c.A.PipeVersion, c.B.PipeVersion)
	pair("config hash", shortHash(c.A.ConfigHash), shortHash(c.B.ConfigHash))
	if len(c.A.Overrides)+len(c.B.Overrides) > 0 {
		pair("overrides", orNone(strings.Join(c.A.Overrides, " ")), orNone(strings.Join(c.B.Overrides, " ")))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nconfig (pipeline.toml): %s\n", plural(len(c.Config), "difference"))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, cc := range c.Config {
		switch cc.Change {
		case runinfo.Changed:
			fmt.Fprintf(tw, "  %s\t%s\t%s → %s\n", cc.Change, cc.Path, cc.A, cc.B)
		case runinfo.Added:
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", cc.Change, cc.Path, cc.B)
		default:
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", cc.Change, cc.Path, cc.A)
		}
	}
	tw.Flush()

	if len(c.Stages) > 0 {
		fmt.Fprintf(w, "\nstages that differ:\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, s := range c.Stages {
			fmt.Fprintf(tw, "  %s\tA: %s\tB: %s\n", s.Stage, stageState(s.AStatus, s.ACached), stageState(s.BStatus, s.BCached))
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nmetrics:\n")
	if len(c.Metrics) == 0 {
		fmt.Fprintln(w, "  none in either run")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  stage\tmetric\tA\tB\tB-A\n")
	for _, m := range c.Metrics {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", m.Stage, m.Key, metricOrDash(m.Key, m.A), metricOrDash(m.Key, m.B), deltaText(m.Key, m.Delta))
	}
	tw.Flush()
}

func stageState(status string, cached bool) string {
	switch {
	case status == "":
		return "absent"
	case cached:
		return status + ", cached"
	}
	return status
}

func metricOrDash(key string, v *float64) string {
	if v == nil {
		return "-"
	}
	return formatMetric(key, *v)
}

// deltaText prints B-A with its sign: an integer for a count, four decimals otherwise.
func deltaText(key string, d *float64) string {
	if d == nil {
		return "-"
	}
	if isCount(key) && *d == math.Trunc(*d) && math.Abs(*d) < 1<<53 {
		return fmt.Sprintf("%+d", int64(*d))
	}
	return fmt.Sprintf("%+.4f", *d)
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return orNone(h)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
