package f32le

import (
	"encoding/binary"
	"math"
	"slices"
	"unsafe"
)

// native reports whether this machine stores a float32's bits little-endian.
var native = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Append appends the 4·len(v) bytes of v to b.
func Append(b []byte, v []float32) []byte {
	n := len(b)
	b = slices.Grow(b, 4*len(v))[:n+4*len(v)]
	Put(b[n:], v)
	return b
}

// Put writes v into the first 4·len(v) bytes of b, which must hold them.
func Put(b []byte, v []float32) {
	_ = b[:4*len(v)]
	if len(v) == 0 {
		return
	}
	if native {
		copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
		return
	}
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
}

// Read fills v from the first 4·len(v) bytes of b, which must hold them.
func Read(v []float32, b []byte) {
	_ = b[:4*len(v)]
	if len(v) == 0 {
		return
	}
	if native {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)), b)
		return
	}
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}
