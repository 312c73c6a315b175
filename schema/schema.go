// Package schema holds the conventions that every pipe table follows, as Arrow metadata: the
// role of each column and the split role of each table. It is a leaf package: the engine, the
// stages and the ML packages all use it, and it imports nothing of pipe.
//
// A column's role is stored in its field metadata under KeyRole. A column without that key is a
// feature. Transforms (impute, encode, normalize, augment) only touch feature columns and pass
// every other column through unchanged, with its metadata.
//
// A table's split role (train, val, ...) is stored in the schema metadata under KeySplit, and
// transforms keep it.
package schema

import (
	"github.com/apache/arrow-go/v18/arrow"
)

// Metadata keys.
const (
	// KeyRole is the field-metadata key of a column's role.
	KeyRole = "pipe.role"
	// KeySplit is the schema-metadata key of a table's split role.
	KeySplit = "pipe.split"
	// KeyCardinality is the field-metadata key of an index-encoded categorical column's number
	// of indexes (the unknown bucket included): such a column feeds an embedding.
	KeyCardinality = "pipe.cardinality"
)

// Column roles.
const (
	RoleFeature = "feature" // the default when a field has no role
	RoleTarget  = "target"  // a label or regression target; never a feature
	RoleID      = "id"      // the stable row id, RowIDColumn
	RoleSplit   = "split"   // a split-assignment column such as original_split
	RoleHidden  = "hidden"  // a hidden label (mask_labels): never a feature nor a target
	RoleWeight  = "weight"  // a per-row sample weight
)

// RowIDColumn is the name of the stable int64 row id that every source adds.
const RowIDColumn = "_row"

// Split roles of tables.
const (
	SplitTrain     = "train"
	SplitTrainDev  = "train_dev"
	SplitVal       = "val"
	SplitTest      = "test"
	SplitUnlabeled = "unlabeled"
	SplitAll       = "all" // a table that has not been split
)

// Role returns the role of a field: its KeyRole metadata, or RoleFeature.
func Role(f arrow.Field) string {
	if f.HasMetadata() {
		if i := f.Metadata.FindKey(KeyRole); i >= 0 {
			return f.Metadata.Values()[i]
		}
	}
	return RoleFeature
}

// IsFeature reports whether a field is a feature column.
func IsFeature(f arrow.Field) bool { return Role(f) == RoleFeature }

// WithRole returns a copy of f whose metadata sets its role, keeping its other metadata.
func WithRole(f arrow.Field, role string) arrow.Field {
	keys := []string{KeyRole}
	vals := []string{role}
	if f.HasMetadata() {
		for i, k := range f.Metadata.Keys() {
			if k != KeyRole {
				keys = append(keys, k)
				vals = append(vals, f.Metadata.Values()[i])
			}
		}
	}
	f.Metadata = arrow.NewMetadata(keys, vals)
	return f
}

// Split returns the split role recorded in a schema's metadata, or SplitAll.
func Split(s *arrow.Schema) string {
	md := s.Metadata()
	if i := md.FindKey(KeySplit); i >= 0 {
		return md.Values()[i]
	}
	return SplitAll
}

// WithSplit returns a schema equal to s whose metadata records the split role.
func WithSplit(s *arrow.Schema, split string) *arrow.Schema {
	md := s.Metadata()
	keys := []string{KeySplit}
	vals := []string{split}
	for i, k := range md.Keys() {
		if k != KeySplit {
			keys = append(keys, k)
			vals = append(vals, md.Values()[i])
		}
	}
	m := arrow.NewMetadata(keys, vals)
	return arrow.NewSchema(s.Fields(), &m)
}

// IsNumeric reports whether an Arrow type is a numeric type that pipe treats as a number.
func IsNumeric(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64:
		return true
	}
	return false
}
