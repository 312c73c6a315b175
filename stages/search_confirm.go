package stages

import (
	"bytes"
	"context"
	"encoding/gob"
	"fmt"
	"math"
	"strings"

	"github.com/pipe-ml/pipe/report"
	"github.com/pipe-ml/pipe/search"
)

// The confirmation (confirm = { top, seeds }): the best trials trained again with other
// seeds after the last round, chosen on the mean of their runs (search.ConfirmConfig).

// The trials table's columns of a confirmed search.
const (
	trialsColConfirmMean = report.TrialsColConfirmMean
	trialsColConfirmRuns = report.TrialsColConfirmRuns
)

// repeatCheckpointName is the checkpoint of repeat k of trial i: its record, saved as it
// finishes and given back to search.Run by a later run of the stage, as a trial's.
func repeatCheckpointName(i, k int) string { return fmt.Sprintf("trial_%03d.repeat_%d", i, k) }

// repeatRecordVersion is the encoding version of repeatRecordData.
const repeatRecordVersion = 1

// repeatRecordData is a finished repeat as its checkpoint holds it.
type repeatRecordData struct {
	Version int
	search.Repeat
}

func repeatRecord(r search.Repeat) *repeatRecordData {
	return &repeatRecordData{Version: repeatRecordVersion, Repeat: r}
}

func (r *repeatRecordData) encode() ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(r); err != nil {
		return nil, fmt.Errorf("encode repeat %d of trial %d: %w", r.Repeat.Repeat, r.Index, err)
	}
	return buf.Bytes(), nil
}

func (r *repeatRecordData) decode(b []byte) error {
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(r); err != nil {
		return fmt.Errorf("decode a repeat's record: %w", err)
	}
	if r.Version != repeatRecordVersion {
		return fmt.Errorf("repeat record version %d, this build reads version %d", r.Version, repeatRecordVersion)
	}
	return nil
}

// restoreRepeats reads the records of the repeats that an interrupted run of the stage
// finished (search.Run checks their seeds and runs failed ones again).
func (r *searchRun) restoreRepeats(ctx context.Context, cp *checkpoints) []search.Repeat {
	if !r.s.confirm.On() {
		return nil
	}
	var out []search.Repeat
	for i := range r.s.trials {
		for k := 1; k <= r.s.confirm.Seeds; k++ {
			name := repeatCheckpointName(i, k)
			b := cp.load(ctx, name)
			if b == nil {
				continue
			}
			var rec repeatRecordData
			if err := rec.decode(b); err != nil || rec.Index != i || rec.Repeat.Repeat != k {
				if err == nil {
					err = fmt.Errorf("it holds repeat %d of trial %d", rec.Repeat.Repeat, rec.Index)
				}
				cp.setAside(name, err)
				continue
			}
			out = append(out, rec.Repeat)
		}
	}
	return out
}

// confirmCells are a trial's cells of the confirmation's columns: its mean over its runs and
// their number, null for a trial not confirmed (and the mean for one whose repeat failed).
func confirmCells(t search.TrialResult) []any {
	if t.Runs == 0 {
		return []any{nil, nil}
	}
	var mean any
	if !math.IsNaN(t.Confirmed) && !math.IsInf(t.Confirmed, 0) {
		mean = t.Confirmed
	}
	return []any{mean, int64(t.Runs)}
}

// confirmOutputs records the confirmation in the manifest's info and metrics and says in the
// log what it chose and why.
func (r *searchRun) confirmOutputs(out search.Outcome) {
	sc, c := r.sc, r.s.confirm
	info := map[string]any{"top": c.Top, "seeds": c.Seeds, "repeats_trained": int(r.repeated.Load()), "epochs": out.ConfirmEpochs}
	plain := out.Trials[out.PlainBest]
	info["plain_best_trial"] = plain.Index
	if len(out.Confirmed) == 0 {
		info["confirmed"] = false
		sc.SetInfo("confirm", info)
		sc.Note("confirm: fewer than 2 trials completed, so there was nothing to choose between: trial %d chosen on its own %s, not confirmed", plain.Index, r.objective)
		return
	}
	best, _ := out.BestTrial()
	info["confirmed"] = true
	info["chosen_trial"] = best.Index
	info["chosen_mean"] = best.Confirmed
	info["chosen_runs"] = best.Runs
	var leaders []map[string]any
	var lines []string
	for rank, p := range out.Confirmed {
		t := out.Trials[p]
		vals := []float64{t.Value}
		var seeds []uint64
		var errs []string
		for _, rep := range t.Repeats {
			vals = append(vals, rep.Value)
			seeds = append(seeds, rep.Seed)
			if rep.Err != "" {
				errs = append(errs, fmt.Sprintf("repeat %d: %s", rep.Repeat, rep.Err))
			}
		}
		m := map[string]any{"trial": t.Index, "rank": rank, "value": t.Value, "mean": t.Confirmed, "runs": t.Runs, "values": vals, "repeat_seeds": seeds}
		if len(errs) > 0 {
			m["errors"] = errs
		}
		leaders = append(leaders, m)
		lines = append(lines, fmt.Sprintf("trial %d: mean %.4g over %d runs (its own %.4g)", t.Index, t.Confirmed, t.Runs, t.Value))
	}
	info["leaders"] = leaders
	sc.SetInfo("confirm", info)
	sc.Metrics.Set("confirm_"+r.objective, best.Confirmed)
	why := fmt.Sprintf("the same trial its own %s alone chooses", r.objective)
	if best.Index != plain.Index {
		why = fmt.Sprintf("in place of trial %d, the best by its own %s (%.4g; mean %.4g over %d runs)", plain.Index, r.objective, plain.Value, plain.Confirmed, plain.Runs)
	}
	sc.Note("confirm: the %d best trials trained %d more times each with other seeds; trial %d chosen on its mean %s %.4g over %d runs, %s; the model is trial %d's own run (%s %.4g)",
		len(out.Confirmed), c.Seeds, best.Index, r.objective, best.Confirmed, best.Runs, why, best.Index, r.objective, best.Value)
	sc.Log.Info().Int("chosen", best.Index).Int("plain_best", plain.Index).Msg("search: confirmation, best first: " + strings.Join(lines, "; "))
}
