//go:build race

package graphmodel

// raceEnabled shrinks the learning workloads under the race detector (CI: go test -race on 2
// cores).
const raceEnabled = true
