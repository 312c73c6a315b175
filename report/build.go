package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/pipeline"
)

// BuildOptions tune BuildWith. The zero value is Build's.
type BuildOptions struct {
	// Mem allocates the worst-k rows read from Parquet; default memory.DefaultAllocator.
	Mem memory.Allocator
	// Now stamps Report.Generated; default time.Now.
	Now func() time.Time
}

// Build reads the run directory dir into a Report (see BuildWith).
func Build(dir string) (*Report, error) { return BuildWith(dir, BuildOptions{}) }

// BuildWith reads the run directory dir into a Report: the manifest (through pipeline.ReadRun,
// so a run whose process is gone reads as crashed), pipeline.toml for the DAG's edges, and
// per stage the files the stages write into stages/<name>/: history.csv, lr_range_test.csv,
// monitor.csv, evaluation.json with the worst-k Parquet files it names, the ensemble's
// members/member_NN/history.csv, a search's trials.csv; and the manifest's info (summary,
// members, rounds, bias_variance, a search's objective, space and regions). It needs no
// registry: a custom program's kinds are read the same way.
//
// Only a missing or unreadable manifest is an error. A stage file that is missing (an older
// run, a stage that failed before writing it) leaves its section out; one that cannot be read
// leaves it out too, with a warning in the stage's Warnings that names the file and the
// problem.
func BuildWith(dir string, opts BuildOptions) (*Report, error) {
	if opts.Mem == nil {
		opts.Mem = memory.DefaultAllocator
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, status, err := pipeline.ReadRun(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("report: %s is not a run directory (no manifest.json): give the directory of a run, e.g. runs/<pipeline>/<run-id>", dir)
		}
		return nil, fmt.Errorf("report: %w", err)
	}
	b := &builder{dir: dir, m: m, status: status, opts: opts}
	b.readConfig()
	r := &Report{FormatVersion: FormatVersion, Run: b.run(), Generated: opts.Now().UTC()}
	r.Graph = b.graph()
	for _, name := range b.order() {
		r.Stages = append(r.Stages, b.stage(name))
	}
	if b.configErr != "" {
		r.Run.Warnings = append(r.Run.Warnings, b.configErr)
	}
	return r, nil
}

// builder holds what BuildWith reads once.
type builder struct {
	dir       string
	m         *pipeline.Manifest
	status    string // the run's live status
	opts      BuildOptions
	config    map[string]map[string]any // pipeline.toml's stage tables, by stage
	configErr string                    // why pipeline.toml could not be read
}

// stageStatus is a stage's status as the report shows it: a stage still "running" in the
// manifest of a crashed run was cut off by the crash.
func (b *builder) stageStatus(s *pipeline.StageManifest) string {
	if b.status == pipeline.StatusCrashed && s.Status == pipeline.StatusRunning {
		return pipeline.StatusCrashed
	}
	return s.Status
}

// order is the stages in the manifest's order, then any other the manifest lists, by name.
func (b *builder) order() []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range b.m.StageOrder {
		if _, ok := b.m.Stages[n]; ok && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	var rest []string
	for n := range b.m.Stages {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func (b *builder) run() Run {
	m := b.m
	r := Run{Pipeline: m.Pipeline, RunID: m.RunID, Status: b.status, Error: m.Error, Seed: m.Seed, ConfigHash: m.ConfigHash,
		PipeVersion: m.PipeVersion, StartedAt: m.StartedAt, Seconds: m.Seconds, Warnings: slices.Clone(m.Warnings), Overrides: slices.Clone(m.Overrides)}
	if l, ok := m.Run["leakage"].(map[string]any); ok {
		r.Leakage = sortedLists(l)
	}
	if b.status == pipeline.StatusCrashed {
		r.Warnings = append(r.Warnings, "the run crashed: its process ended without writing a final manifest; the stages show how far it got")
	}
	extra := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			extra[k] = v
		}
	}
	set("description", m.Description)
	set("go_version", m.GoVersion)
	set("gemm", m.GEMM)
	set("host", m.Host)
	if m.Workers > 0 {
		set("workers", strconv.Itoa(m.Workers))
	}
	if len(m.Resumptions) > 0 {
		set("resumptions", strconv.Itoa(len(m.Resumptions)))
	}
	if len(m.Dropped) > 0 {
		set("dropped", strings.Join(m.Dropped, "; "))
	}
	if len(extra) > 0 {
		r.Extra = extra
	}
	for _, name := range b.order() {
		s := m.Stages[name]
		r.Durations = append(r.Durations, StageDuration{Stage: name, Kind: s.Kind, Status: b.stageStatus(s), Seconds: s.Seconds, Waited: s.WaitedSeconds, Cached: s.Cached})
	}
	return r
}

