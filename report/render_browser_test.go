package report_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/pipe-ml/pipe/cli"
	"github.com/pipe-ml/pipe/report"
)

// browserReports are the pages the browser test opens: each writes its report file and
// names what the page must have. A wanted section is an element id ("dag",
// "stage-model"), or an id and a part inside it ("stage-model/training": an element with
// data-part="training" inside #stage-model).
var browserReports = []struct {
	name     string
	write    func(t *testing.T) string // returns the report file's path
	sections []string
	searches map[string]int // per search stage, its number of trials (searchProblems)
}{
	{
		name: "fixture",
		write: func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "report.html")
			if err := report.WriteFile(path, report.FixtureReport()); err != nil {
				t.Fatal(err)
			}
			return path
		},
		sections: []string{
			"run", "run/warnings", "dag", "durations", "leakage",
			"stage-load", "stage-split", "stage-normalize", "stage-export",
			"stage-model/training", "stage-model/monitoring", "stage-model/summary", "stage-model/notes",
			"stage-bag/ensemble", "stage-bag/warnings",
			"stage-selftrain/training", "stage-selftrain/rounds",
			"stage-eval/evaluation", "stage-eval/per-class", "stage-eval/worst-images", "stage-eval/worst", "stage-eval/bias-variance",
			"stage-house/evaluation", "stage-house/worst",
			"stage-tune/search", "stage-tune/search-rounds", "stage-tune/search-best", "stage-tune/search-trials", "stage-tune/warnings",
		},
		searches: map[string]int{"tune": len(report.FixtureReport().Stages[9].Search.Trials)},
	},
	{
		name:  "digits-search",
		write: runPipelineFile(searchPipeline),
		sections: []string{
			"run", "dag", "durations", "stage-tune/search", "stage-tune/search-rounds", "stage-tune/search-best", "stage-tune/search-trials",
			"stage-eval/evaluation",
		},
		searches: map[string]int{"tune": 8},
	},
	{
		name:  "digits-mlp",
		write: runShippedPipeline("digits-mlp.toml", "model.epochs=8"),
		sections: []string{
			"run", "dag", "durations", "leakage", "stage-load", "stage-split", "stage-normalize", "stage-augment",
			"stage-model/training", "stage-model/monitoring", "stage-model/summary",
			"stage-eval/evaluation", "stage-eval/per-class", "stage-eval/worst-images", "stage-eval/bias-variance",
		},
	},
	{
		name:     "credit",
		write:    runShippedPipeline("credit.toml", "model.epochs=8"),
		sections: []string{"run", "dag", "durations", "leakage", "stage-model/training", "stage-eval/evaluation", "stage-eval/worst", "stage-eval/bias-variance"},
	},
	{
		name:     "diabetes",
		write:    runShippedPipeline("diabetes.toml", "model.epochs=8"),
		sections: []string{"run", "dag", "durations", "stage-model/training", "stage-eval/evaluation", "stage-eval/worst", "stage-eval/bias-variance"},
	},
}

// searchPipeline is a small search on the digits: 8 trials of at most 4 epochs in 2 zoom
// rounds, pruned by ASHA, over a parameter of each kind of axis (linear, log, integer on a
// log scale, choice) and one that exists only when its condition holds.
const searchPipeline = `
[pipeline]
name = "digits-search"
seed = 3
[stages.load]
kind = "dataset"
name = "digits"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
[stages.tune]
kind = "search"
train = "scale.train"
val = "scale.val"
base = { layers = [ { dense = 32 }, { dense = 16 } ], epochs = 4 }
space = { "optimizer.lr" = { log_uniform = [1e-3, 3e-2] },
          "layers.*.dropout" = { uniform = [0.0, 0.4] },
          "batch_size" = { log_int = [16, 128] },
          "optimizer.name" = { choice = ["adam", "sgd"] },
          "optimizer.momentum" = { uniform = [0.8, 0.99], when = { "optimizer.name" = "sgd" } } }
trials = 8
rounds = 2
prune = { method = "asha", min_epochs = 1, reduction = 2 }
[stages.eval]
kind = "evaluate"
models = ["tune.model"]
tables = ["scale.test"]
`

// runShippedPipeline runs a shipped pipeline (pipelines/FILE, with --set overrides that keep it
// short) as pipe run does, which writes report.html at the end of the run, and returns that
// file's path.
func runShippedPipeline(file string, sets ...string) func(t *testing.T) string {
	return runPipelineAt(func(*testing.T) string { return filepath.Join("..", "pipelines", file) }, sets...)
}

