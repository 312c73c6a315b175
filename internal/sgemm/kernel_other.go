//go:build !amd64 || purego

package sgemm

// supportedKernels lists the kernels this CPU can run, fastest first.
func supportedKernels() []*microKernel { return []*microKernel{genericKernel} }

func bestKernel() *microKernel { return genericKernel }
