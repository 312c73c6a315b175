//go:build !race

package datasets_test

// mnistBatchRows is the batch size TestMNIST reads with.
const mnistBatchRows = 7000
