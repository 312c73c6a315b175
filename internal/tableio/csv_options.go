package tableio

import (
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
)

// Bad-row policies of CSVOptions.OnBadRow.
const (
	OnBadRowFail = "fail" // the first bad row stops the read with a *RowError (the default)
	OnBadRowSkip = "skip" // bad rows are dropped, counted and the first few described
)

// Defaults of CSVOptions.
const (
	DefaultSampleRows = 10_000
	DefaultBatchRows  = 16_384
)

// maxSkippedExamples is how many skipped rows CSVReader.SkippedExamples describes.
const maxSkippedExamples = 10

// CSVOptions configures NewCSVReader. The zero value reads a comma-separated file with a
// header row, infers every column's type from the first 10,000 rows, and fails on the first
// bad row.
type CSVOptions struct {
	// Schema declares column types by name. Columns of the header that Schema does not name
	// are inferred; a Schema field whose name is not in the header is an error. Field
	// metadata (such as pipe.role) is kept. Supported types: int64, int32, float64, float32,
	// bool and utf8 (string). Default nil: every column is inferred.
	Schema *arrow.Schema
	// Stage is the name of the pipeline stage that reads the input, for the hints of row
	// errors ("declare the column in [stages.<Stage>.schema]", "set on_bad_row"). "" for an
	// input no stage reads (pipe predict's): the hints say to fix or remove the row.
	Stage string
	// TypeHints gives the types of columns by name where the header has them; names the
	// header lacks are ignored (the caller checks the columns it needs itself), and Schema
	// wins over a hint. Supported types as for Schema. Default nil.
	TypeHints map[string]arrow.DataType
	// SampleRows is how many data rows, from the start of the input, type inference reads.
	// A column is int64 if every non-null sampled field is an integer, float64 if every one
	// is a number (NaN/Inf literals count as numbers so that they are then reported), bool
	// if every one is true/false, otherwise utf8; a column with no non-null sampled field is
	// utf8. A value met after the sample that does not fit the inferred type (for example
	// "3.5" in a column inferred as int64) is a *RowError naming its row, with a hint to
	// declare the column's type. Default 10,000.
	SampleRows int
	// BatchRows is the maximum number of rows per record batch; batches are smaller at the
	// end of the input, at Limit, and when rows are skipped. Default 16,384.
	BatchRows int
	// Delimiter separates fields; it must be an ASCII character other than '"', '\r' and
	// '\n'. Default ','.
	Delimiter rune
	// NullValues are the field texts read as null. A quoted field in a string column is
	// never null (so "" is an empty string). Default {"", "NA"}; set an empty non-nil
	// slice to read no value as null.
	NullValues []string
	// OnBadRow is OnBadRowFail or OnBadRowSkip. Bad rows are: a field that does not parse as
	// its column's type, a NaN or infinite number, a wrong number of fields, a broken
	// quote. Default OnBadRowFail.
	OnBadRow string
	// Limit, when > 0, reads only the first Limit data rows of the input (skipped rows
	// count towards it). Default 0: all rows.
	Limit int64
	// Workers is the number of goroutines parsing blocks concurrently; output order does
	// not depend on it. Default 1.
	Workers int
	// Name is the file name used in error messages. Default "input".
	Name string
}

// withDefaults returns a copy of o with defaults filled in, or an error for invalid values.
func (o CSVOptions) withDefaults() (CSVOptions, error) {
	if o.SampleRows < 0 || o.BatchRows < 0 || o.Workers < 0 || o.Limit < 0 {
		return o, fmt.Errorf("csv options: SampleRows, BatchRows, Workers and Limit must not be negative (got %d, %d, %d, %d)",
			o.SampleRows, o.BatchRows, o.Workers, o.Limit)
	}
	if o.SampleRows == 0 {
		o.SampleRows = DefaultSampleRows
	}
	if o.BatchRows == 0 {
		o.BatchRows = DefaultBatchRows
	}
	if o.Delimiter == 0 {
		o.Delimiter = ','
	}
	if o.Delimiter >= 0x80 || o.Delimiter == '"' || o.Delimiter == '\n' || o.Delimiter == '\r' {
		return o, fmt.Errorf("csv options: delimiter %q is not supported; use an ASCII character other than a quote or a line break", o.Delimiter)
	}
	if o.NullValues == nil {
		o.NullValues = []string{"", "NA"}
	} else {
		o.NullValues = slices.Clone(o.NullValues)
	}
	switch o.OnBadRow {
	case "":
		o.OnBadRow = OnBadRowFail
	case OnBadRowFail, OnBadRowSkip:
	default:
		return o, fmt.Errorf("csv options: on_bad_row = %q is not one of %q or %q", o.OnBadRow, OnBadRowFail, OnBadRowSkip)
	}
	if o.Workers == 0 {
		o.Workers = 1
	}
	if o.Name == "" {
		o.Name = "input"
	}
	return o, nil
}
