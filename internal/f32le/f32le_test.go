package f32le

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// TestRoundTripAndLayout checks that Append writes each value's IEEE bits little-endian
// (NaN payloads, infinities, signed zeros and subnormals included), after what b held, and
// that Read gives back the same bits; the portable loop is checked against the same bytes.
func TestRoundTripAndLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	v := []float32{0, float32(math.Copysign(0, -1)), 1, -2.5, float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fc00001), math.Float32frombits(0x00000001), math.MaxFloat32}
	for range 1000 {
		v = append(v, math.Float32frombits(rng.Uint32()))
	}
	prefix := []byte{9, 8, 7}
	b := Append(append([]byte(nil), prefix...), v)
	if len(b) != len(prefix)+4*len(v) || string(b[:3]) != string(prefix) {
		t.Fatalf("Append: %d bytes, prefix %v", len(b), b[:3])
	}
	for i, x := range v {
		if got := binary.LittleEndian.Uint32(b[3+4*i:]); got != math.Float32bits(x) {
			t.Fatalf("value %d: bytes hold %#x, want %#x", i, got, math.Float32bits(x))
		}
	}
	back := make([]float32, len(v))
	Read(back, b[3:])
	for i := range v {
		if math.Float32bits(back[i]) != math.Float32bits(v[i]) {
			t.Fatalf("value %d: read %#x, wrote %#x", i, math.Float32bits(back[i]), math.Float32bits(v[i]))
		}
	}
	// The loop that big-endian machines take writes and reads the same bytes.
	defer func(n bool) { native = n }(native)
	native = false
	b2 := Append(nil, v)
	if string(b2) != string(b[3:]) {
		t.Fatal("the portable loop writes other bytes than the bulk copy")
	}
	back2 := make([]float32, len(v))
	Read(back2, b2)
	for i := range v {
		if math.Float32bits(back2[i]) != math.Float32bits(v[i]) {
			t.Fatalf("portable read, value %d: %#x, want %#x", i, math.Float32bits(back2[i]), math.Float32bits(v[i]))
		}
	}
	if got := Append(nil, nil); len(got) != 0 {
		t.Fatalf("Append of nothing: %d bytes", len(got))
	}
}

// BenchmarkAppend reports the bytes per second Append encodes (a 1.5M-weight model).
func BenchmarkAppend(b *testing.B) {
	v := make([]float32, 1_500_000)
	var buf []byte
	b.SetBytes(int64(4 * len(v)))
	for b.Loop() {
		buf = Append(buf[:0], v)
	}
}
