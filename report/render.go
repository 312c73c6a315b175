package report

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pipe-ml/pipe/internal/atomicfile"
)

// The page is one HTML file: the template below, with uPlot's script and styles, the page's
// own script and styles, and the Report's JSON inlined. Nothing is fetched when it is opened.
var (
	//go:embed assets/uPlot.iife.min.js
	uplotJS string
	//go:embed assets/uPlot.min.css
	uplotCSS string
	//go:embed report.js
	pageJS string
	//go:embed report.css
	pageCSS string
	//go:embed report.tmpl
	pageTemplate string
)

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"num":         formatNumber,
	"secs":        formatSeconds,
	"pct":         formatShare,
	"count":       formatCount,
	"short":       shortHash,
	"when":        formatTime,
	"metrics":     sortedMetrics,
	"leakage":     leakageRows,
	"confusion":   confusionRows,
	"imageURL":    imageURL,
	"caption":     imageCaption,
	"barWidth":    barWidth,
	"statusClass": statusClass,
	"splits":      biasVarSplits,
	"search":      searchSummary,
	"hasKey":      func(m map[string]float64, k string) bool { _, ok := m[k]; return ok },
}).Parse(pageTemplate))

// pageData is what the template renders.
type pageData struct {
	*Report
	JSON      template.JS // the Report, for the page's script
	UPlot     template.JS
	Script    template.JS
	Styles    template.CSS
	DAG       template.HTML
	Durations []durationRow
}

