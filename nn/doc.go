// Package nn is pipe's training core: multi-layer perceptrons with a shared trunk and one or
// more task heads, built from a declarative, JSON-serialisable Spec, with hand-written forward
// and backward passes in float32 (loss sums in float64).
//
// A Model is built with Build(spec, rng). Model.TrainStep runs forward, loss and backward for one
// batch and leaves the gradients in Params()[i].Grad; an optimizer from nn/optim then updates the
// values. Model.Predict runs inference (eval mode: no dropout or noise, batch-norm running
// statistics). The training loop (epochs, early stopping, schedules, checkpoints) lives in
// nn/train.
//
// Layout conventions: all matrices are row-major; a batch of rows×features is one []float32.
// Dense weights W have shape [in, out] so that y = x·W + b. Params are named
// "<layer>/<tensor>" (dense_1/W, dense_1/b, batch_norm_1/gamma, ...); layer names are given in
// the spec or generated deterministically (dense_1, dense_2, batch_norm_1, ...).
//
// Images: with Spec.InputShape = [C, H, W] each row's features are an image flattened
// row-major in CHW order, and the image layers (conv, max_pool, avg_pool, global_avg_pool,
// flatten, batch_norm over channels, residual with filters) read and write images in that same
// dense rows×features layout. Convolution weights W have shape [F, C, k, k]; a convolution is
// computed image by image as GEMMs on im2col of the image (or on the image itself for a 1×1
// stride-1 convolution), whose blocking depends only on the shapes, so it is bit-identical for
// any number of workers and does not allocate in the steady state. flatten (or global_avg_pool) ends the
// image: dense and layer_norm layers after it see plain features.
//
// Name patterns (Freeze, parameter-difference penalties) are anchored Go regular expressions
// matched against the whole param name: "enc.*" matches every param whose name starts with
// "enc", "dense_1/W" matches exactly that tensor.
//
// A Model is not safe for concurrent use; it owns preallocated buffers sized for the largest
// batch it has seen, so the steady state of TrainStep does not allocate.
package nn
