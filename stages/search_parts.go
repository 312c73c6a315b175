package stages

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/search"
)

// A search's trials run apart (pipeline.SteppedStage): an engine that spreads a run over
// workers runs each trial as a part, in segments, with the decisions of a search that runs
// them all in one process (search.Steps). The board that the pruning decisions read is in
// the stage's checkpoints, where every worker sees it:
//
//   - trial_NNN: a finished trial's record (the same checkpoint as a local run's, so that the
//     stage's Run, after the parts, restores every trial and trains none);
//   - trial_NNN.reports: the reports of a trial in progress, written at each report;
//   - trial_NNN.state: a paused trial: its reports, the report that waits for its decision,
//     the trainer's checkpoint at that epoch, and the objective it ends with if that decision
//     stops it;
//   - search.header: the objective and its direction, which every part computes alike from
//     the data, for ReadyParts (which reads no data).
//
// A segment that reaches a report whose decision waits on a trial below (not at that epoch
// yet, and not finished) saves the trial's state and ends: no part waits for another.

const (
	searchHeaderName     = "search.header"
	searchStateVersion   = 1
	searchReportsVersion = 1
	searchHeaderVersion  = 1
	searchReportHookName = "search_report"
	searchPartWorkers    = 1 // a trial trains on one core, as in a local search
)

func trialStateName(i int) string   { return fmt.Sprintf("trial_%03d.state", i) }
func trialReportsName(i int) string { return fmt.Sprintf("trial_%03d.reports", i) }

// searchHeader is what ReadyParts needs of the data: the objective's direction.
type searchHeader struct {
	Version   int
	Objective string
	Maximize  bool
	// Started is when the first segment began (wall clock): trials' start_seconds count from
	// it, as a local search's count from its own start (zero in a header of an older build).
	Started time.Time
}

// trialState is a paused trial.
type trialState struct {
	Version  int
	Progress search.TrialProgress
	// Checkpoint is the trainer's checkpoint at the pending report (train.Checkpoint).
	Checkpoint []byte
	// StopValue and StopMetrics are the trial's Result if the pending decision stops it.
	StopValue   float64
	StopMetrics map[string]float64
	// Seconds is the training time of the segments so far.
	Seconds float64
	// Start is when the trial's first segment began, in seconds after the search's Started.
	Start float64
}

// trialReports is a trial's reports so far.
type trialReports struct {
	Version int
	History []search.Point
}

