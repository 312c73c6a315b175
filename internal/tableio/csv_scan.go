package tableio

import "bytes"

// scanRow finds the end of the CSV row that starts at data[pos]: the index just after the
// first '\n' that lies outside quotes, and the number of '\n' the row spans (its physical
// lines). ok is false when no such '\n' exists in data (the row is incomplete, or is the
// last row of an input without a trailing newline).
//
// Quote state is tracked by parity: in RFC 4180 text every quote either opens or closes a
// quoted field or is half of a doubled quote, so a line segment with an odd number of quotes
// toggles the state. Both searches are SIMD-accelerated byte scans in the standard library.
func scanRow(data []byte, pos int) (end, lines int, ok bool) {
	inQuote := false
	i := pos
	for {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			return len(data), lines, false
		}
		seg := data[i : i+j]
		if inQuote || bytes.IndexByte(seg, '"') >= 0 {
			if bytes.Count(seg, quoteByte)%2 == 1 {
				inQuote = !inQuote
			}
		}
		lines++
		i += j + 1
		if !inQuote {
			return i, lines, true
		}
	}
}

var quoteByte = []byte{'"'}

// isBlankRow reports whether a row's bytes (with or without its terminator) are an empty line.
func isBlankRow(row []byte) bool {
	switch len(row) {
	case 0:
		return true
	case 1:
		return row[0] == '\n' || row[0] == '\r'
	case 2:
		return row[0] == '\r' && row[1] == '\n'
	}
	return false
}

// fieldProblem is what readField found wrong with a field.
type fieldProblem uint8

const (
	fieldOK           fieldProblem = iota
	fieldBareQuote                 // a quote inside an unquoted field
	fieldUnterminated              // a quoted field without its closing quote
	fieldAfterQuote                // a character other than a delimiter or line end after a closing quote
)

// fieldReader splits fields; it keeps a scratch buffer for unescaping doubled quotes.
type fieldReader struct {
	delim   byte
	scratch []byte
}

// readField reads the field that starts at data[pos]. It returns the field's text (unquoted
// and unescaped; it aliases data or the reader's scratch buffer and is valid until the next
// call), whether it was quoted, the index of its terminator (a delimiter, the '\r' of a
// "\r\n", a '\n', or len(data)), and the number of '\n' inside a quoted field.
func (fr *fieldReader) readField(data []byte, pos int) (text []byte, quoted bool, end, newlines int, problem fieldProblem) {
	if pos < len(data) && data[pos] == '"' {
		return fr.readQuoted(data, pos)
	}
	delim := fr.delim
	i := pos
	bare := false
	for i < len(data) {
		c := data[i]
		if c == delim || c == '\n' {
			break
		}
		if c == '"' {
			bare = true
		}
		i++
	}
	end = i
	if end > pos && data[end-1] == '\r' && (end == len(data) || data[end] == '\n') {
		end--
	}
	if bare {
		problem = fieldBareQuote
	}
	return data[pos:end], false, end, 0, problem
}

func (fr *fieldReader) readQuoted(data []byte, pos int) (text []byte, quoted bool, end, newlines int, problem fieldProblem) {
	start := pos + 1
	i := start
	escaped := false
	for {
		j := bytes.IndexByte(data[i:], '"')
		if j < 0 {
			newlines += bytes.Count(data[i:], newlineByte)
			return data[start:], true, len(data), newlines, fieldUnterminated
		}
		newlines += bytes.Count(data[i:i+j], newlineByte)
		i += j
		if i+1 < len(data) && data[i+1] == '"' {
			escaped = true
			i += 2
			continue
		}
		break
	}
	text = data[start:i]
	end = i + 1
	if end < len(data) {
		c := data[end]
		crlf := c == '\r' && (end+1 == len(data) || data[end+1] == '\n')
		if c != fr.delim && c != '\n' && !crlf {
			problem = fieldAfterQuote
		}
	}
	if escaped {
		fr.scratch = fr.scratch[:0]
		for k := 0; k < len(text); k++ {
			fr.scratch = append(fr.scratch, text[k])
			if text[k] == '"' {
				k++ // skip the second quote of a doubled pair
			}
		}
		text = fr.scratch
	}
	return text, true, end, newlines, problem
}

var newlineByte = []byte{'\n'}

// afterTerminator returns the start of the next row given the index of a row terminator
// returned by readField ('\r' of "\r\n", '\n' or len(data)).
func afterTerminator(data []byte, end int) int {
	if end >= len(data) {
		return len(data)
	}
	if data[end] == '\r' {
		if end+1 < len(data) && data[end+1] == '\n' {
			return end + 2
		}
		return end + 1
	}
	return end + 1
}

// splitRecord splits the row that starts at data[pos] into its fields (copied), for the header
// and for type inference. It returns the fields, the start of the next row, the row's
// physical lines, and the first field problem met; a row with a problem is resynchronised on
// the row end that scanRow finds, as the block parser does.
func (fr *fieldReader) splitRecord(data []byte, pos int) (fields []string, next, lines int, problem fieldProblem) {
	rowStart := pos
	lines = 1
	for {
		text, _, end, nl, p := fr.readField(data, pos)
		if p != fieldOK {
			e, l, ok := scanRow(data, rowStart)
			if !ok {
				l = bytes.Count(data[rowStart:], newlineByte) + 1
			}
			return fields, e, l, p
		}
		lines += nl
		fields = append(fields, string(text))
		if end < len(data) && data[end] == fr.delim {
			pos = end + 1
			continue
		}
		return fields, afterTerminator(data, end), lines, fieldOK
	}
}

// visitRecord calls visit for each field of the row that starts at data[pos], with the field's
// text (valid only during the call), without allocating. It returns the number of fields, the
// start of the next row and the first field problem (the row is then resynchronised like in
// splitRecord and visit is not called for the rest of it).
func (fr *fieldReader) visitRecord(data []byte, pos int, visit func(j int, text []byte, quoted bool)) (nfields, next int, problem fieldProblem) {
	rowStart := pos
	for {
		text, quoted, end, _, p := fr.readField(data, pos)
		if p != fieldOK {
			e, _, _ := scanRow(data, rowStart)
			return nfields, e, p
		}
		visit(nfields, text, quoted)
		nfields++
		if end < len(data) && data[end] == fr.delim {
			pos = end + 1
			continue
		}
		return nfields, afterTerminator(data, end), fieldOK
	}
}
