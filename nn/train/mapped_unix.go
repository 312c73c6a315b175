//go:build linux || darwin || freebsd

package train

import (
	"os"
	"syscall"
	"unsafe"
)

func mapFile(f *os.File, size int) ([]byte, error) {
	b, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	// Rows are read in a random order: no read-ahead around a faulting row.
	_ = syscall.Madvise(b, syscall.MADV_RANDOM)
	return b, nil
}

func unmap(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	return syscall.Munmap(b)
}

func dropPages(b []byte) { _ = syscall.Madvise(b, syscall.MADV_DONTNEED) }

// floatsOf views the mapping as float32s (little-endian hosts: the file is little-endian).
func floatsOf(b []byte) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// readFloats reads len(dst) little-endian float32s at off (little-endian hosts).
func readFloats(f *os.File, dst []float32, off int64) error {
	if len(dst) == 0 {
		return nil
	}
	_, err := f.ReadAt(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst)), off)
	return err
}

// littleEndian is x's bytes in the file's order: x itself on little-endian hosts.
func littleEndian(x []float32, _ *[]byte) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}
