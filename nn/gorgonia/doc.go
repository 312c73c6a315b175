// Package graphmodel trains custom blocks written as gorgonia expression graphs
// (gorgonia.org/gorgonia) with pipe's trainer. The package lives in the folder nn/gorgonia;
// its name differs so that it does not shadow gorgonia in the files that use both.
//
// A user writes a BuildFunc that adds any differentiable float32 expression to a gorgonia
// graph, registers it under a name, and uses the name in an nn.Spec layer
// {"type": "custom", "custom": name}. The block is then an ordinary trunk layer of an
// *nn.Model: nn/train.Fit trains it with the same optimizers, learning-rate schedules,
// gradient clipping, EMA, early stopping and checkpoints as the native layers, and
// nn.Model.Save/nn.Load store it like any other layer (the spec names the block; the weights
// are saved by name). Loading a model whose block is not registered in the program fails with
// an error naming the block.
//
// How a Block runs: the graph is built and compiled once per batch size (a small cache, see
// Options.MaxGraphs). Forward runs a gorgonia TapeMachine over a forward-only program. Backward
// binds the upstream gradient dL/dy to an input node dy and runs a program computing
// gorgonia.Grad of the cost Σ(y ⊙ dy) with respect to the learnables and x, which is exactly
// the chain rule's vector–Jacobian product: dL/dθ = Σ_ij dL/dy_ij · ∂y_ij/∂θ. The learnables
// are bound to the params' own Value slices (tensor.WithBacking), so optimizers update the
// graph's weights in place; gradients are copied into Param.Grad (overwritten, as nn's dense
// layers do; frozen params are left alone).
//
// Costs, honestly: the backward program recomputes the forward pass (gorgonia's tape machine
// cannot resume a program), every op allocates through gorgonia's generic tensor engine, and
// matrix products go through gonum's BLAS rather than pipe's SGEMM kernels. A gorgonia block is
// therefore several times slower than the same network built from nn's native layers (see
// BenchmarkTrainStep); use it for structure nn does not have, not for plain MLPs.
//
// Module pins: gorgonia v0.9.18 needs go4.org/unsafe/assume-no-moving-gc at
// v0.0.0-20231121144256-b99613f794b6 or later on Go ≥ 1.22 (older versions panic at start-up),
// and a google.golang.org/genproto recent enough not to contain googleapis/rpc (otherwise the
// old Arrow module gorgonia depends on and arrow-go v18's gRPC make an ambiguous import). See
// ARCHITECTURE.md, "Custom models (gorgonia)".
package graphmodel
