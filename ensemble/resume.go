package ensemble

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// finishedVersion is the encoding version of FinishedMember.MarshalBinary. Version 1 records
// (without predictions) are still read: their members' predictions are computed again.
const finishedVersion = 2

// FinishedMember is the record of a member that finished training (Options.Finished): what
// a later Train needs to take the member as it is instead of training it again
// (Options.Restore).
type FinishedMember struct {
	// Version is the encoding version (set by MarshalBinary).
	Version int
	// Spec is the member's model spec (its recipe after Vary); a record whose spec differs
	// from the member's recipe is not used.
	Spec nn.Spec
	// Weights are the member's final params and buffers (train.Snapshot's layout).
	Weights []train.Tensor
	// The member's train.Result: epochs and steps run, the early-stopping metric, its best
	// epoch and value, whether it stopped early or carved its validation rows, its
	// per-epoch history and its base learning rate.
	Epochs, Steps, BestEpoch int
	Metric                   string
	BestMetric               float64
	StoppedEarly             bool
	CarvedValidation         bool
	History                  train.History
	BaseLR                   float64
	// ValOut and OOBOut are the member's predictions on the validation rows (ValRows of them)
	// and on its out-of-bag rows (OOBRows), so that a Train that takes the member from its
	// record need not compute them again (an engine that trains members apart then combines
	// them without a forward pass over the data). Empty in a version 1 record.
	ValOut, OOBOut   nn.Outputs
	ValRows, OOBRows int
	HasOutputs       bool
}

// MarshalBinary encodes the record (gob; floats bit-exact).
func (f *FinishedMember) MarshalBinary() ([]byte, error) {
	type plain FinishedMember // without the methods: gob would call MarshalBinary again
	c := *f
	c.Version = finishedVersion
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode((*plain)(&c)); err != nil {
		return nil, fmt.Errorf("ensemble: encode finished member: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary decodes a record written by MarshalBinary.
func (f *FinishedMember) UnmarshalBinary(b []byte) error {
	type plain FinishedMember
	var tmp plain
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&tmp); err != nil {
		return fmt.Errorf("ensemble: decode finished member: %w", err)
	}
	if tmp.Version != finishedVersion && tmp.Version != 1 {
		return fmt.Errorf("ensemble: finished member record version %d, this build reads version %d", tmp.Version, finishedVersion)
	}
	*f = FinishedMember(tmp)
	return nil
}

// finishedRecord is the record of a member that has just finished training, with its
// predictions.
func finishedRecord(m *nn.Model, res train.Result, j *memberJob, valRows int) *FinishedMember {
	return &FinishedMember{Version: finishedVersion, Spec: m.Spec(), Weights: train.Snapshot(m),
		Epochs: res.Epochs, Steps: res.Steps, BestEpoch: res.BestEpoch, Metric: res.Metric, BestMetric: res.BestMetric,
		StoppedEarly: res.StoppedEarly, CarvedValidation: res.CarvedValidation, History: res.History, BaseLR: res.BaseLR,
		ValOut: j.valOut, OOBOut: j.oobOut, ValRows: valRows, OOBRows: len(j.oobPos), HasOutputs: true}
}

// outputsFit reports whether the record's predictions are of these rows.
func (f *FinishedMember) outputsFit(valRows, oobRows int) bool {
	return f.HasOutputs && f.ValRows == valRows && f.OOBRows == oobRows
}

// result is the train.Result the record summarises.
func (f *FinishedMember) result() train.Result {
	return train.Result{History: f.History, Epochs: f.Epochs, Steps: f.Steps, Metric: f.Metric, BestEpoch: f.BestEpoch,
		BestMetric: f.BestMetric, StoppedEarly: f.StoppedEarly, CarvedValidation: f.CarvedValidation, BaseLR: f.BaseLR}
}

// restoreFinished sets the member's weights from its record, checking first that the record
// is of this member's model (on error the model is unchanged).
func restoreFinished(m *nn.Model, f *FinishedMember) error {
	if !train.SameSpec(f.Spec, m.Spec()) {
		return errors.New("it is of a model of another spec")
	}
	return train.RestoreWeights(m, f.Weights)
}

// fitMember trains member j: from scratch, or from ck (falling back to scratch, with a
// warning, when ck does not fit).
func fitMember(ctx context.Context, j *memberJob, set, val train.Dataset, tc train.Config, ck *train.Checkpoint, hooks []train.Hook) (train.Result, error) {
	if ck == nil {
		return train.Fit(ctx, j.model, set, val, tc, hooks...)
	}
	tc.Resume = ck
	res, err := train.Fit(ctx, j.model, set, val, tc, hooks...)
	if err == nil || !errors.Is(err, train.ErrCheckpoint) {
		j.report.ResumedFrom = ck.Epoch
		return res, err
	}
	// The model is as it was before this Fit: train it from the start.
	j.warn("member %d (%s): its checkpoint is set aside and it trains from the start: %v", j.index, j.recipe.Name, err)
	tc.Resume = nil
	return train.Fit(ctx, j.model, set, val, tc, hooks...)
}
