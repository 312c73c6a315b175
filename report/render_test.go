package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"html"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// render writes r's page and returns it.
func render(t *testing.T, r *Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

const dataOpen = `<script type="application/json" id="report-data">`

// embeddedJSON is the text of the page's report-data element.
func embeddedJSON(t *testing.T, page string) string {
	t.Helper()
	i := strings.Index(page, dataOpen)
	if i < 0 {
		t.Fatal("the page has no report-data element")
	}
	rest := page[i+len(dataOpen):]
	j := strings.Index(rest, "</script>")
	if j < 0 {
		t.Fatal("the report-data element is not closed")
	}
	return rest[:j]
}

// withoutNaN is a copy of the fixture whose NaN values are replaced by numbers.
func withoutNaN() *Report {
	r := fixtureReport()
	r.Stages[3].Training.Curves[0].Series[1].Values[5] = 0.5
	r.Stages[6].Metrics["model/test_logloss"] = 0.25
	rel := r.Stages[6].Evaluation[0].Reliability
	rel.Series[0].Values[0], rel.Series[1].Values[0] = 0, 0
	return r
}

// TestPageJSONIsEncodingJSON: without NaNs, the page's JSON is byte for byte what
// encoding/json writes for the Report (the form the golden test of the data compares).
func TestPageJSONIsEncodingJSON(t *testing.T) {
	r := withoutNaN()
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := marshalPageJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		lo := max(0, i-80)
		t.Fatalf("differs at byte %d:\n page:          %s\n encoding/json: %s", i, got[lo:min(len(got), i+80)], want[lo:min(len(want), i+80)])
	}
}

// TestPageJSONWritesNaNAsNull: a NaN or infinite value (a diverged loss) is null in the
// page's JSON, where encoding/json fails the whole report; the other values are kept.
func TestPageJSONWritesNaNAsNull(t *testing.T) {
	r := fixtureReport()
	r.Stages[3].Metrics["val_loss"] = math.Inf(1)
	if _, err := json.Marshal(r); err == nil {
		t.Fatal("encoding/json accepted NaN: the fixture no longer has one")
	}
	b, err := marshalPageJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Stages []struct {
			Metrics  map[string]*float64 `json:"metrics"`
			Training *struct {
				Curves []struct {
					Series []struct {
						Values []*float64 `json:"values"`
					} `json:"series"`
				} `json:"curves"`
			} `json:"training"`
		} `json:"stages"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	vals := v.Stages[3].Training.Curves[0].Series[1].Values
	want := r.Stages[3].Training.Curves[0].Series[1].Values
	if len(vals) != len(want) || vals[5] != nil {
		t.Fatalf("val loss: %d values, [5] = %v; want %d with [5] null", len(vals), vals[5], len(want))
	}
	for i, p := range vals {
		if i != 5 && (p == nil || math.Abs(*p-want[i]) > 1e-12) {
			t.Errorf("val loss [%d] = %v, want %v", i, p, want[i])
		}
	}
	if p, ok := v.Stages[6].Metrics["model/test_logloss"]; !ok || p != nil {
		t.Errorf("NaN metric: %v, %v; want a null", p, ok)
	}
	if p, ok := v.Stages[3].Metrics["val_loss"]; !ok || p != nil {
		t.Errorf("infinite metric: %v, %v; want a null", p, ok)
	}
	if p := v.Stages[3].Metrics["val_accuracy"]; p == nil || math.Abs(*p-r.Stages[3].Metrics["val_accuracy"]) > 1e-12 {
		t.Errorf("val_accuracy = %v", p)
	}
}

// TestWriteEmbedsTheReport: the page holds the Report's JSON in its report-data element,
// whole; a text with "</script>" and "<!--" in it cannot end the element early and comes
// back unchanged.
func TestWriteEmbedsTheReport(t *testing.T) {
	r := fixtureReport()
	page := render(t, r)
	text := embeddedJSON(t, page)
	want, err := marshalPageJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	if text != string(want) {
		t.Fatalf("the embedded JSON (%d bytes) is not the report's (%d bytes)", len(text), len(want))
	}
	if strings.Contains(text, "<") || strings.Contains(text, ">") {
		t.Error("the embedded JSON has a < or >: a text could end its element")
	}
	if n := strings.Count(strings.ToLower(page), "</script"); n != 3 {
		t.Errorf("%d </script in the page, want 3 (data, uPlot, the page's script)", n)
	}
	var back Report
	if err := json.Unmarshal([]byte(text), &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Stages[3].Notes[0]; got != hostileNote {
		t.Errorf("note came back as %q", got)
	}
	// The visible text is escaped as HTML.
	if strings.Contains(page, hostileNote) || !strings.Contains(page, "a note with &lt;/script&gt;&lt;script&gt;alert(&#34;x&#34;)") {
		t.Error("the note is not escaped in the page's text")
	}
}

// TestWriteIsOffline: the page refers to nothing outside itself: every src and href is a
// fragment or a PNG data URI, and there is no external script, style sheet, import or url().
func TestWriteIsOffline(t *testing.T) {
	page := render(t, fixtureReport())
	attr := regexp.MustCompile(`(?i)\s(src|href|xlink:href|action|poster|srcset|data)\s*=\s*"([^"]*)"`)
	n := 0
	for _, m := range attr.FindAllStringSubmatch(page, -1) {
		n++
		if v := html.UnescapeString(m[2]); !strings.HasPrefix(v, "#") && !strings.HasPrefix(v, "data:image/png;base64,") {
			t.Errorf("%s=%q refers outside the page", m[1], v)
		}
	}
	if n == 0 {
		t.Fatal("no src or href found: the check checks nothing")
	}
	for _, bad := range []string{"<link", "<iframe", "@import", "<script src", "<object", "<embed"} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("the page has %q", bad)
		}
	}
	for _, m := range regexp.MustCompile(`url\(\s*['"]?([^)'"]*)`).FindAllStringSubmatch(page, -1) {
		if !strings.HasPrefix(m[1], "#") { // the DAG's arrow marker is url(#dag-arrow)
			t.Errorf("url(%s) refers outside the page", m[1])
		}
	}
}

