package ensemble

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/metrics"
	"github.com/pipe-ml/pipe/nn/train"
)

// twoHeadData has a class head (sign of x0 + x1) and a regression head y = x0 − 2·x2 + noise.
func twoHeadData(n int, seed uint64) train.Dataset {
	rng := rand.New(rand.NewPCG(seed, 4))
	const d = 4
	ds := train.Dataset{NumInputs: d, X: make([]float32, n*d)}
	labels := make([]int32, n)
	values := make([]float32, n)
	for r := 0; r < n; r++ {
		x := ds.X[r*d : (r+1)*d]
		for j := range x {
			x[j] = float32(rng.NormFloat64())
		}
		if x[0]+x[1] > 0 {
			labels[r] = 1
		}
		values[r] = x[0] - 2*x[2] + float32(0.1*rng.NormFloat64())
	}
	ds.Targets = []train.Target{{Labels: labels}, {Values: values}}
	return ds
}

func TestTrainTwoHeads(t *testing.T) {
	data := twoHeadData(300, 1)
	trainSet, val := data.Subset(seq(0, 220)), data.Subset(seq(220, 300))
	member := Member{
		Spec: nn.Spec{NumInputs: 4, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 16, Activation: "relu"}},
			Heads: []nn.HeadSpec{{Name: "side", Kind: nn.HeadBinary}, {Name: "y", Kind: nn.HeadRegression}}},
		Train: train.Config{Epochs: 4 * testEpochs(), BatchSize: 16, Optimizer: optimLR(0.01)},
	}
	cfg := Config{Members: 3, Base: member, Subsample: 0.7, Workers: 2}
	ens, rep, err := Train(context.Background(), cfg, trainSet, val, 9, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ens.CombinerNames("y"); len(got) != 3 || got[0] != CombinerMean || got[1] != CombinerMedian || got[2] != CombinerWeighted {
		t.Errorf("regression head combiners %v, want [mean median weighted]", got)
	}
	if _, ok := rep.Members[0].Val["y/rmse"]; !ok {
		t.Errorf("member val metrics %v lack y/rmse", rep.Members[0].Val)
	}
	if !math.IsNaN(rep.Diversity[1]) || !(rep.Diversity[0] >= 0) {
		t.Errorf("diversity %v: want a value for the binary head and NaN for regression", rep.Diversity)
	}
	// Subsample 0.7 of 220 rows: 154 in, 66 out per member.
	for _, m := range rep.Members {
		if m.TrainRows != 154 || m.UniqueRows != 154 || m.OOBRows != 66 {
			t.Errorf("member %d rows %d/%d/%d, want 154/154/66", m.Index, m.TrainRows, m.UniqueRows, m.OOBRows)
		}
	}
	vb := batchOf(val)
	out, err := ens.PredictHeads(vb, map[string]string{"side": CombinerVote, "y": CombinerMedian})
	if err != nil {
		t.Fatal(err)
	}
	members, err := ens.MemberOutputs(vb)
	if err != nil {
		t.Fatal(err)
	}
	// Naive median of three: the middle value.
	for r := 0; r < vb.Rows; r++ {
		a, b, c := members[0].Heads[1][r], members[1].Heads[1][r], members[2].Heads[1][r]
		med := max(min(a, b), min(max(a, b), c))
		if out.Heads[1][r] != med {
			t.Fatalf("row %d: median %g, want %g of (%g, %g, %g)", r, out.Heads[1][r], med, a, b, c)
		}
	}
	yv := val.Targets[1].Values[220:300]
	var mean float64
	for _, v := range yv {
		mean += float64(v) / float64(len(yv))
	}
	baseline := make([]float32, len(yv))
	for i := range baseline {
		baseline[i] = float32(mean)
	}
	rmse, rmse0 := metrics.RMSE(yv, out.Heads[1]), metrics.RMSE(yv, baseline)
	acc := metrics.Accuracy(val.Targets[0].Labels[220:300], out.Heads[0], 2)
	t.Logf("val: vote accuracy %.3f, median RMSE %.3f (constant predictor %.3f); OOB %s %.3f, %s %.3f",
		acc, rmse, rmse0, rep.OOB.Heads[0].Metric, rep.OOB.Heads[0].Score, rep.OOB.Heads[1].Metric, rep.OOB.Heads[1].Score)
	if rmse > 0.5*rmse0 || acc < 0.85 {
		t.Errorf("the ensemble did not learn: RMSE %.3f vs %.3f for the mean, accuracy %.3f", rmse, rmse0, acc)
	}
	if rep.OOB.Heads[1].Metric != "rmse" || !(rep.OOB.Heads[1].Score < rmse0) {
		t.Errorf("OOB regression score %s %.3f, want an rmse below %.3f", rep.OOB.Heads[1].Metric, rep.OOB.Heads[1].Score, rmse0)
	}
	if _, err := ens.PredictHeads(vb, map[string]string{"y": CombinerVote}); err == nil {
		t.Error("vote was accepted for a regression head")
	}
	if _, err := ens.PredictHeads(vb, map[string]string{"nope": CombinerMean}); err == nil {
		t.Error("an unknown head was accepted")
	}
}

