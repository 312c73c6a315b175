package stages

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/pipeline"
)

func imageFields() []pipeline.Field {
	return []pipeline.Field{
		{Name: "shape", Type: pipeline.TypeList, Len: 3, Required: true, Elem: &pipeline.Field{Type: pipeline.TypeInt, Min: pipeline.Bound(1)},
			Doc: "[channels, height, width]: the feature columns, in order, are the pixels of channel 0 row by row, then channel 1..."},
	}
}

// checkImageLayers refuses image layers (and image residual blocks) on a stage without an
// image input (a train stage, an ensemble's member table or a search's train base take one):
// nn would refuse them only once the data is read.
func checkImageLayers(c settings, layers []nn.LayerSpec) error {
	if v, ok := c.Value("image").(bool); c.Value("image") != nil && (!ok || v) {
		return nil
	}
	for i, l := range layers {
		if isImageLayer(l) {
			return c.Errorf(fmt.Sprintf("layers[%d]", i), "a %s layer needs an image input: add image = { shape = [channels, height, width] } (or image = true for the digits and mnist datasets) to the train stage, the ensemble's member table or the search's train base; the other stages take no image input", l.Type)
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

// imageShape resolves the stage's image key against the plan's numeric columns: nil without
// one, the given shape when its product is their number, the inferred one for image = true.
func imageShape(c settings, plan *bundle.InputPlan) ([]int, error) {
	var shape []int
	switch v := c.Value("image").(type) {
	case nil:
		return nil, nil
	case bool:
		if !v {
			return nil, nil
		}
		var msg string
		if shape, msg = inferImageShape(plan.Numeric); msg != "" {
			return nil, c.Errorf("image", "image = true cannot infer the shape: %s; write image = { shape = [channels, height, width] }", msg)
		}
	case map[string]any:
		for _, x := range v["shape"].([]any) {
			shape = append(shape, int(x.(int64)))
		}
	}
	if len(plan.Categorical) > 0 {
		cols := make([]string, len(plan.Categorical))
		for i, cc := range plan.Categorical {
			cols[i] = cc.Column
		}
		return nil, c.Errorf("image", "an image model takes only the pixels as features, and the stage also has the categorical column(s) %s: list the pixel columns in features", strings.Join(cols, ", "))
	}
	if n := shape[0] * shape[1] * shape[2]; n != len(plan.Numeric) {
		return nil, c.Errorf("image", "shape %v holds %d pixels per row, but the stage has %d numeric feature columns (%s): they must match (set features to the pixel columns, or fix the shape)",
			shape, n, len(plan.Numeric), sample(plan.Numeric))
	}
	return shape, nil
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
