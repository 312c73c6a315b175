//go:build race

package sgemm

// raceEnabled trims test sizes: the race detector slows the Go packing and reference code
// (not the assembly) by an order of magnitude, and sync.Pool drops items at random under it.
const raceEnabled = true
