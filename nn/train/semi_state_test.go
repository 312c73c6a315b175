package train

import (
	"bytes"
	"encoding/gob"
	"math"
	"slices"
	"testing"
)

// TestSemiStateDecoderValues checks that the ladder decoder's values survive a round trip
// through encodeSemiState (stored as raw bits, NaN payloads included), that a state written
// before CombinatorBits existed (Combinator encoded by gob) still decodes, and that a
// damaged length is refused.
func TestSemiStateDecoderValues(t *testing.T) {
	vals := []float32{1, -2.5, float32(math.Inf(-1)), math.Float32frombits(0x7fc00123), 3e-39}
	same := func(a, b []float32) bool {
		return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
	}
	b, err := encodeSemiState(semiState{Version: semiStateVersion, Method: SemiLadder, Combinator: vals, CombinatorOptimizer: []byte{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeSemiState(b)
	if err != nil || !same(st.Combinator, vals) || st.CombinatorBits != nil || !bytes.Equal(st.CombinatorOptimizer, []byte{1, 2}) {
		t.Fatalf("round trip: %v, %v (bits %d)", err, st.Combinator, len(st.CombinatorBits))
	}

	var old bytes.Buffer // the encoding of the states written before CombinatorBits
	if err := gob.NewEncoder(&old).Encode(semiState{Version: semiStateVersion, Method: SemiLadder, Combinator: vals}); err != nil {
		t.Fatal(err)
	}
	if st, err := decodeSemiState(old.Bytes()); err != nil || !same(st.Combinator, vals) {
		t.Fatalf("a state in the earlier encoding: %v, %v", err, st.Combinator)
	}

	var bad bytes.Buffer
	if err := gob.NewEncoder(&bad).Encode(semiState{Version: semiStateVersion, Method: SemiLadder, CombinatorBits: []byte{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeSemiState(bad.Bytes()); err == nil {
		t.Fatal("3 bytes of decoder values decoded")
	}
}
