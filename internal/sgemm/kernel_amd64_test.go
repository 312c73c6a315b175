//go:build amd64 && !purego

package sgemm

import (
	"testing"

	"golang.org/x/sys/cpu"
)

// TestKernelMatchesCPU checks the run-time dispatch picks the widest kernel the CPU runs.
func TestKernelMatchesCPU(t *testing.T) {
	want := "generic"
	switch {
	case cpu.X86.HasAVX512F:
		want = "avx512"
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		want = "avx2"
	}
	if got := Kernel(); got != want {
		t.Fatalf("Kernel() = %q, want %q for this CPU (AVX512F=%v AVX2=%v FMA=%v)", got, want, cpu.X86.HasAVX512F, cpu.X86.HasAVX2, cpu.X86.HasFMA)
	}
}
