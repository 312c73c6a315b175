package datasets

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/arrowutil"
)

// TestImageColumnPacksThePixelsOfEachRow reads digits both ways and checks that the tensor
// column holds, row by row, exactly the per-pixel columns' values in row-major order.
func TestImageColumnPacksThePixelsOfEachRow(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := context.Background()
	opts := Options{Limit: 300, BatchRows: 128}
	plain, err := Open(ctx, "digits", mem, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Release()
	opts.ImageColumn = "pixels"
	packed, err := Open(ctx, "digits", mem, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer packed.Release()
	s := packed.Schema()
	if s.NumFields() != 2 || s.Field(0).Name != "pixels" || s.Field(1).Name != "target" {
		t.Fatalf("schema %v, want pixels then target", s)
	}
	ft, ok := s.Field(0).Type.(*arrow.FixedSizeListType)
	if !ok || ft.Len() != 64 || ft.Elem().ID() != arrow.FLOAT32 {
		t.Fatalf("pixels has type %s, want fixed_size_list<float32>[64]", s.Field(0).Type)
	}
	if i := s.Field(0).Metadata.FindKey("ARROW:extension:metadata"); i < 0 || s.Field(0).Metadata.Values()[i] != `{"shape":[1,8,8]}` {
		t.Errorf("metadata %v, want the fixed_shape_tensor shape [1,8,8]", s.Field(0).Metadata)
	}
	_, names, _ := ImageShape("digits")
	rows := 0
	for plain.Next() {
		if !packed.Next() {
			t.Fatal("the packed reader ended first")
		}
		p, q := plain.RecordBatch(), packed.RecordBatch()
		vals := q.Column(0).(*array.FixedSizeList).ListValues().(*array.Float32).Float32Values()
		for j, n := range names {
			px, err := arrowutil.Float64s(p.Column(p.Schema().FieldIndices(n)[0]))
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range px {
				if vals[i*64+j] != float32(v) {
					t.Fatalf("row %d pixel %s: packed %v, column %v", rows+i, n, vals[i*64+j], v)
				}
			}
		}
		rows += int(p.NumRows())
	}
	if packed.Next() || rows != 300 || plain.Err() != nil || packed.Err() != nil {
		t.Fatalf("rows %d, errors %v %v", rows, plain.Err(), packed.Err())
	}
}

func TestImageColumnRefusesANonImageDataset(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	_, err := Open(context.Background(), "iris", mem, Options{ImageColumn: "pixels"})
	if err == nil || !strings.Contains(err.Error(), `"iris"`) || !strings.Contains(err.Error(), "digits and mnist") {
		t.Fatalf("err %v, want one naming iris and the image datasets", err)
	}
	_, err = Open(context.Background(), "digits", mem, Options{ImageColumn: "target"})
	if err == nil || !strings.Contains(err.Error(), `"target"`) {
		t.Fatalf("err %v, want one naming the clashing column", err)
	}
}
