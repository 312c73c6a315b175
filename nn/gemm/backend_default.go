//go:build !(openblas && cgo)

package gemm

import "github.com/pipe-ml/pipe/internal/sgemm"

// builtinDefault picks the Go-assembly SGEMM when the CPU has AVX2 or AVX-512, else gonum.
func builtinDefault() Backend {
	if sgemm.Kernel() != "generic" {
		return Asm{}
	}
	return Gonum{}
}

func builtinBackends() []Backend { return []Backend{Gonum{}, Asm{}} }
