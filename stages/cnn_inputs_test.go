package stages

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/features"
)

// digitsAugmented is a digits pipeline whose training table goes through an augment stage
// that shifts by one pixel without an image key of its own; a test appends the model stage,
// which trains on "aug".
const digitsAugmented = "[pipeline]\nseed = 1\n[stages.load]\nkind = \"dataset\"\nname = \"digits\"\n" +
	"[stages.split]\nkind = \"split\"\ninput = \"load\"\n" +
	"[stages.scale]\nkind = \"normalize\"\nfit = \"split.train\"\napply = [\"split.train\", \"split.val\", \"split.test\"]\nmethod = \"minmax\"\n" +
	"[stages.aug]\nkind = \"augment\"\ninput = \"scale.train\"\nshift = 1\n"

// smallCNN is a member table's (or a train stage's) image and layers.
const smallCNN = `image = true, layers = [ { conv = 4, kernel = 3, padding = "same" }, { batch_norm = true }, { max_pool = 2 }, { flatten = true }, { dense = 16 } ]`

// TestAugmentShiftTakesTheModelsImage: an augment stage with shift and no image key of its
// own shifts the image of the train stage's image input: the weights differ from a run on the
// unaugmented table, the stage notes the augmentation, and they are bit-identical with 1 and 3
// workers. Without an image input the train stage fails with an error that names the augment
// stage and says what to set.
func TestAugmentShiftTakesTheModelsImage(t *testing.T) {
	model := "[stages.model]\nkind = \"train\"\ntrain = \"aug\"\nval = \"scale.val\"\nepochs = 2\n" + strings.ReplaceAll(smallCNN, ", layers", "\nlayers") + "\n"
	weights := func(src string, sets ...string) ([]byte, []string) {
		t.Helper()
		m, dir, err := runTOML(t, ".", src, sets...)
		if err != nil {
			t.Fatal(err)
		}
		w, err := os.ReadFile(filepath.Join(dir, "stages/model/bundle/model/weights.bin"))
		if err != nil {
			t.Fatal(err)
		}
		return w, m.Stages["model"].Notes
	}
	w1, notes := weights(digitsAugmented+model, "model.workers=1")
	if !strings.Contains(strings.Join(notes, "\n"), "training batches are augmented (aug)") {
		t.Errorf("notes %q do not say the batches are augmented", notes)
	}
	w3, _ := weights(digitsAugmented+model, "model.workers=3", "pipeline.workers=3")
	if !bytes.Equal(w1, w3) {
		t.Error("augmented CNN: weights differ between 1 and 3 workers")
	}
	plain, _ := weights(digitsAugmented+strings.Replace(model, `train = "aug"`, `train = "scale.train"`, 1), "model.workers=1")
	if bytes.Equal(w1, plain) {
		t.Error("the shift changed nothing: the weights equal those trained on the unaugmented table")
	}
	mlp := "[stages.model]\nkind = \"train\"\ntrain = \"aug\"\nval = \"scale.val\"\nepochs = 1\nlayers = [ { dense = 8 } ]\n"
	_, _, err := runTOML(t, ".", digitsAugmented+mlp)
	if err == nil || !strings.Contains(err.Error(), `augment stage "aug": shift and rotate need an image: set image on the stage that trains on this table`) {
		t.Errorf("shift without an image input: got %v", err)
	}
}

// TestEnsembleOfCNNs: ensemble members are CNNs (the member table's image key, resolved
// against the data as a train stage's), trained on the shifted table; each member's network
// in the bundle has the [1 8 8] input, the mean beats chance by far, and the members are
// bit-identical with 1 and 2 workers.
func TestEnsembleOfCNNs(t *testing.T) {
	src := digitsAugmented + "[stages.members]\nkind = \"ensemble\"\ntrain = \"aug\"\nval = \"scale.val\"\nmembers = 2\n" +
		"member = { epochs = 6, optimizer = { name = \"adam\", lr = 3e-3 }, " + smallCNN + " }\n"
	m, dir, err := runTOML(t, ".", src, "members.workers=1")
	if err != nil {
		t.Fatal(err)
	}
	acc := m.Stages["members"].Metrics["mean/val_accuracy"]
	t.Logf("ensemble of 2 CNNs: val accuracy %.4f (mean)", acc)
	if acc < 0.5 {
		t.Errorf("mean val accuracy %.4f, want well above chance (.1); metrics %v", acc, keys(m.Stages["members"].Metrics))
	}
	p, err := bundle.Load(filepath.Join(dir, "stages/members/bundle"), features.Decoders())
	if err != nil {
		t.Fatal(err)
	}
	eb, ok := p.(*bundle.EnsembleBundle)
	if !ok {
		t.Fatalf("the members bundle is a %T", p)
	}
	for i, mm := range eb.Ens.Models() {
		if got := mm.Spec().InputShape; !reflect.DeepEqual(got, []int{1, 8, 8}) {
			t.Errorf("member %d: input shape %v, want [1 8 8]", i, got)
		}
	}
	_, dir2, err := runTOML(t, ".", src, "members.workers=2", "pipeline.workers=2")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "stages/members/bundle/*/member_*/weights.bin"))
	if err != nil || len(files) != 2 {
		t.Fatalf("member weights: %v %v", files, err)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		a, errA := os.ReadFile(f)
		b, errB := os.ReadFile(filepath.Join(dir2, rel))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between 1 and 2 workers (%v, %v)", rel, errA, errB)
		}
	}
}

// TestSearchOverACNN: a search whose base is a CNN (image key and conv layers) decodes, runs
// its trials on the image and keeps a model with the image input; the best trial's config
// keeps the image key.
func TestSearchOverACNN(t *testing.T) {
	src := digitsAugmented + "[stages.tune]\nkind = \"search\"\ntrain = \"aug\"\nval = \"scale.val\"\ntrials = 2\nrounds = 1\n" +
		"base = { epochs = 2, " + smallCNN + " }\nspace = { \"optimizer.lr\" = { log_uniform = [1e-3, 1e-2] } }\n"
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("search metrics %v", m.Stages["tune"].Metrics)
	if snippet, _ := m.Stages["tune"].Info["best_config"].(string); !strings.Contains(snippet, "image = true") {
		t.Errorf("the best trial's config lacks the image key:\n%s", snippet)
	}
	b, err := bundle.LoadModel(filepath.Join(dir, "stages/tune/bundle"))
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Model.Spec().InputShape; !reflect.DeepEqual(got, []int{1, 8, 8}) {
		t.Errorf("the best trial's model: input shape %v, want [1 8 8]", got)
	}
}
