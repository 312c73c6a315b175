//go:build !(linux || darwin || freebsd)

package train

import (
	"encoding/binary"
	"io"
	"math"
	"os"
)

// Without mmap the rows are read into memory: correct, but not bounded by the budget.
func mapFile(f *os.File, size int) ([]byte, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, int64(size)), b); err != nil {
		return nil, err
	}
	return b, nil
}

func unmap([]byte) error { return nil }

func dropPages([]byte) {}

func floatsOf(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func readFloats(f *os.File, dst []float32, off int64) error {
	b := make([]byte, 4*len(dst))
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return nil
}

// littleEndian is x's bytes in the file's order, converted in buf.
func littleEndian(x []float32, buf *[]byte) []byte {
	if cap(*buf) < 4*len(x) {
		*buf = make([]byte, 4*len(x))
	}
	b := (*buf)[:4*len(x)]
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}
