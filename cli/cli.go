package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/stages"
)

const usage = `pipe runs machine-learning pipelines written as TOML DAGs of stages.

Usage:
  pipe run FILE [--out DIR] [--set stage.key=value]... [--log-format console|json] [--data-dir DIR]
  pipe validate FILE [--set stage.key=value]...
  pipe graph FILE [--format dot|mermaid]
  pipe docs [KIND...]
  pipe datasets
  pipe summary BUNDLE
  pipe gradcheck FILE|BUNDLE [--rows N]
  pipe predict --model BUNDLE --input FILE --output FILE
  pipe version

Exit codes:
  0    success (validate: the pipeline is valid)
  1    the run failed (a stage returned an error); see manifest.json and the log
  2    usage or config error; nothing ran
  3    the run finished degraded (something was dropped, e.g. an ensemble member)
  130  interrupted (SIGINT or SIGTERM); the manifest says "canceled"
`

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// Command is the pipe command-line program: run, validate, graph, docs, datasets, predict,
// summary, gradcheck and version, with the built-in stage kinds and any a program adds. The
// zero value is the plain pipe command.
//
// A Go program that registers its own stage kinds gets the whole command, with its progress
// bar, run summary, signal handling and exit codes, from one call:
//
//	func main() {
//		cmd := cli.Command{Register: func(r *pipeline.Registry) error { return r.Register(myKind()) }}
//		os.Exit(cmd.Main(os.Args[1:], os.Stdout, os.Stderr))
//	}
type Command struct {
	// Name is the program's name in usage lines and messages. Default "pipe".
	Name string
	// Register adds the program's own stage kinds after the built-in ones. nil: none.
	Register func(r *pipeline.Registry) error
	// Transforms registers the decoders of the program's own saved transforms (those its
	// kinds record with pipeline.ReplayableTransformStage), after pipe's own, so that
	// `predict` and `summary` can load bundles that hold them. nil: none.
	Transforms func(d *bundle.Decoders) error
}

// Main runs the pipe command with args (without the program name) and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	return (&Command{}).Main(args, stdout, stderr)
}

// Main runs the command with args (without the program name) and returns its exit code.
func (c *Command) Main(args []string, stdout, stderr io.Writer) int {
	reg, err := c.Registry()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name(), err)
		return pipeline.ExitConfig
	}
	a := &app{cmd: c, reg: reg}
	return a.main(args, stdout, stderr)
}

func (c *Command) name() string {
	if c.Name == "" {
		return "pipe"
	}
	return c.Name
}

// Registry returns the registry of stage kinds the command runs: the built-in kinds, then the
// program's own. A duplicate kind name is an error.
func (c *Command) Registry() (*pipeline.Registry, error) {
	r := pipeline.NewRegistry()
	if err := stages.Register(r); err != nil {
		return nil, err
	}
	if c.Register != nil {
		if err := c.Register(r); err != nil {
			return nil, fmt.Errorf("registering the program's stage kinds: %w", err)
		}
	}
	return r, nil
}

// Decoders returns the registry of saved-transform decoders the command loads bundles with:
// pipe's own (features.RegisterTransforms), then the program's.
func (c *Command) Decoders() (*bundle.Decoders, error) {
	d := bundle.NewDecoders()
	if err := features.RegisterTransforms(d); err != nil {
		return nil, err
	}
	if c.Transforms != nil {
		if err := c.Transforms(d); err != nil {
			return nil, fmt.Errorf("registering the program's transforms: %w", err)
		}
	}
	return d, nil
}

// app is one invocation of a Command.
type app struct {
	cmd *Command
	reg *pipeline.Registry
}

func (a *app) decoders() (*bundle.Decoders, error) { return a.cmd.Decoders() }

