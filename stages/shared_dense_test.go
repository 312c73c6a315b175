package stages

import (
	"math"
	"slices"
	"testing"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/nn/train"
)

// TestSharedDenseCopyAppendsApart: rows appended to a shared dense copy (the unlabeled
// tables' rows) go to arrays of the run's own; the copy other runs hold is unchanged, even
// where its arrays had room past their length.
func TestSharedDenseCopyAppendsApart(t *testing.T) {
	room := func(v []float32, extra int) []float32 { return append(make([]float32, 0, len(v)+extra), v...) }
	shared := &bundle.Tensors{Data: train.Dataset{X: room([]float32{1, 2, 3, 4}, 8), NumInputs: 2,
		Cat:     [][]int32{append(make([]int32, 0, 8), 5, 6)},
		Targets: []train.Target{{Labels: append(make([]int32, 0, 8), 0, 1)}, {Values: room([]float32{0.5, 1.5}, 8)}}},
		RowIDs: []int64{10, 11}}
	x, labels, values := shared.Data.X[:cap(shared.Data.X)], shared.Data.Targets[0].Labels[:8], shared.Data.Targets[1].Values[:8]
	before := slices.Clone(x)

	mine := ownHeaders(shared)
	appendRows(&mine.Data, train.Dataset{X: []float32{7, 8}, NumInputs: 2, Cat: [][]int32{{9}}})
	if mine.Data.Len() != 3 || mine.Data.X[4] != 7 || mine.Data.Cat[0][2] != 9 || mine.Data.Targets[0].Labels[2] != -1 || !math.IsNaN(float64(mine.Data.Targets[1].Values[2])) {
		t.Fatalf("the run's copy after the append: %+v", mine.Data)
	}
	if shared.Data.Len() != 2 || len(shared.Data.Cat[0]) != 2 || len(shared.Data.Targets[0].Labels) != 2 || len(shared.Data.Targets[1].Values) != 2 {
		t.Errorf("the shared copy grew: %+v", shared.Data)
	}
	if !slices.Equal(x, before) || labels[2] != 0 || values[2] != 0 {
		t.Errorf("the append wrote into the shared arrays' spare room: x %v, labels %v, values %v", x, labels, values)
	}
}
