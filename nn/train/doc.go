// Package train fits nn models: Fit runs epochs of shuffled mini-batches with an optimizer and
// learning-rate schedule from nn/optim, evaluates per-epoch metrics with nn/metrics, stops
// early on a monitored metric (restoring the best weights), and supports gradient clipping,
// EMA weights, an automatic learning rate (range test), batch-size growth, ordered hooks and
// bit-exact checkpoints.
//
// Determinism: everything random (validation carve-out, shuffling, dropout and noise, target
// noise) comes from PCG streams derived from Config.Seed, and matrix products are
// bit-identical for any Config.Workers, so the same seed gives the same weights. The one
// exception is opt-in: Config.Hogwild (lock-free asynchronous threads) depends on scheduling,
// and Fit logs a warning when it is on.
//
// The optimizer may be SVRG (optim.SVRG): Fit then takes its snapshot and full gradient at the
// start of every SnapshotEpochs-th epoch and corrects every step's gradient (see svrg.go).
package train