func (a *app) main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return pipeline.ExitConfig
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return a.cmdRun(rest, stdout, stderr)
	case "validate":
		return a.cmdValidate(rest, stdout, stderr)
	case "graph":
		return a.cmdGraph(rest, stdout, stderr)
	case "docs":
		return a.cmdDocs(rest, stdout, stderr)
	case "datasets":
		return cmdDatasets(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "pipe", Version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	if extra, ok := extraCommands[cmd]; ok {
		return extra(a, rest, stdout, stderr)
	}
	msg := fmt.Sprintf("pipe: unknown command %q", cmd)
	names := []string{"run", "validate", "graph", "docs", "datasets", "version", "help"}
	for n := range extraCommands {
		names = append(names, n)
	}
	if s := pipeline.Suggest(cmd, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	fmt.Fprintf(stderr, "%s\n\n%s", msg, usage)
	return pipeline.ExitConfig
}

// extraCommands are the commands that live in their own files.
var extraCommands = map[string]func(a *app, args []string, stdout, stderr io.Writer) int{
	"predict":   (*app).cmdPredict,
	"summary":   (*app).cmdSummary,
	"gradcheck": (*app).cmdGradcheck,
}

// Version is pipe's version from the build info.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
	}
	return "devel"
}

// Registry returns the registry of the built-in stage kinds.
func Registry() *pipeline.Registry {
	r, err := (&Command{}).Registry()
	if err != nil {
		panic(err) // a broken built-in table is a programming error
	}
	return r
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pipe "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseInterspersed lets flags follow the positional FILE (pipe run p.toml --out x).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (a *app) load(path string, overrides []string, stderr io.Writer) (*pipeline.Pipeline, int) {
	p, err := pipeline.Load(path, a.reg, pipeline.LoadOptions{Overrides: overrides})
	if err != nil {
		errs := pipeline.ConfigErrors(err)
		if len(errs) == 0 {
			fmt.Fprintf(stderr, "pipe: %v\n", err)
		} else {
			for _, e := range errs {
				fmt.Fprintln(stderr, e.Error())
			}
			if len(errs) > 1 {
				fmt.Fprintf(stderr, "%d problems\n", len(errs))
			}
		}
		return nil, pipeline.ExitConfig
	}
	return p, 0
}

func (a *app) cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate", stderr)
	var sets stringList
	fs.Var(&sets, "set", "override a key: stage.key=value (repeatable)")
	pos, err := parseInterspersed(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: pipe validate FILE [--set stage.key=value]...")
		return pipeline.ExitConfig
	}
	p, code := a.load(pos[0], sets, stderr)
	if code != 0 {
		return code
	}
	fmt.Fprintf(stdout, "%s: valid (%d stages)\n", pos[0], len(p.Stages))
	return 0
}

func (a *app) cmdGraph(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("graph", stderr)
	format := fs.String("format", "dot", "dot or mermaid")
	pos, err := parseInterspersed(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: pipe graph FILE [--format dot|mermaid]")
		return pipeline.ExitConfig
	}
	p, code := a.load(pos[0], nil, stderr)
	if code != 0 {
		return code
	}
	switch *format {
	case "dot":
		fmt.Fprint(stdout, p.DOT())
	case "mermaid":
		fmt.Fprint(stdout, p.Mermaid())
	default:
		fmt.Fprintf(stderr, "pipe graph: unknown format %q (dot or mermaid)\n", *format)
		return pipeline.ExitConfig
	}
	return 0
}

func (a *app) cmdDocs(args []string, stdout, stderr io.Writer) int {
	doc, err := pipeline.Docs(a.reg, args...)
	if err != nil {
		fmt.Fprintf(stderr, "pipe docs: %v\n", err)
		return pipeline.ExitConfig
	}
	fmt.Fprint(stdout, doc)
	return 0
}

