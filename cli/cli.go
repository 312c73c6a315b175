package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/cluster"
	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/runinfo"
	"github.com/pipe-ml/pipe/stages"
)

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
	if c.Transforms != nil {
		// The stage store reads tables and bundles back with the program's transforms too.
		d, err := c.Decoders()
		if err != nil {
			return nil, err
		}
		if err := stages.UseDecoders(r, d); err != nil {
			return nil, err
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
		fmt.Fprint(stderr, a.usage())
		return pipeline.ExitConfig
	}
	name, rest := args[0], args[1:]
	switch name {
	case "--version":
		name = "version"
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			fmt.Fprint(stdout, a.usage())
			return 0
		}
		name, rest = rest[0], []string{"--help"}
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
		if c.name != name {
			continue
		}
		if wantsHelp(rest) {
			fmt.Fprint(stdout, a.help(c))
			return 0
		}
		if c.name == "version" {
			if len(rest) > 0 {
				return a.usageError(stderr, "version", "takes no arguments")
			}
			fmt.Fprintln(stdout, a.cmd.name(), Version())
			return 0
		}
		return c.run(a, rest, stdout, stderr)
	}
	msg := fmt.Sprintf("%s: unknown command %q", a.cmd.name(), name)
	if s := pipeline.Suggest(name, append(names, "help")); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	fmt.Fprintf(stderr, "%s\n\n%s", msg, a.usage())
	return pipeline.ExitConfig
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

