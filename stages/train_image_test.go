package stages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/pipeline"
)

// digitsTrain is a digits pipeline up to a train stage; a test appends the stage's keys.
const digitsTrain = "[pipeline]\nseed = 1\n[stages.load]\nkind = \"dataset\"\nname = \"digits\"\n[stages.split]\nkind = \"split\"\ninput = \"load\"\n" +
	"[stages.model]\nkind = \"train\"\ntrain = \"split.train\"\nval = \"split.val\"\nepochs = 1\n"

// TestImageLayerConfigErrors: every mistake in an image layer or the image key, at any depth,
// is a config error at its key, with a line, when the pipeline loads.
func TestImageLayerConfigErrors(t *testing.T) {
	cases := []struct{ extra, key, msg string }{
		{"image = true\nlayers = [ { conv = 8, kernel = 3, kernl = 2 } ]\n", "layers[0].kernl", "unknown key"},
		{"layers = [ { conv = 8, kernel = 3 } ]\n", "layers[0]", "a conv layer needs an image input: add image = { shape = [channels, height, width] }"},
		{"layers = [ { flatten = true }, { dense = 8 } ]\n", "layers[0]", "a flatten layer needs an image input: add image ="},
		{"layers = [ { type = \"residual\", filters = 8 } ]\n", "layers[0]", "a residual layer needs an image input: add image ="},
		{"image = false\nlayers = [ { max_pool = 2 } ]\n", "layers[0]", "a max_pool layer needs an image input"},
		{"image = true\nlayers = [ { conv = 8 } ]\n", "layers[0]", "a conv layer needs kernel"},
		{"image = true\nlayers = [ { type = \"conv\", kernel = 3 } ]\n", "layers[0]", `type = "conv" needs filters`},
		{"image = true\nlayers = [ { conv = 0, kernel = 3 } ]\n", "layers[0].conv", "below the minimum 1"},
		{"image = true\nlayers = [ { max_pool = 2, filters = 3 } ]\n", "layers[0]", "filters does not apply to a max_pool layer ({ max_pool = ... } takes max_pool, stride, padding)"},
		{"image = true\nlayers = [ { conv = 8, kernel = 3, dropout = 0.1 } ]\n", "layers[0]", "dropout does not apply to a conv layer"},
		{"image = true\nlayers = [ { avg_pool = 2, padding = \"sam\" } ]\n", "layers[0].padding", "sam"},
		{"image = true\nlayers = [ { global_avg_pool = false } ]\n", "layers[0]", "global_avg_pool = false is no layer"},
		{"image = true\nlayers = [ { residual = 8, filters = 8 } ]\n", "layers[0]", `an image residual block is written in the long form: { type = "residual", filters = 32 }`},
		{"image = true\nlayers = [ { type = \"residual\", filters = 8, units = 8 } ]\n", "layers[0]", "units (an MLP block) or filters (an image block), not both"},
		{"image = true\nlayers = [ { conv = 8, max_pool = 2, kernel = 3 } ]\n", "layers[0]", "a layer has one type, found conv and max_pool"},
		{"image = { shape = [1, 8] }\n", "image.shape", "2"},
		{"image = { shape = [1, 8, 0] }\n", "image.shape[2]", "below the minimum 1"},
		{"image = { shape = [1, 8, 8], size = 3 }\n", "image.size", "unknown key"},
		{"image = { }\n", "image", "image needs shape = [channels, height, width] (the per-pixel feature columns), or column ="},
	}
	for _, c := range cases {
		_, err := pipeline.Parse([]byte(digitsTrain+c.extra), "p.toml", ".", registry(t), pipeline.LoadOptions{})
		errs := pipeline.ConfigErrors(err)
		if len(errs) != 1 || errs[0].Stage != "model" || errs[0].Key != c.key || !strings.Contains(errs[0].Msg, c.msg) || errs[0].Line == 0 {
			t.Errorf("%q: got %v, want %s: %s (with a line)", c.extra, err, c.key, c.msg)
		}
	}
	// A stage that takes no image input refuses image layers when it loads, not when nn builds
	// the member.
	ens := strings.Replace(strings.Replace(digitsTrain, "kind = \"train\"", "kind = \"ensemble\"", 1), "epochs = 1\n", "", 1) + "member = { layers = [ { conv = 4, kernel = 3 }, { flatten = true } ] }\n"
	errs := pipeline.ConfigErrors(func() error {
		_, err := pipeline.Parse([]byte(ens), "p.toml", ".", registry(t), pipeline.LoadOptions{})
		return err
	}())
	if len(errs) != 1 || errs[0].Key != "member.layers[0]" || errs[0].Line == 0 || !strings.Contains(errs[0].Msg, "a conv layer needs an image input") {
		t.Errorf("ensemble member with a conv layer: got %v", errs)
	}
	good := []string{
		"image = { shape = [1, 8, 8] }\nlayers = [ { conv = 4, kernel = 3, stride = 1, padding = \"same\", activation = \"relu\" }, { batch_norm = true }, { max_pool = 2 }, { avg_pool = 2, stride = 1 }, { flatten = true } ]\n",
		"image = true\nlayers = [ { type = \"conv\", filters = 4, kernel = 3, no_bias = true }, { type = \"residual\", filters = 4, kernel = 3, stride = 2, norm = \"batch_norm\", dropout = 0.1 }, { type = \"max_pool\", kernel = 2 }, { global_avg_pool = true }, { dense = 8 } ]\n",
	}
	for _, g := range good {
		if _, err := pipeline.Parse([]byte(digitsTrain+g), "p.toml", ".", registry(t), pipeline.LoadOptions{}); err != nil {
			t.Errorf("%q: %v", g, err)
		}
	}
}