// TestChartsReferToTheirData: every chart the page's script draws names a kind the script
// knows and a path that exists in the embedded data.
func TestChartsReferToTheirData(t *testing.T) {
	page := render(t, fixtureReport())
	var data any
	if err := json.Unmarshal([]byte(embeddedJSON(t, page)), &data); err != nil {
		t.Fatal(err)
	}
	charts := regexp.MustCompile(`data-draw="([a-z]+)" data-src="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(charts) < 20 {
		t.Fatalf("%d charts drawn by the script; the fixture has more", len(charts))
	}
	kinds := map[string]int{}
	for _, c := range charts {
		kinds[c[1]]++
		if !regexp.MustCompile(`\n    ` + c[1] + `: `).MatchString(pageJS) {
			t.Errorf("chart kind %q is not one of report.js's drawers", c[1])
		}
		v := data
		for _, k := range strings.Split(c[2], ".") {
			switch x := v.(type) {
			case map[string]any:
				v = x[k]
			case []any:
				i, err := strconv.Atoi(k)
				if err != nil || i >= len(x) {
					v = nil
				} else {
					v = x[i]
				}
			default:
				v = nil
			}
		}
		if v == nil {
			t.Errorf("chart %s: no data at %s", c[1], c[2])
		}
	}
	for _, k := range []string{"curve", "range", "heatmap", "reliability", "roc", "pr", "scatter", "bars", "ensemble", "rounds", "trials", "bestsofar", "effect", "parallel"} {
		if kinds[k] == 0 {
			t.Errorf("no %s chart in the fixture's page", k)
		}
	}
}

// TestPageSections: the header, the DAG, the durations and the leakage audit are there, and
// each stage has a section in run order with exactly the parts its data has.
func TestPageSections(t *testing.T) {
	r := fixtureReport()
	page := render(t, r)
	for _, id := range []string{"run", "dag", "durations", "leakage"} {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("no #%s", id)
		}
	}
	last := -1
	for i, s := range r.Stages {
		at := strings.Index(page, `<section id="stage-`+s.Name+`"`)
		if at < last {
			t.Errorf("stage %s: section missing or out of run order", s.Name)
			continue
		}
		last = at
		end := len(page)
		if i+1 < len(r.Stages) {
			if e := strings.Index(page[at:], `<section id="stage-`+r.Stages[i+1].Name+`"`); e > 0 {
				end = at + e
			}
		}
		body := page[at:end]
		has := map[string]bool{
			"training": s.Training != nil, "monitoring": s.Monitoring != nil, "summary": s.Summary != nil,
			"evaluation": len(s.Evaluation) > 0, "bias-variance": len(s.BiasVar) > 0, "ensemble": s.Ensemble != nil,
			"rounds": len(s.Rounds) > 0, "warnings": len(s.Warnings) > 0, "notes": len(s.Notes) > 0, "metrics": len(s.Metrics) > 0,
			"search": s.Search != nil, "search-trials": s.Search != nil, "search-rounds": s.Search != nil && len(s.Search.Rounds) > 0,
			"search-best": s.Search != nil && s.Search.BestConfig != "",
		}
		for part, want := range has {
			if got := strings.Contains(body, `data-part="`+part+`"`); got != want {
				t.Errorf("stage %s: part %s shown %v, want %v", s.Name, part, got, want)
			}
		}
	}
}

// TestImagesArePNGDataURIsOnly: a worst row's image is shown only when it is a PNG data URI;
// anything else (a script URL, another type) is left out rather than passed to the page.
func TestImagesArePNGDataURIsOnly(t *testing.T) {
	png := digitImage(3, 0)
	r := &Report{Run: Run{Pipeline: "p", RunID: "r", Status: "succeeded"}, Stages: []Stage{{Name: "eval", Kind: "evaluate", Status: "succeeded",
		Evaluation: []TableEval{{Model: "m", Table: "t", Task: "classification",
			Images: []string{"javascript:alert(1)", "data:text/html;base64,PHNjcmlwdD4=", png, "data:image/png;base64,AA<b>"}}}}}}
	page := render(t, r)
	imgs := regexp.MustCompile(`<img src="([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(imgs) != 1 || html.UnescapeString(imgs[0][1]) != png {
		t.Fatalf("images shown: %d, want only the PNG", len(imgs))
	}
	if strings.Contains(page, "ZgotmplZ") {
		t.Error("the template refused an image URL")
	}
}

