package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// hostileNote is a note that would end the page's JSON element if it were not escaped.
const hostileNote = `a note with </script><script>alert("x")</script> & <!-- in it`

// fixtureReport is a hand-made report with every section the page draws: a run header with
// warnings, the leakage audit and the DAG; a train stage with learning curves (marks), the LR
// range test, monitoring (heatmaps, dead-ReLU share, gradient norm, update ratios with their
// band) and its summary; an ensemble; pseudo-label rounds; an evaluation of classes (confusion
// matrix, per-class scores, reliability, worst rows with images), of a binary task (ROC, PR)
// and of a regression (scatter, residuals); the bias/variance table; a skipped stage; a search
// (fixtureSearch). Its
// numbers come from fixed formulas and a seeded PCG, so every call returns the same report.
func fixtureReport() *Report {
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	r := &Report{
		FormatVersion: FormatVersion,
		Generated:     start.Add(95 * time.Second),
		Run: Run{
			Pipeline: "digits-fixture", RunID: "20260301-093000-4f2a", Status: "degraded",
			Seed: 7, ConfigHash: "9c1d2e3f4a5b6c7d8e9f00112233445566778899aabbccddeeff001122334455",
			PipeVersion: "v0.15.0-dev", StartedAt: start, Seconds: 94.2,
			Warnings:  []string{"ensemble: member 4 was dropped (its training diverged); the run is degraded"},
			Leakage:   map[string]any{"fitted_on": map[string]any{"normalize": "train"}, "duplicate_rows_across_splits": 0.0, "group_overlap": false},
			Overrides: []string{"model.epochs=40"},
			Extra:     map[string]string{"gemm": "go"},
		},
	}
	stages := []struct{ name, kind, status string }{
		{"load", "dataset", "succeeded"}, {"split", "split", "succeeded"}, {"normalize", "normalize", "succeeded"},
		{"model", "train", "succeeded"}, {"bag", "ensemble", "degraded"}, {"selftrain", "pseudo_label", "succeeded"},
		{"eval", "evaluate", "succeeded"}, {"house", "evaluate", "succeeded"}, {"export", "write", "skipped"},
		{"tune", "search", "succeeded"},
	}
	layer := map[string][2]int{"load": {0, 0}, "split": {1, 0}, "normalize": {2, 0}, "model": {3, 0}, "bag": {3, 1},
		"selftrain": {3, 2}, "eval": {4, 0}, "house": {4, 1}, "export": {5, 0}, "tune": {3, 3}}
	for i, s := range stages {
		secs := 0.4 + float64(i%4)*3.1
		r.Run.Durations = append(r.Run.Durations, StageDuration{Stage: s.name, Kind: s.kind, Status: s.status, Seconds: secs, Waited: float64(i) * 0.7, Cached: s.name == "load"})
		r.Graph.Nodes = append(r.Graph.Nodes, Node{Stage: s.name, Kind: s.kind, Status: s.status, Layer: layer[s.name][0], Row: layer[s.name][1]})
	}
	r.Graph.Edges = []Edge{
		{"load.out", "split.input"}, {"split.train", "normalize.fit"}, {"split.val", "normalize.apply"},
		{"normalize.train", "model.train"}, {"normalize.val", "model.val"}, {"normalize.train", "bag.train"},
		{"normalize.train", "selftrain.train"}, {"model.model", "eval.models"}, {"bag.model", "eval.models"},
		{"normalize.test", "house.tables"}, {"eval.report", "export.input"},
		{"normalize.train", "tune.train"}, {"normalize.val", "tune.val"},
	}
	stage := func(i int) Stage {
		s := stages[i]
		return Stage{Name: s.name, Kind: s.kind, Status: s.status, Seconds: r.Run.Durations[i].Seconds, Cached: r.Run.Durations[i].Cached}
	}

	load := stage(0)
	load.Metrics = map[string]float64{"rows": 1797}
	split := stage(1)
	split.Metrics = map[string]float64{"train_rows": 1257, "val_rows": 270, "test_rows": 270}
	split.Notes = []string{"stratified by label"}
	normalize := stage(2)

	model := stage(3)
	model.Metrics = map[string]float64{"best_epoch": 31, "val_accuracy": 0.9741, "val_loss": 0.0893}
	model.Notes = []string{hostileNote}
	model.Training = fixtureTraining(rng)
	model.Monitoring = fixtureMonitoring(rng)
	model.Summary = &Summary{Total: 10570, Rows: []SummaryRow{
		{Layer: "dense_0", Kind: "dense", Output: "[64]", Params: 4160, Share: 4160.0 / 10570},
		{Layer: "relu_0", Kind: "relu", Output: "[64]"},
		{Layer: "dense_1", Kind: "dense", Output: "[64]", Params: 4160, Share: 4160.0 / 10570},
		{Layer: "relu_1", Kind: "relu", Output: "[64]"},
		{Layer: "head", Kind: "dense", Output: "[10]", Params: 650, Share: 650.0 / 10570},
	}}

	bag := stage(4)
	bag.Warnings = []string{"member 4 dropped: its loss became NaN at epoch 3"}
	bag.Ensemble = &Ensemble{Metric: "accuracy", Combiners: map[string]float64{"mean": 0.9815, "vote": 0.9778}, Diversity: []float64{0.031, 0.027, 0.035, 0.029},
		OOB: map[string]float64{"accuracy": 0.9702, "rows": 1257}}
	for m := range 5 {
		bag.Ensemble.Members = append(bag.Ensemble.Members, Member{Index: m, Name: "member_" + strconv.Itoa(m), ValMetric: 0.955 + 0.004*float64(m%3), EpochsRun: 20 + 3*m,
			BestEpoch: 14 + 2*m, StoppedEarly: m%2 == 0, Dropped: m == 4, Restored: m == 1})
	}

	self := stage(5)
	self.Training = &Training{Epochs: 12, Curves: []Curve{{Title: "pretraining loss", XLabel: "epoch", YLabel: "reconstruction loss",
		X: seq(1, 12), Series: []Series{{Name: "train", Values: mapf(seq(1, 12), func(e float64) float64 { return 0.2 + 0.8*math.Exp(-e/3) })}}}}}
	for k := 1; k <= 4; k++ {
		self.Rounds = append(self.Rounds, Round{Round: k, Added: 400 / k, MeanConfidence: 0.97 - 0.02*float64(k), PseudoAccuracy: 0.96 - 0.015*float64(k), ValAccuracy: 0.95 + 0.005*float64(k), Epochs: 8})
	}

	eval := stage(6)
	eval.Metrics = map[string]float64{"model/test_accuracy": 0.9704, "bag/test_accuracy": 0.9778, "model/test_logloss": math.NaN()}
	eval.Evaluation = []TableEval{fixtureClasses(rng), fixtureBinary(rng)}
	eval.BiasVar = []BiasVar{{Model: "model", Head: "label", Unit: "error (1 - accuracy)",
		Errors:    map[string]float64{"train": 0.004, "val": 0.026, "test": 0.030},
		Chance:    map[string]float64{"train": 0.898, "val": 0.9, "test": 0.9},
		Diagnosis: []string{"variance: val error is 6.5× train error; more data, regularisation or early stopping"}}}

	house := stage(7)
	house.Evaluation = []TableEval{fixtureRegression(rng)}
	export := stage(8)
	export.Notes = []string{"skipped: an input stage was degraded"}

	tune := stage(9)
	tune.Search = fixtureSearch(rng)
	tune.Metrics = map[string]float64{"val_accuracy": tune.Search.Trials[tune.Search.Best].objective(), "trials_completed": 0, "trials_pruned": 0, "trials_failed": 0}
	for _, t := range tune.Search.Trials {
		tune.Metrics["trials_"+t.Status]++
	}
	tune.Warnings = []string{"2 of 24 trials failed (the first: trial 5: loss is NaN at epoch 2)"}

	r.Stages = []Stage{load, split, normalize, model, bag, self, eval, house, export, tune}
	return r
}

