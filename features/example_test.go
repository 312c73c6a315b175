package features_test

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/schema"
)

// A normalize transform is fitted on the train table in one streaming pass, then applied to
// another split with the train statistics, and travels as JSON.
func Example() {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	exampleNormalize(mem)
	fmt.Println("bytes still allocated:", mem.CurrentAlloc())
	// Output:
	// train mean 35.0, std 11.180
	// float32 [0 2.236068]
	// split kept: test
	// bytes still allocated: 0
}

func exampleNormalize(mem memory.Allocator) {
	table := func(split string, ids []int64, xs []float64) arrow.RecordBatch {
		b := array.NewRecordBuilder(mem, schema.WithSplit(arrow.NewSchema([]arrow.Field{
			schema.WithRole(arrow.Field{Name: schema.RowIDColumn, Type: arrow.PrimitiveTypes.Int64}, schema.RoleID),
			{Name: "age", Type: arrow.PrimitiveTypes.Float64},
		}, nil), split))
		defer b.Release()
		b.Field(0).(*array.Int64Builder).AppendValues(ids, nil)
		b.Field(1).(*array.Float64Builder).AppendValues(xs, nil)
		return b.NewRecordBatch()
	}
	train := table(schema.SplitTrain, []int64{0, 1, 2, 3}, []float64{20, 30, 40, 50})
	defer train.Release()

	fitter := features.NewNormalizeFitter(features.NormalizeOptions{}) // standard scaling
	if err := fitter.Observe(train); err != nil {
		fmt.Println(err)
		return
	}
	norm, err := fitter.Finish()
	if err != nil {
		fmt.Println(err)
		return
	}
	stats := norm.Describe()["columns"].(map[string]any)["age"].(map[string]any)
	fmt.Printf("train mean %.1f, std %.3f\n", stats["mean"], stats["std"])

	// At prediction time: the transform comes back from its JSON.
	blob, _ := features.Marshal(norm)
	norm, err = features.Unmarshal(blob)
	if err != nil {
		fmt.Println(err)
		return
	}
	test := table(schema.SplitTest, []int64{4, 5}, []float64{35, 60})
	defer test.Release()
	out, err := norm.Apply(context.Background(), mem, test)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer out.Release()
	fmt.Println(out.Schema().Field(1).Type, out.Column(1).(*array.Float32).Float32Values())
	fmt.Println("split kept:", schema.Split(out.Schema()))
}
