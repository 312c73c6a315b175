package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/pipeline"
)

// withLinearChoice returns a search pipeline's source with [] (no hidden layer: a linear or
// logistic model) as the first choice of "member.layers", unless it is there already.
func withLinearChoice(t *testing.T, src string) string {
	t.Helper()
	const choice = `"member.layers" = { choice = [ `
	if !strings.Contains(src, choice) {
		t.Fatalf("no %s...] in the pipeline", choice)
	}
	if strings.Contains(src, choice+"[], ") {
		return src
	}
	return strings.Replace(src, choice, choice+"[], ", 1)
}

// TestSearchEnsembleLinearChoice: the breast_cancer and diabetes searches (model = "ensemble",
// "member.layers.*.dropout" in the space) with [] among the choices of member.layers, scaled
// down. Every trial completes, some draw [] and some do not, and in the model, which averages
// every trial (top_k = trials), each member of a trial that drew [] has no hidden layer: its
// only params are the head's (weights of inputs × outputs, biases); the members of the
// other trials have the drawn layers, each with the trial's dropout.
func TestSearchEnsembleLinearChoice(t *testing.T) {
	const trials = 10
	for _, name := range []string{"breast_cancer-search.toml", "diabetes-search.toml"} {
		t.Run(strings.TrimSuffix(name, ".toml"), func(t *testing.T) {
			file := filepath.Join("..", "pipelines", name)
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			src := withLinearChoice(t, string(raw))
			overrides := []string{
				fmt.Sprintf("tune.trials=%d", trials), "tune.rounds=1", fmt.Sprintf("tune.top_k=%d", trials),
				"tune.base.members=1", "tune.base.member.epochs=3",
			}
			if strings.Contains(src, "\nconfirm = ") {
				overrides = append(overrides, "tune.confirm={ top = 2, seeds = 1 }")
			}
			m, dir, err := runTOML(t, filepath.Dir(file), src, overrides...)
			if err != nil {
				t.Fatal(err)
			}
			if m.Status != pipeline.StatusSucceeded {
				t.Fatalf("status %s: %s", m.Status, m.Error)
			}
			header, rows := readTrials(t, dir)
			status, layers := column(t, header, rows, trialsColStatus), column(t, header, rows, "member.layers")
			dropout := column(t, header, rows, "member.layers.*.dropout")
			linear := 0
			for i := range rows {
				if status[i] != "completed" {
					t.Errorf("trial %d (member.layers %s): %s", i, layers[i], status[i])
				}
				if layers[i] == "[]" {
					linear++
				}
			}
			if linear == 0 || linear == len(rows) {
				t.Fatalf("member.layers drawn %q: want trials with and without hidden layers", layers)
			}
			if info := m.Stages["tune"].Info; info["trials"].(map[string]any)["failed"] != float64(0) {
				t.Errorf("trials %v: want none failed", info["trials"])
			}

			p, err := bundle.Load(filepath.Join(dir, "stages", "tune", bundleDir), features.Decoders())
			if err != nil {
				t.Fatal(err)
			}
			eb, ok := p.(*bundle.EnsembleBundle)
			if !ok {
				t.Fatalf("model %T, want the ensemble of every trial", p)
			}
			names, models := eb.Ens.Names(), eb.Ens.Models()
			if len(models) != trials {
				t.Fatalf("model members %v, want one per trial (%d)", names, trials)
			}
			memberOf := regexp.MustCompile(`^trial_(\d{3})_member_\d{2}$`)
			denseUnits := regexp.MustCompile(`dense = (\d+)`)
			seenLinear := 0
			for k, mod := range models {
				g := memberOf.FindStringSubmatch(names[k])
				if g == nil {
					t.Fatalf("member %q: want trial_NNN_member_NN", names[k])
				}
				i, _ := strconv.Atoi(g[1])
				// The drawn layer list, in TOML: the units of each dense layer.
				drawn := denseUnits.FindAllStringSubmatch(layers[i], -1)
				if strings.Count(layers[i], "{") != len(drawn) {
					t.Fatalf("trial %d: member.layers %q: want dense layers only", i, layers[i])
				}
				// The hidden layers: dense ones (input_noise adds a gaussian_noise layer, which
				// holds no weights).
				spec := mod.Spec()
				var hidden []nn.LayerSpec
				for _, l := range spec.Layers {
					if l.Type == "dense" {
						hidden = append(hidden, l)
					} else if l.Type != "gaussian_noise" {
						t.Errorf("%s: a %s layer; the space draws dense layers and input noise only", names[k], l.Type)
					}
				}
				if len(hidden) != len(drawn) {
					t.Errorf("%s: %d hidden layers in the model, trial %d drew %s", names[k], len(hidden), i, layers[i])
					continue
				}
				for j, l := range hidden {
					if d := parseNum(t, dropout[i]); l.Dropout != d || fmt.Sprint(l.Units) != drawn[j][1] {
						t.Errorf("%s layer %d: %d units, dropout %v; trial %d drew %s, dropout %v", names[k], j, l.Units, l.Dropout, i, layers[i], d)
					}
				}
				if len(drawn) > 0 {
					continue
				}
				seenLinear++
				// The model's only params are its heads' (weights of inputs × outputs, and biases).
				for _, q := range mod.Params() {
					if !strings.HasPrefix(q.Name, "head_") {
						t.Errorf("%s (trial %d drew []): param %s %v is not a head's", names[k], i, q.Name, q.Shape)
					} else if strings.HasSuffix(q.Name, "/W") && (len(q.Shape) != 2 || q.Shape[0] != spec.NumInputs) {
						t.Errorf("%s (trial %d drew []): %s has shape %v, want [%d inputs, outputs]", names[k], i, q.Name, q.Shape, spec.NumInputs)
					}
				}
			}
			if seenLinear != linear {
				t.Errorf("%d linear members in the model, %d trials drew []", seenLinear, linear)
			}
		})
	}
}
