package sgemm

import (
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas/gonum"
)

// benchShape is one product of the benchmark suite.
type benchShape struct {
	name           string
	transA, transB bool
	m, n, k        int
}

// mlpShapes are the products of one training step of the 784→256→128→10 MLP at batch 128
// (forward Y = X·W, weight gradient dW = Xᵀ·dY, input gradient dX = dY·Wᵀ), then 1024³.
var mlpShapes = []benchShape{
	{"fwd1_NN_128x256x784", false, false, 128, 256, 784},
	{"fwd2_NN_128x128x256", false, false, 128, 128, 256},
	{"fwd3_NN_128x10x128", false, false, 128, 10, 128},
	{"dW1_TN_784x256x128", true, false, 784, 256, 128},
	{"dX1_NT_128x784x256", false, true, 128, 784, 256},
	{"dW2_TN_256x128x128", true, false, 256, 128, 128},
	{"dX2_NT_128x256x128", false, true, 128, 256, 128},
	{"dW3_TN_128x10x128", true, false, 128, 10, 128},
	{"dX3_NT_128x128x10", false, true, 128, 128, 10},
	{"square_NN_1024", false, false, 1024, 1024, 1024},
}

// benchOperands returns dense random non-zero operands for s (values in [0.5, 1.5) with random
// sign), with tight strides.
func benchOperands(s benchShape) (a []float32, lda int, b []float32, ldb int, c []float32) {
	rng := rand.New(rand.NewPCG(uint64(s.m), uint64(s.n*s.k)))
	fill := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = 0.5 + rng.Float32()
			if rng.IntN(2) == 0 {
				x[i] = -x[i]
			}
		}
		return x
	}
	lda, ldb = s.k, s.n
	if s.transA {
		lda = s.m
	}
	if s.transB {
		ldb = s.k
	}
	return fill(s.m * s.k), lda, fill(s.k * s.n), ldb, fill(s.m * s.n)
}

// mlpStep runs the nine MLP products of one training step (mlpShapes without the square one)
// through gemm, for an aggregate GFLOP/s; it returns the flops of one step.
type mlpStep struct {
	shapes []benchShape
	ops    [][]float32 // a, b, c per shape
	lds    [][2]int
	flops  float64
}

func newMLPStep() *mlpStep {
	st := &mlpStep{}
	for _, s := range mlpShapes {
		if s.m == 1024 {
			continue
		}
		a, lda, b, ldb, c := benchOperands(s)
		st.shapes = append(st.shapes, s)
		st.ops = append(st.ops, []float32(nil), nil, nil)
		st.ops[len(st.ops)-3], st.ops[len(st.ops)-2], st.ops[len(st.ops)-1] = a, b, c
		st.lds = append(st.lds, [2]int{lda, ldb})
		st.flops += 2 * float64(s.m) * float64(s.n) * float64(s.k)
	}
	return st
}

type gemmFunc func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

func (st *mlpStep) run(gemm gemmFunc) {
	for i, s := range st.shapes {
		gemm(s.transA, s.transB, s.m, s.n, s.k, 1, st.ops[3*i], st.lds[i][0], st.ops[3*i+1], st.lds[i][1], 0, st.ops[3*i+2], s.n)
	}
}

// benchMLPStep reports the aggregate GFLOP/s of one MLP training step's products.
func benchMLPStep(b *testing.B, gemm gemmFunc) {
	st := newMLPStep()
	b.ReportAllocs()
	for b.Loop() {
		st.run(gemm)
	}
	b.ReportMetric(st.flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func reportGFLOPS(b *testing.B, s benchShape) {
	b.ReportMetric(2*float64(s.m)*float64(s.n)*float64(s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkSgemm runs every MLP shape through each kernel the CPU supports, single-threaded.
func BenchmarkSgemm(b *testing.B) {
	for _, kern := range supportedKernels() {
		for _, s := range mlpShapes {
			if kern == genericKernel && s.m*s.n*s.k > 1<<26 {
				continue
			}
			b.Run(kern.name+"/"+s.name, func(b *testing.B) {
				saved := activeKernel
				activeKernel = kern
				defer func() { activeKernel = saved }()
				a, lda, bm, ldb, c := benchOperands(s)
				b.ReportAllocs()
				for b.Loop() {
					Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
				}
				reportGFLOPS(b, s)
			})
		}
		b.Run(kern.name+"/mlp_step_all9", func(b *testing.B) {
			saved := activeKernel
			activeKernel = kern
			defer func() { activeKernel = saved }()
			benchMLPStep(b, Sgemm)
		})
	}
}

// BenchmarkSgemmParallel runs the MLP shapes with the best kernel over 2 goroutines.
func BenchmarkSgemmParallel(b *testing.B) {
	for _, s := range mlpShapes {
		b.Run(s.name, func(b *testing.B) {
			a, lda, bm, ldb, c := benchOperands(s)
			b.ReportAllocs()
			for b.Loop() {
				SgemmParallel(2, s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
			}
			reportGFLOPS(b, s)
		})
	}
}

// BenchmarkGonumSgemm is the pure-Go baseline this package replaces.
func BenchmarkGonumSgemm(b *testing.B) {
	for _, s := range mlpShapes {
		b.Run(s.name, func(b *testing.B) {
			a, lda, bm, ldb, c := benchOperands(s)
			b.ReportAllocs()
			for b.Loop() {
				gonum.Implementation{}.Sgemm(gonumTrans(s.transA), gonumTrans(s.transB), s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
			}
			reportGFLOPS(b, s)
		})
	}
}
