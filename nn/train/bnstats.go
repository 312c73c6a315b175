package train

import (
	"fmt"

	"github.com/pipe-ml/pipe/nn"
)

// RecomputeBatchNorm sets the running statistics of every batch norm of m (the trunk's and
// the heads') to their average over one pass of d's rows, in order, batch rows at a time:
// training-mode passes with no noise or dropout, the k-th batch weighted 1/k (a cumulative
// average of the batches' means and unbiased variances, as PyTorch's
// torch.optim.swa_utils.update_bn). During training the running statistics are a moving
// average of the last few dozen batches under weights that kept changing; both the VAT and
// the ladder authors' code recompute them over the training data before testing. A last
// batch of one row is left out (it has no variance). It returns the rows used; a model
// without batch norm is left alone (0 rows). The weights do not change.
func RecomputeBatchNorm(m *nn.Model, d Dataset, batch int) (int, error) {
	if len(m.Buffers()) == 0 {
		return 0, nil
	}
	n := d.Len()
	if batch < 2 {
		return 0, fmt.Errorf("train: recompute batch norm: batch %d < 2", batch)
	}
	if n < 2 {
		return 0, fmt.Errorf("train: recompute batch norm: %d rows, want at least 2", n)
	}
	spec := m.Spec()
	if d.NumInputs != spec.NumInputs || len(d.Cat) != len(spec.Embeddings) {
		return 0, fmt.Errorf("train: recompute batch norm: the data has %d numeric inputs and %d categorical columns, the model expects %d and %d", d.NumInputs, len(d.Cat), spec.NumInputs, len(spec.Embeddings))
	}
	for _, r := range d.Index {
		if r < 0 || r >= d.baseRows() {
			return 0, fmt.Errorf("train: recompute batch norm: index row %d out of range [0, %d)", r, d.baseRows())
		}
	}
	defer m.SetTrainPass(nn.TrainPass{})
	buf := newBatchBuffers(d, batch)
	pos := make([]int, 0, batch)
	used, k := 0, 0
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		if hi-lo < 2 {
			break
		}
		pos = pos[:0]
		for i := lo; i < hi; i++ {
			pos = append(pos, i)
		}
		b, _ := buf.gather(d, pos)
		k++
		m.SetTrainPass(nn.TrainPass{NoNoise: true, StatsMomentum: 1 / float64(k)})
		if _, err := m.LossStep(b, true, nn.GradNone, noLoss); err != nil {
			return used, fmt.Errorf("train: recompute batch norm: %w", err)
		}
		used += hi - lo
	}
	return used, nil
}
