package tableio

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// colKind is the storage kind of a CSV column.
type colKind uint8

const (
	kindInt64 colKind = iota
	kindInt32
	kindFloat64
	kindFloat32
	kindBool
	kindString
)

func (k colKind) String() string {
	switch k {
	case kindInt64:
		return "int64"
	case kindInt32:
		return "int32"
	case kindFloat64:
		return "float64"
	case kindFloat32:
		return "float32"
	case kindBool:
		return "bool"
	}
	return "string"
}

func (k colKind) dataType() arrow.DataType {
	switch k {
	case kindInt64:
		return arrow.PrimitiveTypes.Int64
	case kindInt32:
		return arrow.PrimitiveTypes.Int32
	case kindFloat64:
		return arrow.PrimitiveTypes.Float64
	case kindFloat32:
		return arrow.PrimitiveTypes.Float32
	case kindBool:
		return arrow.FixedWidthTypes.Boolean
	}
	return arrow.BinaryTypes.String
}

func kindOf(t arrow.DataType) (colKind, error) {
	switch t.ID() {
	case arrow.INT64:
		return kindInt64, nil
	case arrow.INT32:
		return kindInt32, nil
	case arrow.FLOAT64:
		return kindFloat64, nil
	case arrow.FLOAT32:
		return kindFloat32, nil
	case arrow.BOOL:
		return kindBool, nil
	case arrow.STRING:
		return kindString, nil
	}
	return 0, fmt.Errorf("type %s is not supported by the CSV reader (use int64, int32, float64, float32, bool or utf8)", t)
}

// typeTally records what the sampled fields of one column looked like.
type typeTally struct {
	ints, floats, bools, others int
}

// Field classes of type inference.
const (
	classNull uint8 = iota
	classInt
	classFloat
	classBool
	classOther
)

// classify says what a non-null field looks like.
func classify(b []byte) uint8 {
	if _, ok := parseInt64Bytes(b); ok {
		return classInt
	}
	if _, st := parseFloat64Bytes(b); st != numberBad {
		return classFloat // NaN/Inf literals count as numbers so that the column errors on them
	}
	if _, ok := parseBoolBytes(b); ok {
		return classBool
	}
	return classOther
}

func (t *typeTally) add(class uint8) {
	switch class {
	case classInt:
		t.ints++
	case classFloat:
		t.floats++
	case classBool:
		t.bools++
	case classOther:
		t.others++
	}
}

func (t *typeTally) kind() colKind {
	switch {
	case t.others > 0:
		return kindString
	case t.bools > 0 && t.ints+t.floats > 0:
		return kindString
	case t.bools > 0:
		return kindBool
	case t.floats > 0:
		return kindFloat64
	case t.ints > 0:
		return kindInt64
	}
	return kindString // no non-null sampled value
}

// otherValue is the first sampled field of a column that is not a number, a bool or a null.
type otherValue struct {
	text string
	row  int64 // 1-based data row, as RowError.Row
}

// mixedWarning is the warning of a column inferred as string although nearly all of its
// sampled values are numbers (a typo, a "n/a" or "12k" among them): read as string, a
// numeric feature would silently become a category or be refused far downstream. "" when
// the column is not like that.
func mixedWarning(file, column string, t typeTally, first otherValue) string {
	numbers := t.ints + t.floats
	if t.others == 0 || t.bools > 0 || numbers < 10 || t.others*20 > numbers {
		return "" // a string column, or a mixed one that is not mostly numbers
	}
	return fmt.Sprintf("%s: column %q is read as string because %d of its %d sampled values are not numbers "+
		"(the first: %q, row %d), though the other %d are: if it is numeric, fix those values or make them empty (a null), "+
		"or declare it in schema (\"float64\") to get an error naming each bad row; if it is text, declare it \"string\" to silence this",
		file, column, t.others, t.others+numbers, first.text, first.row, numbers)
}
