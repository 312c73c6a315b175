package stages

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/pipeline"
)

func imageFields() []pipeline.Field {
	return []pipeline.Field{
		{Name: "shape", Type: pipeline.TypeList, Len: 3, Elem: &pipeline.Field{Type: pipeline.TypeInt, Min: pipeline.Bound(1)},
			Doc: "[channels, height, width]: the feature columns, in order, are the pixels of channel 0 row by row, then channel 1... (with column: the tensor's values are, in that order). Required unless column's arrow.fixed_shape_tensor metadata carries the shape; when both are given they must agree."},
		{Name: "column", Type: pipeline.TypeString,
			Doc: "An Arrow-native image: the name of a fixed_size_list<float32> column (optionally an arrow.fixed_shape_tensor) that holds each row's C·H·W pixels, read without per-pixel columns. It must be the stage's only feature (an image model sees its whole input as the image)."},
	}
}

// checkImageLayers refuses an image key with neither shape nor column, and image layers (and
// image residual blocks) on a stage without an image input (a train stage, an ensemble's
// member table or a search's train base take one):
// nn would refuse them only once the data is read.
func checkImageLayers(c settings, layers []nn.LayerSpec) error {
	if v, ok := c.Value("image").(map[string]any); ok && v["shape"] == nil && v["column"] == nil {
		return c.Errorf("image", "image needs shape = [channels, height, width] (the per-pixel feature columns), or column = \"<tensor column>\" (a fixed_size_list<float32> column, whose arrow.fixed_shape_tensor metadata may carry the shape)")
	}
	if v, ok := c.Value("image").(bool); c.Value("image") != nil && (!ok || v) {
		return nil
	}
	for i, l := range layers {
		if isImageLayer(l) {
			return c.Errorf(fmt.Sprintf("layers[%d]", i), "a %s layer needs an image input: add image = { shape = [channels, height, width] } (or image = true for the digits and mnist datasets) to the train stage, the pretrain stage (a convolutional autoencoder), the ensemble's member table or the search's train base; the other stages take no image input", l.Type)
		}
	}
	return nil
}

// isImageLayer reports whether a layer needs an image input.
func isImageLayer(l nn.LayerSpec) bool {
	image := l.Type == nn.LayerResidual && l.Filters > 0
	for _, t := range imageLayerTypes {
		image = image || l.Type == t
	}
	return image
}

var (
	digitsPixel = regexp.MustCompile(`^pixel_(\d+)_(\d+)$`)
	mnistPixel  = regexp.MustCompile(`^px(\d+)$`)
)

// imageShape resolves the stage's image key against the plan's inputs: nil without one, the
// given shape when its product is the number of numeric inputs, the inferred one for image =
// true, and for image = { column = ... } the tensor column's shape (which it records in the
// plan, so the bundle carries it).
func imageShape(c settings, plan *bundle.InputPlan) ([]int, error) {
	var shape []int
	column := ""
	switch v := c.Value("image").(type) {
	case nil:
		return nil, nil
	case bool:
		if !v {
			return nil, nil
		}
		if len(plan.Tensors) == 1 && len(plan.Numeric) == 0 {
			column = plan.Tensors[0].Column
			if shape = tensorImageShape(plan.Tensors[0].Shape); shape == nil {
				return nil, c.Errorf("image", "image = true cannot infer the shape of tensor column %q (%s): it carries no [channels, height, width] shape; write image = { column = %q, shape = [channels, height, width] }",
					column, plan.Tensors[0].ShapeString(), column)
			}
			break
		}
		var msg string
		if shape, msg = inferImageShape(plan.Numeric); msg != "" {
			return nil, c.Errorf("image", "image = true cannot infer the shape: %s; write image = { shape = [channels, height, width] }", msg)
		}
	case map[string]any:
		if sh, ok := v["shape"].([]any); ok {
			for _, x := range sh {
				shape = append(shape, int(x.(int64)))
			}
		}
		column, _ = v["column"].(string)
		if column == "" && shape == nil {
			return nil, c.Errorf("image", "image needs a shape = [channels, height, width], or a column = \"<tensor column>\" whose arrow.fixed_shape_tensor metadata carries it")
		}
	}
	if column != "" {
		return tensorImage(c, plan, column, shape)
	}
	if len(plan.Categorical) > 0 {
		cols := make([]string, len(plan.Categorical))
		for i, cc := range plan.Categorical {
			cols[i] = cc.Column
		}
		return nil, c.Errorf("image", "an image model takes only the pixels as features, and the stage also has the categorical column(s) %s: list the pixel columns in features", strings.Join(cols, ", "))
	}
	if len(plan.Tensors) > 0 {
		return nil, c.Errorf("image", "the stage's features include the tensor column %q: name it with image = { column = %q } (and list only it in features)", plan.Tensors[0].Column, plan.Tensors[0].Column)
	}
	if n := shape[0] * shape[1] * shape[2]; n != len(plan.Numeric) {
		return nil, c.Errorf("image", "shape %v holds %d pixels per row, but the stage has %d numeric feature columns (%s): they must match (set features to the pixel columns, or fix the shape)",
			shape, n, len(plan.Numeric), sample(plan.Numeric))
	}
	return shape, nil
}