// TestConfusionColours: a cell's colour follows its share of the true class's rows: the
// diagonal blue, errors red, darker for a larger share, an empty cell left white.
func TestConfusionColours(t *testing.T) {
	e := TableEval{Labels: []string{"a", "b"}, Confusion: [][]int64{{90, 10}, {40, 0}}}
	rows := confusionRows(e)
	rgb := func(s string) [3]int {
		m := regexp.MustCompile(`rgb\((\d+),(\d+),(\d+)\)`).FindStringSubmatch(s)
		if m == nil {
			return [3]int{255, 255, 255}
		}
		var c [3]int
		for i := range c {
			c[i], _ = strconv.Atoi(m[i+1])
		}
		return c
	}
	diag, err1, err2 := rgb(string(rows[0].Cells[0].Style)), rgb(string(rows[0].Cells[1].Style)), rgb(string(rows[1].Cells[0].Style))
	if !(diag[2] > diag[0]) {
		t.Errorf("diagonal cell %v is not blue", diag)
	}
	if !(err1[0] > err1[2] && err2[0] > err2[2]) {
		t.Errorf("error cells %v %v are not red", err1, err2)
	}
	if !(err2[1] < err1[1]) { // 40 of 40 rows darker than 10 of 100
		t.Errorf("a larger error share is not darker: %v vs %v", err2, err1)
	}
	if rows[1].Cells[1].Style != "" || rows[1].Total != 40 || rows[0].Total != 100 {
		t.Errorf("empty cell style %q, totals %d %d", rows[1].Cells[1].Style, rows[0].Total, rows[1].Total)
	}
}

