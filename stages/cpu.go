package stages

import (
	"context"

	"github.com/pipe-ml/pipe/pipeline"
)

// takeCPU takes the CPU that a compute stage (train, ensemble, pretrain, pseudo_label) runs
// on from the run's budget: want tokens, where 0 asks for the whole budget, waiting for at
// least one. It returns the count granted, which the stage gives its trainer (GEMM threads)
// or its ensemble (members at a time), so a run with [pipeline] workers = 1, or a stage with
// workers = 1, computes on one core. The count is recorded in the stage's info as "workers".
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
