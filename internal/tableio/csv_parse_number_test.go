package tableio

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestParseFloat64BytesMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := []string{"0", "-0", "1", "1.", ".5", "-.5", "3.14159", "1e10", "1E-10", "+2.5e+3",
		"123456789012345678", "1234567890123456789", "12345678901234567890", "0.000000000000000000001",
		"9007199254740993", "1e22", "1e23", "1e-22", "1e-23", "4.9e-324", "1.7976931348623157e308",
		"0001.2500", "0x1p-2"}
	for i := 0; i < 20000; i++ {
		f := math.Float64frombits(rng.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		switch i % 4 {
		case 0:
			inputs = append(inputs, strconv.FormatFloat(f, 'g', -1, 64))
		case 1:
			inputs = append(inputs, strconv.FormatFloat(rng.NormFloat64()*1000, 'f', rng.IntN(12), 64))
		case 2:
			inputs = append(inputs, strconv.FormatFloat(rng.Float64(), 'e', rng.IntN(17), 64))
		case 3:
			inputs = append(inputs, strconv.Itoa(rng.IntN(1<<30)-1<<29))
		}
	}
	for _, s := range inputs {
		want, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("bad test input %q", s)
		}
		got, st := parseFloat64Bytes([]byte(s))
		if st != numberOK || math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("parseFloat64Bytes(%q) = %v (%d), strconv says %v", s, got, st, want)
		}
	}
}

func TestParseNumberRejects(t *testing.T) {
	for _, tc := range []struct {
		in    string
		float numberStatus
		isInt bool
	}{
		{"", numberBad, false},
		{"-", numberBad, false},
		{".", numberBad, false},
		{"1e", numberBad, false},
		{"1.5.2", numberBad, false},
		{"12k", numberBad, false},
		{"NaN", numberNonFin, false},
		{"-inf", numberNonFin, false},
		{"Infinity", numberNonFin, false},
		{"1e999", numberNonFin, false},
		{"9223372036854775807", numberOK, true},
		{"9223372036854775808", numberOK, false},
		{"-9223372036854775808", numberOK, true},
		{"-9223372036854775809", numberOK, false},
	} {
		if _, st := parseFloat64Bytes([]byte(tc.in)); st != tc.float {
			t.Errorf("parseFloat64Bytes(%q) status %d, want %d", tc.in, st, tc.float)
		}
		v, ok := parseInt64Bytes([]byte(tc.in))
		if ok != tc.isInt {
			t.Errorf("parseInt64Bytes(%q) ok = %v, want %v", tc.in, ok, tc.isInt)
		}
		if ok {
			if want, _ := strconv.ParseInt(tc.in, 10, 64); v != want {
				t.Errorf("parseInt64Bytes(%q) = %d, want %d", tc.in, v, want)
			}
		}
	}
}
