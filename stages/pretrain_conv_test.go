package stages

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/pretrain"
)

// digitsConvAE is a digits pipeline with a convolutional autoencoder (cae) on the training
// images; a test appends the stages that read its encoder.
const digitsConvAE = "[pipeline]\nseed = 1\n[stages.load]\nkind = \"dataset\"\nname = \"digits\"\n" +
	"[stages.split]\nkind = \"split\"\ninput = \"load\"\n" +
	"[stages.scale]\nkind = \"normalize\"\nfit = \"split.train\"\napply = [\"split.train\", \"split.val\", \"split.test\"]\nmethod = \"minmax\"\n" +
	"[stages.cae]\nkind = \"pretrain\"\ninput = \"scale.train\"\nval = \"scale.val\"\nimage = true\ntype = \"denoising\"\n" +
	"corruption = { kind = \"gaussian\", rate = 0.1 }\noptimizer = { name = \"adam\", lr = 1e-2 }\nepochs = 8\nearly_stopping = false\n" +
	"layers = [ { conv = 8, kernel = 3, padding = \"same\" }, { max_pool = 2 }, { conv = 4, kernel = 3, padding = \"same\" } ]\n"

// cnnFromEncoder is a train stage whose first layers carry the encoder's names.
func cnnFromEncoder(name, extra string) string {
	return "[stages." + name + "]\nkind = \"train\"\ntrain = \"scale.train\"\nval = \"scale.val\"\nimage = true\nepochs = 2\nearly_stopping = false\n" +
		"layers = [ { conv = 8, kernel = 3, padding = \"same\", name = \"enc_1\" }, { max_pool = 2, name = \"enc_2\" }, " +
		"{ conv = 4, kernel = 3, padding = \"same\", name = \"enc_3\" }, { max_pool = 2 }, { flatten = true }, { dense = 16 } ]\n" + extra
}