func TestNewEnsembleChecks(t *testing.T) {
	build := func(spec nn.Spec) *nn.Model {
		m, err := nn.Build(spec, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a := build(nn.Spec{NumInputs: 3, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
	b := build(nn.Spec{NumInputs: 3, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 4}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
	cases := []struct {
		name   string
		models []*nn.Model
		ok     bool
	}{
		{"same_heads_different_trunks", []*nn.Model{a, b}, true},
		{"other_inputs", []*nn.Model{a, build(nn.Spec{NumInputs: 4, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})}, false},
		{"other_classes", []*nn.Model{a, build(nn.Spec{NumInputs: 3, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 4}}})}, false},
		{"none", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.models, nil)
			if (err == nil) != tc.ok {
				t.Errorf("New error %v, want ok = %v", err, tc.ok)
			}
		})
	}
	ens, err := New([]*nn.Model{a, b}, []string{"lin", "mlp"})
	if err != nil {
		t.Fatal(err)
	}
	w3, _ := NewWeighted([]float64{0.2, 0.3, 0.5})
	if err := ens.SetCombiner("out", w3); err == nil {
		t.Error("a weighted combiner with 3 weights was accepted for 2 members")
	}
	w2, _ := NewWeighted([]float64{0.25, 0.75})
	if err := ens.SetCombiner("out", w2); err != nil {
		t.Fatal(err)
	}
	specs := ens.CombinerSpecs()["out"]
	if len(specs) != 3 || specs[2].Name != CombinerWeighted || specs[2].Weights[1] != 0.75 {
		t.Errorf("combiner specs %+v", specs)
	}
	// Weighted prediction equals 0.25·member 0 + 0.75·member 1.
	x := []float32{0.5, -1, 2, 1, 1, 1}
	got, err := ens.Predict(nn.Batch{Rows: 2, X: x}, CombinerWeighted)
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := a.Predict(nn.Batch{Rows: 2, X: x})
	pb, _ := b.Predict(nn.Batch{Rows: 2, X: x})
	for i, v := range got.Heads[0] {
		want := 0.25*float64(pa.Heads[0][i]) + 0.75*float64(pb.Heads[0][i])
		if math.Abs(float64(v)-want) > 1e-6 {
			t.Fatalf("weighted output %d = %g, want %g", i, v, want)
		}
	}
}

func TestTrainRejectsMismatchedSpecs(t *testing.T) {
	a := smallMember(4, 2, 1)
	b := smallMember(4, 3, 1) // three classes
	_, _, err := Train(context.Background(), Config{Specs: []Member{a, b}, OnMemberError: OnErrorDrop}, blobs(40, 4, 2, 1), train.Dataset{}, 1, Options{})
	if err == nil || !strings.Contains(err.Error(), "same inputs and heads") {
		t.Errorf("error %v, want a mismatch of heads (even under drop: it is a configuration error)", err)
	}
}
