package stages

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// unlabeledPipeline feeds a separate table of unlabeled rows (digits' test split, whose
// labels must be ignored) to pretrain and pseudo_label besides the masked train table.
const unlabeledPipeline = `
[pipeline]
name = "unlabeled-source"
seed = 2
` + digitsTenLabels + `[stages.dae]
kind = "pretrain"
input = "scale.train"
unlabeled = ["scale.test"]
layers = [ { dense = 32 } ]
epochs = 3
revive_dead = true
[stages.sup]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 64 } ]
epochs = 100
[stages.pseudo]
kind = "pseudo_label"
model = "sup.model"
train = "scale.train"
val = "scale.val"
unlabeled = ["scale.test"]
top_share = 0.3
rounds = 2
epochs = 3
`

// TestUnlabeledTables checks that the rows of unlabeled tables join pretrain's data and
// pseudo_label's pool (their labels ignored), and that the pseudo-label accuracy is
// computed over the rows whose true label mask_labels kept, only.
func TestUnlabeledTables(t *testing.T) {
	m, dir, err := runTOML(t, ".", unlabeledPipeline)
	if err != nil {
		t.Fatalf("%v (manifest error: %s)", err, m.Error)
	}
	trainRows := num(t, m.Stages["dae"].Info["rows"]) - num(t, m.Stages["dae"].Info["unlabeled_table_rows"])
	extra := num(t, m.Stages["dae"].Info["unlabeled_table_rows"])
	if extra < 100 {
		t.Fatalf("pretrain read %v rows from the unlabeled table, want digits' test split (hundreds)", extra)
	}
	if got := num(t, m.Stages["pseudo"].Info["unlabeled_table_rows"]); got != extra {
		t.Errorf("pseudo_label took %v rows from the unlabeled table, pretrain %v", got, extra)
	}
	if _, ok := m.Stages["dae"].Info["revived"].(map[string]any); !ok {
		t.Errorf("dae info revived = %v, want the revived units per layer", m.Stages["dae"].Info["revived"])
	}
	labelled := num(t, m.Stages["pseudo"].Info["labelled_rows"])
	if labelled != 100 {
		t.Errorf("labelled rows %v, want mask_labels' 10 per class (the unlabeled table's labels must be ignored)", labelled)
	}
	if got, want := num(t, m.Stages["pseudo"].Info["unlabeled_rows"]), trainRows-labelled+extra; got != want {
		t.Errorf("pool of %v unlabeled rows, want the train table's %v plus the extra table's %v", got, trainRows-labelled, extra)
	}
	// pseudo_labels.csv marks the last round's pseudo-labelled rows, from both tables.
	f, err := os.Open(filepath.Join(dir, "stages", "pseudo", "pseudo_labels.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != "table,_row,label,confidence,weight" {
		t.Fatalf("pseudo_labels.csv header %v", recs[0])
	}
	if got, want := len(recs)-1, int(m.Stages["pseudo"].Metrics["round_2/added_rows"]); got != want {
		t.Errorf("pseudo_labels.csv has %d rows, the last round added %d", got, want)
	}
	tables := map[string]int{}
	seen := map[string]bool{}
	for _, r := range recs[1:] {
		tables[r[0]]++
		if seen[r[0]+"/"+r[1]] {
			t.Errorf("row %s of %s listed twice", r[1], r[0])
		}
		seen[r[0]+"/"+r[1]] = true
		if c, err := strconv.ParseFloat(r[3], 64); err != nil || c < 0.1 || c > 1 {
			t.Errorf("confidence %q not a probability above chance", r[3])
		}
		if l, err := strconv.Atoi(r[2]); err != nil || l < 0 || l > 9 {
			t.Errorf("label %q is not a digit class", r[2])
		}
		if r[4] != "1" {
			t.Errorf("weight %q, want the default 1", r[4])
		}
	}
	if len(tables) != 2 {
		t.Errorf("pseudo-labels come from tables %v, want the train table and the unlabeled one", tables)
	}
	for r := 1; r <= 2; r++ {
		acc, ok := m.Stages["pseudo"].Metrics[fmt.Sprintf("round_%d/pseudo_label_accuracy", r)]
		if !ok || math.IsNaN(acc) || acc < 0.8 {
			t.Errorf("round %d pseudo-label accuracy %v (present %v), want >= 0.8 over the rows with a hidden label", r, acc, ok)
		}
	}
}

func num(t *testing.T, v any) float64 {
	t.Helper()
	switch x := v.(type) {
	case float64:
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	}
	t.Fatalf("%v (%T) is not a number", v, v)
	return 0
}

// TestUnlabeledRawTableReplaysPreprocessing checks that a raw unlabeled table gets the main
// input's fitted preprocessing replayed: pretrain on the raw test split learns exactly what it
// learns on the test split normalized by the scale stage. A table preprocessed by other
// fitted stages is an error.
func TestUnlabeledRawTableReplaysPreprocessing(t *testing.T) {
	scaled, _, err := runTOML(t, ".", unlabeledPipeline)
	if err != nil {
		t.Fatal(err)
	}
	raw := strings.ReplaceAll(unlabeledPipeline, `unlabeled = ["scale.test"]`, `unlabeled = ["split.test"]`)
	replayed, _, err := runTOML(t, ".", raw)
	if err != nil {
		t.Fatalf("%v (manifest error: %s)", err, replayed.Error)
	}
	a, b := scaled.Stages["dae"].Metrics, replayed.Stages["dae"].Metrics
	for _, k := range []string{"train_reconstruction_loss", "val_reconstruction_loss"} {
		if a[k] != b[k] || a[k] == 0 {
			t.Errorf("%s: %v on the scaled table, %v on the raw one with normalize replayed; want the same", k, a[k], b[k])
		}
	}
	for k, v := range scaled.Stages["pseudo"].Metrics {
		if got := replayed.Stages["pseudo"].Metrics[k]; got != v {
			t.Errorf("pseudo %s: %v with the scaled table, %v with the raw one; want the same", k, v, got)
		}
	}
	if !strings.Contains(strings.Join(replayed.Stages["dae"].Notes, "\n"), "replaying normalize (scale)") {
		t.Errorf("notes %v: want one saying normalize is replayed", replayed.Stages["dae"].Notes)
	}
	other := strings.Replace(raw, `[stages.dae]`, `[stages.other]
kind = "normalize"
fit = "split.train"
apply = ["split.test"]
method = "standard"
[stages.dae]`, 1)
	other = strings.Replace(other, `unlabeled = ["split.test"]
layers`, `unlabeled = ["other.test"]
layers`, 1)
	_, _, err = runTOML(t, ".", other)
	if err == nil || !strings.Contains(err.Error(), "do not mean the same") {
		t.Errorf("unlabeled table normalized by another stage: %v, want an error saying the features differ", err)
	}
}
