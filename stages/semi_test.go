package stages

import (
	"strings"
	"testing"
)

// semiPipeline trains a semi-supervised model on digits with 10 labels per class: the train
// table's masked rows and a raw table of extra rows (the test split, whose labels must be
// ignored and which gets the scale stage replayed) form the unlabeled pool.
const semiPipeline = `
[pipeline]
name = "semi"
seed = 2
[stages.load]
kind = "dataset"
name = "digits"
[stages.split]
kind = "split"
input = "load"
[stages.few]
kind = "mask_labels"
input = "split.train"
per_class = 10
val_per_class = 5
[stages.scale]
kind = "normalize"
fit = "few.train"
apply = ["few.train", "few.val"]
method = "minmax"
[stages.semi]
kind = "train"
train = "scale.train"
val = "scale.val"
unlabeled = ["split.test"]
layers = [ { dense = 32 } ]
epochs = 3
batch_size = 16
semi = { method = "vat", eps = 1.0, unlabeled_batch = 32, entropy = true }
`

// ladderLayersTOML is a layers key with noise after the batch norm, which the ladder needs
// (the other methods train it as well).
const ladderLayersTOML = `layers = [ { dense = 32, activation = "linear" }, { batch_norm = true }, { gaussian_noise = 0.3 }, { activation = "relu" } ]`

// TestSemiTrainStage checks the train stage's semi table: the pool holds the train table's
// rows (labelled and masked) and the unlabeled table's, the labelled rows are mask_labels'
// 100, and the manifest says so.
func TestSemiTrainStage(t *testing.T) {
	for _, method := range []string{`method = "vat", eps = 1.0, unlabeled_batch = 32, entropy = true`, `method = "vat", eps = 1.0, separate_batches = true`, `method = "pi", noise = 0.1`, `method = "mean_teacher", teacher_decay = 0.9`,
		`method = "ladder", weight = 10.0, noise = 0.2`, `method = "ladder", weight = 10.0, noise = 0.2, separate_batches = true`, `method = "ladder", decoder = "full", weights = [100.0, 1.0, 0.1], noise = 0.2, estimate_norm = "none"`} {
		name := strings.Trim(strings.Fields(method)[2], `",`)
		if strings.Contains(method, "full") {
			name += "_full"
		}
		if strings.Contains(method, "separate") {
			name += "_separate"
		}
		t.Run(name, func(t *testing.T) {
			src := strings.Replace(semiPipeline, `method = "vat", eps = 1.0, unlabeled_batch = 32, entropy = true`, method, 1)
			src = strings.Replace(src, "layers = [ { dense = 32 } ]", ladderLayersTOML, 1)
			m, _, err := runTOML(t, ".", src)
			if err != nil {
				t.Fatalf("%v (manifest error: %s)", err, m.Error)
			}
			info := m.Stages["semi"].Info
			if got := info["semi_method"]; !strings.Contains(method, `"`+got.(string)+`"`) {
				t.Errorf("semi_method = %v, want the configured method (%s)", got, method)
			}
			if strings.Contains(method, "ladder") {
				want := "top"
				if strings.Contains(method, `decoder = "full"`) {
					want = "full"
				}
				if got := info["semi_ladder_decoder"]; got != want {
					t.Errorf("semi_ladder_decoder = %v, want %q", got, want)
				}
			}
			if strings.Contains(method, "vat") || strings.Contains(method, "ladder") {
				if got, want := info["semi_separate_batches"], strings.Contains(method, "separate_batches = true"); got != want {
					t.Errorf("semi_separate_batches = %v, want %v", got, want)
				}
			}
			labelled := num(t, info["semi_labeled_rows"])
			if labelled != 100 {
				t.Errorf("semi_labeled_rows = %v, want mask_labels' 10 per class", labelled)
			}
			extra := num(t, info["unlabeled_table_rows"])
			if extra < 100 {
				t.Errorf("unlabeled_table_rows = %v, want digits' test split (hundreds)", extra)
			}
			skipped := num(t, info["unlabeled_rows_skipped"])
			if got, want := num(t, info["semi_pool_rows"]), labelled+skipped+extra; got != want {
				t.Errorf("semi_pool_rows = %v, want the %v labelled + %v masked train rows + %v table rows", got, labelled, skipped, extra)
			}
			if _, ok := m.Stages["semi"].Metrics["val_accuracy"]; !ok {
				t.Errorf("no val_accuracy in metrics %v", m.Stages["semi"].Metrics)
			}
		})
	}
}

