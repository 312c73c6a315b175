package stages

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/pretrain"
)

// Checkpoints of the training stages (train, ensemble, pretrain, pseudo_label).
//
// A training stage saves its state in the stage store (sc.SaveCheckpoint, under the stage's
// cache key) at the end of every epoch, and a run of the same stage (same key: pipe run
// --resume) continues from the last one it finds, bit-identically. The trainer checkpoints at
// epoch ends only (train.OnCheckpoint): the epoch in progress when a run is killed is lost
// and trained again.
// Epochs shorter than checkpointEvery are not all saved: a checkpoint is stored when at least
// checkpointEvery (or train.CheckpointGap times what storing the last one took, when that is
// longer) has passed since the last one was, and the newest one is kept in memory meanwhile
// and stored when the training stops early (canceled or failed). For a model of more than
// 100,000 param values, taking a checkpoint (the copy of the weights and of the optimizer's
// state) is itself skipped at an epoch end that comes sooner than train.CheckpointGap times
// what the last one took (train.OnCheckpoint): with epochs of one step on a large model,
// copying its state every epoch would cost as much as the training. So at most about
// 1/train.CheckpointGap of the training time goes to checkpoints, a kill loses at most the
// storing interval plus the epoch in progress, and a cancellation nothing for a small model
// and at most the epochs of train.CheckpointGap times a checkpoint's cost for a large one.
// Which epoch a resumed run starts from changes nothing in its result. Without a stage store
// nothing is stored.
//
// A checkpoint is never a reason for a stage to fail: one that cannot be saved or read is a
// logged warning, and one that cannot be decoded or does not fit (train.ErrCheckpoint) is set
// aside with a warning and the training starts from the beginning.
const checkpointEvery = 5 * time.Second

// Names of the checkpoints in a stage's checkpoint space.
const (
	trainCheckpointName    = "train.ckpt"
	pretrainCheckpointName = "pretrain.ckpt"
	pseudoStateName        = "pseudo_label.state"
	pseudoRoundName        = "pseudo_label_round.ckpt"
)

// checkpoints saves and reads one stage's checkpoints. It is safe for concurrent use (the
// members of an ensemble save theirs at the same time).
type checkpoints struct {
	sc    *pipeline.StageContext
	every time.Duration

	mu        sync.Mutex
	last      map[string]time.Time              // when each was last stored
	storeCost map[string]time.Duration          // what storing it took the last time
	pending   map[string]func() ([]byte, error) // newer than the stored one, not stored yet
}

func newCheckpoints(sc *pipeline.StageContext) *checkpoints {
	return &checkpoints{sc: sc, every: checkpointEvery, last: map[string]time.Time{}, storeCost: map[string]time.Duration{},
		pending: map[string]func() ([]byte, error){}}
}

// load returns the checkpoint called name, or nil when there is none (or no stage store) or
// it cannot be read (a warning).
func (c *checkpoints) load(ctx context.Context, name string) []byte {
	b, err := c.sc.LoadCheckpoint(ctx, name)
	switch {
	case err == nil:
		return b
	case errors.Is(err, pipeline.ErrNotFound):
		return nil
	default:
		c.sc.Log.Warn().Err(err).Str("checkpoint", name).Msg("the checkpoint cannot be read: training starts from the beginning")
		return nil
	}
}

// setAside warns that the checkpoint called name is not used.
func (c *checkpoints) setAside(name string, err error) {
	c.sc.Log.Warn().Err(err).Str("checkpoint", name).Msg("the checkpoint of an earlier run is set aside (damaged, or of another model or config): training starts from the beginning")
}

// continuing says, before the training it resumes starts, that it continues from the
// checkpoint of epoch that an interrupted run left (a long stage says so at once, not only in
// its notes when it ends).
func (c *checkpoints) continuing(epoch int) {
	c.sc.Log.Info().Int("epoch", epoch).Msgf("continuing from the checkpoint of epoch %d, which an interrupted run left", epoch)
}

// save stores the checkpoint called name, encoded by encode, when the last one was stored at
// least c.every ago; otherwise it keeps it for the next save or flush.
func (c *checkpoints) save(ctx context.Context, name string, encode func() ([]byte, error)) {
	c.mu.Lock()
	if !c.storeDueLocked(name, time.Now()) {
		c.pending[name] = encode
		c.mu.Unlock()
		return
	}
	delete(c.pending, name)
	c.last[name] = time.Now()
	c.mu.Unlock()
	c.put(ctx, name, encode)
}

