//go:build !race

package pretrain

// raceEnabled shortens the heavier tests under the race detector, which slows them ~10×.
const raceEnabled = false