func gobEncode(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gobDecode(b []byte, v any) error { return gob.NewDecoder(bytes.NewReader(b)).Decode(v) }

// Parts implements pipeline.PartedStage: one part per trial, for a search of train stages
// and for a search of ensembles (whose trials are never pruned: each runs in one segment,
// its members one after another, as in a local search).
func (s *searchStage) Parts() int {
	return s.trials
}

// steps returns the search's Steps.
func (s *searchStage) steps(sc *pipeline.StageContext, maximize bool) (*search.Steps, error) {
	return search.NewSteps(search.Config{Space: s.space, Trials: s.trials, Rounds: s.rounds, Maximize: maximize, Sampler: s.sampler, Zoom: s.zoom, TPE: s.tpe, Prune: s.prune,
		TrialSeed: func(i int) uint64 { return sc.Seed(uint64(i)) }})
}

// searchBoard is what the stage's checkpoints say of the trials.
type searchBoard struct {
	ctx      context.Context
	cp       *checkpoints
	finished map[int]search.TrialResult
}

// readBoard reads the finished trials' records.
func (s *searchStage) readBoard(ctx context.Context, cp *checkpoints) *searchBoard {
	b := &searchBoard{ctx: ctx, cp: cp, finished: map[int]search.TrialResult{}}
	for i := range s.trials {
		raw := cp.load(ctx, trialCheckpointName(i))
		if raw == nil {
			continue
		}
		var rec trialRecord
		if err := rec.decode(raw); err != nil || rec.Index != i {
			if err == nil {
				err = fmt.Errorf("it holds trial %d", rec.Index)
			}
			cp.setAside(trialCheckpointName(i), err)
			continue
		}
		b.finished[i] = rec.result()
	}
	return b
}

// view is the search.BoardView of the board: a finished trial's history, or the reports a
// trial in progress has written so far (read at each call: they grow).
func (b *searchBoard) view(j int) ([]search.Point, bool) {
	if rec, ok := b.finished[j]; ok {
		return rec.History, true
	}
	if raw := b.cp.load(b.ctx, trialCheckpointName(j)); raw != nil {
		var rec trialRecord
		if rec.decode(raw) == nil && rec.Index == j {
			b.finished[j] = rec.result()
			return rec.History, true
		}
	}
	if raw := b.cp.load(b.ctx, trialReportsName(j)); raw != nil {
		var r trialReports
		if gobDecode(raw, &r) == nil && r.Version == searchReportsVersion {
			return r.History, false
		}
	}
	return nil, false
}

// state reads trial i's paused state (nil when none, or when it cannot be used).
func (b *searchBoard) state(i int) *trialState {
	raw := b.cp.load(b.ctx, trialStateName(i))
	if raw == nil {
		return nil
	}
	var st trialState
	if err := gobDecode(raw, &st); err != nil || st.Version != searchStateVersion {
		if err == nil {
			err = fmt.Errorf("state version %d, this build reads version %d", st.Version, searchStateVersion)
		}
		b.cp.setAside(trialStateName(i), err)
		return nil
	}
	return &st
}

// ReadyParts implements pipeline.SteppedStage: the trials not finished whose round's region
// is known and that do not wait on a decision that cannot be made yet.
func (s *searchStage) ReadyParts(ctx context.Context, sc *pipeline.StageContext) ([]int, int, error) {
	cp := newCheckpoints(sc)
	var h searchHeader
	if raw := cp.load(ctx, searchHeaderName); raw != nil {
		if err := gobDecode(raw, &h); err != nil || h.Version != searchHeaderVersion {
			cp.setAside(searchHeaderName, fmt.Errorf("a search header that cannot be read (version %d): %v", h.Version, err))
			h = searchHeader{}
		}
	}
	steps, err := s.steps(sc, h.Maximize)
	if err != nil {
		return nil, 0, err
	}
	b := s.readBoard(ctx, cp)
	if h.Version == 0 && len(b.finished) > 0 {
		return nil, 0, errors.New("trials have finished but the search's header is not in the stage store: run the stage again")
	}
	var ready []int
	drawable := steps.Drawable(b.finished)
	for i := range s.trials {
		if _, done := b.finished[i]; done {
			continue
		}
		if _, ok := drawable[i]; !ok {
			continue
		}
		if st := b.state(i); st != nil {
			if h.Version == 0 {
				continue // not judged without the objective's direction (RunPart saves it first)
			}
			p := st.Progress
			if decided, _ := steps.Judge(i, &p, b.view); !decided {
				continue
			}
		}
		ready = append(ready, i)
	}
	return ready, len(b.finished), nil
}

// RunPart implements pipeline.PartedStage: one segment of trial i, from where its state
// stands to its end or to a report whose decision has to wait (then it saves the trial's
// state). A trial that has finished, or cannot run yet, is left as it is.
func (s *searchStage) RunPart(ctx context.Context, sc *pipeline.StageContext, i int) error {
	r, maximize, err := s.begin(ctx, sc)
	if err != nil {
		return err
	}
	defer r.data.done()
	_, release, err := takeCPU(ctx, sc, searchPartWorkers)
	if err != nil {
		return err
	}
	defer release()
	cp := newCheckpoints(sc)
	var header searchHeader
	if raw := cp.load(ctx, searchHeaderName); raw == nil || gobDecode(raw, &header) != nil {
		// Not a mere warning when it cannot be saved: ReadyParts judges with it.
		header = searchHeader{Version: searchHeaderVersion, Objective: r.objective, Maximize: maximize, Started: time.Now()}
		b, err := gobEncode(header)
		if err == nil {
			err = sc.SaveCheckpoint(context.WithoutCancel(ctx), searchHeaderName, b)
		}
		if err != nil {
			return fmt.Errorf("trial %d: the search's header: %w", i, err)
		}
	}
	steps, err := s.steps(sc, maximize)
	if err != nil {
		return err
	}
	b := s.readBoard(ctx, cp)
	if _, done := b.finished[i]; done {
		sc.Log.Info().Int("trial", i).Msg("trial finished already")
		return nil
	}
	trial, ok := steps.Trial(i, b.finished)
	if !ok {
		sc.Log.Info().Int("trial", i).Msg("trial cannot start yet: it is drawn from trials that have not finished (the rounds before, or with tpe the trials up to parallel below it)")
		return nil
	}
	log := sc.Log.With().Int("trial", i).Logger()
	begin := time.Now()
	st := b.state(i)
	if st == nil {
		st = &trialState{Version: searchStateVersion}
		if !header.Started.IsZero() {
			st.Start = max(begin.Sub(header.Started).Seconds(), 0)
		}
	}
	p := st.Progress
	if r.cv != nil {
		return s.wholePart(ctx, sc, cp, steps, b, trial, p, st, "cross-validated", r.cvTrial)
	}
	if s.model == searchModelEnsemble {
		return s.wholePart(ctx, sc, cp, steps, b, trial, p, st, "ensemble", r.ensembleTrial)
	}
	var resume *train.Checkpoint
	if p.Pending {
		decided, cont := steps.Judge(i, &p, b.view)
		switch {
		case !decided:
			log.Info().Msg("trial still waits for the trials below it")
			return nil
		case !cont:
			last := p.History[len(p.History)-1].Epoch
			return s.finishTrial(ctx, cp, trial, p.History, search.Pruned, st.StopValue, st.StopMetrics, last, "", st.Seconds, st.Start)
		}
		var ck train.Checkpoint
		if err := ck.UnmarshalBinary(st.Checkpoint); err != nil {
			cp.setAside(trialStateName(i), err)
			p = search.TrialProgress{} // from the beginning: the decisions come out the same
		} else {
			resume = &ck
			log.Info().Int("epoch", ck.Epoch).Msg("trial continues from its paused state")
		}
	}
	c, err := s.trialConfig(sc.Config, trial.Params)
	if err != nil {
		return s.finishTrial(ctx, cp, trial, p.History, search.Failed, math.NaN(), nil, 0, err.Error(), st.Seconds, st.Start)
	}
	from := 0
	if resume != nil {
		from = resume.Epoch
	}
	log.Info().Int("from_epoch", from).Msg("trial trains")
	paused, prunedAt := false, 0
	var pauseCk []byte
	hook := train.OnEpochEnd(searchReportHookName, 0, func(e *train.EpochInfo) error {
		v, ok := e.Metrics[r.objective]
		if !ok {
			return fmt.Errorf("the trainer reports no %s", r.objective)
		}
		decided, cont, err := steps.Report(i, &p, e.Epoch+1, v, b.view)
		if err != nil {
			return err
		}
		hist := append([]search.Point(nil), p.History...)
		cp.saveNow(ctx, trialReportsName(i), func() ([]byte, error) {
			return gobEncode(trialReports{Version: searchReportsVersion, History: hist})
		})
		switch {
		case !decided:
			ck, err := e.Checkpoint()
			if err != nil {
				return err
			}
			if pauseCk, err = ck.MarshalBinary(); err != nil {
				return err
			}
			paused = true
			return train.ErrStop
		case !cont:
			prunedAt = e.Epoch + 1
			return train.ErrStop
		}
		return nil
	})
	_, res, value, err := r.fitFrom(ctx, c, trial, searchPartWorkers, 0, resume, nil, hook)
	seconds := st.Seconds + time.Since(begin).Seconds()
	switch {
	case err != nil && ctx.Err() != nil:
		return err
	case err != nil:
		return s.finishTrial(ctx, cp, trial, p.History, search.Failed, math.NaN(), nil, 0, err.Error(), seconds, st.Start)
	}
	k, _ := keptEpoch(res.cfg, res.Result)
	metrics := map[string]float64{"best_epoch": float64(k + 1)}
	if paused {
		next := &trialState{Version: searchStateVersion, Progress: p, Checkpoint: pauseCk, StopValue: value, StopMetrics: metrics, Seconds: seconds, Start: st.Start}
		cp.saveNow(ctx, trialStateName(i), func() ([]byte, error) { return gobEncode(next) })
		log.Info().Int("epoch", p.History[len(p.History)-1].Epoch).Msg("trial paused: its decision waits for the trials below it")
		return nil
	}
	status := search.Completed
	if prunedAt > 0 {
		status = search.Pruned
	}
	return s.finishTrial(ctx, cp, trial, p.History, status, value, metrics, prunedAt, "", seconds, st.Start)
}

// wholePart runs trial t to its end in one segment and saves its record as a local search
// does. It serves the trials that are never pruned, so nothing waits on them: an ensemble's
// trial (it reports once, after its members are combined) and a cross-validated trial (its
// folds train one after another). what names such a trial in the log and the errors; run
// trains it.
func (s *searchStage) wholePart(ctx context.Context, sc *pipeline.StageContext, cp *checkpoints, steps *search.Steps, b *searchBoard,
	t search.Trial, p search.TrialProgress, st *trialState, what string,
	run func(context.Context, *pipeline.StageConfig, search.Trial, search.Report) (search.Result, error)) error {
	begin := time.Now()
	c, err := s.trialConfig(sc.Config, t.Params)
	if err != nil {
		return s.finishTrial(ctx, cp, t, p.History, search.Failed, math.NaN(), nil, 0, err.Error(), st.Seconds, st.Start)
	}
	sc.Log.Info().Int("trial", t.Index).Msgf("%s trial trains", what)
	report := func(epoch int, v float64) (bool, error) {
		decided, cont, err := steps.Report(t.Index, &p, epoch, v, b.view)
		if err == nil && !decided {
			err = fmt.Errorf("a %s trial waits for a pruning decision: such trials are not pruned", what)
		}
		return cont, err
	}
	res, err := run(ctx, c, t, report)
	seconds := st.Seconds + time.Since(begin).Seconds()
	switch {
	case err != nil && ctx.Err() != nil:
		return err
	case err != nil:
		return s.finishTrial(ctx, cp, t, p.History, search.Failed, math.NaN(), nil, 0, err.Error(), seconds, st.Start)
	}
	return s.finishTrial(ctx, cp, t, p.History, search.Completed, res.Value, res.Metrics, 0, "", seconds, st.Start)
}

// finishTrial saves trial t's record as the local search saves it when the trial ends.
func (s *searchStage) finishTrial(ctx context.Context, cp *checkpoints, t search.Trial, history []search.Point, status search.Status, value float64,
	metrics map[string]float64, prunedAt int, errMsg string, seconds, start float64) error {
	rec := &trialRecord{Index: t.Index, Round: t.Round, Seed: t.Seed, Status: string(status), Value: value, Metrics: metrics, History: history,
		Err: errMsg, Seconds: seconds, Start: start}
	if status == search.Pruned {
		rec.PrunedAt = prunedAt
	}
	if n := len(history); n > 0 {
		rec.Epochs = history[n-1].Epoch
	}
	cp.saveNow(ctx, trialCheckpointName(t.Index), rec.encode)
	return nil
}
