//go:build race

package datasets_test

// mnistBatchRows is larger under the race detector: fewer, bigger batches cost less.
const mnistBatchRows = 20000
