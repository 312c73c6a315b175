package stages

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/gob"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/report"
	"github.com/pipe-ml/pipe/search"
)

// The trials table's fixed columns, beside one column per parameter (report reads them back
// from trials.csv).
const (
	trialsColTrial     = report.TrialsColTrial
	trialsColRound     = report.TrialsColRound
	trialsColStatus    = report.TrialsColStatus
	trialsColEpochs    = report.TrialsColEpochs
	trialsColBestEpoch = report.TrialsColBestEpoch
	trialsColObjective = report.TrialsColObjective
	trialsColSeconds   = report.TrialsColSeconds
	trialsColStart     = report.TrialsColStart
	trialsColError     = report.TrialsColError
)

// trialCheckpointName is the checkpoint of finished trial i: its record, saved as it finishes
// and given back to search.Run by a later run of the stage (pipe run --resume).
func trialCheckpointName(i int) string { return fmt.Sprintf("trial_%03d", i) }

// trialRecordVersion is the encoding version of trialRecord.
const trialRecordVersion = 1

// trialRecord is a finished trial as its checkpoint holds it: its search.TrialResult without
// the parameters (search.Run draws them again from the trial's seed, and checks the round and
// seed), and when it started.
type trialRecord struct {
	Version     int
	Index       int
	Round       int
	Seed        uint64
	Status      string
	Epochs      int
	Value       float64
	Metrics     map[string]float64
	History     []search.Point
	PrunedAt    int
	Err         string
	Seconds     float64
	WaitSeconds float64
	Start       float64
}

func (t *trialRecord) encode() ([]byte, error) {
	var buf bytes.Buffer
	t.Version = trialRecordVersion
	if err := gob.NewEncoder(&buf).Encode(t); err != nil {
		return nil, fmt.Errorf("encode trial %d's record: %w", t.Index, err)
	}
	return buf.Bytes(), nil
}

func (t *trialRecord) decode(b []byte) error {
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(t); err != nil {
		return fmt.Errorf("decode a trial's record: %w", err)
	}
	if t.Version != trialRecordVersion {
		return fmt.Errorf("trial record version %d, this build reads version %d", t.Version, trialRecordVersion)
	}
	return nil
}

// record returns the checkpoint record of a finished trial.
func (r *searchRun) record(t search.TrialResult) *trialRecord {
	r.mu.Lock()
	start := r.starts[t.Index]
	r.mu.Unlock()
	return &trialRecord{Index: t.Index, Round: t.Round, Seed: t.Seed, Status: string(t.Status), Epochs: t.Epochs, Value: t.Value, Metrics: t.Metrics,
		History: t.History, PrunedAt: t.PrunedAt, Err: t.Err, Seconds: t.Seconds, WaitSeconds: t.WaitSeconds, Start: start}
}

// restore reads the records of the trials that an interrupted run of the stage finished.
func (r *searchRun) restore(ctx context.Context, cp *checkpoints) []search.TrialResult {
	var out []search.TrialResult
	for i := range r.s.trials {
		name := trialCheckpointName(i)
		b := cp.load(ctx, name)
		if b == nil {
			continue
		}
		var rec trialRecord
		if err := rec.decode(b); err != nil || rec.Index != i {
			if err == nil {
				err = fmt.Errorf("it holds trial %d", rec.Index)
			}
			cp.setAside(name, err)
			continue
		}
		if rec.Status == string(search.Failed) {
			continue // run again
		}
		r.starts[i] = rec.Start
		out = append(out, rec.result())
	}
	return out
}

// result is the record as search.Run's TrialResult (without the Params: drawn again).
func (t *trialRecord) result() search.TrialResult {
	return search.TrialResult{Trial: search.Trial{Index: t.Index, Round: t.Round, Seed: t.Seed}, Status: search.Status(t.Status),
		Epochs: t.Epochs, Value: t.Value, Metrics: t.Metrics, History: t.History, PrunedAt: t.PrunedAt, Err: t.Err, Seconds: t.Seconds, WaitSeconds: t.WaitSeconds}
}

