package features

import (
	"testing"

	"github.com/pipe-ml/pipe/schema"
)

// TestRowHash: rows with equal feature and target values hash alike whatever their _row id,
// split column and column order; a change in any feature, the target or a null differs.
func TestRowHash(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	a := makeRecord(t, mem, schema.SplitTrain, rowColumn(0, 1, 2, 3, 4, 5),
		testColumn{name: "x", f64: []float64{1, 1, 1, 1, 0, 1}, valid: []bool{true, true, true, true, true, false}},
		testColumn{name: "s", str: []string{"a", "a", "b", "a", "a", "a"}},
		testColumn{name: "original_split", role: schema.RoleSplit, str: []string{"train", "test", "train", "train", "train", "train"}},
		testColumn{name: "y", role: schema.RoleTarget, i64: []int64{0, 0, 0, 1, 0, 0}})
	defer a.Release()
	// Same first row in another table: other _row, other column order, dictionary strings,
	// -0 instead of 0 in row 1.
	b := makeRecord(t, mem, schema.SplitTest,
		testColumn{name: "y", role: schema.RoleTarget, i64: []int64{0, 0}},
		testColumn{name: "s", dict: []string{"a", "a"}},
		testColumn{name: "x", f64: []float64{1, negZero()}},
		rowColumn(100, 101))
	defer b.Release()
	ha, err := RowHash(a)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := RowHash(b)
	if err != nil {
		t.Fatal(err)
	}
	if ha[0] != ha[1] {
		t.Error("rows 0 and 1 differ only in _row and the split column, but hash differently")
	}
	if hb[0] != ha[0] {
		t.Error("the same row in another table (column order, dictionary, _row) hashes differently")
	}
	for i := 2; i < 6; i++ {
		if ha[i] == ha[0] {
			t.Errorf("row %d differs from row 0 but hashes alike", i)
		}
	}
	if hb[1] != ha[4] {
		t.Error("-0 and 0 hash differently")
	}
}

func negZero() float64 {
	z := 0.0
	return -z
}

// TestRowHashTypes: each supported type tells values and nulls apart, and large_utf8 hashes
// like utf8.
func TestRowHashTypes(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	valid := []bool{true, true, false}
	cols := []testColumn{
		{name: "v", boo: []bool{true, false, false}, valid: valid},
		{name: "v", large: []string{"a", "b", ""}, valid: valid},
		{name: "v", str: []string{"a", "b", ""}, valid: valid},
		{name: "v", i32: []int32{1, 2, 0}, valid: valid},
		{name: "v", f32: []float32{1, 2, 0}, valid: valid},
	}
	var hashes [][]uint64
	for _, c := range cols {
		rec := makeRecord(t, mem, "", c)
		h, err := RowHash(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
		if h[0] == h[1] || h[0] == h[2] || h[1] == h[2] {
			t.Errorf("%s: two different rows hash alike: %x", cols[len(hashes)].name, h)
		}
		hashes = append(hashes, h)
	}
	if hashes[1][0] != hashes[2][0] {
		t.Error("large_utf8 and utf8 hash the same string differently")
	}
	if hashes[3][0] != hashes[4][0] {
		t.Error("int32 1 and float32 1 hash differently")
	}
}

// TestRowHashSkipsNonFeatureRoles: a column of any role other than feature and target (id,
// split, hidden, weight, or a role pipe does not know) never enters the hash: rows that differ
// only there hash alike; the same column as a feature tells them apart.
func TestRowHashSkipsNonFeatureRoles(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	for _, role := range []string{schema.RoleID, schema.RoleSplit, schema.RoleHidden, schema.RoleWeight, "custom"} {
		t.Run(role, func(t *testing.T) {
			for _, other := range []testColumn{
				{name: "other", role: role, str: []string{"train", "test"}},
				{name: "other", role: role, f64: []float64{1, 2}},
			} {
				rec := makeRecord(t, mem, "", testColumn{name: "x", f64: []float64{5, 5}}, other)
				h, err := RowHash(rec)
				rec.Release()
				if err != nil {
					t.Fatal(err)
				}
				if h[0] != h[1] {
					t.Errorf("rows that differ only in a %s column hash differently", role)
				}
				other.role = ""
				rec = makeRecord(t, mem, "", testColumn{name: "x", f64: []float64{5, 5}}, other)
				h, err = RowHash(rec)
				rec.Release()
				if err != nil {
					t.Fatal(err)
				}
				if h[0] == h[1] {
					t.Errorf("as a feature, the column does not tell the rows apart")
				}
			}
		})
	}
}
