// Package cli implements the pipe command: run, validate, graph, docs, datasets, summary,
// runs, show, compare, gradcheck and predict. It parses flags and calls the library packages;
// it holds no logic of its own beyond presentation (console or JSON logs, the progress bar,
// the run listing and tables, exit codes).
package cli
