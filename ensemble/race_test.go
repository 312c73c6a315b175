//go:build race

package ensemble

// raceEnabled shrinks test workloads under the race detector (CI: go test -race on 2 cores).
const raceEnabled = true