// TestSemiConfigErrors checks that misused semi settings are config errors naming the key.
func TestSemiConfigErrors(t *testing.T) {
	semi := `semi = { method = "vat", eps = 1.0, unlabeled_batch = 32, entropy = true }`
	cases := []struct {
		name, from, to, want string
	}{
		{"unlabeled_without_semi", semi, "", "unlabeled tables are read only for semi-supervised training"},
		{"unknown_method", semi, `semi = { method = "gamma" }`, "gamma"},
		{"ladder_without_noise", semi, `semi = { method = "ladder" }`, `stage "semi": layers: semi = { method = "ladder" } needs noise in the hidden layers`},
		{"vat_setting_on_pi", semi, `semi = { method = "pi", eps = 1.0 }`, `eps, xi and entropy are settings of method = "vat"`},
		{"separate_batches_on_pi", semi, `semi = { method = "pi", separate_batches = true }`, `separate_batches is a setting of methods "vat" and "ladder", not "pi"`},
		{"teacher_decay_on_vat", semi, `semi = { method = "vat", teacher_decay = 0.9 }`, "teacher_decay is a setting"},
		{"noise_on_vat", semi, `semi = { method = "vat", noise = 0.1 }`, "noise is a setting of the pi, mean_teacher and ladder"},
		{"unknown_key", semi, `semi = { method = "vat", epsilon = 1.0 }`, "epsilon"},
		{"missing_method", semi, `semi = { weight = 2.0 }`, "method"},
		{"decoder_on_vat", semi, `semi = { method = "vat", decoder = "full", weights = [1.0, 1.0, 1.0] }`, `stage "semi": semi: decoder and weights are settings of method = "ladder"`},
		{"full_without_weights", semi, `semi = { method = "ladder", decoder = "full" }`, `semi: decoder = "full" needs weights = [...]`},
		{"weights_without_full", semi, `semi = { method = "ladder", weights = [1.0, 1.0, 1.0] }`, `semi: weights are the full ladder's per-layer weights: add decoder = "full"`},
		{"estimate_norm_without_full", semi, `semi = { method = "ladder", estimate_norm = "none" }`, `semi: estimate_norm is a setting of decoder = "full"`},
		{"unknown_decoder", semi, `semi = { method = "ladder", decoder = "middle" }`, "middle"},
		{"negative_weights", semi, `semi = { method = "ladder", decoder = "full", weights = [1.0, -1.0, 1.0] }`, "semi"},
		{"full_weights_count", "layers = [ { dense = 32 } ]\n", ladderLayersTOML + "\n", `stage "semi": semi: weights has 2 values; this stage's full ladder has 3 layers`},
		{"full_dense_activation", "layers = [ { dense = 32 } ]\n", `layers = [ { dense = 32, activation = "relu" }, { batch_norm = true }, { gaussian_noise = 0.3 } ]` + "\n",
			`stage "semi": layers: train: semi ladder decoder "full": layer 1 (dense) has activation "relu"`},
		{"full_dropout_layer", "layers = [ { dense = 32 } ]\n", ladderLayersTOML[:len(ladderLayersTOML)-2] + `, { dropout = 0.1 } ]` + "\n",
			`stage "semi": layers: train: semi ladder decoder "full": layer 5 (dropout) has no mirror in the ladder's decoder`},
		{"regression_target", "batch_size = 16", "batch_size = 16\ntask = \"regression\"", `needs one target with task = "classification"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(semiPipeline, tc.from, tc.to, 1)
			if strings.HasPrefix(tc.name, "full_") {
				src = strings.Replace(src, semi, `semi = { method = "ladder", decoder = "full", weights = [1.0, 1.0] }`, 1)
				if tc.name != "full_weights_count" {
					src = strings.Replace(src, "weights = [1.0, 1.0]", "weights = [1.0, 1.0, 1.0]", 1)
				}
			}
			_, _, err := runTOML(t, ".", src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "test.toml") {
				t.Errorf("err = %v, want it to name the file", err)
			}
		})
	}
}
