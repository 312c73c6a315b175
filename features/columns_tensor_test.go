package features

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/schema"
)

// tensorRecord is a batch of a fixed_size_list<float32>[2] feature "pixels" and a float64
// feature "x"; the caller releases it.
func tensorRecord(t *testing.T, mem memory.Allocator) arrow.RecordBatch {
	t.Helper()
	lb := array.NewFixedSizeListBuilder(mem, 2, arrow.PrimitiveTypes.Float32)
	defer lb.Release()
	vb := lb.ValueBuilder().(*array.Float32Builder)
	for i := range 3 {
		lb.Append(true)
		vb.AppendValues([]float32{float32(i), float32(2 * i)}, nil)
	}
	px := lb.NewArray()
	defer px.Release()
	xb := array.NewFloat64Builder(mem)
	defer xb.Release()
	xb.AppendValues([]float64{1, 2, 4}, nil)
	x := xb.NewArray()
	defer x.Release()
	s := arrow.NewSchema([]arrow.Field{
		schema.WithRole(arrow.Field{Name: "pixels", Type: px.DataType()}, schema.RoleFeature),
		schema.WithRole(arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Float64}, schema.RoleFeature)}, nil)
	return array.NewRecordBatch(s, []arrow.Array{px, x}, 3)
}

// TestNormalizeAndImputeRefuseTensorColumns: a tensor column, named or among the default
// columns, is refused with a message that says to scale the pixels in the source; listing the
// other columns fits them.
func TestNormalizeAndImputeRefuseTensorColumns(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	rec := tensorRecord(t, mem)
	defer rec.Release()
	for _, tc := range []struct {
		name string
		f    Fitter
		want string // "" = fits
	}{
		{"normalize default", NewNormalizeFitter(NormalizeOptions{}), "list the other columns in columns"},
		{"normalize named", NewNormalizeFitter(NormalizeOptions{Columns: []string{"pixels"}}), "remove it from columns"},
		{"normalize others", NewNormalizeFitter(NormalizeOptions{Columns: []string{"x"}}), ""},
		{"impute default", NewImputeFitter(ImputeOptions{}), "list the other columns in columns"},
		{"impute named", NewImputeFitter(ImputeOptions{Columns: []string{"x", "pixels"}}), "remove it from columns"},
		{"impute others", NewImputeFitter(ImputeOptions{Columns: []string{"x"}}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.Observe(rec)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				tr, err := tc.f.Finish()
				if err != nil {
					t.Fatal(err)
				}
				out, err := tr.Apply(t.Context(), mem, rec)
				if err != nil {
					t.Fatal(err)
				}
				defer out.Release()
				if !array.Equal(out.Column(0), rec.Column(0)) {
					t.Error("the tensor column did not pass through unchanged")
				}
				return
			}
			for _, w := range []string{`"pixels"`, "tensor", "scale or fill the pixels in the source", tc.want} {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestRowHashTakesTensorColumns: the leakage audit's row hash reads a tensor column value by
// value: equal images hash alike (also from a sliced batch), different ones do not.
func TestRowHashTakesTensorColumns(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	lb := array.NewFixedSizeListBuilder(mem, 2, arrow.PrimitiveTypes.Float32)
	defer lb.Release()
	vb := lb.ValueBuilder().(*array.Float32Builder)
	for _, row := range [][]float32{{1, 2}, {1, 3}, {1, 2}, nil} {
		if row == nil {
			lb.AppendNull()
			continue
		}
		lb.Append(true)
		vb.AppendValues(row, nil)
	}
	px := lb.NewArray()
	defer px.Release()
	s := arrow.NewSchema([]arrow.Field{schema.WithRole(arrow.Field{Name: "pixels", Type: px.DataType(), Nullable: true}, schema.RoleFeature)}, nil)
	rec := array.NewRecordBatch(s, []arrow.Array{px}, 4)
	defer rec.Release()
	h, err := RowHash(rec)
	if err != nil {
		t.Fatal(err)
	}
	if h[0] != h[2] || h[0] == h[1] || h[3] == h[0] || h[3] == h[1] {
		t.Errorf("hashes %x: want rows 0 and 2 alike, rows 1 and 3 (null) apart", h)
	}
	sliced := rec.NewSlice(2, 4)
	defer sliced.Release()
	hs, err := RowHash(sliced)
	if err != nil {
		t.Fatal(err)
	}
	if hs[0] != h[2] || hs[1] != h[3] {
		t.Errorf("sliced hashes %x, want %x", hs, h[2:])
	}
}
