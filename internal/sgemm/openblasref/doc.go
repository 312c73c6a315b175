// Package openblasref exposes OpenBLAS's cblas_sgemm for side-by-side benchmarks of package
// sgemm. It is empty unless built with -tags openblas (which needs cgo and libopenblas-dev);
// the production build never links OpenBLAS.
package openblasref
