package report

import (
	"html"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// searchPart is the search part of the page of a report whose only stage is a search.
func searchPart(t *testing.T, sr *Search) string {
	t.Helper()
	r := fixtureReport()
	tune := r.Stages[9]
	tune.Search = sr
	r.Stages = []Stage{tune}
	page := render(t, r)
	at := strings.Index(page, `data-part="search"`)
	if at < 0 {
		t.Fatal("the page has no search part")
	}
	end := strings.Index(page[at:], "</section>")
	if end < 0 {
		t.Fatal("the search part's section is not closed")
	}
	return page[at : at+end]
}

// TestSearchTables: the search part shows the trials' counts, one row per trial in order with
// its status and objective (the best trial's row, and only it, highlighted), one row per zoom
// round with its ranges and choice weights and its best objective, and the best trial's
// config to paste, escaped.
func TestSearchTables(t *testing.T) {
	sr := fixtureSearch(rand.New(rand.NewPCG(1, 2)))
	sr.BestConfig += "# a <b>note</b>\n"
	part := searchPart(t, sr)

	counts := map[string]int{}
	for _, tr := range sr.Trials {
		counts[tr.Status]++
	}
	if counts["completed"] == 0 || counts["pruned"] == 0 || counts["failed"] == 0 {
		t.Fatalf("the fixture's statuses %v: want each of completed, pruned, failed", counts)
	}
	facts := strconv.Itoa(counts["completed"]) + " completed · " + strconv.Itoa(counts["pruned"]) + " pruned · " + strconv.Itoa(counts["failed"]) + " failed · 3 zoom rounds"
	if !strings.Contains(part, facts) {
		t.Errorf("the counts %q are not shown", facts)
	}
	best := sr.Trials[sr.Best]
	if want := "best: trial " + strconv.Itoa(best.Index) + " (round " + strconv.Itoa(best.Round) + "), val_accuracy " + formatNumber(*best.Objective); !strings.Contains(part, want) {
		t.Errorf("the best trial %q is not shown", want)
	}

	row := regexp.MustCompile(`<tr class="([^"]*)" data-trial="(\d+)">(.*?)</tr>`)
	cell := regexp.MustCompile(`<td[^>]*>(.*?)</td>`)
	rows := row.FindAllStringSubmatch(part, -1)
	if len(rows) != len(sr.Trials) {
		t.Fatalf("%d trial rows, want %d", len(rows), len(sr.Trials))
	}
	nParams := len(sr.Params)
	for i, m := range rows {
		tr := sr.Trials[i]
		if m[2] != strconv.Itoa(tr.Index) {
			t.Errorf("row %d is trial %s, want %d", i, m[2], tr.Index)
		}
		if got, want := strings.Contains(m[1], "best"), tr.Index == sr.Best; got != want {
			t.Errorf("trial %d highlighted %v, want %v", tr.Index, got, want)
		}
		if got, want := strings.Contains(m[1], "round-start"), i > 0 && sr.Trials[i-1].Round != tr.Round; got != want {
			t.Errorf("trial %d starts a round %v, want %v", tr.Index, got, want)
		}
		cells := cell.FindAllStringSubmatch(m[3], -1)
		// trial, round, status, the parameters, epochs, objective, started, seconds, error
		if len(cells) != 3+nParams+5 {
			t.Fatalf("trial %d: %d cells, want %d", tr.Index, len(cells), 3+nParams+5)
		}
		if !strings.Contains(cells[2][1], ">"+tr.Status+"<") {
			t.Errorf("trial %d status cell %q, want %s", tr.Index, cells[2][1], tr.Status)
		}
		for k, p := range sr.Params {
			want := "—"
			if v, ok := tr.Params[p.Name]; ok {
				want = v
				if p.Dist != "choice" {
					f, _ := strconv.ParseFloat(v, 64)
					want = formatNumber(f)
				}
			}
			if got := cells[3+k][1]; got != want {
				t.Errorf("trial %d %s: %q, want %q", tr.Index, p.Name, got, want)
			}
		}
		want := "—"
		if tr.Objective != nil {
			want = formatNumber(*tr.Objective)
		}
		if got := cells[3+nParams+1][1]; got != want {
			t.Errorf("trial %d objective %q, want %q", tr.Index, got, want)
		}
		if got := cells[3+nParams+4][1]; got != tr.Error {
			t.Errorf("trial %d error %q, want %q", tr.Index, got, tr.Error)
		}
	}

	regions := regexp.MustCompile(`(?s)<table class="regions">.*?<tbody>(.*?)</tbody>`).FindStringSubmatch(part)
	if regions == nil {
		t.Fatal("no table of the zoom rounds' regions")
	}
	rrows := regexp.MustCompile(`<tr><th>(\d+)[^<]*(?:<span[^>]*>[^<]*</span>)?</th>(.*?)</tr>`).FindAllStringSubmatch(regions[1], -1)
	if len(rrows) != len(sr.Rounds) {
		t.Fatalf("%d region rows, want %d", len(rrows), len(sr.Rounds))
	}
	for i, m := range rrows {
		rg := sr.Rounds[i]
		cells := cell.FindAllStringSubmatch(m[2], -1)
		if m[1] != strconv.Itoa(rg.Round) || len(cells) != 2+nParams {
			t.Fatalf("region row %d: round %s, %d cells", i, m[1], len(cells))
		}
		n, bestObj := 0, ""
		var bestV float64
		for _, tr := range sr.Trials {
			if tr.Round != rg.Round {
				continue
			}
			n++
			if tr.Status == "completed" && (bestObj == "" || *tr.Objective > bestV) {
				bestV, bestObj = *tr.Objective, formatNumber(*tr.Objective)
			}
		}
		if cells[0][1] != strconv.Itoa(n) || cells[1][1] != bestObj {
			t.Errorf("round %d: %s trials, best %s; want %d, %s", rg.Round, cells[0][1], cells[1][1], n, bestObj)
		}
		for k, p := range sr.Params {
			got := html.UnescapeString(cells[2+k][1])
			var want string
			if w, ok := rg.Weights[p.Name]; ok {
				var parts []string
				for j, x := range w {
					parts = append(parts, p.Labels[j]+" "+strconv.Itoa(int(100*x+0.5))+"%")
				}
				want = strings.Join(parts, " · ")
			} else {
				r := rg.Ranges[p.Name]
				want = formatNumber(r[0]) + " – " + formatNumber(r[1])
			}
			if got != want {
				t.Errorf("round %d %s: %q, want %q", rg.Round, p.Name, got, want)
			}
		}
	}

	pre := regexp.MustCompile(`(?s)<div data-part="search-best">.*?<pre class="toml">(.*?)</pre>`).FindStringSubmatch(part)
	if pre == nil {
		t.Fatal("the best trial's config is not shown")
	}
	if got := html.UnescapeString(pre[1]); got != sr.BestConfig {
		t.Errorf("best config shown:\n%s\nwant:\n%s", got, sr.BestConfig)
	}
	if strings.Contains(pre[1], "<b>") {
		t.Error("the best config is not escaped")
	}
}

// TestSearchChartsFollowTheData: a parameter no trial with an objective has gets no chart
// but a note that names it; a search whose trials all failed draws the trials over time and
// the best so far, but no parallel coordinates or parameter charts, and says why.
func TestSearchChartsFollowTheData(t *testing.T) {
	sr := fixtureSearch(rand.New(rand.NewPCG(1, 2)))
	sr.Params = append(sr.Params, SearchParam{Name: "layers.1.units", Dist: "int", Lo: 8, Hi: 64})
	sr.Effects, sr.Parallel = effects(sr)
	part := searchPart(t, sr)
	effectsDrawn := regexp.MustCompile(`data-draw="effect" data-src="stages\.0\.search\.effects\.(\d+)"`).FindAllStringSubmatch(part, -1)
	if len(effectsDrawn) != len(sr.Params)-1 {
		t.Errorf("%d parameter charts, want %d (one per parameter a trial has)", len(effectsDrawn), len(sr.Params)-1)
	}
	for _, m := range effectsDrawn {
		if m[1] == strconv.Itoa(len(sr.Params)-1) {
			t.Error("a chart for the parameter no trial has")
		}
	}
	if !strings.Contains(part, "No trial with an objective has <code>layers.1.units</code>") {
		t.Error("no note names the parameter no trial has")
	}
	for _, kind := range []string{"trials", "bestsofar", "parallel"} {
		if !strings.Contains(part, `data-draw="`+kind+`"`) {
			t.Errorf("no %s chart", kind)
		}
	}

	allFailed(sr)
	part = searchPart(t, sr)
	for kind, want := range map[string]bool{"trials": true, "bestsofar": true, "parallel": false, "effect": false} {
		if got := strings.Contains(part, `data-draw="`+kind+`"`); got != want {
			t.Errorf("all trials failed: %s chart shown %v, want %v", kind, got, want)
		}
	}
	if !strings.Contains(part, "No trial has an objective") || strings.Contains(part, `class="best`) {
		t.Error("all trials failed: no note that no trial has an objective, or a row highlighted as the best")
	}
}

// allFailed makes every trial of sr fail, as Build would read such a search.
func allFailed(sr *Search) {
	for i := range sr.Trials {
		sr.Trials[i].Status, sr.Trials[i].Objective, sr.Trials[i].Error = "failed", nil, "diverged"
	}
	sr.Best = -1
	sr.BestSoFar = bestSoFar(sr)
	sr.Effects, sr.Parallel = effects(sr)
}

// fixtureAllFailed is the fixture whose search's trials all failed.
func fixtureAllFailed() *Report {
	r := fixtureReport()
	allFailed(r.Stages[9].Search)
	return r
}