// storeDueLocked reports whether the checkpoint called name is stored at now: once c.every,
// or train.CheckpointGap times what storing the last one took when that is longer, has passed
// since it was last stored. c.mu is held.
func (c *checkpoints) storeDueLocked(name string, now time.Time) bool {
	return now.Sub(c.last[name]) >= max(c.every, train.CheckpointGap*c.storeCost[name])
}

// saveNow stores the checkpoint called name at once.
func (c *checkpoints) saveNow(ctx context.Context, name string, encode func() ([]byte, error)) {
	c.mu.Lock()
	delete(c.pending, name)
	c.last[name] = time.Now()
	c.mu.Unlock()
	c.put(ctx, name, encode)
}

// forget drops the kept checkpoint called name (it is superseded).
func (c *checkpoints) forget(name string) {
	c.mu.Lock()
	delete(c.pending, name)
	c.mu.Unlock()
}

// flush stores every kept checkpoint: the training stopped before their turn came.
func (c *checkpoints) flush(ctx context.Context) {
	c.mu.Lock()
	pending := c.pending
	c.pending = map[string]func() ([]byte, error){}
	c.mu.Unlock()
	for name, encode := range pending {
		c.put(ctx, name, encode)
	}
}

// put encodes and stores a checkpoint; a failure is a warning. The store call does not watch
// ctx's cancellation: a checkpoint is most wanted when the run is being canceled.
func (c *checkpoints) put(ctx context.Context, name string, encode func() ([]byte, error)) {
	start := time.Now()
	b, err := encode()
	if err == nil {
		err = c.sc.SaveCheckpoint(context.WithoutCancel(ctx), name, b)
	}
	c.mu.Lock()
	c.storeCost[name] = time.Since(start)
	c.mu.Unlock()
	if err != nil {
		c.sc.Log.Warn().Err(err).Str("checkpoint", name).Msg("checkpoint not saved: an interrupted run would train this part again")
	}
}

// epochHook is the train hook that saves the epochs' checkpoints under name
// (train.OnCheckpoint: every epoch's, except where taking them would cost more than
// 1/train.CheckpointGap of the training). extra, when set, encodes the checkpoint with what
// the stage keeps beside it.
func (c *checkpoints) epochHook(ctx context.Context, name string, extra func(*train.Checkpoint) func() ([]byte, error)) train.Hook {
	return train.OnCheckpoint("stage_checkpoint", func(ck *train.Checkpoint, err error) error {
		if err != nil {
			c.sc.Log.Warn().Err(err).Msg("checkpoint not taken")
			return nil
		}
		encode := ck.MarshalBinary
		if extra != nil {
			encode = extra(ck)
		}
		c.save(ctx, name, encode)
		return nil
	})
}

// decodeCheckpoint decodes a trainer checkpoint read by load (nil: none); a damaged one is set
// aside.
func (c *checkpoints) decodeCheckpoint(name string, b []byte) *train.Checkpoint {
	if b == nil {
		return nil
	}
	var ck train.Checkpoint
	if err := ck.UnmarshalBinary(b); err != nil {
		c.setAside(name, err)
		return nil
	}
	return &ck
}

// trainStageVersion is the encoding version of trainStageCheckpoint.
const trainStageVersion = 1

// trainStageCheckpoint is a train stage's train.ckpt: the trainer's checkpoint and the
// monitoring samples the stage had collected by then (monitor.csv of a resumed run is whole).
type trainStageCheckpoint struct {
	Version int
	Train   *train.Checkpoint
	Monitor monitorState
}

func (t *trainStageCheckpoint) encode() ([]byte, error) {
	var buf bytes.Buffer
	t.Version = trainStageVersion
	if err := gob.NewEncoder(&buf).Encode(t); err != nil {
		return nil, fmt.Errorf("encode the train stage's checkpoint: %w", err)
	}
	return buf.Bytes(), nil
}

func (t *trainStageCheckpoint) decode(b []byte) error {
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(t); err != nil {
		return fmt.Errorf("decode the train stage's checkpoint: %w", err)
	}
	if t.Version != trainStageVersion || t.Train == nil {
		return fmt.Errorf("train stage checkpoint version %d, this build reads version %d", t.Version, trainStageVersion)
	}
	return nil
}

// monitorState is what a monitorLog has collected.
type monitorState struct {
	Rows     [][]string
	Warned   map[string]bool
	Warnings []string
	PeakLR   float64 // 0 in a checkpoint written before it was kept
}

