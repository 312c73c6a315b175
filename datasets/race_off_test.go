//go:build !race

package datasets_test

// mnistTestRows is how many MNIST rows TestMNIST reads: all of them.
const mnistTestRows = 70000
