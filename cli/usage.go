package cli

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pipe-ml/pipe/pipeline"
)

// command is one subcommand. Its synopsis and help are made from the flag set it defines, so
// the usage text, `pipe COMMAND --help` and the README (a test compares them) list the same
// flags.
type command struct {
	name string
	// args are the positional arguments of the synopsis ("FILE", "[KIND...]").
	args string
	// about says what the command does, in one line.
	about string
	// run runs the command; nil for those main handles itself (version, help).
	run func(a *app, args []string, stdout, stderr io.Writer) int
	// hasFlags: the command defines its flags with newFlags and parses them before doing
	// anything else (see flagsOf).
	hasFlags bool
	// required are flags the command needs, shown without brackets.
	required []string
	// extra is printed at the end of the command's help.
	extra string
}

// commands are pipe's commands, in the order of the usage text.
func commands() []command {
	return []command{
		{name: "run", args: "FILE", about: "Runs the pipeline in FILE into a new run directory.", run: (*app).cmdRun, hasFlags: true, extra: exitCodes},
		{name: "validate", args: "FILE", about: "Checks FILE and reports every problem at once; runs nothing.", run: (*app).cmdValidate, hasFlags: true},
		{name: "graph", args: "FILE", about: "Prints the pipeline's stage graph.", run: (*app).cmdGraph, hasFlags: true},
		{name: "docs", args: "[KIND...]", about: "Prints the reference of the stage kinds (all, or those named).", run: (*app).cmdDocs},
		{name: "datasets", about: "Lists the built-in datasets.", run: func(_ *app, args []string, stdout, stderr io.Writer) int { return cmdDatasets(args, stdout, stderr) }},
		{name: "summary", args: "BUNDLE", about: "Prints a model bundle's inputs, preprocessing and layers (every member's, for an ensemble). BUNDLE is the bundle, its stage directory, or a run directory that holds one bundle.", run: (*app).cmdSummary},
		{name: "runs", args: "[PIPELINE]", about: "Lists the runs under the runs directory, newest first: status (crashed: the process is gone), start, duration, cached stages, headline metrics.", run: (*app).cmdRuns, hasFlags: true, extra: runsJSONDoc},
		{name: "show", args: "RUN [STAGE [FILE]]", about: showAbout, run: (*app).cmdShow, hasFlags: true, extra: showExtra},
		{name: "compare", args: "RUN_A RUN_B", about: "Compares two runs: their configs key by key, their stages' status and cache use, and their metrics.", run: (*app).cmdCompare, hasFlags: true, extra: compareExtra},
		{name: "report", args: "RUN_DIR", about: reportAbout, run: (*app).cmdReport, hasFlags: true},
		{name: "gradcheck", args: "FILE|BUNDLE", about: "Checks backpropagation against finite differences for the pipeline's models (or a bundle's).", run: (*app).cmdGradcheck, hasFlags: true},
		{name: "predict", about: "Scores the rows of a file with a model bundle.", run: (*app).cmdPredict, hasFlags: true, required: []string{"model", "input", "output"}},
		{name: "gc", about: "Removes stage-store entries no kept run refers to, oldest first, down to the size limit, and crashed writers' leftovers.", run: (*app).cmdGC, hasFlags: true},
		{name: "worker", about: "Runs pipe's activities for Temporal: the stages (and ensemble members) of runs started with pipe run --engine temporal, until SIGINT or SIGTERM.", run: (*app).cmdWorker, hasFlags: true, required: []string{"store"}},
		{name: "schedule", args: "create|list|describe|pause|unpause|trigger|delete [NAME [FILE]]", about: scheduleAbout, run: (*app).cmdSchedule, hasFlags: true, extra: scheduleExtra},
		{name: "version", about: "Prints pipe's version."},
	}
}

// exitCodes is the exit-code section of the usage text; the README's table says the same.
const exitCodes = `Exit codes:
  0    success (validate: the pipeline is valid)
  1    the run failed (a stage returned an error); see manifest.json and the log
  2    usage or config error, or the run directory was refused (not empty and not a run,
       already a run, a file, a system directory, locked by another run, not writable), or
       the stage store cannot be opened; nothing ran
  3    the run finished degraded (something was dropped, e.g. an ensemble member)
  130  interrupted (SIGINT, SIGTERM or SIGHUP); the manifest says "canceled"
`

// placeholders name the values of flags whose usage text does not (with a `NAME`).
var placeholders = map[string]string{"set": "stage.key=value", "rows": "N", "model": "BUNDLE", "input": "FILE", "output": "FILE", "keep": "COL,COL"}

// flagProbe is the stderr a command gets when flagsOf asks for its flag set.
type flagProbe struct {
	io.Writer
	fs *flag.FlagSet
}

// flagsOf returns the flag set c defines, or nil. Every command with flags builds its flag set
// with newFlags and parses its arguments before it does anything else; run on "-h" with a
// flagProbe for stderr, it defines its flags, newFlags records the set, and parsing stops it.
func (a *app) flagsOf(c command) *flag.FlagSet {
	if !c.hasFlags {
		return nil
	}
	probe := &flagProbe{Writer: io.Discard}
	c.run(a, []string{"-h"}, io.Discard, probe)
	return probe.fs
}

