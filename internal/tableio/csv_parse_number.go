package tableio

import (
	"math"
	"strconv"
)

// numberStatus classifies a field during numeric parsing.
type numberStatus uint8

const (
	numberOK     numberStatus = iota // a finite number
	numberNonFin                     // a NaN or an infinity (literal or overflow)
	numberBad                        // not a number of the wanted type
)

// parseInt64Bytes parses a decimal integer with an optional sign, without allocating.
func parseInt64Bytes(b []byte) (int64, bool) {
	i := 0
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		i = 1
	}
	if i == len(b) {
		return 0, false
	}
	var v uint64
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c > 9 {
			return 0, false
		}
		if v > (math.MaxUint64-9)/10 {
			return 0, false
		}
		v = v*10 + uint64(c)
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true
	}
	if v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

// exactPow10 holds the powers of ten that float64 represents exactly.
var exactPow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat64Bytes parses a decimal float. Plain forms ([sign]digits[.digits][e[sign]digits]
// with at most 19 significant digits, mantissa < 2^53 and |exponent| <= 22) take an exact
// fast path (Clinger's: one correctly rounded multiply or divide); every other form falls back
// to strconv.ParseFloat, which allocates one string. NaN, infinities and overflow report
// numberNonFin.
func parseFloat64Bytes(b []byte) (float64, numberStatus) {
	i := 0
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		i = 1
	}
	var mant uint64
	digits := 0 // significant digits consumed into mant
	exp := 0
	sawDigit := false
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c > 9 {
			break
		}
		sawDigit = true
		if mant == 0 && c == 0 {
			continue // leading zeros are not significant
		}
		if digits >= 19 {
			return parseFloatSlow(b)
		}
		mant = mant*10 + uint64(c)
		digits++
	}
	if i < len(b) && b[i] == '.' {
		i++
		for ; i < len(b); i++ {
			c := b[i] - '0'
			if c > 9 {
				break
			}
			sawDigit = true
			if mant == 0 && c == 0 {
				exp--
				continue
			}
			if digits >= 19 {
				return parseFloatSlow(b)
			}
			mant = mant*10 + uint64(c)
			digits++
			exp--
		}
	}
	if !sawDigit {
		return parseFloatSlow(b)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '-' || b[i] == '+') {
			eneg = b[i] == '-'
			i++
		}
		if i == len(b) {
			return 0, numberBad
		}
		e := 0
		for ; i < len(b); i++ {
			c := b[i] - '0'
			if c > 9 {
				return 0, numberBad
			}
			if e > 10000 {
				return parseFloatSlow(b)
			}
			e = e*10 + int(c)
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if i != len(b) {
		return parseFloatSlow(b)
	}
	if mant>>53 != 0 || exp < -22 || exp > 22 {
		return parseFloatSlow(b)
	}
	f := float64(mant)
	if exp < 0 {
		f /= exactPow10[-exp]
	} else {
		f *= exactPow10[exp]
	}
	if neg {
		f = -f
	}
	return f, numberOK
}

// parseFloatSlow is the strconv fallback for unusual forms (many digits, large exponents,
// hexadecimal floats, NaN and infinity literals).
func parseFloatSlow(b []byte) (float64, numberStatus) {
	f, err := strconv.ParseFloat(string(b), 64)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// Literals such as "NaN" or "-Inf" parse without error; "1e400" overflows with
		// ErrRange and ±Inf: both are non-finite.
		if err == nil || isRangeError(err) {
			return f, numberNonFin
		}
	}
	if err != nil {
		return 0, numberBad
	}
	return f, numberOK
}

func isRangeError(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// parseBoolBytes accepts true/false in lower, upper or title case.
func parseBoolBytes(b []byte) (value, ok bool) {
	switch string(b) { // the compiler does not allocate for a switch on string(b)
	case "true", "True", "TRUE":
		return true, true
	case "false", "False", "FALSE":
		return false, true
	}
	return false, false
}
