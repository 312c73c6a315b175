package tableio

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// delimiterCandidates are the separators that a file read with another delimiter may really
// use.
var delimiterCandidates = []byte{',', ';', '\t', '|'}

// quoteDelimiter writes a delimiter as TOML writes it: ";" or "\t".
func quoteDelimiter(c byte) string { return strconv.Quote(string(c)) }

// suspectDelimiter returns the separator that a one-column header seems to use instead of
// delim (the candidate it holds most often), or 0.
func suspectDelimiter(header []string, delim byte) byte {
	if len(header) != 1 {
		return 0
	}
	best, bestN := byte(0), 0
	for _, c := range delimiterCandidates {
		if c == delim {
			continue
		}
		if n := strings.Count(header[0], string(c)); n > bestN {
			best, bestN = c, n
		}
	}
	return best
}

// delimiterWarning is the warning of a file whose header reads as one column that holds the
// separator suspect.
func delimiterWarning(name, header string, delim, suspect byte) string {
	return fmt.Sprintf("%s: the header reads as one column %q: the file looks separated by %s, not %s; set delimiter = %s on the source",
		name, errorValue([]byte(header)), quoteDelimiter(suspect), quoteDelimiter(delim), quoteDelimiter(suspect))
}

// rowDelimiter returns a candidate separator other than delim that splits the first line of
// row into exactly want fields (quotes are not considered), or 0.
func rowDelimiter(row []byte, delim byte, want int) byte {
	if i := bytes.IndexByte(row, '\n'); i >= 0 {
		row = row[:i]
	}
	for _, c := range delimiterCandidates {
		if c != delim && want > 1 && bytes.Count(row, []byte{c})+1 == want {
			return c
		}
	}
	return 0
}

// separatorIn returns the first candidate separator other than delim that text holds, or 0.
func separatorIn(text []byte, delim byte) byte {
	for _, c := range delimiterCandidates {
		if c != delim && bytes.IndexByte(text, c) >= 0 {
			return c
		}
	}
	return 0
}

// decimalComma reports whether text is a number written with a decimal comma ("-1,5").
func decimalComma(text []byte) bool {
	i := bytes.IndexByte(text, ',')
	if i < 0 || bytes.Count(text, []byte{','}) != 1 {
		return false
	}
	dotted := append(append(append([]byte(nil), text[:i]...), '.'), text[i+1:]...)
	_, st := parseFloat64Bytes(dotted)
	return st == numberOK
}
