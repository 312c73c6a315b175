package gemm

import (
	"sort"
	"sync"
)

// Backend computes C = alpha·op(A)·op(B) + beta·C for row-major float32 matrices, where op(X)
// is X or Xᵀ. op(A) is m×k, op(B) is k×n and C is m×n. lda, ldb and ldc are the row strides of
// the stored A, B and C. When beta is 0, C is overwritten without being read (NaNs in C do not
// propagate).
type Backend interface {
	Name() string
	Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
}

var (
	mu         sync.RWMutex
	current    = builtinDefault()
	registered = func() map[string]Backend {
		m := map[string]Backend{}
		for _, b := range builtinBackends() {
			m[b.Name()] = b
		}
		return m
	}()
)

// Default returns the process-wide backend: the one set by SetDefault; else OpenBLAS when built
// with the openblas tag; else the Go-assembly SGEMM (Asm) on amd64 with AVX2 or AVX-512; else
// gonum.
func Default() Backend {
	mu.RLock()
	defer mu.RUnlock()
	return current
}

// SetDefault makes b the process-wide backend. It is safe for concurrent use, but models read
// the backend when they are built, so call it at start-up.
func SetDefault(b Backend) {
	if b == nil {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	current = b
	registered[b.Name()] = b
}

// Register makes b available by name (see Lookup and Available) without making it the default.
func Register(b Backend) {
	mu.Lock()
	defer mu.Unlock()
	registered[b.Name()] = b
}

// Lookup returns the registered backend with the given name.
func Lookup(name string) (Backend, bool) {
	mu.RLock()
	defer mu.RUnlock()
	b, ok := registered[name]
	return b, ok
}

// Available lists the registered backends, sorted by name.
func Available() []Backend {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]Backend, 0, len(registered))
	for _, b := range registered {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}
