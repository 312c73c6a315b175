package tableio

import (
	"fmt"
	"github.com/pipe-ml/pipe/internal/names"
	"strings"
)

// RowError is a data error in one row of a text input, with its exact place. Its Error text
// reads like
//
//	credit.csv:118: row 117, column "income": expected float64, found "12k". Fix the value, declare the column as string in [stages.load.schema], or set on_bad_row = "skip".
//
// Errors returned by CSVReader.Err that concern one row are a *RowError (use errors.As).
type RowError struct {
	File     string // the input's name (CSVOptions.Name)
	Line     int64  // 1-based physical line where the row starts (the header is line 1)
	Row      int64  // 1-based data row number; the header and blank lines are not rows
	Column   string // the column, or "" when the error concerns the whole row
	Value    string // the offending field text (cut to 64 bytes), when there is one
	Expected string // what the column expected (a type such as "float64"), or ""
	Reason   string // the problem when Expected is empty, e.g. "expected 3 fields, found 4"
	Hint     string // what the user can do about it
}

// Error formats the error as file:line: row N, column "c": problem. Hint
func (e *RowError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: row %d", e.File, e.Line, e.Row)
	if e.Column != "" {
		fmt.Fprintf(&b, ", column %q", e.Column)
	}
	b.WriteString(": ")
	if e.Expected != "" {
		fmt.Fprintf(&b, "expected %s, found %q", e.Expected, e.Value)
	} else {
		b.WriteString(e.Reason)
	}
	b.WriteString(".")
	if e.Hint != "" {
		b.WriteString(" ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// maxErrorValue bounds RowError.Value so that a runaway quoted field does not flood a log.
const maxErrorValue = 64

func errorValue(b []byte) string {
	if len(b) > maxErrorValue {
		return string(b[:maxErrorValue]) + "..."
	}
	return string(b)
}

// columnList joins column names for an error message: the first 20, then how many more, so
// that a table of 784 pixel columns does not flood the message.
func columnList(list []string) string { return names.List(list, 20) }
