package report

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pipe-ml/pipe/pipeline"
)

// TrialsFile is a search stage's table of trials in its stage directory: one row per trial,
// with the columns below and one column per parameter (between status and epochs_run), empty
// where a value is null.
const TrialsFile = "trials.csv"

// The fixed columns of TrialsFile. They are named so that no parameter (a key of a train or
// ensemble stage) has one of their names: "epochs" is such a key.
const (
	TrialsColTrial     = "trial"         // the trial's index, from 0
	TrialsColRound     = "round"         // its zoom round, from 0
	TrialsColStatus    = "status"        // completed, pruned or failed
	TrialsColEpochs    = "epochs_run"    // the last epoch it reported
	TrialsColBestEpoch = "best_epoch"    // the epoch whose weights it kept (empty: none)
	TrialsColObjective = "objective"     // its objective (empty for a failed trial)
	TrialsColSeconds   = "seconds"       // how long it ran
	TrialsColStart     = "start_seconds" // when it started, after the search's start
	TrialsColError     = "error"         // a failed trial's error
	// A confirmed search's (confirm = { ... }) columns: no parameters.
	TrialsColConfirmMean = "confirm_mean" // the mean objective over a confirmed trial's runs
	TrialsColConfirmRuns = "confirm_runs" // how many runs that mean averages
)

// TrialsFixedColumns are the fixed columns of TrialsFile: the first three come before the
// parameters, the others after them.
var TrialsFixedColumns = []string{TrialsColTrial, TrialsColRound, TrialsColStatus, TrialsColEpochs, TrialsColBestEpoch, TrialsColObjective, TrialsColSeconds, TrialsColStart, TrialsColError}

