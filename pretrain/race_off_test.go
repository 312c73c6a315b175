//go:build !race

package pretrain

// raceEnabled shrinks the MNIST test under the race detector (CI: go test -race on 2 cores).
const raceEnabled = false

// ciMargin is the accuracy lead arm 3 (DAE + pseudo-labels) must have over arm 1 (supervised
// only) in TestMNISTPretrainingBeatsSupervised. Measured leads over seeds 1-3: 0.0395, 0.0445,
// 0.034 (rescaled masking; 0.040, 0.0425, 0.0395 before it).
const ciMargin = 0.02
