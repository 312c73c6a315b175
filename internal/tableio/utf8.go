package tableio

import (
	"fmt"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Text columns must hold UTF-8. Bytes that are not UTF-8 (a Latin-1 or Windows-1252 export,
// say) are an error naming the file, row and column, at training and at prediction alike:
// kept as they are, they would reach JSON files (an encoder's categories in a model bundle),
// which replace them with U+FFFD, so a category seen in training would be unknown when the
// bundle predicts.

// utf8Hint says what to do about text that is not UTF-8.
const utf8Hint = "re-encode the file as UTF-8 (for example iconv -f latin1 -t utf-8 in.csv > out.csv)"

// invalidUTF8 describes the first invalid byte of b: "byte 0xe9 at offset 3".
func invalidUTF8(b []byte) string {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return fmt.Sprintf("byte 0x%02x at offset %d", b[i], i)
		}
		i += size
	}
	return "an invalid sequence"
}

// firstInvalidUTF8 returns the column and row of the first value of a utf8 or large_utf8
// column of rec (or of a dictionary of them) that is not UTF-8, or ok = true.
func firstInvalidUTF8(rec arrow.RecordBatch) (col, row int, value []byte, ok bool) {
	for j, c := range rec.Columns() {
		if r, v, bad := invalidUTF8In(c); bad {
			return j, r, v, false
		}
	}
	return 0, 0, nil, true
}

func invalidUTF8In(c arrow.Array) (row int, value []byte, bad bool) {
	switch a := c.(type) {
	case *array.String:
		for i := 0; i < a.Len(); i++ {
			if a.IsValid(i) && !utf8.ValidString(a.Value(i)) {
				return i, []byte(a.Value(i)), true
			}
		}
	case *array.LargeString:
		for i := 0; i < a.Len(); i++ {
			if a.IsValid(i) && !utf8.ValidString(a.Value(i)) {
				return i, []byte(a.Value(i)), true
			}
		}
	case *array.Dictionary:
		k, v, bad := invalidUTF8In(a.Dictionary())
		if !bad {
			return 0, nil, false
		}
		for i := 0; i < a.Len(); i++ {
			if a.IsValid(i) && a.GetValueIndex(i) == k {
				return i, v, true
			}
		}
	}
	return 0, nil, false
}