// TestImageShapeMismatch: a shape whose product is not the number of feature columns, and
// image = true on columns that are no built-in image, are config errors at image that name
// the stage and the counts, when the stage sees its data.
func TestImageShapeMismatch(t *testing.T) {
	cases := []struct{ src, msg string }{
		{digitsTrain + "image = { shape = [1, 8, 9] }\nlayers = [ { conv = 2, kernel = 3 }, { flatten = true } ]\n",
			"shape [1 8 9] holds 72 pixels per row, but the stage has 64 numeric feature columns (pixel_0_0, pixel_0_1 ... pixel_7_7)"},
		{digitsTrain + "features = [\"pixel_0_0\", \"pixel_0_1\"]\nimage = { shape = [1, 8, 8] }\nlayers = [ { flatten = true } ]\n",
			"holds 64 pixels per row, but the stage has 2 numeric feature columns"},
		{strings.Replace(digitsTrain, "\"digits\"", "\"iris\"", 1) + "image = true\nlayers = [ { flatten = true } ]\n",
			"image = true cannot infer the shape: the feature columns (sepal_length"},
		{digitsTrain + "features = [\"pixel_0_1\", \"pixel_0_0\"]\nimage = true\nlayers = [ { flatten = true } ]\n",
			"the last column pixel_0_0 makes a 1×1 image, but there are 2 columns"},
	}
	for _, c := range cases {
		_, _, err := runTOML(t, ".", c.src)
		var ce *pipeline.ConfigError
		if !errors.As(err, &ce) || ce.Stage != "model" || ce.Key != "image" || ce.Line == 0 || !strings.Contains(ce.Msg, c.msg) {
			t.Errorf("got %v, want a config error at model's image (with a line): %s", err, c.msg)
		}
	}
}

func TestInferImageShape(t *testing.T) {
	px := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprint("px", i)
		}
		return out
	}
	grid := func(h, w int) []string {
		var out []string
		for r := 0; r < h; r++ {
			for c := 0; c < w; c++ {
				out = append(out, fmt.Sprintf("pixel_%d_%d", r, c))
			}
		}
		return out
	}
	swapped := grid(8, 8)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	shuffled := px(16)
	shuffled[3], shuffled[7] = shuffled[7], shuffled[3]
	for _, c := range []struct {
		cols []string
		want []int
	}{{px(784), []int{1, 28, 28}}, {grid(8, 8), []int{1, 8, 8}}, {grid(3, 5), []int{1, 3, 5}}, {px(783), nil}, {grid(8, 8)[1:], nil},
		{swapped, nil}, {shuffled, nil}, {[]string{"a"}, nil}} {
		got, msg := inferImageShape(c.cols)
		if !reflect.DeepEqual(got, c.want) || (c.want == nil) != (msg != "") {
			t.Errorf("%d columns %s: got %v %q, want %v", len(c.cols), sample(c.cols), got, msg, c.want)
		}
	}
}