// searchSection reads a search stage's trials.csv and its manifest info (objective,
// maximize, best_trial, space, regions, best_config) into its section; nil when the stage has no
// trials.csv.
func searchSection(dir string, s *pipeline.StageManifest) (*Search, error) {
	f, err := os.Open(filepath.Join(dir, TrialsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(records) == 0 {
		return nil, fmt.Errorf("empty file: no header")
	}
	header := records[0]
	col := map[string]int{}
	for j, h := range header {
		col[h] = j
	}
	for _, c := range TrialsFixedColumns {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("no column %q", c)
		}
	}
	fixed := map[string]bool{}
	for _, c := range TrialsFixedColumns {
		fixed[c] = true
	}
	sr := &Search{Objective: jsonString(s.Info["objective"]), Best: -1}
	sr.Maximize, _ = s.Info["maximize"].(bool)
	if b, ok := jsonInt(s.Info["best_trial"]); ok {
		sr.Best = b
	}
	space := searchSpace(s.Info["space"])
	var paramCols []int
	for j, h := range header {
		if fixed[h] || strings.HasPrefix(h, "cv_") || h == TrialsColConfirmMean || h == TrialsColConfirmRuns { // a cross-validated search's fold objectives, a confirmed search's mean: no parameter
			continue
		}
		paramCols = append(paramCols, j)
		p, ok := space[h]
		if !ok {
			p = SearchParam{Name: h} // an older run without info.space: shown as text
		}
		sr.Params = append(sr.Params, p)
	}

	number := func(line int, name, cell string) (float64, error) {
		if cell == "" {
			return math.NaN(), nil
		}
		v, err := strconv.ParseFloat(cell, 64)
		if err != nil {
			return 0, fmt.Errorf("line %d, column %q: %q is not a number", line, name, cell)
		}
		return v, nil
	}
	for i, rec := range records[1:] {
		line := i + 2
		if len(rec) != len(header) {
			return nil, fmt.Errorf("line %d: %d cells, the header has %d", line, len(rec), len(header))
		}
		t := SearchTrial{Status: rec[col[TrialsColStatus]], Error: rec[col[TrialsColError]], Params: map[string]string{}}
		nums := map[string]float64{}
		for _, c := range []string{TrialsColTrial, TrialsColRound, TrialsColEpochs, TrialsColBestEpoch, TrialsColObjective, TrialsColSeconds, TrialsColStart} {
			v, err := number(line, c, rec[col[c]])
			if err != nil {
				return nil, err
			}
			nums[c] = v
		}
		if math.IsNaN(nums[TrialsColTrial]) {
			return nil, fmt.Errorf("line %d: no trial index", line)
		}
		t.Index, t.Round, t.EpochsRun = int(nums[TrialsColTrial]), intOrZero(nums[TrialsColRound]), intOrZero(nums[TrialsColEpochs])
		t.BestEpoch, t.Seconds, t.Start = intOrZero(nums[TrialsColBestEpoch]), zeroIfNaN(nums[TrialsColSeconds]), zeroIfNaN(nums[TrialsColStart])
		if v := nums[TrialsColObjective]; finite(v) {
			t.Objective = &v
		}
		for k, j := range paramCols {
			if cell := rec[j]; cell != "" {
				t.Params[sr.Params[k].Name] = cell
			}
		}
		sr.Trials = append(sr.Trials, t)
	}
	sort.SliceStable(sr.Trials, func(a, b int) bool { return sr.Trials[a].Index < sr.Trials[b].Index })
	sr.BestSoFar = bestSoFar(sr)
	sr.Effects, sr.Parallel = effects(sr)
	sr.Rounds = searchRounds(s.Info["regions"])
	sr.BestConfig = jsonString(s.Info["best_config"])
	return sr, nil
}

func intOrZero(v float64) int {
	if !finite(v) {
		return 0
	}
	return int(v)
}

func zeroIfNaN(v float64) float64 {
	if !finite(v) {
		return 0
	}
	return v
}

// searchSpace reads info.space: the parameters with their distributions, by name.
func searchSpace(v any) map[string]SearchParam {
	out := map[string]SearchParam{}
	list, _ := v.([]any)
	for _, x := range list {
		m, _ := x.(map[string]any)
		if m == nil {
			continue
		}
		p := SearchParam{Name: jsonString(m["name"]), Dist: jsonString(m["dist"])}
		p.Lo, _ = jsonNumber(m["lo"])
		p.Hi, _ = jsonNumber(m["hi"])
		if labels, ok := m["labels"].([]any); ok {
			for _, l := range labels {
				p.Labels = append(p.Labels, jsonString(l))
			}
		}
		out[p.Name] = p
	}
	return out
}

// better reports whether objective a is better than b.
func (sr *Search) better(a, b float64) bool {
	if sr.Maximize {
		return a > b
	}
	return a < b
}

// bestSoFar is the curve of each trial's objective and the best completed one up to it.
func bestSoFar(sr *Search) Curve {
	c := Curve{Title: "objective by trial", XLabel: "trial", YLabel: sr.Objective}
	own, best := make([]float64, len(sr.Trials)), make([]float64, len(sr.Trials))
	cur := math.NaN()
	for i, t := range sr.Trials {
		c.X = append(c.X, float64(t.Index))
		own[i] = math.NaN()
		if t.Objective != nil {
			own[i] = *t.Objective
			if t.Status == "completed" && (math.IsNaN(cur) || sr.better(*t.Objective, cur)) {
				cur = *t.Objective
			}
		}
		best[i] = cur
	}
	c.Series = []Series{{Name: "trial", Values: own}, {Name: "best so far", Values: best}}
	if sr.Best >= 0 {
		c.Marks = []Mark{{X: float64(sr.Best), Label: "best trial"}}
	}
	return c
}

// axisValue is a trial's value of a parameter in its axis' units: the number, or the index of
// a choice's label; ok is false when the trial lacks the parameter.
func axisValue(p SearchParam, t SearchTrial) (float64, bool) {
	cell, ok := t.Params[p.Name]
	if !ok {
		return 0, false
	}
	if p.Dist == "choice" || p.Dist == "" {
		for i, l := range p.Labels {
			if l == cell {
				return float64(i), true
			}
		}
		if p.Dist == "choice" {
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(cell, 64)
	return v, err == nil
}

// effects are every parameter's (value, objective) points, and the parallel coordinates.
func effects(sr *Search) ([]ParamEffect, Parallel) {
	var out []ParamEffect
	par := Parallel{}
	for _, p := range sr.Params {
		e := ParamEffect{Param: p.Name}
		ax := ParallelAxis{Name: p.Name, Lo: p.Lo, Hi: p.Hi, Log: p.Log()}
		if p.Dist == "choice" || len(p.Labels) > 0 {
			ax.Lo, ax.Hi, ax.Labels = 0, float64(max(len(p.Labels)-1, 0)), p.Labels
		}
		for _, t := range sr.Trials {
			x, ok := axisValue(p, t)
			if !ok || t.Objective == nil {
				continue
			}
			e.Points = append(e.Points, EffectPoint{Trial: t.Index, X: x, Objective: *t.Objective, Status: t.Status})
		}
		out = append(out, e)
		par.Axes = append(par.Axes, ax)
	}
	obj := ParallelAxis{Name: sr.Objective, Lo: math.Inf(1), Hi: math.Inf(-1)}
	for _, t := range sr.Trials {
		if t.Objective == nil {
			continue
		}
		obj.Lo, obj.Hi = math.Min(obj.Lo, *t.Objective), math.Max(obj.Hi, *t.Objective)
		line := ParallelLine{Trial: t.Index, Status: t.Status}
		for _, p := range sr.Params {
			if x, ok := axisValue(p, t); ok {
				line.Values = append(line.Values, &x)
			} else {
				line.Values = append(line.Values, nil)
			}
		}
		v := *t.Objective
		line.Values = append(line.Values, &v)
		par.Lines = append(par.Lines, line)
	}
	if len(par.Lines) == 0 {
		obj.Lo, obj.Hi = 0, 0
	}
	par.Axes = append(par.Axes, obj)
	return out, par
}

// searchRounds reads info.regions: each round's ranges and choice weights.
func searchRounds(v any) []SearchRound {
	list, _ := v.([]any)
	var out []SearchRound
	for _, x := range list {
		m, _ := x.(map[string]any)
		if m == nil {
			continue
		}
		r := SearchRound{}
		r.Round, _ = jsonInt(m["round"])
		if ranges, ok := m["ranges"].(map[string]any); ok {
			r.Ranges = map[string][2]float64{}
			for k, rv := range ranges {
				pair, _ := rv.([]any)
				if len(pair) != 2 {
					continue
				}
				lo, ok1 := jsonNumber(pair[0])
				hi, ok2 := jsonNumber(pair[1])
				if ok1 && ok2 {
					r.Ranges[k] = [2]float64{lo, hi}
				}
			}
		}
		if weights, ok := m["weights"].(map[string]any); ok {
			r.Weights = map[string][]float64{}
			for k, wv := range weights {
				ws, _ := wv.([]any)
				for _, w := range ws {
					f, _ := jsonNumber(w)
					r.Weights[k] = append(r.Weights[k], f)
				}
			}
		}
		out = append(out, r)
	}
	return out
}