// objective is the trial's objective, NaN when it has none.
func (t SearchTrial) objective() float64 {
	if t.Objective == nil {
		return math.NaN()
	}
	return *t.Objective
}

// fixtureSearch is a search of 24 trials in 3 zoom rounds, maximising val_accuracy, with a
// parameter of every distribution (uniform, log_uniform, int, log_int, choice) and one that
// exists only when optimizer.name is sgd; trials completed, pruned and failed, run by two
// workers. Its best-so-far curve, parameter effects and parallel coordinates are made as
// Build makes them.
func fixtureSearch(rng *rand.Rand) *Search {
	sr := &Search{Objective: "val_accuracy", Maximize: true, Params: []SearchParam{
		{Name: "layers.*.dropout", Dist: "uniform", Lo: 0, Hi: 0.5},
		{Name: "layers.0.dense", Dist: "int", Lo: 16, Hi: 256},
		{Name: "batch_size", Dist: "log_int", Lo: 16, Hi: 512},
		{Name: "optimizer.lr", Dist: "log_uniform", Lo: 1e-4, Hi: 3e-2},
		{Name: "optimizer.momentum", Dist: "uniform", Lo: 0.8, Hi: 0.99},
		{Name: "optimizer.name", Dist: "choice", Labels: []string{"adam", "sgd", "rmsprop"}},
	}}
	// Each round samples a narrower region around the best trials so far.
	regions := []SearchRound{
		{Round: 0, Ranges: map[string][2]float64{"layers.*.dropout": {0, 0.5}, "layers.0.dense": {16, 256}, "batch_size": {16, 512}, "optimizer.lr": {1e-4, 3e-2}, "optimizer.momentum": {0.8, 0.99}},
			Weights: map[string][]float64{"optimizer.name": {1.0 / 3, 1.0 / 3, 1.0 / 3}}},
		{Round: 1, Ranges: map[string][2]float64{"layers.*.dropout": {0.05, 0.35}, "layers.0.dense": {64, 230}, "batch_size": {24, 200}, "optimizer.lr": {4e-4, 8e-3}, "optimizer.momentum": {0.85, 0.97}},
			Weights: map[string][]float64{"optimizer.name": {0.5, 0.25, 0.25}}},
		{Round: 2, Ranges: map[string][2]float64{"layers.*.dropout": {0.08, 0.22}, "layers.0.dense": {120, 210}, "batch_size": {32, 96}, "optimizer.lr": {1e-3, 4e-3}, "optimizer.momentum": {0.88, 0.95}},
			Weights: map[string][]float64{"optimizer.name": {0.6, 0.2, 0.2}}},
	}
	sr.Rounds = regions
	draw := func(rg SearchRound, name string, log bool) float64 {
		lo, hi := rg.Ranges[name][0], rg.Ranges[name][1]
		if log {
			return math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo)))
		}
		return lo + rng.Float64()*(hi-lo)
	}
	workers := []float64{0, 0} // when each worker is free, in seconds after the search's start
	roundStart := 0.0
	for i := range 24 {
		round := i / 8
		if i%8 == 0 && i > 0 {
			roundStart = math.Max(workers[0], workers[1]) // a round starts when the one before has ended
		}
		rg := regions[round]
		dropout, lr := draw(rg, "layers.*.dropout", false), draw(rg, "optimizer.lr", true)
		dense, batch := math.Round(draw(rg, "layers.0.dense", false)), math.Round(draw(rg, "batch_size", true))
		opt, u := 0, rng.Float64()
		for w := rg.Weights["optimizer.name"]; opt < len(w)-1 && u >= w[opt]; opt++ {
			u -= w[opt]
		}
		t := SearchTrial{Index: i, Round: round, Params: map[string]string{
			"layers.*.dropout": strconv.FormatFloat(dropout, 'g', -1, 64), "layers.0.dense": strconv.Itoa(int(dense)),
			"batch_size": strconv.Itoa(int(batch)), "optimizer.lr": strconv.FormatFloat(lr, 'g', -1, 64),
			"optimizer.name": sr.Params[5].Labels[opt],
		}}
		if opt == 1 {
			t.Params["optimizer.momentum"] = strconv.FormatFloat(draw(rg, "optimizer.momentum", false), 'g', -1, 64)
		}
		// Accuracy peaks near lr 2e-3, dropout 0.15 and a wide first layer; sgd is a little worse.
		acc := 0.975 - 0.045*math.Pow(math.Log10(lr)+2.7, 2) - 0.3*math.Pow(dropout-0.15, 2) - 8e-5*(256-dense)/2 - 0.01*float64(opt%2) + 0.004*rng.NormFloat64()
		t.Status, t.EpochsRun, t.BestEpoch = "completed", 30, 24+rng.IntN(7)
		switch {
		case i == 5 || i == 14:
			t.Status, t.EpochsRun, t.BestEpoch, t.Error = "failed", 2, 0, "loss is NaN at epoch 2"
		case acc < 0.955:
			t.Status, t.EpochsRun = "pruned", []int{3, 9}[i%2]
			acc -= 0.08 * 3 / float64(t.EpochsRun)
			t.BestEpoch = t.EpochsRun
		}
		if t.Status != "failed" {
			v := math.Round(acc*1e4) / 1e4
			t.Objective = &v
		}
		t.Seconds = math.Round((0.12*float64(t.EpochsRun)*(dense/128)*(64/batch+0.5)+0.05)*1000) / 1000
		w := 0
		if workers[1] < workers[0] {
			w = 1
		}
		t.Start = math.Round(math.Max(workers[w], roundStart)*1000) / 1000
		workers[w] = t.Start + t.Seconds
		sr.Trials = append(sr.Trials, t)
	}
	sr.Best = -1
	for _, t := range sr.Trials {
		if t.Status == "completed" && (sr.Best < 0 || sr.better(*t.Objective, *sr.Trials[sr.Best].Objective)) {
			sr.Best = t.Index
		}
	}
	sr.BestSoFar = bestSoFar(sr)
	sr.Effects, sr.Parallel = effects(sr)
	sr.BestConfig = fixtureBestConfig(sr)
	return sr
}