// runPipelineFile is runShippedPipeline for a pipeline the test writes: src, in a file of the
// test's own.
func runPipelineFile(src string, sets ...string) func(t *testing.T) string {
	return runPipelineAt(func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "pipeline.toml")
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}, sets...)
}

// runPipelineAt runs the pipeline file that file returns as pipe run does (runShippedPipeline).
func runPipelineAt(file func(t *testing.T) string, sets ...string) func(t *testing.T) string {
	return func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "run")
		args := []string{"run", file(t), "--out", dir, "--no-cache", "--no-progress", "--log-format", "json", "--log-level", "warn"}
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		var stdout, stderr bytes.Buffer
		if code := cli.Main(args, &stdout, &stderr); code != 0 {
			t.Fatalf("pipe %s: exit %d\n%s\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
		return filepath.Join(dir, "report.html")
	}
}

// TestReportInBrowser opens each report of browserReports in headless Chromium and checks
// it as a person would see it (checkReportInBrowser).
func TestReportInBrowser(t *testing.T) {
	for _, r := range browserReports {
		t.Run(r.name, func(t *testing.T) {
			checkReportInBrowser(t, r.write(t), r.sections, r.searches)
		})
	}
}

// TestSearchAllFailedInBrowser: a search whose trials all failed draws its trials over time
// and its best so far (the failed trials as red marks) without an error, and no parallel
// coordinates or parameter charts.
func TestSearchAllFailedInBrowser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.html")
	if err := report.WriteFile(path, report.FixtureAllFailed()); err != nil {
		t.Fatal(err)
	}
	checkReportInBrowser(t, path, []string{"stage-tune/search", "stage-tune/search-trials"}, nil)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for kind, want := range map[string]bool{"trials": true, "bestsofar": true, "parallel": false, "effect": false} {
		if got := strings.Contains(page, `data-draw="`+kind+`" data-src="stages.9.search`); got != want {
			t.Errorf("search chart %s shown %v, want %v", kind, got, want)
		}
	}
}

// TestBrowserCheckCatchesABrokenPage: the check itself sees a chart that cannot be drawn
// (its error on the console and in its place), a chart that shows no data (its axes only),
// a missing section, and a search section without the best config or with fewer trial rows
// than trials.
func TestBrowserCheckCatchesABrokenPage(t *testing.T) {
	r := report.FixtureReport()
	r.Stages[3].Training.Curves[0].X = nil // the loss curve has no points to draw
	lr := r.Stages[3].Training.Curves[2]   // the learning rate: every value missing
	for i := range lr.Series[0].Values {
		lr.Series[0].Values[i] = math.NaN()
	}
	sr := r.Stages[9].Search
	sr.Parallel.Axes = sr.Parallel.Axes[:1] // parallel coordinates need two axes
	sr.BestConfig = ""                      // the best config is not shown
	trials := len(sr.Trials)
	path := filepath.Join(t.TempDir(), "report.html")
	if err := report.WriteFile(path, r); err != nil {
		t.Fatal(err)
	}
	problems, err := browserProblems(t, path, []string{"stage-model/training", "stage-nowhere", "stage-model/rounds"}, map[string]int{"tune": trials + 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"console.error: report: chart curve (stages.3.training.curves.0): no points to draw",
		"could not be drawn",
		`section "stage-nowhere" is missing`,
		`section "stage-model/rounds" is missing`,
		"chart stage-model curve stages.3.training.curves.2 looks empty",
		"console.error: report: chart parallel (stages.9.search.parallel): no trial has an objective",
		fmt.Sprintf("search tune: %d rows in the trials table, want %d", trials, trials+1),
		`search tune: no heading "the best trial as a stage to paste into a pipeline"`,
		"search tune: the best config shown is not a train stage",
	}
	all := strings.Join(problems, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("the check did not report %q; it reported:\n%s", w, all)
		}
	}
	if strings.Contains(all, "stages.3.training.curves.1") || strings.Contains(all, "stage-model/training") {
		t.Errorf("a present section reported missing:\n%s", all)
	}
}

