// Package train fits nn models: Fit runs epochs of shuffled mini-batches with an optimizer and
// learning-rate schedule from nn/optim, evaluates per-epoch metrics with nn/metrics, stops
// early on a monitored metric (restoring the best weights), and supports gradient clipping,
// EMA weights, an automatic learning rate (range test), batch-size growth, ordered hooks and
// bit-exact checkpoints.
//
// Determinism: everything random (validation carve-out, shuffling, dropout and noise, target
// noise) comes from PCG streams derived from Config.Seed, and matrix products are
// bit-identical for any Config.Workers, so the same seed gives the same weights.
package train
