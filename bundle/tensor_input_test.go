package bundle

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/schema"
)

// tensorBatch builds a batch of a FixedSizeList<float32> column "img" (field f, rows of
// size values from vals, nullRows null), an int64 column "a" and a _row column; the caller
// releases it.
func tensorBatch(t *testing.T, mem memory.Allocator, f arrow.Field, vals []float32, a []int64, nullRows ...int) arrow.RecordBatch {
	t.Helper()
	lt := f.Type.(*arrow.FixedSizeListType)
	size := int(lt.Len())
	lb := array.NewFixedSizeListBuilder(mem, lt.Len(), lt.Elem())
	defer lb.Release()
	vb := lb.ValueBuilder().(*array.Float32Builder)
	for i := 0; i*size < len(vals); i++ {
		null := false
		for _, r := range nullRows {
			null = null || r == i
		}
		if null {
			lb.AppendNull() // the builder pads the values with size nulls
			continue
		}
		lb.Append(true)
		vb.AppendValues(vals[i*size:(i+1)*size], nil)
	}
	img := lb.NewArray()
	defer img.Release()
	ab := array.NewInt64Builder(mem)
	defer ab.Release()
	ab.AppendValues(a, nil)
	aa := ab.NewArray()
	defer aa.Release()
	rb := array.NewInt64Builder(mem)
	defer rb.Release()
	for i := range a {
		rb.Append(int64(100 + i))
	}
	ra := rb.NewArray()
	defer ra.Release()
	f.Nullable = true
	s := arrow.NewSchema([]arrow.Field{schema.WithRole(f, schema.RoleFeature), {Name: "a", Type: arrow.PrimitiveTypes.Int64},
		schema.WithRole(arrow.Field{Name: "_row", Type: arrow.PrimitiveTypes.Int64}, schema.RoleID)}, nil)
	return array.NewRecordBatch(s, []arrow.Array{img, aa, ra}, int64(len(a)))
}