// TestDigitsCNNPipeline runs pipelines/digits-cnn.toml through the stages: the CNN reaches
// the test-accuracy floor, the bundle records the image shape the stage inferred, its summary
// shows every image layer's [C H W] output, and predicting refuses rows that lack a pixel
// column.
func TestDigitsCNNPipeline(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var sets []string
	if raceEnabled {
		sets = []string{"model.epochs=3"} // the floor is checked in the default build (and by TestExamplePipelines)
	}
	p, err := pipeline.Load("../pipelines/digits-cnn.toml", registry(t), pipeline.LoadOptions{Overrides: sets})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	res, err := pipeline.Run(context.Background(), p, pipeline.RunOptions{Dir: dir, Mem: mem})
	if err != nil {
		t.Fatal(err)
	}
	acc := res.Manifest.Stages["eval"].Metrics["test_accuracy"]
	t.Logf("digits CNN test accuracy %.4f", acc)
	if acc < 0.95 && !raceEnabled {
		t.Errorf("test accuracy %.4f, below the floor .95", acc)
	}
	b, err := bundle.LoadModel(filepath.Join(dir, "stages/model/bundle"))
	if err != nil {
		t.Fatal(err)
	}
	spec := b.Model.Spec()
	if !reflect.DeepEqual(spec.InputShape, []int{1, 8, 8}) || spec.NumInputs != 64 {
		t.Errorf("saved input shape %v with %d inputs, want [1 8 8] and 64", spec.InputShape, spec.NumInputs)
	}
	pr, err := bundle.Load(filepath.Join(dir, "stages/model/bundle"), features.Decoders())
	if err != nil {
		t.Fatal(err)
	}
	sum := bundle.Summary(pr)
	// conv 16 same on 8×8, max_pool 2, conv 32 same: the shapes the config implies.
	for _, want := range []string{"conv             [16 8 8]", "max_pool         [16 4 4]", "conv             [32 4 4]", "global_avg_pool  [32]"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	var fields []arrow.Field
	for _, c := range b.Meta.Input {
		if c.Name != "pixel_3_4" {
			fields = append(fields, arrow.Field{Name: c.Name, Type: arrow.PrimitiveTypes.Int64})
		}
	}
	err = b.CheckInput(arrow.NewSchema(fields, nil))
	var ce *bundle.ColumnError
	if !errors.As(err, &ce) || ce.Column != "pixel_3_4" {
		t.Errorf("rows without pixel_3_4: got %v, want a column error naming it", err)
	}
}

// TestConvTakesTheStageActivation: a conv layer without an activation gets the stage's, as a
// dense layer does; one with its own keeps it.
func TestConvTakesTheStageActivation(t *testing.T) {
	src := digitsTrain + "activation = \"tanh\"\nimage = true\nlayers = [ { conv = 4, kernel = 3 }, { conv = 4, kernel = 3, activation = \"gelu\" }, { flatten = true } ]\n"
	p, err := pipeline.Parse([]byte(src), "p.toml", ".", registry(t), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Stage("model")
	ts, err := parseTrainSpec(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{ts.layers[0].Activation, ts.layers[1].Activation}; !reflect.DeepEqual(got, []string{"tanh", "gelu"}) {
		t.Errorf("conv activations %v, want [tanh gelu]", got)
	}
}

// TestImageTrainSameWhateverTheWorkers: a CNN trained by the train stage (channel batch_norm,
// a strided image residual block) has bit-identical weights with 1 and 3 workers, and its
// bundle, loaded alone, predicts raw CSV rows as the run's predict stage did.
func TestImageTrainSameWhateverTheWorkers(t *testing.T) {
	src := strings.Replace(digitsTrain, "epochs = 1", "epochs = 2", 1) + "image = true\nlayers = [ { conv = 4, kernel = 3, padding = \"same\" }, { batch_norm = true }, " +
		"{ type = \"residual\", filters = 6, stride = 2, norm = \"batch_norm\" }, { max_pool = 2, stride = 1 }, { global_avg_pool = true }, { dense = 8 } ]\n" +
		"[stages.scores]\nkind = \"predict\"\nmodel = \"model.model\"\ninput = \"split.test\"\n" +
		"[stages.save]\nkind = \"write\"\ninput = \"scores\"\npath = \"scores.csv\"\n"
	_, dir1, err := runTOML(t, ".", src, "model.workers=1")
	if err != nil {
		t.Fatal(err)
	}
	_, dir3, err := runTOML(t, ".", src, "model.workers=3", "pipeline.workers=3")
	if err != nil {
		t.Fatal(err)
	}
	w1, err := os.ReadFile(filepath.Join(dir1, "stages/model/bundle/model/weights.bin"))
	if err != nil {
		t.Fatal(err)
	}
	w3, err := os.ReadFile(filepath.Join(dir3, "stages/model/bundle/model/weights.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w1, w3) {
		t.Errorf("weights differ between 1 and 3 workers (%d and %d bytes)", len(w1), len(w3))
	}
	p, err := bundle.Load(filepath.Join(dir1, "stages/model/bundle"), features.Decoders())
	if err != nil {
		t.Fatal(err)
	}
	runPreds := readCSV(t, filepath.Join(dir1, "stages/save/scores.csv"))
	header, byRow := predictCSV(t, p, "../datasets/data/digits/digits.csv")
	samePredictions(t, runPreds, header, byRow)
	if len(runPreds) < 200 {
		t.Errorf("only %d predictions", len(runPreds)-1)
	}
}

// TestInitFromACNNNeedsAnImageInput: a train stage that takes its layers from a CNN's bundle
// (init_from, no layers of its own) needs the image key too: without it, a config error at
// init_from says to add it; with it, the stage trains.
func TestInitFromACNNNeedsAnImageInput(t *testing.T) {
	src := digitsTrain + "image = true\nlayers = [ { conv = 4, kernel = 3 }, { flatten = true } ]\n" +
		"[stages.b]\nkind = \"train\"\ntrain = \"split.train\"\nval = \"split.val\"\nepochs = 1\ninit_from = \"model.model\"\n"
	_, _, err := runTOML(t, ".", src)
	var ce *pipeline.ConfigError
	if !errors.As(err, &ce) || ce.Stage != "b" || ce.Key != "init_from" || ce.Line == 0 || !strings.Contains(ce.Msg, "include conv_1 (conv), which needs an image input: add image =") {
		t.Errorf("got %v, want a config error at b's init_from", err)
	}
	m, _, err := runTOML(t, ".", src+"image = true\n")
	if err != nil || m.Stages["b"].Status != pipeline.StatusSucceeded {
		t.Errorf("with image = true: %v", err)
	}
}