// checkReportInBrowser opens the report page at path in headless Chromium and fails t for
// every problem browserProblems finds. It skips t when no Chromium can be found.
func checkReportInBrowser(t *testing.T, path string, wantSections []string, searches map[string]int) {
	t.Helper()
	problems, err := browserProblems(t, path, wantSections, searches)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", filepath.Base(path), p)
	}
}

// Chart pixels: a chart container must not be blank (at least minInk of its pixels differ
// from its white background) and must show its data: at least minColoured of its pixels are
// coloured, as every series, bar, heatmap cell and status is, while axes, grid lines and text
// are grey (the legends' colour swatches are hidden while measuring). A count, not a share:
// the monitor of a short training has one sample per layer, which the page draws as one dot
// (about 60 pixels); a chart with no data draws none.
const (
	minInk      = 0.01
	minColoured = 40
)

var (
	browserOnce   sync.Once
	browserCtx    context.Context
	browserCancel context.CancelFunc
	browserSkip   string
	browserErr    error
)

// TestMain closes the shared browser once every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if browserCancel != nil {
		browserCancel()
	}
	os.Exit(code)
}

// chromium finds a Chromium or Chrome binary: $PIPE_CHROMIUM, else the usual names on PATH
// (Debian's chromium package installs /usr/bin/chromium).
func chromium() string {
	if p := os.Getenv("PIPE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// sharedBrowser starts headless Chromium once for the test binary, with the flags it needs
// as root in a container. It skips t when there is no Chromium, and fails it when the one
// found does not start.
func sharedBrowser(t *testing.T) context.Context {
	t.Helper()
	browserOnce.Do(func() {
		bin := chromium()
		if bin == "" {
			browserSkip = "no Chromium found (looked for $PIPE_CHROMIUM, chromium, chromium-browser, google-chrome on PATH): " +
				"install Debian's chromium package (apt-get install chromium; ./run.sh test does) to run the browser tests"
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(bin),
			chromedp.NoSandbox,
			chromedp.Flag("headless", "new"),
			chromedp.DisableGPU,
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.Flag("force-device-scale-factor", "1"),
			chromedp.Flag("font-render-hinting", "none"),
			chromedp.WindowSize(1280, 900),
		)
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelCtx := chromedp.NewContext(alloc)
		browserCtx = ctx
		browserCancel = func() { cancelCtx(); cancelAlloc() }
		// The first Run starts the browser; it must not have a timeout of its own.
		if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
			browserErr = fmt.Errorf("Chromium at %s does not start (set PIPE_CHROMIUM to another): %w", bin, err)
		}
	})
	if browserSkip != "" {
		t.Skip(browserSkip)
	}
	if browserErr != nil {
		t.Fatal(browserErr)
	}
	return browserCtx
}

// browserProblems opens the page at path in a new tab of the shared browser, waits until its
// script says it has drawn everything (body[data-ready="1"]), and returns every problem a
// person would see: console errors, uncaught exceptions, errors the browser logs, any
// request that is not the file itself or a data: URI (the page must work offline), a chart
// that says it could not be drawn, a chart container that is blank or shows no coloured
// pixels, each wanted section that is missing, and what searchProblems finds in each search
// stage of searches.
func browserProblems(t *testing.T, path string, wantSections []string, searches map[string]int) ([]string, error) {
	t.Helper()
	parent := sharedBrowser(t)
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	url := "file://" + abs
	tab, closeTab := chromedp.NewContext(parent)
	defer closeTab()

	var mu sync.Mutex
	var problems []string
	add := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	if err := chromedp.Listen(tab, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					if a.Value != nil {
						args = append(args, strings.Trim(string(a.Value), `"`))
					} else {
						args = append(args, a.Description)
					}
				}
				add("console.%s: %s", ev.Type, strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			add("uncaught exception: %s", (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				add("browser log error (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		case *network.EventRequestWillBeSent:
			if u := ev.Request.URL; u != url && !strings.HasPrefix(u, "data:") {
				add("the page requested %s: a report must work offline", u)
			}
		}
	}); err != nil {
		return nil, fmt.Errorf("listen to the tab: %w", err)
	}

	ctx, cancel := context.WithTimeout(tab, 40*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitReady(chromedp.CSS(`body[data-ready="1"]`)),
	); err != nil {
		return nil, fmt.Errorf("open %s and wait for its script to finish drawing: %w", path, err)
	}

	// The wanted sections.
	for _, s := range wantSections {
		id, part, _ := strings.Cut(s, "/")
		js := fmt.Sprintf(`(() => { const e = document.getElementById(%q); return !!e && (%q === "" || !!e.querySelector('[data-part="' + %q + '"]')); })()`, id, part, part)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			return nil, err
		}
		if !ok {
			add("section %q is missing", s)
		}
	}

	// The search stages' headings, tables and charts.
	for stage, trials := range searches {
		found, err := searchProblems(ctx, stage, trials)
		if err != nil {
			return nil, err
		}
		for _, p := range found {
			add("%s", p)
		}
	}

	// The charts: none failed, and every one shows data.
	failed, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(".chart.failed")).map(e => e.textContent)`))
	if err != nil {
		return nil, err
	}
	for _, f := range failed {
		add("a chart says: %s", f)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](
		`document.head.insertAdjacentHTML("beforeend", "<style>.u-legend { visibility: hidden !important; }</style>")`)); err != nil {
		return nil, err
	}
	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll(".chart")).map(e => (e.closest("[id]") || {id: "?"}).id + " " + (e.dataset.draw || e.dataset.chart || "chart") + (e.dataset.src ? " " + e.dataset.src : ""))`))
	if err != nil {
		return nil, err
	}
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(".chart")))
	if err != nil {
		return nil, err
	}
	if len(nodes) != len(names) || len(nodes) == 0 {
		return nil, fmt.Errorf("%d chart nodes, %d chart names", len(nodes), len(names))
	}
	for i, n := range nodes {
		shot, err := chromedp.Run(ctx, chromedp.ScreenshotNodes([]*chromedp.Node{n}, 1))
		if err != nil {
			return nil, fmt.Errorf("screenshot of chart %s: %w", names[i], err)
		}
		ink, coloured, err := pixelShares(shot)
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", names[i], err)
		}
		t.Logf("chart %-60s ink %5.1f%%  coloured %6d px", names[i], 100*ink, coloured)
		if ink < minInk || coloured < minColoured {
			add("chart %s looks empty: %.2f%% of its pixels drawn, %d coloured (want at least %.0f%% and %d)",
				names[i], 100*ink, coloured, 100*minInk, minColoured)
		}
	}
	// Events still on their way from the page are delivered before the reply to this call.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`1`)); err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), problems...), nil
}