func TestPlanAndTensorizeReadATensorColumnWithoutPerPixelColumns(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	vals := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	field := FixedShapeTensorField("img", []int{1, 2, 2})
	rec := tensorBatch(t, mem, field, vals, []int64{-1, -2, -3})
	defer rec.Release()
	// A slice starting at row 1 has a non-zero offset: the copy must start at its first row.
	sliced := rec.NewSlice(1, 3)
	defer sliced.Release()
	for _, tc := range []struct {
		name     string
		features []string
		rec      arrow.RecordBatch
		wantX    []float32
	}{
		{"tensor only", []string{"img"}, rec, vals},
		{"numeric then tensor", []string{"a", "img"}, rec, []float32{-1, 1, 2, 3, 4, -2, 5, 6, 7, 8, -3, 9, 10, 11, 12}},
		{"sliced batch", []string{"img"}, sliced, vals[4:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := reader(t, tc.rec)
			defer r.Release()
			plan, err := Plan(r, PlanOptions{Features: tc.features, Unsupervised: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Tensors) != 1 || plan.Tensors[0].Size != 4 || len(plan.Tensors[0].Shape) != 3 || plan.Tensors[0].Shape[1] != 2 {
				t.Fatalf("plan tensors %+v, want img of size 4, shape [1 2 2] from the extension metadata", plan.Tensors)
			}
			r2 := reader(t, tc.rec)
			defer r2.Release()
			out, err := plan.Tensorize(r2, TensorizeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if out.Data.NumInputs != len(tc.wantX)/int(tc.rec.NumRows()) {
				t.Fatalf("NumInputs %d, want %d", out.Data.NumInputs, len(tc.wantX)/int(tc.rec.NumRows()))
			}
			if len(out.Data.X) != len(tc.wantX) {
				t.Fatalf("X = %v, want %v", out.Data.X, tc.wantX)
			}
			for i := range tc.wantX {
				if out.Data.X[i] != tc.wantX[i] {
					t.Fatalf("X = %v, want %v", out.Data.X, tc.wantX)
				}
			}
		})
	}
}

func TestTensorFieldReadsTheExtensionShape(t *testing.T) {
	plain := arrow.Field{Name: "p", Type: arrow.FixedSizeListOf(6, arrow.PrimitiveTypes.Float32)}
	if size, shape, ok, err := TensorField(plain); !ok || err != nil || size != 6 || shape != nil {
		t.Errorf("plain list: %d %v %v %v, want size 6 and no shape", size, shape, ok, err)
	}
	if _, _, ok, _ := TensorField(arrow.Field{Name: "d", Type: arrow.FixedSizeListOf(6, arrow.PrimitiveTypes.Float64)}); ok {
		t.Error("a float64 list is not a tensor input (the network is float32)")
	}
	bad := FixedShapeTensorField("b", []int{2, 3})
	bad.Metadata = arrow.NewMetadata([]string{extensionNameKey, extensionMetaKey}, []string{FixedShapeTensorName, `{"shape":[2,2]}`})
	if _, _, _, err := TensorField(bad); err == nil || !strings.Contains(err.Error(), "[2 2]") || !strings.Contains(err.Error(), "6") {
		t.Errorf("shape [2,2] on a list of 6: err %v, want one naming the shape and the size", err)
	}
	perm := FixedShapeTensorField("b", []int{2, 3})
	perm.Metadata = arrow.NewMetadata([]string{extensionNameKey, extensionMetaKey}, []string{FixedShapeTensorName, `{"shape":[2,3],"permutation":[1,0]}`})
	if _, _, _, err := TensorField(perm); err == nil || !strings.Contains(err.Error(), "permutation") {
		t.Errorf("a permuted tensor: err %v, want a refusal naming the permutation", err)
	}
}

// TestTensorizeChecksTheTensorColumn is what predict and evaluate see: a table whose image
// column is missing, of another list size, of another type, or null in a row.
func TestTensorizeChecksTheTensorColumn(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	plan := &InputPlan{Tensors: []TensorInput{{Column: "img", Size: 4, Shape: []int{1, 2, 2}}},
		Schema: []ColumnEntry{{Name: "img", Role: schema.RoleFeature}}}
	four := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	good := tensorBatch(t, mem, arrow.Field{Name: "img", Type: arrow.FixedSizeListOf(4, arrow.PrimitiveTypes.Float32)}, four, []int64{1, 2})
	defer good.Release()
	missing := record(t, mem, col{name: "pixels", vals: []float64{1}})
	defer missing.Release()
	wrongSize := tensorBatch(t, mem, arrow.Field{Name: "img", Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float32)}, four, []int64{1, 2, 3, 4})
	defer wrongSize.Release()
	wrongType := record(t, mem, col{name: "img", vals: []float64{1, 2}})
	defer wrongType.Release()
	nullRow := tensorBatch(t, mem, arrow.Field{Name: "img", Type: arrow.FixedSizeListOf(4, arrow.PrimitiveTypes.Float32)}, four, []int64{1, 2}, 1)
	defer nullRow.Release()
	for _, tc := range []struct {
		name string
		rec  arrow.RecordBatch
		want []string // in the error
	}{
		{"good", good, nil},
		{"missing column", missing, []string{`"img"`, "missing"}},
		{"wrong list size", wrongSize, []string{`"img"`, "fixed_size_list<item: float32, nullable>[2]", "[4] of shape [1, 2, 2]"}},
		{"wrong type", wrongType, []string{`"img"`, "float64", "[4] of shape [1, 2, 2]"}},
		{"null image", nullRow, []string{`"img"`, "row 102", "missing image"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := plan.NewTensors(false)
			err := plan.AppendBatch(tc.rec, TensorizeOptions{Table: "test.arrow"}, data)
			if tc.want == nil {
				if err != nil || len(data.Data.X) != 8 || data.Data.X[7] != 8 {
					t.Fatalf("err %v, X %v", err, data.Data.X)
				}
				return
			}
			var ce *ColumnError
			if !errors.As(err, &ce) {
				t.Fatalf("err %v, want a *ColumnError", err)
			}
			for _, w := range append(tc.want, "test.arrow") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestPredictChecksTheImageColumn: a saved bundle records the image column and its shape, and
// Predict refuses an input without it, with another list size or another type before any
// row is scored, naming the column and the expected shape.
func TestPredictChecksTheImageColumn(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	field := FixedShapeTensorField("img", []int{1, 2, 2})
	train := tensorBatch(t, mem, field, []float32{1, 2, 3, 4, 5, 6, 7, 8}, []int64{1, 2})
	defer train.Release()
	plan := &InputPlan{Tensors: []TensorInput{{Column: "img", Size: 4, Shape: []int{1, 2, 2}}},
		Targets: []TargetPlan{{Column: "y", Task: TaskClassification, Head: "out", Labels: []string{"p", "q", "r"}}},
		Schema:  []ColumnEntry{{Name: "img"}}}
	m, err := nn.Build(nn.Spec{NumInputs: plan.Width(), Layers: []nn.LayerSpec{{Type: "dense", Units: 4, Activation: "relu"}}, Heads: plan.Heads()},
		rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New("model", m, plan, nil, train.Schema())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := b.Save(dir); err != nil {
		t.Fatal(err)
	}
	p, err := Load(dir, NewDecoders())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.InputPlan().Tensors; len(got) != 1 || got[0].Column != "img" || got[0].Size != 4 || len(got[0].Shape) != 3 {
		t.Fatalf("loaded tensor inputs %+v, want img [1 2 2]", got)
	}
	if probs := predictAll(t, p, train, mem); len(probs) != 6 {
		t.Fatalf("scored %d probabilities, want 2 rows × 3 classes", len(probs))
	}
	missing := record(t, mem, col{name: "pixels", vals: []float64{1}}, col{name: "a", vals: []int64{1}})
	defer missing.Release()
	wrongSize := tensorBatch(t, mem, arrow.Field{Name: "img", Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float32)}, []float32{1, 2}, []int64{1})
	defer wrongSize.Release()
	wrongType := record(t, mem, col{name: "img", vals: []float64{1}}, col{name: "a", vals: []int64{1}})
	defer wrongType.Release()
	for _, tc := range []struct {
		name string
		rec  arrow.RecordBatch
		want []string
	}{
		{"missing column", missing, []string{`"img"`, "missing", "fixed_size_list<float32>[4] of shape [1, 2, 2]"}},
		{"wrong list size", wrongSize, []string{`column "img"`, "[2]", "fixed_size_list<float32>[4] of shape [1, 2, 2]"}},
		{"wrong type", wrongType, []string{`column "img"`, "float64", "fixed_size_list<float32>[4] of shape [1, 2, 2]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := reader(t, tc.rec)
			defer r.Release()
			scored := 0
			_, err := Predict(context.Background(), p, r, mem, PredictOptions{Table: "new.parquet"}, func(arrow.RecordBatch) error { scored++; return nil })
			if scored != 0 {
				t.Errorf("%d batches scored before the error", scored)
			}
			for _, w := range append(tc.want, "new.parquet") {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestFirstNonFinite finds the first NaN or ±Inf at every position of the eight-wide loop and
// its tail, and none in finite values (the largest float32, subnormals, -0).
func TestFirstNonFinite(t *testing.T) {
	finite := []float32{math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.Copysign(0, -1)), 1, -1}
	for n := 0; n < 21; n++ {
		v := make([]float32, n)
		for i := range v {
			v[i] = finite[i%len(finite)]
		}
		if got := firstNonFinite(v); got != -1 {
			t.Fatalf("n=%d finite: %d", n, got)
		}
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			for p := 0; p < n; p++ {
				w := append([]float32(nil), v...)
				w[p] = bad
				if p+1 < n {
					w[n-1] = bad // a later one must not hide the first
				}
				if got := firstNonFinite(w); got != p {
					t.Fatalf("n=%d, %v at %d: got %d", n, bad, p, got)
				}
			}
		}
	}
}

// tensorExtType is a registered-style arrow.fixed_shape_tensor: a program that implements the
// extension type (arrow-go v18.8 does not) hands pipe extension arrays.
type tensorExtType struct {
	arrow.ExtensionBase
	meta string
}

type tensorExtArray struct{ array.ExtensionArrayBase }

func (*tensorExtType) ArrayType() reflect.Type { return reflect.TypeOf(tensorExtArray{}) }
func (*tensorExtType) ExtensionName() string   { return FixedShapeTensorName }
func (e *tensorExtType) Serialize() string     { return e.meta }
func (e *tensorExtType) String() string        { return "extension<" + FixedShapeTensorName + ">" }
func (e *tensorExtType) ExtensionEquals(o arrow.ExtensionType) bool {
	return o.ExtensionName() == FixedShapeTensorName && o.Serialize() == e.meta
}
func (e *tensorExtType) Deserialize(storage arrow.DataType, meta string) (arrow.ExtensionType, error) {
	return &tensorExtType{ExtensionBase: arrow.ExtensionBase{Storage: storage}, meta: meta}, nil
}

// TestTensorizeReadsAnExtensionArray: a column of a registered extension type whose storage is
// FixedSizeList<float32> is a tensor input with the extension's shape, read through its storage.
func TestTensorizeReadsAnExtensionArray(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	plain := tensorBatch(t, mem, arrow.Field{Name: "img", Type: arrow.FixedSizeListOf(4, arrow.PrimitiveTypes.Float32)}, []float32{1, 2, 3, 4, 5, 6, 7, 8}, []int64{1, 2})
	defer plain.Release()
	typ := &tensorExtType{ExtensionBase: arrow.ExtensionBase{Storage: plain.Column(0).DataType()}, meta: `{"shape":[2,2]}`}
	ext := array.NewExtensionArrayWithStorage(typ, plain.Column(0))
	defer ext.Release()
	s := arrow.NewSchema([]arrow.Field{schema.WithRole(arrow.Field{Name: "img", Type: typ}, schema.RoleFeature)}, nil)
	rec := array.NewRecordBatch(s, []arrow.Array{ext}, 2)
	defer rec.Release()
	r := reader(t, rec)
	defer r.Release()
	plan, err := Plan(r, PlanOptions{Unsupervised: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Tensors) != 1 || !reflect.DeepEqual(plan.Tensors[0].Shape, []int{2, 2}) {
		t.Fatalf("tensors %+v, want img with the extension's shape [2 2]", plan.Tensors)
	}
	out := plan.NewTensors(false)
	if err := plan.AppendBatch(rec, TensorizeOptions{}, out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Data.X, []float32{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("X = %v", out.Data.X)
	}
}
