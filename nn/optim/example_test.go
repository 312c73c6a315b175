package optim_test

import (
	"fmt"

	"github.com/pipe-ml/pipe/nn/optim"
)

// ExampleNew minimises f(w) = (w-3)² with Adam and a cosine schedule, clipping the gradient.
func ExampleNew() {
	cfg := optim.Config{Name: "adam", LR: 0.1}
	opt, err := optim.New(cfg)
	if err != nil {
		panic(err)
	}
	sched, err := optim.NewSchedule(optim.ScheduleConfig{Name: "cosine", WarmupSteps: 5})
	if err != nil {
		panic(err)
	}
	w := &optim.Param{Name: "w", Shape: []int{1}, Value: []float32{0}, Grad: []float32{0}}
	params := []*optim.Param{w}
	const epochs, stepsPerEpoch = 20, 10
	for step := range epochs * stepsPerEpoch {
		w.Grad[0] = 2 * (w.Value[0] - 3)
		optim.ClipGlobalNorm(params, 1)
		lr := sched.LR(cfg.EffectiveLR(), optim.Progress{
			Step: step, Epoch: step / stepsPerEpoch, StepsPerEpoch: stepsPerEpoch, Epochs: epochs,
		})
		opt.Step(params, lr)
	}
	fmt.Printf("%s: w = %.3f\n", opt.Name(), w.Value[0])
	// Output:
	// adam: w = 3.000
}
