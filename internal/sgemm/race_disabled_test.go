//go:build !race

package sgemm

// raceEnabled trims test sizes under the race detector; see race_enabled_test.go.
const raceEnabled = false
