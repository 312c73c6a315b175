package report

import (
	"math"
	"strconv"
	"strings"
)

// A search stage's tables, drawn in Go: the trials (one row per trial, the best highlighted)
// and the region each zoom round sampled. Its charts are drawn by the page's script.

// searchView is what the template shows of a search beside its charts.
type searchView struct {
	Completed, Pruned, Failed int
	Rounds                    int          // zoom rounds that ran trials
	Best                      *SearchTrial // nil when the search names no best trial
	BestObjective             string       // the best trial's objective, "" when none
	Params                    []SearchParam
	Trials                    []trialRow
	HasErrors                 bool // a trial has an error: the table shows the column
	Regions                   []regionRow
	Absent                    []string // parameters no trial with an objective has (no chart)
}

// trialRow is one row of the trials table.
type trialRow struct {
	Index, Round int
	Status       string
	Values       []string // per parameter, in Params' order; "—" where the trial lacks it
	Epochs       string   // epochs run, with the kept epoch when it differs
	Objective    string
	Start        string
	Seconds      string
	Error        string
	Best         bool
	RoundStart   bool // the first row of a zoom round after the first
}

// regionRow is one zoom round's region: per parameter its range, or a choice's weights.
type regionRow struct {
	Round  int
	Trials int
	Best   string // the best objective of the round's completed trials
	Cells  []string
}

// searchSummary prepares a search's tables and counts for the template.
func searchSummary(sr *Search) searchView {
	v := searchView{Params: sr.Params}
	rounds := map[int]bool{}
	hasEffect := map[string]bool{}
	for _, e := range sr.Effects {
		hasEffect[e.Param] = len(e.Points) > 0
	}
	for _, p := range sr.Params {
		if !hasEffect[p.Name] {
			v.Absent = append(v.Absent, p.Name)
		}
	}
	prevRound := -1
	for i := range sr.Trials {
		t := &sr.Trials[i]
		switch t.Status {
		case "completed":
			v.Completed++
		case "pruned":
			v.Pruned++
		case "failed":
			v.Failed++
		}
		rounds[t.Round] = true
		if t.Index == sr.Best {
			v.Best = t
			if t.Objective != nil {
				v.BestObjective = formatNumber(*t.Objective)
			}
		}
		row := trialRow{Index: t.Index, Round: t.Round, Status: t.Status, Objective: "—", Error: t.Error,
			Start: formatSeconds(t.Start), Seconds: formatSeconds(t.Seconds), Best: t.Index == sr.Best,
			RoundStart: prevRound >= 0 && t.Round != prevRound, Epochs: strconv.Itoa(t.EpochsRun)}
		prevRound = t.Round
		if t.BestEpoch > 0 && t.BestEpoch != t.EpochsRun {
			row.Epochs += " (kept " + strconv.Itoa(t.BestEpoch) + ")"
		}
		if t.Objective != nil {
			row.Objective = formatNumber(*t.Objective)
		}
		for _, p := range sr.Params {
			row.Values = append(row.Values, paramCell(p, t.Params))
		}
		v.HasErrors = v.HasErrors || t.Error != ""
		v.Trials = append(v.Trials, row)
	}
	v.Rounds = len(rounds)
	for _, rg := range sr.Rounds {
		row := regionRow{Round: rg.Round, Best: "—"}
		best := math.NaN()
		for _, t := range sr.Trials {
			if t.Round != rg.Round {
				continue
			}
			row.Trials++
			if t.Status == "completed" && t.Objective != nil && (math.IsNaN(best) || sr.better(*t.Objective, best)) {
				best = *t.Objective
			}
		}
		if !math.IsNaN(best) {
			row.Best = formatNumber(best)
		}
		for _, p := range sr.Params {
			row.Cells = append(row.Cells, regionCell(p, rg))
		}
		v.Regions = append(v.Regions, row)
	}
	return v
}

// paramCell is a trial's value of p as the table shows it: a number with 4 significant
// digits, a choice's label as the trials table wrote it, "—" where the trial lacks p.
func paramCell(p SearchParam, values map[string]string) string {
	cell, ok := values[p.Name]
	if !ok {
		return "—"
	}
	if p.Dist == "choice" || len(p.Labels) > 0 {
		return cell
	}
	if f, err := strconv.ParseFloat(cell, 64); err == nil {
		return formatNumber(f)
	}
	return cell
}

// regionCell is p's part of a zoom round's region: its range "lo – hi", a choice's weights
// "adam 75% · sgd 25%", or "—" when the region does not say.
func regionCell(p SearchParam, rg SearchRound) string {
	if w, ok := rg.Weights[p.Name]; ok {
		parts := make([]string, len(w))
		for i, x := range w {
			label := strconv.Itoa(i)
			if i < len(p.Labels) {
				label = p.Labels[i]
			}
			parts[i] = label + " " + strconv.FormatFloat(100*x, 'f', 0, 64) + "%"
		}
		return strings.Join(parts, " · ")
	}
	if r, ok := rg.Ranges[p.Name]; ok {
		return formatNumber(r[0]) + " – " + formatNumber(r[1])
	}
	return "—"
}
