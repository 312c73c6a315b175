//go:build !race

package stages

// raceEnabled shortens the heavier tests under the race detector, which slows them ~10×.
const raceEnabled = false
