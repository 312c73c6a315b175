package ensemble_test

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/pipe-ml/pipe/ensemble"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/metrics"
	"github.com/pipe-ml/pipe/nn/optim"
	"github.com/pipe-ml/pipe/nn/train"
)

// Example trains a bootstrap bag of four small MLPs on two Gaussian blobs, then combines the
// members' predictions on new rows, through the ensemble and by hand with a Combiner.
func Example() {
	rng := rand.New(rand.NewPCG(1, 2))
	makeData := func(n int) train.Dataset {
		d := train.Dataset{NumInputs: 2, X: make([]float32, 2*n)}
		labels := make([]int32, n)
		for i := range labels {
			labels[i] = int32(i % 2)
			centre := float64(4*labels[i] - 2) // −2 or +2
			d.X[2*i] = float32(centre + rng.NormFloat64())
			d.X[2*i+1] = float32(centre + rng.NormFloat64())
		}
		d.Targets = []train.Target{{Labels: labels}}
		return d
	}
	trainSet, val, test := makeData(200), makeData(100), makeData(100)

	cfg := ensemble.Config{
		Members: 4,
		Base: ensemble.Member{
			Spec: nn.Spec{NumInputs: 2,
				Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 8, Activation: "relu"}},
				Heads:  []nn.HeadSpec{{Name: "class", Kind: nn.HeadSoftmax, Classes: 2}}},
			Train: train.Config{Epochs: 20, BatchSize: 16, Optimizer: optim.Config{Name: optim.NameAdam, LR: 0.01}},
		},
		Bootstrap: true,
		Workers:   2,
	}
	ens, rep, err := ensemble.Train(context.Background(), cfg, trainSet, val, 42, ensemble.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("members:", rep.Kept, "combiners:", ens.CombinerNames("class"))
	fmt.Printf("OOB accuracy above 0.9: %v\n", rep.OOB.Heads[0].Score > 0.9)

	batch := nn.Batch{Rows: test.Len(), X: test.X}
	out, err := ens.Predict(batch, ensemble.CombinerMean)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("test accuracy above 0.9: %v\n", metrics.Accuracy(test.Targets[0].Labels, out.Heads[0], 2) > 0.9)

	// The same through a Combiner: one rows×k slice per member.
	members, _ := ens.MemberOutputs(batch)
	per := make([][]float32, len(members))
	for m, o := range members {
		per[m] = o.Heads[0]
	}
	vote := ensemble.Vote{}.Combine(per, batch.Rows, 2)
	fmt.Printf("vote accuracy above 0.9: %v\n", metrics.Accuracy(test.Targets[0].Labels, vote, 2) > 0.9)
	// Output:
	// members: 4 combiners: [mean vote weighted]
	// OOB accuracy above 0.9: true
	// test accuracy above 0.9: true
	// vote accuracy above 0.9: true
}

// ExampleVote shows hard voting with its tie-break: two members vote for classes 0 and 1; the
// tie goes to the class with the larger summed probability (0.4 + 0.8 > 0.6 + 0.1).
func ExampleVote() {
	outs := [][]float32{
		{0.6, 0.4, 0.0}, // member 0 votes class 0
		{0.1, 0.8, 0.1}, // member 1 votes class 1
	}
	fmt.Println(ensemble.Vote{}.Combine(outs, 1, 3))
	fmt.Printf("%.2f\n", ensemble.Mean{}.Combine(outs, 1, 3))
	// Output:
	// [0 1 0]
	// [0.35 0.60 0.05]
}

// ExampleFitWeightsMSE fits convex weights on a validation set where the target is exactly
// 0.75·member 0 + 0.25·member 1, and stores the combiner in its serialisable form.
func ExampleFitWeightsMSE() {
	m0 := []float32{1, 2, 3, 4}
	m1 := []float32{4, 0, 1, -2}
	y := make([]float32, len(m0))
	for i := range y {
		y[i] = 0.75*m0[i] + 0.25*m1[i]
	}
	w, fit, err := ensemble.FitWeightsMSE([][]float32{m0, m1}, 4, 1, y, ensemble.WeightFitOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	spec := w.Spec()
	fmt.Printf("%s %.3f converged=%v\n", spec.Name, spec.Weights, fit.Converged)
	// Output:
	// weighted [0.750 0.250] converged=true
}