// paramColumn is a parameter's column in the trials table.
type paramColumn struct {
	name string
	typ  arrow.DataType
}

// paramColumns gives every parameter a column: float64 for uniform and log_uniform, int64
// for int and log_int; a choice's values' common type (int64, float64 for numbers, bool,
// string), or its values written as TOML.
func paramColumns(s *search.Space) []paramColumn {
	var out []paramColumn
	for _, p := range s.Params() {
		c := paramColumn{name: p.Name, typ: arrow.PrimitiveTypes.Float64}
		switch p.Dist {
		case search.Int, search.LogInt:
			c.typ = arrow.PrimitiveTypes.Int64
		case search.Choice:
			c.typ = choiceType(p.Choices)
		}
		out = append(out, c)
	}
	return out
}

// cell is a parameter's value as its column holds it: float64, int64, bool or string.
func (c paramColumn) cell(v any) any {
	switch c.typ.ID() {
	case arrow.FLOAT64:
		f, _ := toFloat(v)
		return f
	case arrow.INT64, arrow.BOOL:
		return v
	}
	if s, isString := v.(string); isString {
		return s
	}
	return search.FormatValue(v)
}

// spaceInfo describes the space for the manifest's info (and the report): each parameter's
// distribution, bounds, and a choice's values as trials.csv writes them.
func spaceInfo(s *search.Space) []map[string]any {
	cols := paramColumns(s)
	var out []map[string]any
	for i, p := range s.Params() {
		m := map[string]any{"name": p.Name, "dist": string(p.Dist)}
		if p.Dist == search.Choice {
			labels := make([]string, len(p.Choices))
			for j, v := range p.Choices {
				labels[j] = csvCell(cols[i].cell(v))
			}
			m["labels"] = labels
		} else {
			m["lo"], m["hi"] = p.Lo, p.Hi
		}
		out = append(out, m)
	}
	return out
}

func choiceType(vs []any) arrow.DataType {
	var ints, floats, bools, strs int
	for _, v := range vs {
		switch v.(type) {
		case int64:
			ints++
		case float64:
			floats++
		case bool:
			bools++
		case string:
			strs++
		}
	}
	switch len(vs) {
	case ints:
		return arrow.PrimitiveTypes.Int64
	case ints + floats:
		return arrow.PrimitiveTypes.Float64
	case bools:
		return arrow.FixedWidthTypes.Boolean
	}
	return arrow.BinaryTypes.String
}