// stageDir is a stage's directory in the run.
func (b *builder) stageDir(name string) string { return filepath.Join(b.dir, "stages", name) }

// stage builds one stage's section from the files its kind wrote, whatever the kind.
func (b *builder) stage(name string) Stage {
	s := b.m.Stages[name]
	st := Stage{Name: name, Kind: s.Kind, Status: b.stageStatus(s), Seconds: s.Seconds, Cached: s.Cached, Metrics: finiteMap(s.Metrics),
		Notes: slices.Clone(s.Notes)}
	if s.Error != "" {
		st.Warnings = append(st.Warnings, "error: "+s.Error)
	}
	for _, d := range s.Dropped {
		st.Warnings = append(st.Warnings, "dropped: "+d)
	}
	if ws, ok := s.Info["monitor_warnings"].([]any); ok {
		for _, w := range ws {
			st.Warnings = append(st.Warnings, jsonString(w))
		}
	}
	if w, ok := s.Info["summary_warning"].(string); ok && w != "" {
		st.Warnings = append(st.Warnings, w)
	}
	dir := b.stageDir(name)
	fail := func(file string, err error) {
		st.Warnings = append(st.Warnings, fmt.Sprintf("report: %s left out: %v", filepath.ToSlash(filepath.Join("stages", name, file)), err))
	}
	if tr, err := b.training(dir, s.Info); err != nil {
		fail("history.csv", err)
	} else {
		st.Training = tr
	}
	if st.Training != nil {
		if rt, err := rangeTest(filepath.Join(dir, rangeTestFile), s.Info); err != nil {
			fail(rangeTestFile, err)
		} else {
			st.Training.RangeTest = rt
		}
	}
	if mon, err := readMonitor(filepath.Join(dir, monitorFile), s.Info); err != nil {
		fail(monitorFile, err)
	} else {
		st.Monitoring = mon
	}
	st.Summary = summary(s.Info)
	ev, bv, err := b.evaluation(dir)
	if err != nil {
		fail(EvaluationFile, err)
	}
	st.Evaluation, st.BiasVar = ev, bv
	if st.BiasVar == nil {
		st.BiasVar = biasVarFromInfo(s.Info)
	}
	if ens, curves, err := ensembleSection(dir, s); err != nil {
		fail("members", err)
	} else if ens != nil {
		st.Ensemble = ens
		if len(curves) > 0 && st.Training == nil {
			st.Training = &Training{Curves: curves, Epochs: maxMemberEpochs(ens)}
		}
	}
	if sr, err := searchSection(dir, s); err != nil {
		fail(TrialsFile, err)
	} else {
		st.Search = sr
	}
	if rounds, tr := pseudoRounds(s); rounds != nil {
		st.Rounds = rounds
		if st.Training == nil {
			st.Training = tr
		}
	}
	return st
}

// readJSON decodes a JSON file; ok is false when it does not exist.
func readJSON(path string, v any) (ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, err
	}
	return true, nil
}