// searchView is what the browser shows of a search stage's section (searchProblems).
type searchView struct {
	Headings []string       `json:"headings"`
	Rows     []int          `json:"rows"` // the trials table's rows: their trial indexes
	Best     int            `json:"best"` // rows highlighted as the best
	Regions  int            `json:"regions"`
	Charts   map[string]int `json:"charts"` // chart containers by kind
	Canvases int            `json:"canvases"`
	Config   string         `json:"config"`
	// Dists are the parameters' distributions in the page's data; Axes the kind of each axis
	// of the parallel coordinates as drawn (linear, log, choice), the objective's last;
	// EffectX each parameter chart's parameter (its index) and the kind of its x axis.
	Dists   []string `json:"dists"`
	Axes    string   `json:"axes"`
	EffectX []string `json:"effect_x"`
}

// axisKind is the axis a parameter of distribution dist must be drawn on.
func axisKind(dist string) string {
	switch dist {
	case "log_uniform", "log_int":
		return "log"
	case "choice":
		return "choice"
	}
	return "linear"
}

// searchProblems checks the search part of #stage-STAGE as the browser shows it: its
// headings; the trials table with one row per trial (0 to trials-1, in order) and exactly one
// highlighted as the best; a row per zoom round; one chart of trials over time, one of the
// best so far, one of parallel coordinates and one per parameter (at least one), each with
// its canvas; each axis of the parallel coordinates and each parameter chart's x axis log
// for a log parameter, a choice's categories for a choice, linear otherwise; and the best
// trial's config as a pasteable [stages.model] table.
func searchProblems(ctx context.Context, stage string, trials int) ([]string, error) {
	js := fmt.Sprintf(`(() => {
		const p = document.querySelector('#stage-' + %q + ' [data-part="search"]');
		if (!p) return null;
		const charts = {};
		p.querySelectorAll(".chart[data-draw]").forEach((c) => (charts[c.dataset.draw] = (charts[c.dataset.draw] || 0) + 1));
		const pre = p.querySelector('[data-part="search-best"] pre');
		return {
			headings: Array.from(p.querySelectorAll("h3, h4")).map((h) => h.textContent.trim()),
			rows: Array.from(p.querySelectorAll("table.trials tbody tr")).map((r) => +r.dataset.trial),
			best: p.querySelectorAll("table.trials tbody tr.best").length,
			regions: p.querySelectorAll("table.regions tbody tr").length,
			charts: charts,
			canvases: Array.from(p.querySelectorAll(".chart[data-draw]")).filter((c) => c.querySelector("canvas")).length,
			config: pre ? pre.textContent : "",
			dists: JSON.parse(document.getElementById("report-data").textContent).stages.find((s) => s.name === %q).search.params.map((q) => q.dist),
			axes: (p.querySelector('.chart[data-draw="parallel"]') || { dataset: {} }).dataset.axes || "",
			effect_x: Array.from(p.querySelectorAll('.chart[data-draw="effect"]')).map((c) => c.dataset.src.split(".").pop() + " " + (c.dataset.x || "")),
		};
	})()`, stage, stage)
	v, err := chromedp.Run(ctx, chromedp.Evaluate[*searchView](js))
	if err != nil {
		return nil, fmt.Errorf("read the search section of stage %s: %w", stage, err)
	}
	if v == nil {
		return []string{fmt.Sprintf("stage %s has no search part", stage)}, nil
	}
	var out []string
	bad := func(format string, args ...any) { out = append(out, "search "+stage+": "+fmt.Sprintf(format, args...)) }
	for _, h := range []string{"search", "each parameter against the objective", "zoom rounds: the region each sampled", "the best trial as a stage to paste into a pipeline", "trials"} {
		found := false
		for _, got := range v.Headings {
			found = found || got == h || strings.HasPrefix(got, h+" ")
		}
		if !found {
			bad("no heading %q (headings: %q)", h, v.Headings)
		}
	}
	if len(v.Rows) != trials {
		bad("%d rows in the trials table, want %d", len(v.Rows), trials)
	}
	for i, r := range v.Rows {
		if r != i {
			bad("row %d of the trials table is trial %d", i, r)
			break
		}
	}
	if v.Best != 1 {
		bad("%d rows highlighted as the best trial, want 1", v.Best)
	}
	if v.Regions < 1 {
		bad("no zoom round in the regions table")
	}
	for kind, n := range map[string]int{"trials": 1, "bestsofar": 1, "parallel": 1} {
		if v.Charts[kind] != n {
			bad("%d %s charts, want %d", v.Charts[kind], kind, n)
		}
	}
	total := 0
	for _, n := range v.Charts {
		total += n
	}
	if v.Charts["effect"] < 1 || v.Canvases != total {
		bad("%d parameter charts (want at least one); %d of %d charts have a canvas", v.Charts["effect"], v.Canvases, total)
	}
	var want []string
	for _, d := range v.Dists {
		want = append(want, axisKind(d))
	}
	if got, want := v.Axes, strings.Join(append(want, "linear"), " "); got != want {
		bad("parallel coordinates' axes %q, want %q (by the parameters' distributions %q, then the objective)", got, want, v.Dists)
	}
	for _, e := range v.EffectX {
		i, kind, _ := strings.Cut(e, " ")
		if k, err := strconv.Atoi(i); err != nil || k >= len(want) || kind != want[k] {
			bad("parameter chart %s: x axis %q, want it by the parameters' distributions %q", i, kind, v.Dists)
		}
	}
	if !strings.Contains(v.Config, "[stages.model]\n") || !strings.Contains(v.Config, "kind = \"train\"") {
		bad("the best config shown is not a train stage: %q", v.Config)
	}
	return out, nil
}

// pixelShares decodes a PNG screenshot and returns the share of its pixels that differ from
// white (ink) and the number that are coloured: channels apart by more than 40 of 255.
func pixelShares(shot []byte) (ink float64, coloured int, err error) {
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		return 0, 0, fmt.Errorf("decode the screenshot: %w", err)
	}
	b := img.Bounds()
	total := b.Dx() * b.Dy()
	if total == 0 {
		return 0, 0, errors.New("the screenshot is empty")
	}
	inked := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			if (255-r)+(255-g)+(255-bl) > 48 {
				inked++
			}
			if max(r, g, bl)-min(r, g, bl) > 40 {
				coloured++
			}
		}
	}
	return float64(inked) / float64(total), coloured, nil
}