// tensorImage resolves image = { column = ..., shape = ... }: the column must be the plan's
// only input, a tensor column whose size is the shape's product; a shape given here and one
// its extension metadata carries must agree. The shape is recorded in the plan.
func tensorImage(c settings, plan *bundle.InputPlan, column string, shape []int) ([]int, error) {
	k := -1
	for i, t := range plan.Tensors {
		if t.Column == column {
			k = i
		}
	}
	if k < 0 {
		for _, n := range plan.Numeric {
			if n == column {
				return nil, c.Errorf("image.column", "column %q is a plain number, not a fixed_size_list<float32> tensor: write it as one in the source (or load the dataset with image_column), or give the per-pixel columns with image = { shape = [channels, height, width] }", column)
			}
		}
		return nil, c.Errorf("image.column", "column %q is not a feature of the stage (its tensor features: %s): add it to features, or check the name", column, tensorNames(plan))
	}
	t := plan.Tensors[k]
	var other []string
	other = append(other, plan.Numeric...)
	for _, cc := range plan.Categorical {
		other = append(other, cc.Column)
	}
	for _, tt := range plan.Tensors {
		if tt.Column != column {
			other = append(other, tt.Column)
		}
	}
	if len(other) > 0 {
		return nil, c.Errorf("image.column", "an image model sees its whole input as the image %q, and the stage also has the feature column(s) %s, which it cannot take beside it (mixed image and other inputs work only without image layers, in a dense network): list only %q in features, or drop the image key", column, sample(other), column)
	}
	ext := tensorImageShape(t.Shape)
	switch {
	case shape == nil && ext == nil:
		return nil, c.Errorf("image.shape", "tensor column %q (%s) carries no [channels, height, width] shape: write image = { column = %q, shape = [channels, height, width] }", column, t.ShapeString(), column)
	case shape == nil:
		shape = ext
	case ext != nil && !slices.Equal(shape, ext):
		return nil, c.Errorf("image.shape", "shape %v differs from the shape %v that column %q's arrow.fixed_shape_tensor metadata carries: drop shape here, or fix the source", shape, t.Shape, column)
	}
	if n := shape[0] * shape[1] * shape[2]; n != t.Size {
		return nil, c.Errorf("image.shape", "shape %v holds %d values per row, but column %q is %s: they must match", shape, n, column, t.ShapeString())
	}
	plan.Tensors[k].Shape = shape
	return shape, nil
}

// tensorImageShape is a tensor's shape as [channels, height, width]: a 2-D [H, W] shape is one
// channel; nil when it is neither.
func tensorImageShape(shape []int) []int {
	switch len(shape) {
	case 2:
		return []int{1, shape[0], shape[1]}
	case 3:
		return slices.Clone(shape)
	}
	return nil
}

func tensorNames(plan *bundle.InputPlan) string {
	if len(plan.Tensors) == 0 {
		return "none"
	}
	cols := make([]string, len(plan.Tensors))
	for i, t := range plan.Tensors {
		cols[i] = t.Column
	}
	return strings.Join(cols, ", ")
}

// sample names the first and last of cols.
func sample(cols []string) string {
	switch len(cols) {
	case 0:
		return "none"
	case 1, 2, 3:
		return strings.Join(cols, ", ")
	}
	return cols[0] + ", " + cols[1] + " ... " + cols[len(cols)-1]
}

// inferImageShape infers a one-channel image's shape from the columns of the built-in image
// datasets, checking that they come in row-major order: digits' pixel_<row>_<col> and
// MNIST's px<i> (a square number of them). msg says why it cannot.
func inferImageShape(cols []string) ([]int, string) {
	if len(cols) == 0 {
		return nil, "the stage has no numeric feature columns"
	}
	if m := digitsPixel.FindStringSubmatch(cols[len(cols)-1]); m != nil {
		h, _ := strconv.Atoi(m[1])
		w, _ := strconv.Atoi(m[2])
		h, w = h+1, w+1
		if h*w != len(cols) {
			return nil, fmt.Sprintf("the last column %s makes a %d×%d image, but there are %d columns", cols[len(cols)-1], h, w, len(cols))
		}
		for i, col := range cols {
			if want := fmt.Sprintf("pixel_%d_%d", i/w, i%w); col != want {
				return nil, fmt.Sprintf("feature column %d is %s where a row-major %d×%d image has %s", i, col, h, w, want)
			}
		}
		return []int{1, h, w}, ""
	}
	if mnistPixel.MatchString(cols[0]) {
		s := 1
		for s*s < len(cols) {
			s++
		}
		if s*s != len(cols) {
			return nil, fmt.Sprintf("%d px columns are not a square image", len(cols))
		}
		for i, col := range cols {
			if want := "px" + strconv.Itoa(i); col != want {
				return nil, fmt.Sprintf("feature column %d is %s where a row-major %d×%d image has %s", i, col, s, s, want)
			}
		}
		return []int{1, s, s}, ""
	}
	return nil, fmt.Sprintf("the feature columns (%s) are not the digits (pixel_<row>_<col>) or mnist (px0, px1...) pixels", sample(cols))
}