// TestDAGLayout: nodes sit in columns by layer and rows by row, every edge between known
// stages is drawn, one to an unknown stage is left out, and names are escaped.
func TestDAGLayout(t *testing.T) {
	g := fixtureReport().Graph
	g.Nodes = append(g.Nodes, Node{Stage: "<b>odd</b>", Kind: "write", Status: "failed", Layer: 5, Row: 1})
	g.Edges = append(g.Edges, Edge{From: "ghost.out", To: "eval.models"})
	svg := dagSVG(g)
	node := regexp.MustCompile(`<a href="#stage-[^"]*" class="dag-node" data-stage="([^"]*)" data-status="([^"]*)"><title>[^<]*</title><rect x="(\d+)" y="(\d+)"[^>]* stroke="([^"]*)"`)
	type box struct{ x, y int }
	at := map[string]box{}
	stroke := map[string]string{}
	for _, m := range node.FindAllStringSubmatch(svg, -1) {
		x, _ := strconv.Atoi(m[3])
		y, _ := strconv.Atoi(m[4])
		at[m[1]] = box{x, y}
		stroke[m[2]] = m[5]
	}
	if len(at) != len(g.Nodes) {
		t.Fatalf("%d nodes drawn, want %d", len(at), len(g.Nodes))
	}
	for _, a := range g.Nodes {
		for _, b := range g.Nodes {
			name := func(n Node) string { return strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(n.Stage) }
			pa, pb := at[name(a)], at[name(b)]
			if (a.Layer < b.Layer) != (pa.x < pb.x) || (a.Layer == b.Layer) != (pa.x == pb.x) {
				t.Errorf("%s (layer %d) at x=%d, %s (layer %d) at x=%d", a.Stage, a.Layer, pa.x, b.Stage, b.Layer, pb.x)
			}
			if a.Row < b.Row && pa.y >= pb.y {
				t.Errorf("%s (row %d) at y=%d, %s (row %d) at y=%d", a.Stage, a.Row, pa.y, b.Stage, b.Row, pb.y)
			}
		}
	}
	if n := strings.Count(svg, `class="dag-edge"`); n != len(g.Edges)-1 {
		t.Errorf("%d edges drawn, want %d (the ghost's left out)", n, len(g.Edges)-1)
	}
	if strings.Contains(svg, "<b>") || !strings.Contains(svg, "&lt;b&gt;") {
		t.Error("a stage name is not escaped")
	}
	if stroke["failed"] == stroke["succeeded"] || stroke["skipped"] == stroke["succeeded"] {
		t.Errorf("statuses share a colour: %v", stroke)
	}
}

// TestWriteFile: the file is the page Write renders, rendering is deterministic, and a
// report that cannot be written leaves nothing behind.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.html")
	if err := WriteFile(path, fixtureReport()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != render(t, fixtureReport()) {
		t.Error("the file differs from a second rendering of the same report")
	}
	if err := WriteFile(filepath.Join(dir, "none.html"), nil); err == nil {
		t.Error("a nil report was written")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the directory holds %v, want report.html alone", names)
	}
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(blocker, "report.html"), fixtureReport()); err == nil {
		t.Error("writing under a file succeeded")
	}
	if err := Write(failingWriter{}, fixtureReport()); err == nil || !strings.Contains(err.Error(), "20260301-093000-4f2a") {
		t.Errorf("a failing writer: %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestPageWeight: beyond the report's data (its JSON, and the worst-k images shown again as
// <img>), the page weighs what its script, styles and uPlot do plus its tables: well under
// the 3 MB a large run's report may take.
func TestPageWeight(t *testing.T) {
	r := fixtureReport()
	page := render(t, r)
	overhead := len(page) - len(embeddedJSON(t, page))
	for _, s := range r.Stages {
		for _, e := range s.Evaluation {
			for _, img := range e.Images {
				overhead -= len(img)
			}
		}
	}
	assets := len(uplotJS) + len(uplotCSS) + len(pageJS) + len(pageCSS)
	t.Logf("page %d bytes: assets %d, markup %d", len(page), assets, overhead-assets)
	if assets > 100<<10 || overhead-assets > 100<<10 {
		t.Errorf("assets %d bytes, markup %d bytes: want each under 100 KiB", assets, overhead-assets)
	}
}

func TestFormats(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{formatNumber(math.NaN()), "—"}, {formatNumber(1797), "1797"}, {formatNumber(0.97412), "0.9741"}, {formatNumber(3e-5), "3e-05"},
		{formatSeconds(0.4), "0.40 s"}, {formatSeconds(12.34), "12.3 s"}, {formatSeconds(125), "2m05s"}, {formatSeconds(3725), "1h02m"},
		{formatCount(10570), "10,570"}, {formatCount(-1234567), "-1,234,567"}, {formatCount(12), "12"},
		{formatShare(0.3935), "39.4%"}, {statusClass("Succeeded"), "status-succeeded"}, {statusClass(`x" onload="y`), "status-xonloady"},
		{shortHash("9c1d2e3f4a5b6c7d8e"), "9c1d2e3f4a5b"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	b := BiasVar{Errors: map[string]float64{"test": 1, "train": 1, "holdout": 1, "val": 1}, Chance: map[string]float64{"extra": 1}}
	if got := strings.Join(biasVarSplits(b), " "); got != "train val test extra holdout" {
		t.Errorf("splits in order %q", got)
	}
}
