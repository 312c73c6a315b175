package optim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/pipe-ml/pipe/internal/f32le"
)

// stateMagic opens every serialized state of this package; the version follows it. Version 2
// added each param's decay-phase step count (Adam's beta1_decay); version 1 states are read
// with that count at 0.
const (
	stateMagic   = "pipe/optim"
	stateVersion = 2
)

// stateWriter appends little-endian values to a byte slice. Floats are stored as their IEEE
// bits, so a round trip is bit-exact (NaN payloads included).
type stateWriter struct{ b []byte }

func newStateWriter(kind string) *stateWriter {
	w := &stateWriter{}
	w.string(stateMagic)
	w.uint64(stateVersion)
	w.string(kind)
	return w
}

func (w *stateWriter) uint64(v uint64)   { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *stateWriter) int64(v int64)     { w.uint64(uint64(v)) }
func (w *stateWriter) float64(v float64) { w.uint64(math.Float64bits(v)) }
func (w *stateWriter) string(s string) {
	w.uint64(uint64(len(s)))
	w.b = append(w.b, s...)
}
func (w *stateWriter) float32s(v []float32) {
	w.uint64(uint64(len(v)))
	w.b = f32le.Append(w.b, v)
}

var errTruncated = errors.New("truncated state")

// stateReader reads what stateWriter wrote; the first error sticks and later reads return zero
// values, so callers check err once at the end.
type stateReader struct {
	b       []byte
	err     error
	version uint64
}

// newStateReader checks the header and that the state was written by kind.
func newStateReader(b []byte, kind string) (*stateReader, error) {
	r := &stateReader{b: b}
	if m := r.string(); r.err != nil || m != stateMagic {
		return nil, fmt.Errorf("not a pipe optim state (bad header)")
	}
	r.version = r.uint64()
	if r.err == nil && (r.version < 1 || r.version > stateVersion) {
		return nil, fmt.Errorf("optim state version %d, this build reads versions 1 to %d", r.version, stateVersion)
	}
	if k := r.string(); k != kind {
		return nil, fmt.Errorf("state was saved by %q, cannot restore it into %q", k, kind)
	}
	return r, r.err
}

func (r *stateReader) uint64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.err = errTruncated
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}
func (r *stateReader) int64() int64     { return int64(r.uint64()) }
func (r *stateReader) float64() float64 { return math.Float64frombits(r.uint64()) }

// length reads a count of items of size bytes each and checks that many bytes remain.
func (r *stateReader) length(size int) int {
	n := r.uint64()
	if r.err == nil && n > uint64(len(r.b)/size) {
		r.err = errTruncated
		return 0
	}
	return int(n)
}

func (r *stateReader) string() string {
	n := r.length(1)
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *stateReader) float32s() []float32 {
	n := r.length(4)
	if r.err != nil {
		return nil
	}
	v := make([]float32, n)
	f32le.Read(v, r.b)
	r.b = r.b[4*n:]
	return v
}

// finish reports the first read error, or trailing bytes.
func (r *stateReader) finish() error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%d unexpected trailing bytes in state", len(r.b))
	}
	return nil
}

// sortedKeys returns the keys of m in increasing order, so serialized state is deterministic.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