// trialsSchema is the trials table's schema; with cv folds > 0, cv_std and each fold's
// objective follow the objective; with confirm, confirm_mean and confirm_runs.
func trialsSchema(cols []paramColumn, folds int, confirm bool) *arrow.Schema {
	fs := []arrow.Field{
		{Name: trialsColTrial, Type: arrow.PrimitiveTypes.Int64},
		{Name: trialsColRound, Type: arrow.PrimitiveTypes.Int64},
		{Name: trialsColStatus, Type: arrow.BinaryTypes.String},
	}
	for _, c := range cols {
		fs = append(fs, arrow.Field{Name: c.name, Type: c.typ, Nullable: true})
	}
	fs = append(fs,
		arrow.Field{Name: trialsColEpochs, Type: arrow.PrimitiveTypes.Int64},
		arrow.Field{Name: trialsColBestEpoch, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		arrow.Field{Name: trialsColObjective, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	)
	if folds > 0 {
		fs = append(fs, arrow.Field{Name: trialsColCVStd, Type: arrow.PrimitiveTypes.Float64, Nullable: true})
		for f := range folds {
			fs = append(fs, arrow.Field{Name: cvMetricFold(f), Type: arrow.PrimitiveTypes.Float64, Nullable: true})
		}
	}
	if confirm {
		fs = append(fs,
			arrow.Field{Name: trialsColConfirmMean, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
			arrow.Field{Name: trialsColConfirmRuns, Type: arrow.PrimitiveTypes.Int64, Nullable: true})
	}
	fs = append(fs,
		arrow.Field{Name: trialsColSeconds, Type: arrow.PrimitiveTypes.Float64},
		arrow.Field{Name: trialsColStart, Type: arrow.PrimitiveTypes.Float64},
		arrow.Field{Name: trialsColError, Type: arrow.BinaryTypes.String, Nullable: true},
	)
	return arrow.NewSchema(fs, nil)
}

// trialCells are one trial's values in the table's column order, nil for null.
func (r *searchRun) trialCells(t search.TrialResult, cols []paramColumn) []any {
	r.mu.Lock()
	start := r.starts[t.Index]
	r.mu.Unlock()
	row := []any{int64(t.Index), int64(t.Round), string(t.Status)}
	for _, c := range cols {
		v, ok := t.Params[c.name]
		if !ok {
			row = append(row, nil)
			continue
		}
		row = append(row, c.cell(v))
	}
	row = append(row, int64(t.Epochs))
	if e, ok := t.Metrics["best_epoch"]; ok {
		row = append(row, int64(e))
	} else {
		row = append(row, nil)
	}
	if math.IsNaN(t.Value) || math.IsInf(t.Value, 0) || t.Status == search.Failed {
		row = append(row, nil)
	} else {
		row = append(row, t.Value)
	}
	if r.cv != nil {
		for _, key := range append([]string{trialsColCVStd}, cvFoldKeys(len(r.cv.folds))...) {
			if v, ok := t.Metrics[key]; ok && t.Status == search.Completed {
				row = append(row, v)
			} else {
				row = append(row, nil)
			}
		}
	}
	if r.s.confirm.On() {
		row = append(row, confirmCells(t)...)
	}
	row = append(row, t.Seconds, start)
	if t.Err != "" {
		row = append(row, t.Err)
	} else {
		row = append(row, nil)
	}
	return row
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	}
	return 0, false
}

// writeTrials publishes the trials table and writes it as trials.csv.
func (r *searchRun) writeTrials(dir string, out search.Outcome) error {
	cols := paramColumns(r.s.space)
	rows := make([][]any, len(out.Trials))
	for i, t := range out.Trials {
		rows[i] = r.trialCells(t, cols)
	}
	folds := 0
	if r.cv != nil {
		folds = len(r.cv.folds)
	}
	t, err := r.sc.NewTable("trials", trialsSchema(cols, folds, r.s.confirm.On()), "", nil)
	if err != nil {
		return err
	}
	b := array.NewRecordBuilder(r.sc.Mem, t.Schema())
	defer b.Release()
	for _, row := range rows {
		for j, v := range row {
			fb := b.Field(j)
			if v == nil {
				fb.AppendNull()
				continue
			}
			switch x := fb.(type) {
			case *array.Int64Builder:
				x.Append(v.(int64))
			case *array.Float64Builder:
				x.Append(v.(float64))
			case *array.BooleanBuilder:
				x.Append(v.(bool))
			case *array.StringBuilder:
				x.Append(v.(string))
			}
		}
	}
	rec := b.NewRecordBatch()
	err = t.Append(rec)
	rec.Release()
	if err != nil {
		return err
	}
	header := make([]string, 0, len(t.Schema().Fields()))
	for _, f := range t.Schema().Fields() {
		header = append(header, f.Name)
	}
	return pipeline.WriteAtomic(filepath.Join(dir, report.TrialsFile), func(f *os.File) error {
		w := csv.NewWriter(f)
		if err := w.Write(header); err != nil {
			return err
		}
		for _, row := range rows {
			rec := make([]string, len(row))
			for j, v := range row {
				rec[j] = csvCell(v)
			}
			if err := w.Write(rec); err != nil {
				return err
			}
		}
		w.Flush()
		return w.Error()
	})
}

func csvCell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// outputs writes the trials (table, trials.csv), the manifest's info and metrics, and the log's
// summary with the best config as a train stage.
func (r *searchRun) outputs(dir string, out search.Outcome) error {
	sc := r.sc
	if err := r.writeTrials(dir, out); err != nil {
		return err
	}
	best, _ := out.BestTrial()
	counts := map[search.Status]int{}
	for _, t := range out.Trials {
		counts[t.Status]++
	}
	sc.SetInfo("objective", r.objective)
	sc.SetInfo("maximize", strings.HasSuffix(r.objective, "accuracy") || strings.HasSuffix(r.objective, "r2"))
	sc.SetInfo("best_trial", best.Index)
	sc.SetInfo("best_round", best.Round)
	sc.SetInfo("best_value", best.Value)
	sc.SetInfo("best_params", map[string]any(best.Params))
	if e, ok := best.Metrics["best_epoch"]; ok {
		sc.SetInfo("best_epoch", int(e))
	}
	sc.SetInfo("trials", map[string]int{"completed": counts[search.Completed], "pruned": counts[search.Pruned], "failed": counts[search.Failed], "total": len(out.Trials)})
	sc.SetInfo("epochs_run", out.Epochs)
	sc.SetInfo("trials_trained", int(r.trained.Load())) // in this run: not the restored ones
	if r.s.confirm.On() {
		r.confirmOutputs(out)
	}
	sc.SetInfo("trials_file", report.TrialsFile)
	sc.SetInfo("space", spaceInfo(r.s.space))
	var regions []map[string]any
	for i, rg := range out.Regions {
		ranges := map[string][]float64{}
		for name, x := range rg.Ranges {
			ranges[name] = []float64{x.Lo, x.Hi}
		}
		regions = append(regions, map[string]any{"round": i, "ranges": ranges, "weights": rg.Weights})
	}
	sc.SetInfo("regions", regions)
	sc.SetInfo("sampler", r.s.sampler)
	sc.Metrics.Set(r.objective, best.Value)
	if r.cv != nil {
		// The model's own val metrics (final) replace r.objective: the folds' mean stays here.
		sc.Metrics.Set("cv_"+r.objective, best.Value)
	}
	sc.Metrics.Set("trials_completed", float64(counts[search.Completed]))
	sc.Metrics.Set("trials_pruned", float64(counts[search.Pruned]))
	sc.Metrics.Set("trials_failed", float64(counts[search.Failed]))
	sc.Metrics.Set("epochs_run", float64(out.Epochs))
	if n := counts[search.Failed]; n > 0 {
		first := ""
		for _, t := range out.Trials {
			if t.Status == search.Failed {
				first = fmt.Sprintf("trial %d: %s", t.Index, t.Err)
				break
			}
		}
		warnNote(sc, "%d of %d trials failed (the first: %s)", n, len(out.Trials), first)
	}
	snippet, err := r.bestTOML(best)
	if err != nil {
		return err
	}
	sc.SetInfo("best_config", snippet)
	sc.Log.Info().Int("trial", best.Index).Int("round", best.Round).Float64(r.objective, best.Value).
		Int("completed", counts[search.Completed]).Int("pruned", counts[search.Pruned]).Int("failed", counts[search.Failed]).Int("epochs", out.Epochs).
		Msg("search: best trial; as a stage to paste into a pipeline:\n" + snippet)
	return nil
}

// bestTOML writes the best trial's config (base with its parameters) as a stage of the
// base's kind, reading the search's own inputs, in TOML that can be pasted into a pipeline.
func (r *searchRun) bestTOML(best search.TrialResult) (string, error) {
	cfg, err := applyParams(r.s.base, best.Params)
	if err != nil {
		return "", err
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "# the best trial of search stage %q: trial %d (round %d), %s = %s\n", r.sc.Name, best.Index, best.Round, r.objective, search.FormatValue(best.Value))
	if best.Runs > 0 {
		fmt.Fprintf(&b, "# chosen on its mean %s over %d runs with other seeds: %s\n", r.objective, best.Runs, search.FormatValue(best.Confirmed))
	}
	b.WriteString("[stages.model]\n")
	fmt.Fprintf(&b, "kind = %q\n", r.s.model)
	for _, in := range []string{"train", "val"} {
		if ref, ok := r.sc.Config.Input(in); ok {
			fmt.Fprintf(&b, "%s = %q\n", in, ref.String())
		}
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, search.FormatValue(cfg[k]))
	}
	return b.String(), nil
}