// summary is the model summary of a training stage's info.summary (nil without one).
func summary(info map[string]any) *Summary {
	rows, ok := info["summary"].([]any)
	if !ok || len(rows) == 0 {
		return nil
	}
	s := &Summary{}
	for _, r := range rows {
		row, _ := r.(map[string]any)
		if row == nil {
			continue
		}
		params, _ := jsonInt(row["params"])
		share, _ := jsonNumber(row["share"])
		s.Rows = append(s.Rows, SummaryRow{Layer: jsonString(row["layer"]), Kind: jsonString(row["kind"]), Output: jsonString(row["output"]), Params: params, Share: share})
		s.Total += params
	}
	if total, ok := jsonInt(info["params"]); ok && total > 0 {
		s.Total = total
	}
	return s
}

// biasVarFromInfo reads an evaluate stage's info.bias_variance, for runs written before
// evaluation.json: its keys are "<model> <head>" labels, kept whole as the model.
func biasVarFromInfo(info map[string]any) []BiasVar {
	tables, ok := info["bias_variance"].(map[string]any)
	if !ok {
		return nil
	}
	keys := make([]string, 0, len(tables))
	for k := range tables {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []BiasVar
	for _, k := range keys {
		t, _ := tables[k].(map[string]any)
		if t == nil {
			continue
		}
		bv := BiasVar{Model: k, Unit: jsonString(t["unit"]), Errors: numberMap(t["errors"]), Chance: numberMap(t["chance"])}
		if d, ok := t["diagnosis"].([]any); ok {
			for _, x := range d {
				bv.Diagnosis = append(bv.Diagnosis, jsonString(x))
			}
		}
		out = append(out, bv)
	}
	return out
}

// numberMap reads a JSON object of numbers, leaving out what is not a finite number.
func numberMap(v any) map[string]float64 {
	obj, _ := v.(map[string]any)
	out := map[string]float64{}
	for k, x := range obj {
		if f, ok := jsonNumber(x); ok {
			out[k] = f
		}
	}
	return finiteMap(out)
}

// evaluation reads an evaluate stage's evaluation.json and the worst-k files it names.
func (b *builder) evaluation(dir string) ([]TableEval, []BiasVar, error) {
	var f Evaluation
	ok, err := readJSON(filepath.Join(dir, EvaluationFile), &f)
	if err != nil || !ok {
		return nil, nil, err
	}
	if f.FormatVersion > EvaluationVersion {
		return nil, nil, fmt.Errorf("format version %d, this build reads version %d and older: update pipe", f.FormatVersion, EvaluationVersion)
	}
	var out []TableEval
	for _, e := range f.Tables {
		te := e.TableEval
		te.Metrics = finiteMap(te.Metrics)
		if e.WorstFile != "" {
			path := filepath.Join(dir, filepath.FromSlash(e.WorstFile))
			rows, images, err := b.worst(path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
			case err != nil:
				// The aggregates stand without the rows: a table that cannot be read
				// says so in place of the rows.
				te.Worst = &Rows{Columns: []string{"error"}, Rows: [][]string{{fmt.Sprintf("%s: %v", e.WorstFile, err)}}}
			default:
				te.Worst, te.Images = rows, images
			}
		}
		out = append(out, te)
	}
	return out, f.BiasVar, nil
}

// sortedLists returns m with its lists of objects sorted by their JSON form: the manifest lists
// the leakage audit's entries in the order the stages finished, which differs between runs.
func sortedLists(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		list, ok := v.([]any)
		if !ok {
			out[k] = v
			continue
		}
		keyed := make([]struct {
			key string
			v   any
		}, len(list))
		for i, x := range list {
			b, _ := json.Marshal(x)
			keyed[i].key, keyed[i].v = string(b), x
		}
		sort.SliceStable(keyed, func(i, j int) bool { return keyed[i].key < keyed[j].key })
		sorted := make([]any, len(list))
		for i := range keyed {
			sorted[i] = keyed[i].v
		}
		out[k] = sorted
	}
	return out
}
