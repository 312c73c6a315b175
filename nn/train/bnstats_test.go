package train

import (
	"context"
	"math"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// TestRecomputeBatchNorm checks that RecomputeBatchNorm sets a batch norm's running
// statistics to the average of the batches' means and unbiased variances of the rows it
// sees, in order, computed here from the data (the batch norm is the first layer, after a
// gaussian_noise layer that the recomputation must switch off), leaves out a last one-row
// batch, and changes no weight; and that Fit with RecomputeBN records the validation metric
// before and after, the after being the final model's.
func TestRecomputeBatchNorm(t *testing.T) {
	d := blobs(1, 41) // batches of 8: five of 8 and a last one-row batch, left out
	spec := nn.Spec{NumInputs: d.NumInputs, Layers: []nn.LayerSpec{{Type: nn.LayerGaussianNoise, Stddev: 1}, {Type: nn.LayerBatchNorm},
		{Type: nn.LayerDense, Units: 6, Activation: "tanh"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3, BatchNorm: true}}}
	m := buildModel(t, spec)
	weights := func() [][]float32 {
		var out [][]float32
		for _, p := range m.Params() {
			out = append(out, append([]float32(nil), p.Value...))
		}
		return out
	}
	w0 := weights()
	rows, err := RecomputeBatchNorm(m, d, 8)
	if err != nil {
		t.Fatal(err)
	}
	if rows != 40 {
		t.Fatalf("used %d rows, want 40", rows)
	}
	sameWeights(t, w0, weights())
	ni := d.NumInputs
	mean, vr := make([]float64, ni), make([]float64, ni)
	for b := 0; b < 5; b++ {
		for j := 0; j < ni; j++ {
			var s, ss float64
			for r := b * 8; r < (b+1)*8; r++ {
				s += float64(d.X[d.row(r)*ni+j])
			}
			mu := s / 8
			for r := b * 8; r < (b+1)*8; r++ {
				x := float64(d.X[d.row(r)*ni+j]) - mu
				ss += x * x
			}
			mean[j] += mu / 5
			vr[j] += ss / 7 / 5
		}
	}
	rm, rv := m.Param("batch_norm_1/running_mean").Value, m.Param("batch_norm_1/running_var").Value
	for j := 0; j < ni; j++ {
		if math.Abs(float64(rm[j])-mean[j]) > 1e-5*max(1, math.Abs(mean[j])) || math.Abs(float64(rv[j])-vr[j]) > 1e-5*max(1, vr[j]) {
			t.Errorf("input %d: running mean %g var %g, want %g and %g", j, rm[j], rv[j], mean[j], vr[j])
		}
	}
	if hm := m.Param("head_out/bn/running_mean").Value; hm[0] == 0 {
		t.Error("the head's batch norm was not recomputed")
	}
	if _, err := RecomputeBatchNorm(m, Dataset{NumInputs: ni + 1, X: make([]float32, 3*(ni+1))}, 8); err == nil {
		t.Error("data of the wrong width was accepted")
	}

	cfg := Config{Epochs: 3, BatchSize: 8, Seed: 2, Optimizer: optim.Config{LR: 0.01}, EarlyStopping: EarlyStopping{Disabled: true}, RecomputeBN: true}
	train, val := blobs(2, 120), blobs(3, 60)
	fm := buildModel(t, spec)
	res, err := Fit(context.Background(), fm, train, val, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.BatchNormRows != 120 {
		t.Fatalf("BatchNormRows %d, want 120", res.BatchNormRows)
	}
	vb, vt := materialize(val)
	out, l, err := fm.PredictLoss(vb, vt)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{"val_loss": l.Total}
	headMetrics(got, "val_", fm.Heads(), out, vt)
	if res.ValAfterBN != got[res.Metric] || res.BNValMetrics["val_loss"] != l.Total {
		t.Errorf("after: %s %g (val_loss %g), the final model's %g (%g)", res.Metric, res.ValAfterBN, res.BNValMetrics["val_loss"], got[res.Metric], l.Total)
	}
	if last := res.History.Epochs[len(res.History.Epochs)-1][res.Metric]; res.ValBeforeBN != last {
		t.Errorf("before: %s %g, the last epoch's %g", res.Metric, res.ValBeforeBN, last)
	}
	t.Logf("%s: %.4f before, %.4f after", res.Metric, res.ValBeforeBN, res.ValAfterBN)
}
