package arrowutil

import (
	"fmt"
	"math"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Float64s returns the values of a numeric column as float64, with NaN for nulls.
func Float64s(arr arrow.Array) ([]float64, error) {
	n := arr.Len()
	out := make([]float64, n)
	set := func(i int, v float64) {
		if arr.IsNull(i) {
			out[i] = math.NaN()
		} else {
			out[i] = v
		}
	}
	switch a := arr.(type) {
	case *array.Float64:
		for i := 0; i < n; i++ {
			set(i, a.Value(i))
		}
	case *array.Float32:
		for i := 0; i < n; i++ {
			set(i, float64(a.Value(i)))
		}
	case *array.Int64:
		for i := 0; i < n; i++ {
			set(i, float64(a.Value(i)))
		}
	case *array.Int32:
		for i := 0; i < n; i++ {
			set(i, float64(a.Value(i)))
		}
	case *array.Int16:
		for i := 0; i < n; i++ {
			set(i, float64(a.Value(i)))
		}
	case *array.Int8:
		for i := 0; i < n; i++ {
			set(i, float64(a.Value(i)))
		}
	case *array.Uint8:
		for i := 0; i < n; i++ {
			set(i, float64(a.Value(i)))
		}
	case *array.Uint16:
		for i := 0; i < n; i++ {
			set(i, float64(a.Value(i)))
		}
	case *array.Uint32:
		for i := 0; i < n; i++ {
			set(i, float64(a.Value(i)))
		}
	case *array.Uint64:
		for i := 0; i < n; i++ {
			set(i, float64(a.Value(i)))
		}
	case *array.Boolean:
		for i := 0; i < n; i++ {
			v := 0.0
			if a.Value(i) {
				v = 1
			}
			set(i, v)
		}
	default:
		return nil, fmt.Errorf("column of type %s is not numeric", arr.DataType())
	}
	return out, nil
}

// Strings returns the values of a column as strings (numbers formatted canonically), with
// valid[i] false for nulls.
func Strings(arr arrow.Array) (vals []string, valid []bool) {
	n := arr.Len()
	vals = make([]string, n)
	valid = make([]bool, n)
	for i := 0; i < n; i++ {
		if arr.IsNull(i) {
			continue
		}
		valid[i] = true
		switch a := arr.(type) {
		case *array.String:
			vals[i] = a.Value(i)
		case *array.LargeString:
			vals[i] = a.Value(i)
		case *array.Int64:
			vals[i] = strconv.FormatInt(a.Value(i), 10)
		case *array.Int32:
			vals[i] = strconv.FormatInt(int64(a.Value(i)), 10)
		case *array.Float64:
			vals[i] = strconv.FormatFloat(a.Value(i), 'g', -1, 64)
		case *array.Float32:
			vals[i] = strconv.FormatFloat(float64(a.Value(i)), 'g', -1, 32)
		case *array.Boolean:
			vals[i] = strconv.FormatBool(a.Value(i))
		default:
			vals[i] = a.ValueStr(i)
		}
	}
	return vals, valid
}
