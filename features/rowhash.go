package features

import (
	"fmt"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pipe-ml/pipe/schema"
)

// RowHash returns a 64-bit hash of each row's feature and target columns, for the leakage
// audit: two rows with the same values in those columns have the same hash, whatever their
// _row id, split or other non-feature columns, so the caller can count exact duplicates across
// splits.
//
// Columns are taken in name order, so tables whose columns come in another order hash alike.
// Values are hashed by value within a type: floats by their float64 value (-0 as 0, every NaN
// alike), integers by their float64 value (exact below 2^53), strings and dictionaries by their bytes, bools as 0/1; a
// null hashes differently from every value. The hash is stable across processes (no random
// seed) but not a cryptographic hash. Supported types: numeric, bool, utf8, large_utf8,
// string dictionaries and fixed-size lists of numbers (tensors, hashed value by value, a null
// element or list differently from every value); another type in a feature or target column is an error.
func RowHash(rec arrow.RecordBatch) ([]uint64, error) {
	n := int(rec.NumRows())
	type namedColumn struct {
		name string
		arr  arrow.Array
	}
	var cols []namedColumn
	for j, f := range rec.Schema().Fields() {
		if role := schema.Role(f); role == schema.RoleFeature || role == schema.RoleTarget {
			cols = append(cols, namedColumn{f.Name, rec.Column(j)})
		}
	}
	slices.SortStableFunc(cols, func(a, b namedColumn) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	seed := uint64(fnvOffset)
	for _, c := range cols {
		seed = fnvString(seed, c.name)
		seed = fnvString(seed, "\x00")
	}
	h := make([]uint64, n)
	for i := range h {
		h[i] = seed
	}
	for _, c := range cols {
		if err := hashColumnInto(h, c.arr); err != nil {
			return nil, fmt.Errorf("row hash: column %q: %w", c.name, err)
		}
	}
	for i := range h {
		h[i] = mix64(h[i])
	}
	return h, nil
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
	nullHash  = 0x6e756c6c6e756c6c // "nullnull"
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// combine folds a value's 64-bit code into a row hash.
func combine(h, v uint64) uint64 { return mix64(h^v) * fnvPrime }

func canonicalFloat(f float64) uint64 {
	if f == 0 {
		return 0
	}
	if f != f {
		return 0x7ff8000000000001
	}
	return math.Float64bits(f)
}

func hashColumnInto(h []uint64, arr arrow.Array) error {
	val := validityOf(arr)
	switch a := arr.(type) {
	case *array.String:
		for i := range h {
			if val.valid(i) {
				h[i] = combine(h[i], fnvString(fnvOffset, a.Value(i)))
			} else {
				h[i] = combine(h[i], nullHash)
			}
		}
		return nil
	case *array.LargeString:
		for i := range h {
			if val.valid(i) {
				h[i] = combine(h[i], fnvString(fnvOffset, a.Value(i)))
			} else {
				h[i] = combine(h[i], nullHash)
			}
		}
		return nil
	case *array.Boolean:
		for i := range h {
			switch {
			case !val.valid(i):
				h[i] = combine(h[i], nullHash)
			case a.Value(i):
				h[i] = combine(h[i], 1)
			default:
				h[i] = combine(h[i], 0)
			}
		}
		return nil
	case *array.Dictionary:
		idx, err := dictionaryIndices(a)
		if err != nil {
			return err
		}
		words, err := dictionaryWords(a)
		if err != nil {
			return err
		}
		codes := make([]uint64, len(words))
		for k, w := range words {
			codes[k] = fnvString(fnvOffset, w)
		}
		for i := range h {
			if val.valid(i) {
				h[i] = combine(h[i], codes[idx[i]])
			} else {
				h[i] = combine(h[i], nullHash)
			}
		}
		return nil
	case *array.FixedSizeList:
		return hashTensorInto(h, a)
	}
	if !schema.IsNumeric(arr.DataType()) {
		return fmt.Errorf("type %s is not supported by the row hash", arr.DataType())
	}
	f32, f64, err := numericSlices(arr)
	if err != nil {
		return err
	}
	for i := range h {
		if val.valid(i) {
			h[i] = combine(h[i], canonicalFloat(valueAt(f32, f64, i)))
		} else {
			h[i] = combine(h[i], nullHash)
		}
	}
	return nil
}
