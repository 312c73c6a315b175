// Package elementwise holds the element-wise loops of an MLP training step that are worth
// vectorising next to the GEMM: bias-add (+ ReLU) forward, the ReLU backward mask, GELU
// forward and backward, ELU, tanh and sigmoid forward, column sums (bias gradients), and the SGD, SGD-momentum and
// Adam/AdamW updates. On amd64 with AVX they
// run in Go assembly, 8 floats per instruction; elsewhere (or with the build tag purego) a
// pure-Go loop computes the same thing.
//
// Every function computes exactly what its pure-Go reference loop (written out in its doc
// comment) computes, operation for operation with no fused multiply-add, so the assembly and
// the Go fallback give bit-identical results. The loops of package nn and nn/optim that these
// replace compute the same, so moving a model between builds does not change a single bit.
package elementwise
