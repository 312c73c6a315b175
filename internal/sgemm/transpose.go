package sgemm

import "fmt"

// Transpose sets dst[j*ldd+i] = src[i*lds+j] for i < rows, j < cols: the rows×cols matrix
// src (row stride lds) transposed into the cols×rows matrix dst (row stride ldd). Eight rows
// of src go at a time through the AVX transpose that packs Bᵀ; the rest, and every row on
// CPUs without AVX, in Go. It panics when a stride is smaller than its row length or a slice
// is too short.
func Transpose(dst []float32, ldd int, src []float32, lds int, rows, cols int) {
	if rows < 0 || cols < 0 {
		panic(fmt.Sprintf("sgemm: Transpose of a %d×%d matrix", rows, cols))
	}
	checkMatrix("src", rows, cols, src, lds)
	checkMatrix("dst", cols, rows, dst, ldd)
	if rows == 0 || cols == 0 {
		return
	}
	i := 0
	for ; i+8 <= rows; i += 8 {
		transpose8xK(dst[i:], ldd, src[i*lds:], lds, cols)
	}
	for ; i < rows; i++ {
		row := src[i*lds : i*lds+cols]
		for j, v := range row {
			dst[j*ldd+i] = v
		}
	}
}