func (a *app) cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", stderr)
	var sets stringList
	fs.Var(&sets, "set", "override a key: stage.key=value (repeatable)")
	out := fs.String("out", "", "the run directory, used exactly (default runs/<pipeline>/<run-id>)")
	runs := fs.String("runs", "runs", "the parent of run directories when --out is not given")
	logFormat := fs.String("log-format", "console", "console (human) or json (one JSON object per line)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	dataDir := fs.String("data-dir", "", "where to look first for datasets that are not embedded (MNIST)")
	noProgress := fs.Bool("no-progress", false, "no progress bar, even on a terminal")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (for `go tool pprof`)")
	pos, err := parseInterspersed(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: pipe run FILE [--out DIR] [--set stage.key=value]... [--log-format console|json]")
		return pipeline.ExitConfig
	}
	if *logFormat != "console" && *logFormat != "json" {
		fmt.Fprintf(stderr, "pipe run: --log-format must be console or json, not %q\n", *logFormat)
		return pipeline.ExitConfig
	}
	level, err := zerolog.ParseLevel(*logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "pipe run: --log-level: %v\n", err)
		return pipeline.ExitConfig
	}
	p, code := a.load(pos[0], sets, stderr)
	if code != 0 {
		return code
	}
	disp := newDisplay(stderr, *logFormat == "console" && !*noProgress, len(p.Stages))
	var logw io.Writer = disp
	if *logFormat == "console" {
		logw = zerolog.ConsoleWriter{Out: disp, TimeFormat: "15:04:05", NoColor: !disp.tty, PartsExclude: []string{"run"}, FieldsExclude: []string{"run"}}
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigs:
			cancel(fmt.Errorf("%w by %s", pipeline.ErrCanceled, s))
		case <-done:
		}
	}()

	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "pipe run: --cpuprofile: %v\n", err)
			return pipeline.ExitConfig
		}
		defer stop()
	}
	res, err := pipeline.Run(ctx, p, pipeline.RunOptions{
		Dir: *out, RunsDir: *runs, LogWriter: logw, LogLevel: level, DataDir: *dataDir, Progress: disp.event,
		Overrides: sets, Version: Version(), GEMM: gemmName(),
	})
	disp.finish()
	if res == nil {
		fmt.Fprintf(stderr, "pipe run: %v\n", err)
		return pipeline.ExitFailed
	}
	m := res.Manifest
	if err != nil && !errors.Is(err, pipeline.ErrCanceled) {
		fmt.Fprintf(stderr, "pipe run: %v\n", err)
	}
	printSummary(stdout, m)
	fmt.Fprintf(stdout, "run: %s\n", res.Dir)
	return pipeline.ExitCode(m.Status)
}

// printSummary prints each stage's status and its headline metrics.
func printSummary(w io.Writer, m *pipeline.Manifest) {
	fmt.Fprintf(w, "%s: %s in %.1fs\n", m.Pipeline, m.Status, m.Seconds)
	for _, name := range m.StageOrder {
		s := m.Stages[name]
		line := fmt.Sprintf("  %-14s %-10s %-9s %7.2fs", name, s.Kind, s.Status, s.Seconds)
		if s.RowsOut > 0 {
			line += fmt.Sprintf("  %d rows", s.RowsOut)
		}
		fmt.Fprintln(w, line)
		for _, k := range headlineMetrics(s.Metrics) {
			fmt.Fprintf(w, "      %-32s %.4f\n", k, s.Metrics[k])
		}
	}
	for _, d := range m.Dropped {
		fmt.Fprintf(w, "  dropped: %s\n", d)
	}
}

// headlineMetrics picks the metrics worth a line in the summary: test and val metrics; of
// per-round metrics (round_<n>/..., e.g. pseudo_label's), only the last round's.
func headlineMetrics(ms map[string]float64) []string {
	lastRound := -1
	for k := range ms {
		if n, ok := roundOf(k); ok {
			lastRound = max(lastRound, n)
		}
	}
	var keys []string
	for k := range ms {
		if n, ok := roundOf(k); ok && n != lastRound {
			continue
		}
		base := k[strings.LastIndex(k, "/")+1:]
		if strings.HasPrefix(base, "test_") || strings.HasPrefix(base, "val_") || strings.HasPrefix(base, "oob_") {
			keys = append(keys, k)
		}
	}
	sortStrings(keys)
	if len(keys) > 24 {
		keys = keys[:24]
	}
	return keys
}

// roundOf returns n for a metric named round_<n>/...
func roundOf(k string) (int, bool) {
	rest, ok := strings.CutPrefix(k, "round_")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	return n, err == nil
}

// startCPUProfile starts the runtime's CPU profiler writing to path; the returned function
// stops it and closes the file.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
