// Package optim holds the optimizers (sgd, rmsprop, adam, adamw, adagrad, and svrg around any of
// them), learning-rate schedules, gradient clipping, the
// exponential moving average of weights and the learning-rate range test used by the trainer
// in package nn.
//
// Every routine works on []*Param: a Param carries its values, its gradient and three flags
// (Frozen, NoDecay, LRScale) that all routines honour the same way. Frozen params are never
// read nor written; NoDecay params get neither coupled L2 nor decoupled weight decay; LRScale
// multiplies the learning rate of one param.
//
// Optimizer state (moment buffers, step counts) is keyed by Param.Name, so it survives a params
// slice rebuilt between steps, and is saved bit-exactly by MarshalState for checkpoints.
//
// The update loops run in float32 over the param slices, with float64 scalars; buffers are
// allocated on the first Step that sees a param and never again, so a steady-state Step does
// not allocate.
package optim
