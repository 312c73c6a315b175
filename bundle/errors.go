package bundle

import (
	"fmt"
	"strings"
)

// ColumnError is a problem with the data of one column: a missing value, a non-finite number,
// a label the model was not trained on, a missing column. It names the place as precisely as
// it is known; the pipeline's stages turn it into a data error of the stage that read it.
type ColumnError struct {
	Table  string // the table or file the rows came from ("" when unknown)
	Row    int64  // the row's _row id + 1 (1-based); 0 when the problem is not one row's
	Column string
	Msg    string
	Hint   string // what to do
}

func (e *ColumnError) Error() string {
	var b strings.Builder
	if e.Table != "" {
		b.WriteString(e.Table)
		b.WriteString(": ")
	}
	if e.Row > 0 {
		fmt.Fprintf(&b, "row %d: ", e.Row)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, "column %q: ", e.Column)
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(". ")
		b.WriteString(e.Hint)
	}
	return b.String()
}