// fixtureBestConfig writes the best trial's parameters as the search stage writes its
// best_config: a train stage reading the search's inputs.
func fixtureBestConfig(sr *Search) string {
	b := sr.Trials[sr.Best]
	p := b.Params
	var opt []string
	if m, ok := p["optimizer.momentum"]; ok {
		opt = append(opt, "momentum = "+m)
	}
	opt = append(opt, "lr = "+p["optimizer.lr"], "name = "+strconv.Quote(p["optimizer.name"]))
	return fmt.Sprintf("# the best trial of search stage \"tune\": trial %d (round %d), %s = %s\n", b.Index, b.Round, sr.Objective, formatNumber(*b.Objective)) +
		"[stages.model]\nkind = \"train\"\ntrain = \"normalize.train\"\nval = \"normalize.val\"\n" +
		"batch_size = " + p["batch_size"] + "\nepochs = 30\n" +
		"layers = [ { dense = " + p["layers.0.dense"] + ", dropout = " + p["layers.*.dropout"] + " }, { dense = 64, dropout = " + p["layers.*.dropout"] + " } ]\n" +
		"optimizer = { " + strings.Join(opt, ", ") + " }\n"
}

func seq(from, to int) []float64 {
	var out []float64
	for i := from; i <= to; i++ {
		out = append(out, float64(i))
	}
	return out
}