// state returns what l has collected so far (rows are only appended, so the slice is not
// copied).
func (l *monitorLog) state() monitorState {
	return monitorState{Rows: l.rows[:len(l.rows):len(l.rows)], Warned: maps.Clone(l.warned), Warnings: slices.Clone(l.warnings), PeakLR: l.peakLR}
}

// restore continues l from s (nil fields: empty).
func (l *monitorLog) restore(s monitorState) {
	l.rows, l.warned, l.warnings, l.peakLR = slices.Clone(s.Rows), maps.Clone(s.Warned), slices.Clone(s.Warnings), s.PeakLR
	if l.warned == nil {
		l.warned = map[string]bool{}
	}
	if len(l.warnings) > 0 {
		l.sc.SetInfo("monitor_warnings", slices.Clone(l.warnings))
	}
}

// runWithCheckpoints runs a training that calls train.Fit with tc (pretraining): it adds the
// hook that saves every epoch's checkpoint as name, and sets tc.Resume to the one an
// interrupted run of the stage left, if any; when that one does not fit, run is called again
// from the start.
func runWithCheckpoints(ctx context.Context, sc *pipeline.StageContext, name string, tc train.Config, run func(train.Config) error) error {
	cp := newCheckpoints(sc)
	ck := cp.decodeCheckpoint(name, cp.load(ctx, name))
	tc.Hooks = append(slices.Clone(tc.Hooks), cp.epochHook(ctx, name, nil))
	tc.Resume = ck
	if ck != nil {
		cp.continuing(ck.Epoch)
	}
	err := run(tc)
	if ck != nil {
		if errors.Is(err, train.ErrCheckpoint) {
			cp.setAside(name, err)
			tc.Resume = nil
			err = run(tc)
		} else {
			sc.Note("resumed from the checkpoint of epoch %d", ck.Epoch)
			sc.SetInfo("resumed_from_epoch", ck.Epoch)
		}
	}
	if err != nil {
		cp.flush(ctx)
	}
	return err
}

// pseudoRoundVersion is the encoding version of pseudoRoundCheckpoint.
const pseudoRoundVersion = 1

// pseudoRoundCheckpoint is a pseudo_label stage's checkpoint of the round in progress: the
// round and its trainer's last epoch checkpoint.
type pseudoRoundCheckpoint struct {
	Version int
	Round   int
	Train   *train.Checkpoint
}

func (p *pseudoRoundCheckpoint) encode() ([]byte, error) {
	var buf bytes.Buffer
	p.Version = pseudoRoundVersion
	if err := gob.NewEncoder(&buf).Encode(p); err != nil {
		return nil, fmt.Errorf("encode the self-training round's checkpoint: %w", err)
	}
	return buf.Bytes(), nil
}

func (p *pseudoRoundCheckpoint) decode(b []byte) error {
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(p); err != nil {
		return fmt.Errorf("decode the self-training round's checkpoint: %w", err)
	}
	if p.Version != pseudoRoundVersion || p.Train == nil {
		return fmt.Errorf("self-training round checkpoint version %d, this build reads version %d", p.Version, pseudoRoundVersion)
	}
	return nil
}

// selfTrainCheckpoints returns the SelfTrainRun of a pseudo_label stage: the state after every
// round is saved at once, the epoch checkpoints of the round in progress as the others (see
// checkpoints), and what an interrupted run of the stage left is given back. progress reports
// a finished round.
func selfTrainCheckpoints(ctx context.Context, cp *checkpoints, progress func(round int)) pretrain.SelfTrainRun {
	run := pretrain.SelfTrainRun{
		RoundEnd: func(st *pretrain.SelfTrainState) error {
			cp.forget(pseudoRoundName) // of the round just finished: superseded
			cp.saveNow(ctx, pseudoStateName, st.MarshalBinary)
			progress(st.Round)
			return nil
		},
		Checkpoint: func(round int, c *train.Checkpoint) error {
			cp.save(ctx, pseudoRoundName, (&pseudoRoundCheckpoint{Round: round, Train: c}).encode)
			return nil
		},
	}
	if b := cp.load(ctx, pseudoStateName); b != nil {
		var st pretrain.SelfTrainState
		if err := st.UnmarshalBinary(b); err != nil {
			cp.setAside(pseudoStateName, err)
			return run // the round checkpoint belongs to that state
		}
		run.State = &st
	}
	if b := cp.load(ctx, pseudoRoundName); b != nil {
		var rc pseudoRoundCheckpoint
		if err := rc.decode(b); err != nil {
			cp.setAside(pseudoRoundName, err)
		} else {
			run.Epoch, run.EpochRound = rc.Train, rc.Round
		}
	}
	return run
}