// flagPlaceholder is the value name of a flag in a synopsis ("" for a boolean flag).
func flagPlaceholder(f *flag.Flag) string {
	name, _ := flag.UnquoteUsage(f)
	if strings.Contains(f.Usage, "`") {
		return name
	}
	if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
		return ""
	}
	if p, ok := placeholders[f.Name]; ok {
		return p
	}
	return strings.ToUpper(f.Name)
}

// synopsis is the usage line of c: its positional arguments, its required flags, then the
// others in brackets (a repeatable one followed by ...), wrapped at 100 columns.
func (a *app) synopsis(c command) string {
	words := []string{a.cmd.name(), c.name}
	if c.args != "" {
		words = append(words, c.args)
	}
	var optional []string
	if fs := a.flagsOf(c); fs != nil {
		required := map[string]string{}
		fs.VisitAll(func(f *flag.Flag) {
			w := "--" + f.Name
			if p := flagPlaceholder(f); p != "" {
				w += " " + p
			}
			if contains(c.required, f.Name) {
				required[f.Name] = w
				return
			}
			w = "[" + w + "]"
			if _, ok := f.Value.(*stringList); ok {
				w += "..."
			}
			optional = append(optional, w)
		})
		for _, name := range c.required {
			words = append(words, required[name])
		}
	}
	words = append(words, optional...)
	var b strings.Builder
	indent := len(words[0]) + 1 + len(words[1]) + 1
	col := 0
	for i, w := range words {
		switch {
		case i == 0:
		case col+1+len(w) > 100:
			b.WriteString("\n" + strings.Repeat(" ", indent))
			col = indent
		default:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// synopses are the usage lines of every command.
func (a *app) synopses() string {
	var b strings.Builder
	for _, c := range commands() {
		b.WriteString(a.synopsis(c))
		b.WriteByte('\n')
	}
	return b.String()
}

// usage is the text of `pipe` without arguments and `pipe help`.
func (a *app) usage() string {
	name := a.cmd.name()
	var b strings.Builder
	fmt.Fprintf(&b, "%s runs machine-learning pipelines written as TOML DAGs of stages.\n\nUsage:\n", name)
	for _, line := range strings.Split(strings.TrimSuffix(a.synopses(), "\n"), "\n") {
		b.WriteString("  " + line + "\n")
	}
	fmt.Fprintf(&b, "\nRun '%s COMMAND --help' for a command's flags.\n\n%s", name, exitCodes)
	return b.String()
}

// help is the text of `pipe COMMAND --help`: the synopsis, what the command does and every
// flag with its default.
func (a *app) help(c command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n\n%s\n", a.synopsis(c), c.about)
	if fs := a.flagsOf(c); fs != nil {
		b.WriteString("\nFlags:\n")
		type row struct{ left, right string }
		var rows []row
		width := 0
		fs.VisitAll(func(f *flag.Flag) {
			left := "--" + f.Name
			if p := flagPlaceholder(f); p != "" {
				left += " " + p
			}
			_, text := flag.UnquoteUsage(f)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
				text += fmt.Sprintf(" (default %s)", f.DefValue)
			}
			if contains(c.required, f.Name) {
				text += " (required)"
			}
			rows = append(rows, row{left, text})
			width = max(width, len(left))
		})
		for _, r := range rows {
			fmt.Fprintf(&b, "  %-*s  %s\n", width, r.left, wrap(r.right, 4+width, 100))
		}
	}
	if c.extra != "" {
		b.WriteString("\n" + c.extra)
	}
	return b.String()
}

// wantsHelp reports whether args ask for help (-h, -help or --help before any "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// usageError reports a wrong command line of c: the problem (when flag has not printed it),
// the synopsis and where the flags are explained. It returns ExitConfig.
func (a *app) usageError(stderr io.Writer, name, problem string) int {
	if _, probed := stderr.(*flagProbe); probed {
		return pipeline.ExitConfig // flagsOf asked for the flags; the synopsis would ask again
	}
	for _, c := range commands() {
		if c.name == name {
			var b bytes.Buffer
			if problem != "" {
				fmt.Fprintf(&b, "%s %s: %s\n", a.cmd.name(), name, problem)
			}
			fmt.Fprintf(&b, "usage: %s\nRun '%s %s --help' for the flags.\n", a.synopsis(c), a.cmd.name(), name)
			stderr.Write(b.Bytes())
		}
	}
	return pipeline.ExitConfig
}

// wrap breaks text into lines that end before column cols, when it starts at column indent;
// the lines after the first are indented by indent spaces.
func wrap(text string, indent, cols int) string {
	var b strings.Builder
	col := indent
	for i, w := range strings.Fields(text) {
		switch {
		case i == 0:
		case col+1+len(w) > cols:
			b.WriteString("\n" + strings.Repeat(" ", indent))
			col = indent
		default:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}