// Write renders r as one self-contained HTML page: the run's header (status, pipeline, seed,
// config hash, durations, the DAG, the leakage audit, warnings) and one section per stage
// with the parts its data has. The page needs no network: the chart library (uPlot), its
// script and styles are inlined, and the Report itself is embedded as JSON in the element
// <script type="application/json" id="report-data">, from which the page's script draws the
// charts. When it has drawn them it sets data-ready="1" on the body.
func Write(w io.Writer, r *Report) error {
	if r == nil {
		return errors.New("report: no report to write")
	}
	data, err := marshalPageJSON(r)
	if err != nil {
		return fmt.Errorf("report: run %s: encode its data: %w", r.Run.RunID, err)
	}
	pd := pageData{
		Report:    r,
		JSON:      template.JS(data), // HTML-escaped JSON: no "</script" can occur in it
		UPlot:     template.JS(uplotJS),
		Script:    template.JS(pageJS),
		Styles:    template.CSS(uplotCSS + "\n" + pageCSS),
		DAG:       template.HTML(dagSVG(r.Graph)),
		Durations: durationRows(r.Run.Durations),
	}
	bw := bufio.NewWriter(w)
	if err := page.Execute(bw, pd); err != nil {
		return fmt.Errorf("report: run %s: render the page: %w", r.Run.RunID, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: run %s: %w", r.Run.RunID, err)
	}
	return nil
}

// WriteFile writes r's page to path atomically (a temporary file, synced and renamed): a
// crash never leaves a half-written report.html that looks whole.
func WriteFile(path string, r *Report) error {
	if err := atomicfile.WriteFunc(path, func(f *os.File) error { return Write(f, r) }); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// formatNumber shows a value with 4 significant digits, an integral one as an integer, and a
// missing one (NaN) as a dash.
func formatNumber(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case math.IsInf(v, 1):
		return "∞"
	case math.IsInf(v, -1):
		return "−∞"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// formatCount shows an integer with thousands separators: 1,234,567.
func formatCount(n int) string {
	s := strconv.Itoa(n)
	sign := ""
	if n < 0 {
		sign, s = "-", s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return sign + s
}

// formatSeconds shows a duration in seconds as people read it: 0.42 s, 12.3 s, 2m05s, 1h02m.
func formatSeconds(s float64) string {
	switch {
	case math.IsNaN(s) || s < 0:
		return "—"
	case s < 10:
		return strconv.FormatFloat(s, 'f', 2, 64) + " s"
	case s < 60:
		return strconv.FormatFloat(s, 'f', 1, 64) + " s"
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", int(s)/60, int(s)%60)
	}
	return fmt.Sprintf("%dh%02dm", int(s)/3600, int(s)%3600/60)
}

// formatShare shows a share in [0, 1] as a percentage.
func formatShare(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return strconv.FormatFloat(100*v, 'f', 1, 64) + "%"
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// keyValue is one row of a small two-column table.
type keyValue struct {
	Key   string
	Value string
}

// sortedMetrics are a metrics map's rows by key.
func sortedMetrics(m map[string]float64) []keyValue {
	rows := make([]keyValue, 0, len(m))
	for k, v := range m {
		rows = append(rows, keyValue{k, formatNumber(v)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	return rows
}

// leakageRows are the leakage audit's entries by key, a nested value as compact JSON.
func leakageRows(m map[string]any) []keyValue {
	rows := make([]keyValue, 0, len(m))
	for k, v := range m {
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case float64:
			s = formatNumber(x)
		default:
			b, err := marshalPageJSON(v)
			if err != nil {
				s = fmt.Sprint(v)
			} else {
				s = string(b)
			}
		}
		rows = append(rows, keyValue{k, s})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	return rows
}

// confusionRow is one true class of the confusion matrix as the page shows it.
type confusionRow struct {
	Label string
	Total int64
	Cells []confusionCell
}

type confusionCell struct {
	Count int64
	Style template.CSS
	Title string
}

// confusionRows colours each cell by its share of the true class's rows: the diagonal in
// blue (correct), the rest in red (errors), so that a class's confusions stand out whatever
// the class sizes.
func confusionRows(e TableEval) []confusionRow {
	out := make([]confusionRow, len(e.Confusion))
	label := func(i int) string {
		if i < len(e.Labels) {
			return e.Labels[i]
		}
		return strconv.Itoa(i)
	}
	for i, row := range e.Confusion {
		var total int64
		for _, c := range row {
			total += c
		}
		r := confusionRow{Label: label(i), Total: total, Cells: make([]confusionCell, len(row))}
		for j, c := range row {
			share := 0.0
			if total > 0 {
				share = float64(c) / float64(total)
			}
			r.Cells[j] = confusionCell{
				Count: c,
				Style: heatStyle(share, i == j),
				Title: fmt.Sprintf("true %s, predicted %s: %d of %d (%s)", label(i), label(j), c, total, formatShare(share)),
			}
		}
		out[i] = r
	}
	return out
}

// heatStyle is a cell's background for a share in [0, 1]: blue for correct, red for errors.
func heatStyle(share float64, correct bool) template.CSS {
	if share <= 0 || math.IsNaN(share) {
		return ""
	}
	s := math.Sqrt(math.Min(share, 1)) // small error shares stay visible
	base := [3]float64{33, 102, 172}   // blue
	if !correct {
		base = [3]float64{214, 69, 65} // red
	}
	var c [3]int
	for k := range c {
		c[k] = int(math.Round(255 - s*(255-base[k])))
	}
	text := "#1b1f24"
	if s > 0.6 {
		text = "#fff"
	}
	return template.CSS(fmt.Sprintf("background:rgb(%d,%d,%d);color:%s", c[0], c[1], c[2], text))
}

// dataImage is a PNG data URI: the only kind of image the page shows.
var dataImage = regexp.MustCompile(`^data:image/png;base64,[A-Za-z0-9+/]+={0,2}$`)

// imageURL lets a PNG data URI through as an image source and drops anything else (the
// template would otherwise refuse the data: scheme).
func imageURL(s string) template.URL {
	if !dataImage.MatchString(s) {
		return ""
	}
	return template.URL(s)
}

// imageCaption is the caption of the worst row i's image: the values of its label,
// prediction and loss columns, or its _row.
func imageCaption(w *Rows, i int) string {
	if w == nil || i >= len(w.Rows) {
		return ""
	}
	var parts []string
	for j, col := range w.Columns {
		lc := strings.ToLower(col)
		if j < len(w.Rows[i]) && (strings.Contains(lc, "label") || strings.Contains(lc, "target") || strings.Contains(lc, "true") ||
			strings.Contains(lc, "pred") || strings.Contains(lc, "loss")) {
			parts = append(parts, col+" "+w.Rows[i][j])
		}
		if len(parts) == 3 {
			break
		}
	}
	if len(parts) == 0 {
		for j, col := range w.Columns {
			if col == "_row" && j < len(w.Rows[i]) {
				return "row " + w.Rows[i][j]
			}
		}
	}
	return strings.Join(parts, ", ")
}

// barWidth is an inline bar's width: v's share of max.
func barWidth(v, max float64) template.CSS {
	if max <= 0 || v <= 0 || math.IsNaN(v) {
		return "width:0"
	}
	return template.CSS(fmt.Sprintf("width:%.2f%%", 100*math.Min(v/max, 1)))
}

var notClassChar = regexp.MustCompile(`[^a-z0-9_-]`)

// statusClass is the CSS class of a status.
func statusClass(status string) string {
	return "status-" + notClassChar.ReplaceAllString(strings.ToLower(status), "")
}

// durationRow is one stage of the durations table: its own and its waiting time as inline
// bars on one scale.
type durationRow struct {
	StageDuration
	Own, Wait template.CSS
}

func durationRows(ds []StageDuration) []durationRow {
	longest := 0.0
	for _, d := range ds {
		longest = math.Max(longest, d.Seconds+d.Waited)
	}
	out := make([]durationRow, len(ds))
	for i, d := range ds {
		out[i] = durationRow{StageDuration: d, Own: barWidth(d.Seconds, longest), Wait: barWidth(d.Waited, longest)}
	}
	return out
}

// biasVarSplits are the splits of a bias/variance table in reading order: train, val, test,
// then any other by name.
func biasVarSplits(b BiasVar) []string {
	rank := map[string]int{"train": 0, "val": 1, "test": 2}
	var out []string
	for s := range b.Errors {
		out = append(out, s)
	}
	for s := range b.Chance {
		if _, ok := b.Errors[s]; !ok {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		ri, iok := rank[out[i]]
		rj, jok := rank[out[j]]
		switch {
		case iok && jok:
			return ri < rj
		case iok != jok:
			return iok
		}
		return out[i] < out[j]
	})
	return out
}
