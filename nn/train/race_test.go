//go:build race

package train

// raceEnabled shrinks test workloads under the race detector (CI: go test -race on 2 cores).
const raceEnabled = true
