//go:build race

package datasets_test

// mnistTestRows is how many MNIST rows TestMNIST reads: under the race detector, the first
// 3,000 (the instrumented pixel transpose of all 70,000 rows takes ~30 s); the full-set
// checks (the train/test boundary) run in the normal build.
const mnistTestRows = 3000