func mapf(xs []float64, f func(float64) float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func fixtureTraining(rng *rand.Rand) *Training {
	epochs := seq(1, 40)
	noise := func() float64 { return 0.01 * (rng.Float64() - 0.5) }
	trainLoss := mapf(epochs, func(e float64) float64 { return 0.05 + 1.2*math.Exp(-e/6) + noise() })
	valLoss := mapf(epochs, func(e float64) float64 { return 0.09 + 1.1*math.Exp(-e/6) + 0.002*math.Max(0, e-31) + noise() })
	valLoss[5] = math.NaN() // a missing value is a gap, not a failure
	marks := []Mark{{X: 31, Label: "best epoch 31 (restored)"}, {X: 40, Label: "stopped"}}
	lr := mapf(epochs, func(e float64) float64 { return 1e-3 * 0.5 * (1 + math.Cos(math.Pi*e/40)) })
	lrs := mapf(seq(0, 59), func(i float64) float64 { return 1e-6 * math.Pow(10, i/10) })
	return &Training{Epochs: 40, BestEpoch: 31, StoppedAt: 40,
		Curves: []Curve{
			{Title: "loss", XLabel: "epoch", YLabel: "cross-entropy", X: epochs, Series: []Series{{Name: "train", Values: trainLoss}, {Name: "val", Values: valLoss}}, Marks: marks},
			{Title: "accuracy", XLabel: "epoch", YLabel: "accuracy", X: epochs, Marks: marks, Series: []Series{
				{Name: "train", Values: mapf(epochs, func(e float64) float64 { return 1 - 0.9*math.Exp(-e/5) })},
				{Name: "val", Values: mapf(epochs, func(e float64) float64 { return 0.975 - 0.87*math.Exp(-e/5) })}}},
			{Title: "learning rate", XLabel: "epoch", YLabel: "learning rate", X: epochs, Series: []Series{{Name: "lr", Values: lr}}},
		},
		RangeTest: &Curve{Title: "LR range test", XLabel: "learning rate", YLabel: "loss", X: lrs,
			Series: []Series{{Name: "loss", Values: mapf(lrs, func(l float64) float64 {
				return 2.3 - 1.5/(1+math.Exp(-(math.Log10(l)+3.5)*2)) + math.Max(0, math.Log10(l)+1.5)*3
			})}},
			Marks: []Mark{{X: 3e-4, Label: "chosen 3e-4"}}},
	}
}

func fixtureMonitoring(rng *rand.Rand) *Monitoring {
	steps := mapf(seq(0, 39), func(i float64) float64 { return 20 * i })
	edges := mapf(seq(0, 24), func(i float64) float64 { return -2 + 0.25*i })
	var out Monitoring
	for l, name := range []string{"dense_0", "dense_1"} {
		hist := make([][]float64, len(steps))
		for s := range hist {
			row := make([]float64, len(edges)-1)
			mu, sd := 0.1*float64(s)/40, 0.4+0.02*float64(s)+0.1*float64(l)
			total := 0.0
			for b := range row {
				c := (edges[b] + edges[b+1]) / 2
				row[b] = math.Exp(-(c-mu)*(c-mu)/(2*sd*sd)) * (0.9 + 0.2*rng.Float64())
				total += row[b]
			}
			for b := range row {
				row[b] /= total
			}
			hist[s] = row
		}
		lm := LayerMonitor{Layer: name, Steps: steps, BinEdges: edges, Histogram: hist, Curves: []Curve{
			{Title: "dead ReLU share", XLabel: "step", YLabel: "share", X: steps, Series: []Series{{Name: name, Values: mapf(steps, func(s float64) float64 { return 0.02 + 0.1*float64(l)*s/800 })}}},
			{Title: "gradient norm", XLabel: "step", YLabel: "L2 norm", X: steps, Series: []Series{{Name: name, Values: mapf(steps, func(s float64) float64 { return 1.5*math.Exp(-s/300) + 0.1 })}}},
			{Title: "update / parameter ratio", XLabel: "step", YLabel: "ratio", X: steps, LogY: true,
				Series: []Series{{Name: name, Values: mapf(steps, func(s float64) float64 { return 4e-3 * math.Exp(-s/250) * (1 + 0.1*rng.Float64()) })}},
				Bands:  []Band{{Lo: 1e-4, Hi: 1e-2, Label: "healthy, around 1e-3"}}},
		}}
		if l == 1 {
			lm.Warning = "dense_1: 13% of its ReLU units never fired in the last 100 steps"
		}
		out.Layers = append(out.Layers, lm)
	}
	return &out
}

func fixtureClasses(rng *rand.Rand) TableEval {
	const k = 10
	e := TableEval{Model: "model", Table: "normalize.test", Head: "label", Task: "classification",
		Metrics: map[string]float64{"accuracy": 0.9704, "f1_macro": 0.9698, "logloss": 0.1021}}
	for i := range k {
		e.Labels = append(e.Labels, strconv.Itoa(i))
		row := make([]int64, k)
		row[i] = 25 + int64(rng.IntN(3))
		if i%3 == 1 {
			row[(i+2)%k] = int64(1 + rng.IntN(2))
		}
		e.Confusion = append(e.Confusion, row)
	}
	for i := range k {
		var col, rowSum int64
		for j := range k {
			col += e.Confusion[j][i]
			rowSum += e.Confusion[i][j]
		}
		p, rc := float64(e.Confusion[i][i])/float64(col), float64(e.Confusion[i][i])/float64(rowSum)
		e.PerClass = append(e.PerClass, ClassStat{Label: e.Labels[i], Precision: p, Recall: rc, F1: 2 * p * rc / (p + rc), Support: rowSum})
	}
	bins := mapf(seq(0, 9), func(i float64) float64 { return 0.05 + 0.1*i })
	// As Build makes it: per bin its accuracy, mean confidence and rows; an empty bin's rates
	// are missing.
	e.Reliability = &Curve{Title: "reliability", XLabel: "confidence", YLabel: "accuracy", X: bins, Series: []Series{
		{Name: "accuracy", Values: mapf(bins, func(c float64) float64 { return math.Min(1, c*c*0.2+c*0.85) })},
		{Name: "confidence", Values: mapf(bins, func(c float64) float64 { return c + 0.01 })},
		{Name: "rows", Values: mapf(bins, func(c float64) float64 { return math.Round(300 * c * c * c) })}}}
	e.Reliability.Series[0].Values[0], e.Reliability.Series[1].Values[0] = math.NaN(), math.NaN()
	e.Worst = &Rows{Columns: []string{"_row", "label", "predicted", "loss"}}
	for i := range 8 {
		label, pred := i%10, (i+3)%10
		e.Worst.Rows = append(e.Worst.Rows, []string{strconv.Itoa(100 + 17*i), strconv.Itoa(label), strconv.Itoa(pred), fmt.Sprintf("%.3f", 4.1-0.3*float64(i))})
		e.Images = append(e.Images, digitImage(label, i))
	}
	return e
}

func fixtureBinary(rng *rand.Rand) TableEval {
	e := TableEval{Model: "bag", Table: "normalize.test", Head: "is_even", Task: "binary",
		Metrics: map[string]float64{"accuracy": 0.9511, "auc": 0.9834}, Labels: []string{"odd", "even"},
		Confusion: [][]int64{{130, 6}, {7, 127}}}
	fpr := mapf(seq(0, 50), func(i float64) float64 { return i / 50 })
	e.ROC = &Curve{Title: "ROC", XLabel: "false positive rate", YLabel: "true positive rate", X: fpr,
		Series: []Series{{Name: "bag", Values: mapf(fpr, func(f float64) float64 { return math.Pow(f, 0.08) })}}}
	recall := mapf(seq(0, 50), func(i float64) float64 { return i / 50 })
	e.PR = &Curve{Title: "precision-recall", XLabel: "recall", YLabel: "precision", X: recall,
		Series: []Series{{Name: "bag", Values: mapf(recall, func(r float64) float64 { return 1 - 0.3*math.Pow(r, 6) - 0.01*rng.Float64() })}}}
	bins := mapf(seq(0, 9), func(i float64) float64 { return 0.05 + 0.1*i })
	e.Reliability = &Curve{Title: "reliability", XLabel: "predicted probability", YLabel: "observed frequency", X: bins,
		Series: []Series{{Name: "bag", Values: mapf(bins, func(c float64) float64 { return c + 0.05*math.Sin(6*c) })}}}
	return e
}

func fixtureRegression(rng *rand.Rand) TableEval {
	e := TableEval{Model: "price", Table: "normalize.test", Head: "price", Task: "regression",
		Metrics: map[string]float64{"rmse": 0.512, "mae": 0.371, "r2": 0.803}}
	var xs, ys, res []float64
	for range 300 {
		x := 0.5 + 4.5*rng.Float64()
		y := x + 0.5*rng.NormFloat64()
		xs, ys = append(xs, x), append(ys, y)
		res = append(res, y-x)
	}
	e.Scatter = &Scatter{XLabel: "actual", YLabel: "predicted", X: xs, Y: ys}
	centers := mapf(seq(0, 19), func(i float64) float64 { return -2 + 0.2*i + 0.1 })
	counts := make([]float64, len(centers))
	for _, d := range res {
		if b := int((d + 2) / 0.2); b >= 0 && b < len(counts) {
			counts[b]++
		}
	}
	e.Residuals = &Curve{Title: "residuals", XLabel: "predicted - actual", YLabel: "rows", X: centers, Series: []Series{{Name: "rows", Values: counts}}}
	e.Worst = &Rows{Columns: []string{"_row", "price", "predicted", "loss"}, Rows: [][]string{{"17", "4.52", "2.10", "5.86"}, {"203", "0.61", "2.71", "4.41"}}}
	return e
}

// digitImage is a 28×28 grey PNG data URI with a ring and a stroke that depend on d and i.
func digitImage(d, i int) string {
	img := image.NewGray(image.Rect(0, 0, 28, 28))
	for y := range 28 {
		for x := range 28 {
			dx, dy := float64(x)-13.5, float64(y)-13.5
			ring := math.Abs(math.Hypot(dx, dy*0.8)-6-float64(d%3)) < 1.6
			stroke := math.Abs(dx-dy*float64(i%3-1)*0.4) < 1.3 && math.Abs(dy) < 10
			if ring || (d%2 == 1 && stroke) {
				img.SetGray(x, y, color.Gray{Y: 255})
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
}
