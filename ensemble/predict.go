package ensemble

import (
	"context"
	"fmt"
	"math"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// predictChunk is the number of rows gathered per Predict call when predicting a dataset.
const predictChunk = 1024

func nan() float64 { return math.NaN() }

// predictRows returns m's outputs on the rows of d at positions pos (nil: every row), gathering
// predictChunk rows at a time into a reused batch. It checks ctx between chunks.
func predictRows(ctx context.Context, m *nn.Model, d train.Dataset, pos []int) (nn.Outputs, error) {
	n := d.Len()
	if pos != nil {
		n = len(pos)
	}
	heads := m.Heads()
	out := nn.Outputs{Heads: make([][]float32, len(heads)), Width: make([]int, len(heads))}
	for h, hs := range heads {
		out.Width[h] = headWidth(hs)
		out.Heads[h] = make([]float32, n*out.Width[h])
	}
	if n == 0 {
		return out, nil
	}
	ni := d.NumInputs
	chunk := min(n, predictChunk)
	x := make([]float32, chunk*ni)
	cat := make([][]int32, len(d.Cat))
	for c := range cat {
		cat[c] = make([]int32, chunk)
	}
	for lo := 0; lo < n; lo += chunk {
		if err := ctx.Err(); err != nil {
			return nn.Outputs{}, err
		}
		hi := min(lo+chunk, n)
		rows := hi - lo
		for i := 0; i < rows; i++ {
			p := lo + i
			if pos != nil {
				p = pos[p]
			}
			r := baseRow(d, p)
			copy(x[i*ni:(i+1)*ni], d.X[r*ni:(r+1)*ni])
			for c, col := range d.Cat {
				cat[c][i] = col[r]
			}
		}
		b := nn.Batch{Rows: rows, X: x[:rows*ni], Cat: make([][]int32, len(cat))}
		for c := range cat {
			b.Cat[c] = cat[c][:rows]
		}
		o, err := m.Predict(b)
		if err != nil {
			return nn.Outputs{}, fmt.Errorf("predict rows %d..%d: %w", lo, hi, err)
		}
		for h := range heads {
			w := out.Width[h]
			copy(out.Heads[h][lo*w:hi*w], o.Heads[h])
		}
	}
	return out, nil
}

// headTargets returns head h's targets for the rows of d at positions pos (nil: every row):
// labels for a classification head, values (rows×outputs) for a regression head.
func headTargets(d train.Dataset, h int, hs nn.HeadSpec, pos []int) ([]int32, []float32) {
	n := d.Len()
	if pos != nil {
		n = len(pos)
	}
	t := d.Targets[h]
	row := func(i int) int {
		if pos != nil {
			return baseRow(d, pos[i])
		}
		return baseRow(d, i)
	}
	if isClassification(hs) {
		labels := make([]int32, n)
		for i := range labels {
			labels[i] = t.Labels[row(i)]
		}
		return labels, nil
	}
	k := headWidth(hs)
	vals := make([]float32, n*k)
	for i := 0; i < n; i++ {
		r := row(i)
		copy(vals[i*k:(i+1)*k], t.Values[r*k:(r+1)*k])
	}
	return nil, vals
}
