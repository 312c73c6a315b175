package stages

import (
	"context"

	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/pipeline"
)

// takeCPU takes the CPU that a compute stage (train, ensemble, pretrain, pseudo_label, a
// parallel fit) runs on from the run's budget: want tokens, where 0 asks for the whole budget,
// waiting for at least one. It returns the count granted, which the stage gives its trainer
// (GEMM threads), its ensemble (members at a time) or its fitter, so a run with [pipeline]
// workers = 1, or a stage with workers = 1, computes on one core. The count is recorded in the stage's info as "workers".
// The caller calls release when the compute ends.
func takeCPU(ctx context.Context, sc *pipeline.StageContext, want int) (n int, release func(), err error) {
	if want <= 0 {
		want = sc.Workers()
	}
	n, release, err = sc.CPU(ctx, want)
	if err != nil {
		return 0, func() {}, err
	}
	sc.SetInfo("workers", n)
	return n, release, nil
}

// warnNote logs a warning and records it in the stage's manifest notes (Note also logs it,
// at info level).
func warnNote(sc *pipeline.StageContext, format string, args ...any) {
	sc.Log.Warn().Msgf(format, args...)
	sc.Note(format, args...)
}

// finishWithCPU finishes a fitter. One that computes in parallel (a robust normalize selects
// its columns' quantiles concurrently: SetWorkers) first takes its workers from the run's
// budget, and gives them back when done, so that it too stays within [pipeline] workers.
func finishWithCPU(ctx context.Context, sc *pipeline.StageContext, fitter features.Fitter) (features.Transform, error) {
	w, ok := fitter.(interface{ SetWorkers(n int) })
	if !ok {
		return fitter.Finish()
	}
	n, release, err := takeCPU(ctx, sc, 0)
	if err != nil {
		return nil, err
	}
	defer release()
	w.SetWorkers(n)
	return fitter.Finish()
}
