package bundle_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/features"
)

// dropNothing is a program's own saved transform: it keeps its batches as they are.
type dropNothing struct {
	Note string `json:"note"`
}

func (dropNothing) Kind() string { return "drop_nothing" }

func (dropNothing) Apply(_ context.Context, _ memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	rec.Retain()
	return rec, nil
}

func (d dropNothing) Marshal() ([]byte, error) { return json.Marshal(d) }

// ExampleDecoders registers the decoder of a program's own transform next to pipe's, as a
// program does before it loads bundles whose preprocessing holds that transform
// (bundle.Load(dir, decoders)).
func ExampleDecoders() {
	decoders := features.Decoders() // normalize, impute, encode
	err := decoders.Register("drop_nothing", func(state []byte) (bundle.Transform, error) {
		var d dropNothing
		err := json.Unmarshal(state, &d)
		return d, err
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	saved, _ := dropNothing{Note: "kept"}.Marshal()
	t, err := decoders.Decode("drop_nothing", saved)
	fmt.Println(t.(dropNothing).Note, err)
	fmt.Println(decoders.Kinds())
	// Output:
	// kept <nil>
	// [drop_nothing encode impute normalize]
}
