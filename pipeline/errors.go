package pipeline

import (
	"errors"
	"fmt"
	"strings"
)

// ConfigError is one problem in a pipeline file. Validation collects every ConfigError and
// returns them joined (errors.Join); use errors.As or ConfigErrors to inspect them.
type ConfigError struct {
	File  string // the pipeline file, or "--set" for a command-line override
	Arg   string // with File "--set": the argument as given ("model.epochs=abc")
	Line  int    // 1-based; 0 when unknown
	Col   int    // 1-based; 0 when unknown
	Stage string // the stage name, when the problem is inside a stage
	Key   string // the key, when the problem is about one key
	Msg   string // what is wrong
	Hint  string // what to do, when there is something useful to say
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Arg != "" {
		b.WriteString(" ")
		b.WriteString(e.Arg)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	if e.Stage != "" {
		fmt.Fprintf(&b, "stage %q: ", e.Stage)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, "%s: ", e.Key)
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// ConfigErrors returns every *ConfigError inside err (which may be joined or wrapped).
func ConfigErrors(err error) []*ConfigError {
	var out []*ConfigError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		var ce *ConfigError
		if errors.As(e, &ce) && e == error(ce) {
			out = append(out, ce)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if errors.As(e, &ce) {
			out = append(out, ce)
		}
	}
	walk(err)
	return out
}

// IsConfigError reports whether err holds at least one *ConfigError.
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// DataError is a problem with the data a stage reads: a malformed row, a NaN, an empty split, a
// label not seen in training. It names the place as precisely as it is known.
type DataError struct {
	Stage  string
	File   string
	Row    int64 // 1-based data row, or the _row id; 0 when unknown
	Column string
	Msg    string
	Hint   string
}

func (e *DataError) Error() string {
	var b strings.Builder
	if e.Stage != "" {
		fmt.Fprintf(&b, "stage %q: ", e.Stage)
	}
	if e.File != "" {
		b.WriteString(e.File)
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