// newFlags returns the flag set of a command. flag prints only a parse error to stderr (the
// command prints its usage); -h and --help never reach it (main answers them), except from
// flagsOf, which gets the set through its flagProbe.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pipe "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	if probe, ok := stderr.(*flagProbe); ok {
		probe.fs = fs
	}
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
	fs.Var(&sets, "set", "override a key, `stage.key=value`; the value is read as TOML (repeatable)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return a.usageError(stderr, "validate", "")
	}
	if len(pos) != 1 {
		return a.usageError(stderr, "validate", "takes one pipeline file")
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
	format := fs.String("format", "dot", "print the graph as `dot|mermaid` (Graphviz or Mermaid)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return a.usageError(stderr, "graph", "")
	}
	if len(pos) != 1 {
		return a.usageError(stderr, "graph", "takes one pipeline file")
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
	fs.Var(&sets, "set", "override a key, `stage.key=value`; the value is read as TOML (repeatable)")
	out := fs.String("out", "", "the run directory `DIR`, used exactly: it must not exist or be empty (default: a new runs/<pipeline>/<run-id>)")
	runs := fs.String("runs", "runs", "the `DIR` that holds <pipeline>/<run-id> when --out is not given")
	logFormat := fs.String("log-format", "console", "write log lines to stderr as `console|json` (json: one JSON object per line, for jobs)")
	logLevel := fs.String("log-level", "info", "show log lines of this level and above, `debug|info|warn|error` (log.jsonl has all)")
	dataDir := fs.String("data-dir", "", "the `DIR` to look in first for datasets that are not embedded (MNIST)")
	noProgress := fs.Bool("no-progress", false, "no progress bar, even on a terminal")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to `FILE`, for go tool pprof")
	storeLoc := fs.String("store", "", "the stage store, a directory or a `URL` (default: [pipeline] store, else .store in the --runs directory, or beside --out when only --out is given)")
	noCache := fs.Bool("no-cache", false, "run every stage: read nothing back from the stage store and store nothing")
	var refresh stringList
	fs.Var(&refresh, "refresh", "run `STAGE` and every stage downstream of it even when cached, and store them again (repeatable)")
	resumeDir := fs.String("resume", "", "continue the interrupted (canceled, crashed or failed) run in `DIR`, in place: finished stages come back from the stage store, interrupted training continues from its last checkpoint; FILE may be left out (the run's own config file is used)")
	resumeChanged := fs.Bool("resume-changed", false, "with --resume, when the config changed since the run: start a new run instead, which reuses what it can through the cache")
	noReport := fs.Bool("no-report", false, "do not write report.html (the run's report page) into the run directory")
	engineName := fs.String("engine", "local", "run the stages `local|temporal`: here, or on the workers of a Temporal cluster (pipe worker), through a stage store they share (--store)")
	tf := temporalFlags(fs)
	detach := fs.Bool("detach", false, "with --engine temporal: submit the run and print its workflow id, without waiting; a worker writes the run directory under --runs when it ends (a directory the workers share)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return a.usageError(stderr, "run", "")
	}
	var resumed *pipeline.Manifest
	if *resumeDir != "" {
		if *out != "" && !*resumeChanged {
			return a.usageError(stderr, "run", "--resume continues the run in its own directory; --out goes with --resume-changed only")
		}
		m, _, err := pipeline.ReadRun(*resumeDir)
		if err != nil {
			fmt.Fprintf(stderr, "pipe run: --resume %s: no run to resume there: %v\n", *resumeDir, err)
			return pipeline.ExitConfig
		}
		resumed = m
		if len(pos) == 0 && m.ConfigFile != "" {
			pos = []string{m.ConfigFile}
		}
		sets = append(append(stringList(nil), m.Overrides...), sets...)
	} else if *resumeChanged {
		return a.usageError(stderr, "run", "--resume-changed goes with --resume")
	}
	if len(pos) != 1 {
		return a.usageError(stderr, "run", "takes one pipeline file")
	}
	switch {
	case *engineName != "local" && *engineName != "temporal":
		return a.usageError(stderr, "run", fmt.Sprintf("--engine is local or temporal, not %q", *engineName))
	case *engineName == "temporal" && resumed != nil:
		return a.usageError(stderr, "run", "--resume is for local runs; on Temporal, run the pipeline again: finished stages come back from the stage store and interrupted ones continue from their checkpoints")
	case *engineName == "temporal" && *cpuProfile != "":
		return a.usageError(stderr, "run", "--cpuprofile profiles this process; with --engine temporal the stages run on the workers")
	case *detach && *engineName != "temporal":
		return a.usageError(stderr, "run", "--detach goes with --engine temporal")
	case *engineName != "temporal" && tf.set(fs):
		return a.usageError(stderr, "run", "--temporal, --namespace and --task-queue go with --engine temporal")
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
		if resumed != nil {
			fmt.Fprintf(stderr, "pipe run: --resume %s: the run's pipeline file %s cannot be loaded as it was; name the file: pipe run FILE --resume %s\n", *resumeDir, pos[0], *resumeDir)
		}
		return code
	}
	resumeInPlace := false
	if resumed != nil {
		if p.Hash() == resumed.ConfigHash {
			resumeInPlace = true
		} else {
			old, _ := os.ReadFile(filepath.Join(*resumeDir, "pipeline.toml"))
			changes, derr := runinfo.DiffConfigs(old, p.Resolved())
			if !*resumeChanged {
				fmt.Fprintf(stderr, "pipe run: --resume %s: the config changed since the run (%s), so its results would not be the run's:\n", *resumeDir, pos[0])
				for _, c := range changes {
					fmt.Fprintf(stderr, "  %s: %s -> %s\n", c.Path, orNone(c.A), orNone(c.B))
				}
				if derr != nil || len(changes) == 0 {
					fmt.Fprintln(stderr, "  (the resolved configs differ; pipe compare shows runs side by side)")
				}
				fmt.Fprintln(stderr, "restore the config, or run with --resume-changed to start a new run that reuses what it can through the cache")
				return pipeline.ExitConfig
			}
			fmt.Fprintf(stderr, "pipe run: --resume %s: the config changed since the run (%d keys); starting a new run that reuses what it can through the cache\n", *resumeDir, len(changes))
		}
	}
	for _, name := range refresh {
		if _, ok := p.Stage(name); !ok {
			var names []string
			for _, sc := range p.Stages {
				names = append(names, sc.Name)
			}
			hint := "its stages: " + pipeline.ListNames(names, 20)
			if s := pipeline.Suggest(name, names); s != "" {
				hint = fmt.Sprintf("did you mean %q?", s)
			}
			fmt.Fprintf(stderr, "pipe run: --refresh %s: the pipeline has no such stage (%s)\n", name, hint)
			return pipeline.ExitConfig
		}
	}
	loc := *storeLoc
	if loc == "" && resumed != nil && resumed.Store != "" {
		loc = resumed.Store // the store the run wrote its entries and checkpoints to
	}
	if loc == "" {
		loc = p.Store
	}
	if loc == "" {
		loc = filepath.Join(*runs, ".store")
		if *out != "" && !flagSet(fs, "runs") {
			// A run placed with --out alone keeps its store beside it (a job writing
			// /data/runs/<date> shares /data/runs/.store), not in a runs directory of the
			// current directory.
			loc = filepath.Join(filepath.Dir(filepath.Clean(*out)), ".store")
		}
	}
	var runStore pipeline.Store
	var closeStore func() error
	defer func() {
		if closeStore != nil {
			closeStore()
		}
	}()
	// Opened by Run once the run directory is accepted: a refused run creates no store.
	open := func(ctx context.Context) (pipeline.Store, error) {
		s, c, err := openStore(ctx, loc)
		if err != nil {
			if *noCache {
				return nil, nil // only the keys in the manifest are lost
			}
			return nil, fmt.Errorf("%s: %w (give another with --store or [pipeline] store, or run with --no-cache)", loc, err)
		}
		runStore, closeStore = s, c
		return s, nil
	}
	disp := newDisplay(stderr, *logFormat == "console" && !*noProgress, len(p.Stages))
	var logw io.Writer = disp
	if *logFormat == "console" {
		logw = zerolog.ConsoleWriter{Out: disp, TimeFormat: "15:04:05", NoColor: !disp.tty, PartsExclude: []string{"run"}, FieldsExclude: []string{"run"}}
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
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
	opts := pipeline.RunOptions{
		Dir: *out, RunsDir: *runs, LogWriter: logw, LogLevel: level, DataDir: *dataDir, Progress: disp.event,
		Overrides: sets, Version: Version(), GEMM: gemmName(), OpenStore: open, NoCache: *noCache, Refresh: refresh,
		BuildID: buildID(Version()), StoreLocation: absLocation(loc),
	}
	if resumeInPlace {
		opts.Dir, opts.Resume = *resumeDir, true
	}
	var engine pipeline.Engine = pipeline.Local{}
	if *engineName == "temporal" {
		if strings.HasPrefix(strings.ToLower(loc), "mem://") {
			fmt.Fprintf(stderr, "pipe run: --store %s is this process's memory, which no worker sees: with --engine temporal, give the store the workers use (a shared directory or s3://)\n", loc)
			return pipeline.ExitConfig
		}
		if *noCache {
			fmt.Fprintln(stderr, "pipe run: --no-cache with --engine temporal: every stage runs, and its outputs still go through the stage store (that is how the workers pass them on)")
		}
		elog := zerolog.New(logw).With().Timestamp().Logger().Level(level)
		eng, err := cluster.Dial(tf.addr(), *tf.namespace, elog)
		if err != nil {
			fmt.Fprintf(stderr, "pipe run: %v (is a Temporal server running there? `temporal server start-dev` starts one)\n", err)
			return pipeline.ExitConfig
		}
		defer eng.Close()
		eng.TaskQueue = *tf.queue
		if *detach {
			return a.detachRun(ctx, eng, p, opts, *runs, stdout, stderr)
		}
		engine = eng
	}
	res, err := engine.Run(ctx, p, opts)
	disp.finish()
	if res == nil {
		// Refused before anything ran: a run directory that is not new or empty, or locked.
		fmt.Fprintf(stderr, "pipe run: %v\n", err)
		if pipeline.IsRefused(err) || pipeline.IsConfigError(err) {
			return pipeline.ExitConfig
		}
		return pipeline.ExitFailed
	}
	m := res.Manifest
	if err != nil && !errors.Is(err, pipeline.ErrCanceled) {
		fmt.Fprintf(stderr, "pipe run: %v\n", err)
	}
	if runStore != nil && !*noCache && *engineName == "local" {
		// (A cluster's store is shared with other runs in flight: pipe gc trims it.)
		// The store's size limit: what no run refers to goes, oldest first. A failure to
		// trim does not change how the run ended.
		if terr := trimStore(context.Background(), runStore, p.StoreMaxSize, keptRunsDirs(*runs, res.Dir)); terr != nil {
			fmt.Fprintf(stderr, "pipe run: the stage store could not be trimmed to its size limit: %v\n", terr)
		}
	}
	if !*noReport && !errors.Is(err, pipeline.ErrDirReplaced) {
		// The report of every run that ran, failed and canceled ones too. A Ctrl-C while it
		// is written ends pipe at once: the page is written atomically.
		signal.Stop(sigs)
		writeRunReport(res.Dir, stderr, *logFormat == "json")
	}
	printSummary(stdout, m)
	fmt.Fprintf(stdout, "run: %s\n", res.Dir)
	return pipeline.ExitCode(m.Status)
}

// absLocation is a store location as a resumed run can find it again from any directory: a
// path made absolute, a URL as it is.
func absLocation(loc string) string {
	if strings.Contains(loc, "://") {
		return loc
	}
	if abs, err := filepath.Abs(loc); err == nil {
		return abs
	}
	return loc
}

// printSummary prints each stage's status and its headline metrics.
func printSummary(w io.Writer, m *pipeline.Manifest) {
	fmt.Fprintf(w, "%s: %s in %.1fs\n", m.Pipeline, m.Status, m.Seconds)
	for _, name := range m.StageOrder {
		s := m.Stages[name]
		status := s.Status
		if s.Cached {
			status = "cached" // succeeded, read back from the stage store
		}
		line := fmt.Sprintf("  %-14s %-10s %-9s %7.2fs", name, s.Kind, status, s.Seconds)
		if s.RowsOut > 0 {
			line += fmt.Sprintf("  %d rows", s.RowsOut)
		}
		fmt.Fprintln(w, line)
		for _, k := range headlineMetrics(s.Metrics) {
			fmt.Fprintf(w, "      %-32s %s\n", k, formatMetric(k, s.Metrics[k]))
		}
	}
	for _, d := range m.Dropped {
		fmt.Fprintf(w, "  dropped: %s\n", d)
	}
}

// countWords are the words (between underscores) that make a metric a count: val_rows,
// test_rows, duplicate_rows_across_splits, members_kept, best_epoch, added_rows.
var countWords = map[string]bool{
	"rows": true, "count": true, "epoch": true, "epochs": true, "members": true, "kept": true, "added": true,
	"steps": true, "batches": true, "classes": true, "features": true, "columns": true,
}

// isCount reports whether a metric's name says it counts something: its last path element
// (after the last "/") starts with n_ or num_, or has a word of countWords.
func isCount(key string) bool {
	base := key[strings.LastIndex(key, "/")+1:]
	if strings.HasPrefix(base, "n_") || strings.HasPrefix(base, "num_") {
		return true
	}
	for _, w := range strings.Split(base, "_") {
		if countWords[w] {
			return true
		}
	}
	return false
}

// formatMetric prints a count with an integral value as an integer, anything else with four
// decimals.
func formatMetric(key string, v float64) string {
	if isCount(key) && v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return strconv.FormatInt(int64(v), 10)
	}
	return fmt.Sprintf("%.4f", v)
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

// keptRunsDirs are the directories whose runs keep their stage store entries when the store
// is trimmed: the runs directory and the run itself (which --out may put elsewhere), those
// that exist.
func keptRunsDirs(runsDir, runDir string) []string {
	var out []string
	for _, d := range []string{runsDir, runDir} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

// flagSet reports whether the flag called name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
