package search_test

import (
	"context"
	"fmt"
	"math"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/pipe-ml/pipe/search"
)

// Example searches a toy objective in three zoom rounds with ASHA pruning. The "training"
// is a loss curve that falls with the epochs towards a floor set by the parameters: lowest
// at lr = 0.003 with 64 units and adam, or with sgd at a momentum of 0.9.
func Example() {
	var raw map[string]any
	err := toml.Unmarshal([]byte(`
"optimizer.lr" = { log_uniform = [1e-4, 1e-1] }
"optimizer.name" = { choice = ["adam", "sgd"] }
"optimizer.momentum" = { uniform = [0.5, 0.99], when = { "optimizer.name" = "sgd" } }
units = { log_int = [8, 512] }
`), &raw)
	if err != nil {
		fmt.Println(err)
		return
	}
	space, err := search.ParseSpace(raw, nil)
	if err != nil {
		fmt.Println(err)
		return
	}

	objective := func(ctx context.Context, trial search.Trial, report search.Report) (search.Result, error) {
		p := trial.Params
		lr := math.Log10(p["optimizer.lr"].(float64) / 0.003)
		units := math.Log2(float64(p["units"].(int64)) / 64)
		floor := lr*lr + 0.1*units*units
		if p["optimizer.name"] == "sgd" {
			m := (p["optimizer.momentum"].(float64) - 0.9) * 10
			floor += 0.05 + m*m
		}
		best := math.Inf(1)
		for epoch := 1; epoch <= 27; epoch++ {
			if err := ctx.Err(); err != nil {
				return search.Result{}, err
			}
			loss := floor + 1/float64(epoch)
			best = math.Min(best, loss)
			more, err := report(epoch, loss)
			if err != nil {
				return search.Result{}, err
			}
			if !more {
				break
			}
		}
		return search.Result{Value: best}, nil
	}

	out, err := search.Run(context.Background(), search.Config{
		Space:   space,
		Trials:  45,
		Rounds:  3,
		Seed:    1,
		Workers: 4, // the outcome is the same for any number
		Prune:   search.PruneConfig{Method: search.PruneASHA, MinEpochs: 3, Reduction: 3},
	}, objective)
	if err != nil {
		fmt.Println(err)
		return
	}
	pruned, epochs := 0, 0
	for _, t := range out.Trials {
		if t.Status == search.Pruned {
			pruned++
		}
		epochs += t.Epochs
	}
	best, _ := out.BestTrial()
	fmt.Printf("%d trials, %d pruned, %d of %d epochs run\n", len(out.Trials), pruned, epochs, 45*27)
	fmt.Printf("best: trial %d (round %d), loss %.3f\n", best.Index, best.Round, best.Value)
	fmt.Printf("optimizer.name = %q, optimizer.lr ≈ %.1e, units = %d\n", best.Params["optimizer.name"], best.Params["optimizer.lr"], best.Params["units"])
	lr := out.Regions[2].Ranges["optimizer.lr"]
	fmt.Printf("round 3 sampled optimizer.lr in [%.1e, %.1e]\n", lr.Lo, lr.Hi)
	// Output:
	// 45 trials, 29 pruned, 669 of 1215 epochs run
	// best: trial 38 (round 2), loss 0.038
	// optimizer.name = "adam", optimizer.lr ≈ 3.2e-03, units = 66
	// round 3 sampled optimizer.lr in [2.2e-03, 4.8e-03]
}
