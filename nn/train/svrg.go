package train

import (
	"context"
	"fmt"

	"github.com/pipe-ml/pipe/nn"
)

// svrgSnapshot takes SVRG's snapshot at the start of an epoch: w~ = w and mu~ = the gradient of
// the training loss over every training row, computed in batches of bs rows in dataset order
// (no shuffling, augmentation or target noise), so that it does not depend on the number of
// workers. Dropout and noise layers draw from the model's noise stream as in a training step.
func (r *run) svrgSnapshot(ctx context.Context, bs int) error {
	n := r.train.Len()
	pos := make([]int, 0, bs)
	err := r.svrg.Snapshot(r.m.Params(), func(add func(rows int)) error {
		for start := 0; start < n; start += bs {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("train: stopped in the SVRG snapshot of epoch %d: %w", r.epoch, err)
			}
			pos = pos[:0]
			for i := start; i < min(start+bs, n); i++ {
				pos = append(pos, i)
			}
			b, t := r.buf.gather(r.train, pos)
			if _, err := r.m.TrainStep(b, t); err != nil {
				return fmt.Errorf("train: SVRG snapshot of epoch %d, rows %d-%d: %w", r.epoch, start, start+len(pos)-1, err)
			}
			add(b.Rows)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.cfg.Logger.Debug().Int("epoch", r.epoch).Int64("grad_evals", r.svrg.GradEvals()).Msg("svrg: snapshot and full gradient")
	return nil
}

// svrgCorrect turns the batch gradient just computed at w into g(w) - g(w~) + mu~. noise is
// the model's noise stream as it was before that step: the pass at w~ replays it, so that
// dropout drops the same units at w and at w~ (the correction is then of the same function),
// and the stream then continues from where the step at w left it.
func (r *run) svrgCorrect(b nn.Batch, t nn.Targets, noise []byte) error {
	src := r.m.NoiseSource()
	after, err := src.MarshalBinary()
	if err != nil {
		return err
	}
	err = r.svrg.VarianceReduce(r.m.Params(), b.Rows, func() error {
		if err := src.UnmarshalBinary(noise); err != nil {
			return err
		}
		_, err := r.m.TrainStep(b, t)
		return err
	})
	if uerr := src.UnmarshalBinary(after); uerr != nil && err == nil {
		err = uerr
	}
	if err != nil {
		return fmt.Errorf("train: epoch %d, step %d: SVRG gradient at the snapshot: %w", r.epoch, r.step, err)
	}
	return nil
}
