//go:build race

package features

// raceEnabled shrinks the heavier tests under the race detector, which slows them ~10×.
const raceEnabled = true
