// Package sgemm is a pure-Go (plus Go assembly) single-precision matrix multiply for
// row-major matrices, C = alpha*op(A)*op(B) + beta*C, with the semantics of cblas_sgemm with
// CblasRowMajor.
//
// # Design
//
// The product is blocked GotoBLAS/BLIS style (see the constants in sgemm.go for the block
// sizes and why). Panels of op(B) are packed into contiguous, zero-padded micro-panels; the
// packing resolves transB (Bᵀ is transposed 8 rows at a time with AVX). A is not packed: each
// kernel has two variants that read a strip of op(A) in place, one for row-major A and one
// for transposed A (which is also the layout of a packed micro-panel), so NN, NT, TN and TT
// all run on the same register tile. Only the last, partial strip of rows is packed, zero-
// padded. The micro-kernels compute a register tile of C:
//
//   - "avx512": AVX-512F, 8×32 tile in 16 zmm accumulators, plus a masked 8×16 kernel for
//     a last column strip of at most 16 (N = 10 in an MLP's output layer);
//   - "avx2":   AVX2+FMA, 6×16 tile in 12 ymm accumulators;
//   - "generic": pure Go, 4×4 tile (other CPUs and architectures).
//
// The kernel is chosen once at start-up with golang.org/x/sys/cpu; Kernel reports it. The
// build tag purego leaves the assembly out on amd64 too. Tiles that overhang the bottom or
// right edge of C are computed into a scratch tile and merged in Go.
//
// # Speed
//
// On one thread of an AVX-512 AMD EPYC the avx512 kernel alone runs at ~220 GFLOP/s, and
// the nine products of a 784→256→128→10 MLP training step at batch 128 run at ~200
// GFLOP/s, 1.05–1.08× OpenBLAS 0.3 (SkylakeX kernels) on the same machine. The N = 10
// products are the weak spot (0.6–1.0× OpenBLAS). Run BenchmarkVersusOpenBLAS (-tags
// openblas) to compare on your machine.
//
// # Parallelism and determinism
//
// SgemmParallel splits C over M and N only, on register-tile boundaries, and never splits
// K, so every element of C is computed by the same sequence of floating-point operations as
// in Sgemm: results are bit-identical whatever the thread count. Within one kernel the
// summation order over K is fixed (K blocks in order, k ascending within a block), so results
// are reproducible run to run; different kernels round differently.
//
// # Memory
//
// Packing buffers are pooled (sync.Pool); steady-state calls allocate nothing.
package sgemm
