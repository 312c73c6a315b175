package stages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
)

// materializeShared is materialize for a dense copy of t that fits the run's budget: on a
// worker whose activities share a pipeline.TableCache, when t was read back from the stage
// store, a dense copy with targets and no preprocessing is built once and shared by the
// activities that plan t the same way (StageContext.Shared): an ensemble's members, each
// trained apart, no longer build one copy each. est is the copy's size, which the caller has
// reserved in its own run's budget. What it returns shares the cached copy's arrays with the
// other runs: nothing writes into a dense copy's arrays (the trainers gather the rows of each
// batch into buffers of their own), and every slice header in it is the caller's, clipped to
// its length, so an append (the unlabeled tables' rows) copies instead of writing past it.
func materializeShared(ctx context.Context, sc *pipeline.StageContext, p *bundle.InputPlan, t *pipeline.Table, withTargets bool, pre func(arrow.RecordBatch) (arrow.RecordBatch, error), est int64) (*bundle.Tensors, error) {
	if pre != nil || !withTargets {
		return materialize(ctx, sc, p, t, withTargets, pre)
	}
	spec, err := denseSpec(p)
	if err != nil {
		return nil, err
	}
	v, shared, err := sc.Shared(ctx, t, spec, func() (any, int64, error) {
		data, err := materialize(ctx, sc, p, t, true, nil)
		return data, est, err
	})
	if err != nil {
		return nil, err
	}
	data := v.(*bundle.Tensors)
	if !shared {
		return data, nil
	}
	sc.Log.Debug().Str("table", t.Name()).Int64("dense_bytes", est).Msg("dense copy shared with the worker's other activities")
	return ownHeaders(data), nil
}

// denseSpec is what a dense copy with targets is made from besides its table's content:
// the input plan (columns, targets, their encodings and scaling).
func denseSpec(p *bundle.InputPlan) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("the input plan: %w", err)
	}
	sum := sha256.Sum256(b)
	return "dense+targets/" + hex.EncodeToString(sum[:]), nil
}

// ownHeaders returns a copy of d whose slice headers (not their arrays) are new and clipped
// to their lengths.
func ownHeaders(d *bundle.Tensors) *bundle.Tensors {
	out := *d
	out.Data = ownDataset(d.Data)
	out.RowIDs = clip(d.RowIDs)
	if d.Raw != nil {
		out.Raw = make([][]float32, len(d.Raw))
		for i, r := range d.Raw {
			out.Raw[i] = clip(r)
		}
	}
	return &out
}

func ownDataset(d train.Dataset) train.Dataset {
	out := d
	out.X = clip(d.X)
	out.Weights = clip(d.Weights)
	out.Index = clip(d.Index)
	if d.Cat != nil {
		out.Cat = make([][]int32, len(d.Cat))
		for i, c := range d.Cat {
			out.Cat[i] = clip(c)
		}
	}
	if d.Targets != nil {
		out.Targets = make([]train.Target, len(d.Targets))
		for i, t := range d.Targets {
			t.Labels, t.Values = clip(t.Labels), clip(t.Values)
			out.Targets[i] = t
		}
	}
	return out
}

// clip returns s with its capacity cut to its length (nil stays nil).
func clip[T any](s []T) []T {
	return s[:len(s):len(s)]
}