// TestConvAutoencoderStageTransfers runs a convolutional autoencoder on digits and three CNNs
// after it: one fine-tuned from its encoder with the encoder frozen, one fine-tuned without
// freezing, one from scratch. The reconstruction loss falls to half or less; the frozen
// model's conv layers hold the encoder's weights bit for bit (they would hold a fresh init
// had init_from done nothing), the fine-tuned model's first-epoch loss differs from the
// scratch one's, the stage records the image shape and the transferred layers, and the
// encoder is bit-identical with 1 and 3 workers.
func TestConvAutoencoderStageTransfers(t *testing.T) {
	src := digitsConvAE +
		cnnFromEncoder("frozen", "init_from = \"cae.encoder\"\nfreeze = [\"enc_.*\"]\n") +
		cnnFromEncoder("tuned", "init_from = \"cae.encoder\"\n") +
		cnnFromEncoder("scratch", "")
	m, dir, err := runTOML(t, ".", src, "cae.workers=1")
	if err != nil {
		t.Fatal(err)
	}
	cae := m.Stages["cae"]
	vl := historyColumn(t, filepath.Join(dir, "stages", "cae", "history.csv"), "val_reconstruction_loss")
	if len(vl) != 8 || !(vl[len(vl)-1] < vl[0]/2) {
		t.Errorf("val reconstruction loss %v: want 8 epochs and a fall to half or less", vl)
	}
	t.Logf("cae val reconstruction loss %.4f -> %.4f", vl[0], vl[len(vl)-1])
	if got := cae.Info["image_shape"]; !reflect.DeepEqual(got, []any{1.0, 8.0, 8.0}) {
		t.Errorf("cae info image_shape = %v, want [1 8 8]", got)
	}
	if got := cae.Info["code_width"]; got != 4.0*4*4 {
		t.Errorf("cae code width %v, want 64 (4 channels of 4×4)", got)
	}
	enc, err := pretrain.LoadEncoder(filepath.Join(dir, "stages", "cae", encoderDir))
	if err != nil {
		t.Fatal(err)
	}
	if got := enc.Spec().InputShape; !reflect.DeepEqual(got, []int{1, 8, 8}) {
		t.Errorf("saved encoder input shape %v, want [1 8 8]", got)
	}
	model := func(stage string) *bundle.Bundle {
		b, err := bundle.LoadModel(filepath.Join(dir, "stages", stage, bundleDir))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	frozen, tuned, scratch := model("frozen"), model("tuned"), model("scratch")
	for _, name := range []string{"enc_1/W", "enc_1/b", "enc_3/W", "enc_3/b"} {
		want := enc.Model().Param(name)
		if want == nil {
			t.Fatalf("the encoder has no %s", name)
		}
		if got := frozen.Model.Param(name); got == nil || !bitEq(got.Value, want.Value) {
			t.Errorf("frozen fine-tuned model's %s differs from the encoder's", name)
		}
		if got := scratch.Model.Param(name); got == nil || bitEq(got.Value, want.Value) {
			t.Errorf("scratch model's %s equals the encoder's", name)
		}
		if got := tuned.Model.Param(name); got == nil || bitEq(got.Value, want.Value) {
			t.Errorf("fine-tuned (unfrozen) model's %s did not move from the encoder's", name)
		}
	}
	if got := m.Stages["tuned"].Info["transferred_layers"]; !reflect.DeepEqual(got, []any{"enc_1", "enc_3"}) {
		t.Errorf("tuned transferred_layers = %v, want [enc_1 enc_3]", got)
	}
	first := func(stage string) float64 {
		return historyColumn(t, filepath.Join(dir, "stages", stage, "history.csv"), "loss")[0]
	}
	if a, b := first("tuned"), first("scratch"); math.Abs(a-b) < 1e-6 {
		t.Errorf("fine-tuned and scratch first-epoch losses are equal (%v): init_from changed nothing", a)
	}
	t.Logf("first-epoch loss: tuned %.4f, frozen %.4f, scratch %.4f; val accuracy tuned %.3f, frozen %.3f, scratch %.3f",
		first("tuned"), first("frozen"), first("scratch"), m.Stages["tuned"].Metrics["val_accuracy"], m.Stages["frozen"].Metrics["val_accuracy"], m.Stages["scratch"].Metrics["val_accuracy"])
	// Determinism: the encoder is bit-identical with 3 workers.
	_, dir3, err := runTOML(t, ".", digitsConvAE, "cae.workers=3", "pipeline.workers=3")
	if err != nil {
		t.Fatal(err)
	}
	w1, err1 := os.ReadFile(filepath.Join(dir, "stages", "cae", encoderDir, "weights.bin"))
	w3, err3 := os.ReadFile(filepath.Join(dir3, "stages", "cae", encoderDir, "weights.bin"))
	if err1 != nil || err3 != nil || !bytes.Equal(w1, w3) {
		t.Errorf("encoder weights differ between 1 and 3 workers (%v, %v)", err1, err3)
	}
}

func bitEq(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestConvAutoencoderStageConfigErrors: bad convolutional-autoencoder and upsample configs are
// errors that name the stage and the key, at load time when the shape is known there and at
// run time for image = true.
func TestConvAutoencoderStageConfigErrors(t *testing.T) {
	head := "[stages.load]\nkind = \"dataset\"\nname = \"digits\"\n"
	cae := func(keys string) string {
		return head + "[stages.cae]\nkind = \"pretrain\"\ninput = \"load\"\nepochs = 1\n" + keys + "\n"
	}
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{"upsample_factor_0", head + "[stages.m]\nkind = \"train\"\ntrain = \"load\"\nimage = true\nlayers = [ { conv = 2, kernel = 3 }, { upsample = 0 }, { flatten = true } ]\n",
			[]string{`stage "m"`, "layers[1].upsample", "0 is below the minimum 1"}},
		{"upsample_long_factor_0", head + "[stages.m]\nkind = \"train\"\ntrain = \"load\"\nimage = true\nlayers = [ { type = \"upsample\", factor = 0 }, { flatten = true } ]\n",
			[]string{`stage "m"`, "layers[0].factor", "0 is below the minimum 1"}},
		{"upsample_without_image", head + "[stages.m]\nkind = \"train\"\ntrain = \"load\"\nlayers = [ { upsample = 2 }, { dense = 4 } ]\n",
			[]string{`stage "m"`, "layers[0]", "upsample layer needs an image input"}},
		{"pool_decoder_cannot_mirror", cae(`image = { shape = [1, 8, 8] }` + "\nlayers = [ { conv = 4, kernel = 3, padding = \"same\" }, { max_pool = 3, stride = 2 } ]"),
			[]string{`stage "cae"`, "layers", "enc_2, max_pool", "the decoder cannot mirror it"}},
		{"dense_in_conv_encoder", cae(`image = { shape = [1, 8, 8] }` + "\nlayers = [ { conv = 4, kernel = 3, padding = \"same\" }, { flatten = true }, { dense = 8 } ]"),
			[]string{`stage "cae"`, "layers", "enc_2, flatten", "a convolutional autoencoder's encoder takes conv"}},
		{"valid_conv", cae(`image = { shape = [1, 8, 8] }` + "\nlayers = [ { conv = 4, kernel = 3 } ]"),
			[]string{`stage "cae"`, "layers", `set padding = "same"`}},
		{"tied_conv", cae("image = true\ntied = true\nlayers = [ { conv = 4, kernel = 3, padding = \"same\" } ]"),
			[]string{`stage "cae"`, "tied", "drop tied"}},
		{"output_dense", cae("output = \"sigmoid\"\nlayers = [ { dense = 8 } ]"),
			[]string{`stage "cae"`, "output", "this autoencoder is dense"}},
		{"conv_without_image", cae("layers = [ { conv = 4, kernel = 3, padding = \"same\" } ]"),
			[]string{`stage "cae"`, "layers[0]", "the pretrain stage (a convolutional autoencoder)"}},
		{"embeddings_image", cae("type = \"embeddings\"\nimage = true"),
			[]string{`stage "cae"`, "image", "takes no image"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pipeline.Parse([]byte(tc.src), "test.toml", ".", registry(t), pipeline.LoadOptions{})
			if err == nil {
				t.Fatal("want a config error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
	// image = true: the shape is known only once the data is read; the run fails naming the
	// stage and the key.
	_, _, err := runTOML(t, ".", cae("image = true\nlayers = [ { conv = 4, kernel = 3, padding = \"same\" }, { avg_pool = 3 } ]"))
	for _, w := range []string{`stage "cae"`, "layers", "enc_2, avg_pool", "the decoder cannot mirror it"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("image = true with a 3×3 pool on 8×8: error lacks %q: %v", w, err)
		}
	}
}

// TestConvAutoencoderOnTensorColumn: a convolutional autoencoder reads an Arrow-native image
// (digits' pixels as one fixed_size_list<float32> column, image = { column = "pixels" }), its
// encoder records the column's shape, and a train stage on the same column loads and keeps
// (frozen) its conv weights.
func TestConvAutoencoderOnTensorColumn(t *testing.T) {
	src := "[pipeline]\nseed = 2\n[stages.load]\nkind = \"dataset\"\nname = \"digits\"\nimage_column = \"pixels\"\n" +
		"[stages.split]\nkind = \"split\"\ninput = \"load\"\n" +
		"[stages.cae]\nkind = \"pretrain\"\ninput = \"split.train\"\nimage = { column = \"pixels\" }\nepochs = 2\n" +
		"layers = [ { conv = 4, kernel = 3, padding = \"same\", name = \"c1\" }, { max_pool = 2 } ]\n" +
		"[stages.m]\nkind = \"train\"\ntrain = \"split.train\"\nval = \"split.val\"\nimage = { column = \"pixels\" }\nepochs = 1\n" +
		"init_from = \"cae.encoder\"\nfreeze = [\"c1\"]\n" +
		"layers = [ { conv = 4, kernel = 3, padding = \"same\", name = \"c1\" }, { max_pool = 2 }, { flatten = true }, { dense = 8 } ]\n"
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Stages["cae"].Info["image_shape"]; !reflect.DeepEqual(got, []any{1.0, 8.0, 8.0}) {
		t.Errorf("cae image_shape = %v, want [1 8 8] from the column's metadata", got)
	}
	enc, err := pretrain.LoadEncoder(filepath.Join(dir, "stages", "cae", encoderDir))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.LoadModel(filepath.Join(dir, "stages", "m", bundleDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"c1/W", "c1/b"} {
		if got, want := b.Model.Param(name), enc.Model().Param(name); got == nil || want == nil || !bitEq(got.Value, want.Value) {
			t.Errorf("%s: the train stage's frozen layer differs from the encoder's", name)
		}
	}
	plan, err := os.ReadFile(filepath.Join(dir, "stages", "cae", encoderDir, encoderPlanFile))
	if err != nil || !strings.Contains(string(plan), "pixels") {
		t.Errorf("the encoder's plan does not name the tensor column: %s %v", plan, err)
	}
}
