package stages

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/pipeline"
)

// runTensorTOML parses and runs a pipeline in a fresh directory, returning the directory and the
// run's error.
func runTensorTOML(t *testing.T, mem memory.Allocator, src string) (string, error) {
	t.Helper()
	p, err := pipeline.Parse([]byte(src), "p.toml", ".", registry(t), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	_, err = pipeline.Run(context.Background(), p, pipeline.RunOptions{Dir: dir, Mem: mem})
	return dir, err
}

// digitsTensorRows reads digits with the pixels as one tensor column: each row's 64 values
// by its _row id (the dataset's row order).
func digitsTensorRows(t *testing.T, mem memory.Allocator) [][]float32 {
	t.Helper()
	r, err := datasets.Open(context.Background(), "digits", mem, datasets.Options{ImageColumn: "pixels"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var rows [][]float32
	for r.Next() {
		vals := r.RecordBatch().Column(0).(*array.FixedSizeList).ListValues().(*array.Float32).Float32Values()
		for i := 0; i < int(r.RecordBatch().NumRows()); i++ {
			rows = append(rows, append([]float32(nil), vals[i*64:(i+1)*64]...))
		}
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	return rows
}

// TestTensorColumnRoundTripsThroughParquetAndArrow: a digits tensor column passes the split
// stage and the write stage into Parquet and Arrow IPC files with its type, its
// arrow.fixed_shape_tensor shape and every row's values; the Parquet and Arrow sources read it
// back, and a train stage takes its shape from the metadata (image = { column = ... } without
// shape). CSV refuses it with an error naming the stage, the file and the column.
func TestTensorColumnRoundTripsThroughParquetAndArrow(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	want := digitsTensorRows(t, mem)
	const write = `[pipeline]
seed = 1
[stages.load]
kind = "dataset"
name = "digits"
image_column = "pixels"
[stages.split]
kind = "split"
input = "load"
[stages.pq]
kind = "write"
input = "split.train"
path = "train.parquet"
[stages.ipc]
kind = "write"
input = "split.train"
path = "train.arrow"
`
	dir, err := runTensorTOML(t, mem, write)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"parquet": filepath.Join(dir, "stages/pq/train.parquet"), "arrow": filepath.Join(dir, "stages/ipc/train.arrow")}
	for kind, path := range files {
		r, err := tableio.OpenFile(path, mem, tableio.CSVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f := r.Schema().Field(r.Schema().FieldIndices("pixels")[0])
		size, shape, ok, err := bundle.TensorField(f)
		if !ok || err != nil || size != 64 || !reflect.DeepEqual(shape, []int{1, 8, 8}) {
			t.Errorf("%s: pixels field %v reads as size %d shape %v (%v, %v), want the [1 8 8] tensor", kind, f, size, shape, ok, err)
		}
		n := 0
		for r.Next() {
			rec := r.RecordBatch()
			vals := rec.Column(r.Schema().FieldIndices("pixels")[0]).(*array.FixedSizeList).ListValues().(*array.Float32).Float32Values()
			ids := bundle.RowIDs(rec)
			for i, id := range ids {
				if !reflect.DeepEqual(vals[i*64:(i+1)*64], want[id]) {
					t.Fatalf("%s: row %d differs from the dataset's", kind, id)
				}
			}
			n += len(ids)
		}
		if r.Err() != nil || n == 0 {
			t.Fatalf("%s: %d rows, %v", kind, n, r.Err())
		}
		r.Release()
		train := fmt.Sprintf(`[pipeline]
seed = 1
[stages.load]
kind = %q
path = %q
[stages.model]
kind = "train"
train = "load"
epochs = 1
image = { column = "pixels" }
layers = [ { conv = 4, kernel = 3 }, { global_avg_pool = true } ]
`, kind, path)
		tdir, err := runTensorTOML(t, mem, train)
		if err != nil {
			t.Fatalf("%s source: %v", kind, err)
		}
		b, err := bundle.LoadModel(filepath.Join(tdir, "stages/model/bundle"))
		if err != nil {
			t.Fatal(err)
		}
		if tp := b.Meta.Plan.Tensors; len(tp) != 1 || tp[0].Column != "pixels" || !reflect.DeepEqual(tp[0].Shape, []int{1, 8, 8}) {
			t.Errorf("%s: the bundle's tensor inputs %+v, want pixels [1 8 8]", kind, tp)
		}
		if s := b.Model.Spec(); !reflect.DeepEqual(s.InputShape, []int{1, 8, 8}) || s.NumInputs != 64 {
			t.Errorf("%s: model input shape %v with %d inputs", kind, s.InputShape, s.NumInputs)
		}
	}
	_, err = runTensorTOML(t, mem, strings.Replace(write, `path = "train.arrow"`, `path = "train.csv"`, 1))
	var de *pipeline.DataError
	if !errors.As(err, &de) || de.Stage != "ipc" || de.Column != "pixels" || !strings.Contains(de.File, "train.csv") || !strings.Contains(err.Error(), ".parquet or .arrow") {
		t.Errorf("CSV write of a tensor column: %v, want a data error of stage ipc naming train.csv and pixels", err)
	}
}

// TestImageColumnConfigErrors: each mistake in image = { column = ... } is an error of the
// train stage at its key, naming the column and, for shapes, both shapes.
func TestImageColumnConfigErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const head = "[pipeline]\nseed = 1\n[stages.load]\nkind = \"dataset\"\nname = \"digits\"\nimage_column = \"pixels\"\n" +
		"[stages.split]\nkind = \"split\"\ninput = \"load\"\n" +
		"[stages.model]\nkind = \"train\"\ntrain = \"split.train\"\nepochs = 1\nlayers = [ { conv = 2, kernel = 3 }, { flatten = true } ]\n"
	const perPixel = "[pipeline]\nseed = 1\n[stages.load]\nkind = \"dataset\"\nname = \"digits\"\n" +
		"[stages.model]\nkind = \"train\"\ntrain = \"load\"\nepochs = 1\nlayers = [ { conv = 2, kernel = 3 }, { flatten = true } ]\n"
	for _, tc := range []struct {
		name, src, key string
		want           []string
	}{
		{"shape mismatch", head + "image = { column = \"pixels\", shape = [1, 4, 16] }\n", "image.shape", []string{"[1 4 16]", "[1 8 8]", `"pixels"`}},
		{"not a feature", head + "image = { column = \"pxs\" }\n", "image.column", []string{`"pxs"`, "pixels"}},
		{"plain column", perPixel + "image = { column = \"pixel_0_0\" }\n", "image.column", []string{`"pixel_0_0"`, "not a fixed_size_list<float32>"}},
		{"shape without column on a tensor", head + "image = { shape = [1, 8, 8] }\n", "image", []string{`image = { column = "pixels" }`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runTensorTOML(t, mem, tc.src)
			var ce *pipeline.ConfigError
			if !errors.As(err, &ce) || ce.Stage != "model" || ce.Key != tc.key {
				t.Fatalf("err %v (%#v), want a config error of stage model at %s", err, ce, tc.key)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestImageTrueTakesTheTensorShape: image = true on a stage whose only input is a tensor
// column takes the shape its metadata carries.
func TestImageTrueTakesTheTensorShape(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir, err := runTensorTOML(t, mem, "[pipeline]\nseed = 1\n[stages.load]\nkind = \"dataset\"\nname = \"digits\"\nimage_column = \"pixels\"\nlimit = 200\n"+
		"[stages.model]\nkind = \"train\"\ntrain = \"load\"\nepochs = 1\nimage = true\nlayers = [ { conv = 2, kernel = 3 }, { flatten = true } ]\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.LoadModel(filepath.Join(dir, "stages/model/bundle"))
	if err != nil {
		t.Fatal(err)
	}
	if s := b.Model.Spec(); !reflect.DeepEqual(s.InputShape, []int{1, 8, 8}) {
		t.Errorf("input shape %v, want [1 8 8]", s.InputShape)
	}
}

// TestImageColumnRefusesMixedInputs: an image model sees its whole input as the image, so a
// tensor column beside numeric or categorical columns is refused, naming them; a tensor
// without shape metadata takes the key's shape, which must fit its size.
func TestImageColumnRefusesMixedInputs(t *testing.T) {
	p, err := pipeline.Parse([]byte(digitsTrain+"image = { column = \"pixels\" }\n"), "p.toml", ".", registry(t), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Stage("model")
	plan := &bundle.InputPlan{Numeric: []string{"age"}, Categorical: []bundle.CatInput{{Column: "city", Cardinality: 3}},
		Tensors: []bundle.TensorInput{{Column: "pixels", Size: 4, Shape: []int{1, 2, 2}}}}
	_, err = imageShape(c, plan)
	for _, w := range []string{`"pixels"`, "age, city", "mixed image and other inputs work only without image layers", `list only "pixels" in features`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("err %v, want it to contain %q", err, w)
		}
	}
	plan.Numeric, plan.Categorical = nil, nil
	if shape, err := imageShape(c, plan); err != nil || !reflect.DeepEqual(shape, []int{1, 2, 2}) {
		t.Errorf("the tensor alone: shape %v, %v, want [1 2 2]", shape, err)
	}
	// A plain list (no shape metadata): the shape comes from the key, and must fit the size.
	plan.Tensors[0].Shape = nil
	if _, err := imageShape(c, plan); err == nil || !strings.Contains(err.Error(), "carries no [channels, height, width] shape") {
		t.Errorf("no shape anywhere: %v", err)
	}
	p, err = pipeline.Parse([]byte(digitsTrain+"image = { column = \"pixels\", shape = [1, 3, 3] }\n"), "p.toml", ".", registry(t), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ = p.Stage("model")
	_, err = imageShape(c, plan)
	for _, w := range []string{"[1 3 3]", "9 values", `"pixels"`, "fixed_size_list<float32>[4]"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("shape [1 3 3] on a list of 4: %v, want it to contain %q", err, w)
		}
	}
	plan.Tensors[0].Size = 9
	if shape, err := imageShape(c, plan); err != nil || !reflect.DeepEqual(shape, []int{1, 3, 3}) || !reflect.DeepEqual(plan.Tensors[0].Shape, []int{1, 3, 3}) {
		t.Errorf("shape [1 3 3] on a list of 9: %v, %v, plan %+v: want it, recorded in the plan", shape, err, plan.Tensors[0])
	}
}

// TestAugmenterCoversTensorInputs: the per-batch augmentation (noise here) reads the dense
// block's full width, tensor values included, not only the numeric columns.
func TestAugmenterCoversTensorInputs(t *testing.T) {
	plan := &bundle.InputPlan{Tensors: []bundle.TensorInput{{Column: "pixels", Size: 4, Shape: []int{1, 2, 2}}}}
	aug, err := augmenterFor([]pipeline.LineageStep{{Stage: "aug", Transform: &AugmentSpec{Noise: 0.5}}}, plan, nil)
	if err != nil || aug == nil {
		t.Fatalf("augmenter: nil %v, %v", aug == nil, err)
	}
	b := nn.Batch{Rows: 2, X: []float32{1, 2, 3, 4, 5, 6, 7, 8}}
	aug(&b, nil, rand.New(rand.NewPCG(1, 1)))
	for i, v := range b.X {
		if v == float32(i+1) {
			t.Errorf("value %d of the tensor rows was not augmented: %v", i, b.X)
		}
	}
}

// TestDenseNetworkTakesATensorColumn: without an image key, a tensor column is 64 plain
// inputs of a dense network (the mixed case: it would sit beside numeric columns the same way).
func TestDenseNetworkTakesATensorColumn(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir, err := runTensorTOML(t, mem, "[pipeline]\nseed = 1\n[stages.load]\nkind = \"dataset\"\nname = \"digits\"\nimage_column = \"pixels\"\nlimit = 300\n"+
		"[stages.model]\nkind = \"train\"\ntrain = \"load\"\nepochs = 2\nlayers = [ { dense = 16 } ]\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.LoadModel(filepath.Join(dir, "stages/model/bundle"))
	if err != nil {
		t.Fatal(err)
	}
	if s := b.Model.Spec(); s.NumInputs != 64 || s.InputShape != nil || len(b.Meta.Plan.Tensors) != 1 {
		t.Errorf("spec %d inputs, shape %v; tensors %+v: want 64 plain inputs from the pixels column", s.NumInputs, s.InputShape, b.Meta.Plan.Tensors)
	}
}
