package stages

import (
	"github.com/pipe-ml/pipe/bundle"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/pretrain"
)

// embeddingsPipeline pretrains the embeddings of credit's index-encoded categorical columns
// by masked-column prediction and fine-tunes a classifier from them (init_from), with the
// transferred tables frozen so that the test can compare them after training.
const embeddingsPipeline = `
[pipeline]
name = "embeddings"
seed = 3
[stages.load]
kind = "dataset"
name = "credit_data"
peer_split = true
[stages.split]
kind = "split"
input = "load"
split_column = "split"
[stages.impute]
kind = "impute"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
[stages.encode]
kind = "encode"
fit = "impute.train"
apply = ["impute.train", "impute.val", "impute.test"]
categorical = "index"
[stages.scale]
kind = "normalize"
fit = "encode.train"
apply = ["encode.train", "encode.val", "encode.test"]
[stages.pre]
kind = "pretrain"
input = "scale.train"
val = "scale.val"
type = "embeddings"
embedding_dim = 4
epochs = 30
early_stopping = false
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
target = "target"
init_from = "pre.encoder"
freeze = ["emb_.*"]
embedding_dim = 4
epochs = 20
[stages.eval]
kind = "evaluate"
models = ["model.model"]
tables = ["scale.test"]
`

// TestPretrainEmbeddingsTransfer checks type = "embeddings": the masked-column loss falls,
// every categorical column's table is transferred by name into the train stage, and the
// frozen tables of the trained model equal the pretrained encoder's bit for bit.
func TestPretrainEmbeddingsTransfer(t *testing.T) {
	m, dir, err := runTOML(t, ".", embeddingsPipeline)
	if err != nil {
		t.Fatalf("%v (manifest error: %s)", err, m.Error)
	}
	pre := m.Stages["pre"]
	tables, _ := pre.Info["embeddings"].([]any)
	if len(tables) < 2 {
		t.Fatalf("pretrained tables %v, want one per categorical column (credit has several)", pre.Info["embeddings"])
	}
	vl := historyColumn(t, filepath.Join(dir, "stages", "pre", "history.csv"), "val_masked_loss")
	if len(vl) != 30 || !(vl[len(vl)-1] < 0.9*vl[0]) {
		t.Errorf("masked-column val loss %v: want 30 epochs and a fall of at least 10%%", vl)
	}
	moved, _ := m.Stages["model"].Info["transferred_layers"].([]any)
	if len(moved) != len(tables) {
		t.Errorf("transferred %v, want the %d tables %v", moved, len(tables), tables)
	}
	enc, err := pretrain.LoadEncoder(filepath.Join(dir, "stages", "pre", "encoder"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.LoadModel(filepath.Join(dir, "stages", "model", "bundle"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range tables {
		n := name.(string) + "/W"
		got, want := b.Model.Param(n), enc.Model().Param(n)
		if got == nil || want == nil {
			t.Fatalf("%s: missing in the trained model (%v) or the encoder (%v)", n, got != nil, want != nil)
		}
		if len(got.Value) != len(want.Value) {
			t.Fatalf("%s: %d values, encoder %d", n, len(got.Value), len(want.Value))
		}
		for i := range got.Value {
			if got.Value[i] != want.Value[i] {
				t.Fatalf("%s[%d] = %g after training with the table frozen, encoder %g", n, i, got.Value[i], want.Value[i])
			}
		}
	}
	if acc := m.Stages["eval"].Metrics["test_accuracy"]; acc < 0.65 {
		t.Errorf("test accuracy %.3f with pretrained embeddings, want >= 0.65", acc)
	}
	t.Logf("tables %v, val masked loss %.3f -> %.3f, test accuracy %.3f", tables, vl[0], vl[len(vl)-1], m.Stages["eval"].Metrics["test_accuracy"])
}

// TestPretrainEmbeddingsErrors checks the two wrong-type cases name the fix.
func TestPretrainEmbeddingsErrors(t *testing.T) {
	auto := strings.Replace(embeddingsPipeline, `type = "embeddings"`, `type = "denoising"
layers = [ { dense = 8 } ]`, 1)
	_, _, err := runTOML(t, ".", auto)
	if err == nil || !strings.Contains(err.Error(), `type = \"embeddings\"`) && !strings.Contains(err.Error(), `type = "embeddings"`) {
		t.Errorf("denoising autoencoder on index-encoded columns: %v, want an error suggesting type = \"embeddings\"", err)
	}
	onehot := strings.Replace(embeddingsPipeline, `categorical = "index"`, `categorical = "onehot"`, 1)
	_, _, err = runTOML(t, ".", onehot)
	if err == nil || !strings.Contains(err.Error(), "index") {
		t.Errorf("embeddings without categorical columns: %v, want an error naming index encoding", err)
	}
}
