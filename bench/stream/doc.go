// Command stream measures training on data larger than the memory budget (issue #20).
//
//	go run ./bench/stream gen -dir DIR -rows N      writes DIR/train.parquet (N rows), val.parquet and test.parquet
//	go run ./bench/stream run -dir DIR -budget 512MiB [-limit N] [-epochs E]
//
// run trains an MLP on DIR's train rows (the first limit of them) in this process, with the
// run's memory budget, and prints one JSON line: the train stage's data path and seconds, its
// rows per second (rows × epochs / stage seconds, loading included), the test accuracy and
// the process's peak RSS (VmHWM). Run each configuration in its own process. See README.md.
package main
