package stages

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/pipeline"
)

// budgetStagesSrc runs pretrain, pseudo_label and ensemble on digits, with an unlabeled
// table (the raw test split) for the first two, under a worker count and a memory budget.
const budgetStagesSrc = `
[pipeline]
seed = 5
workers = %d
memory_budget = %q
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
[stages.sup]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 16 } ]
epochs = 3
[stages.pseudo]
kind = "pseudo_label"
model = "sup.model"
train = "scale.train"
val = "scale.val"
unlabeled = ["split.test"]
top_share = 0.5
rounds = 2
epochs = 2
[stages.pre]
kind = "pretrain"
input = "scale.train"
val = "scale.val"
unlabeled = ["split.test"]
layers = [ { dense = 8 } ]
epochs = 2
[stages.ens]
kind = "ensemble"
train = "scale.train"
val = "scale.val"
members = 3
member = { layers = [ { dense = 8 } ], epochs = 2 }
`

// Under a memory budget too small for their dense copies, pretrain, pseudo_label and
// ensemble read their tables through mapped files (recorded in the manifest) and count what
// they hold whatever the budget (the unlabeled tables, the ensemble members' predictions) in
// it (the budget's peak includes them, and a note says they did not fit), with the metrics of
// the run whose copies fit, for any worker count.
func TestBudgetStagesMapOverBudget(t *testing.T) {
	run := func(workers int, budget string) *pipeline.Manifest {
		m, _, err := runTOML(t, ".", fmt.Sprintf(budgetStagesSrc, workers, budget))
		if err != nil {
			t.Fatalf("%s: %v", budget, err)
		}
		return m
	}
	roles := []struct{ stage, role string }{{"pre", "input"}, {"pre", "val"}, {"pseudo", "train"}, {"pseudo", "val"}, {"ens", "train"}, {"ens", "val"}}
	dense := run(2, "1GiB")
	for _, r := range roles {
		if p := dataPath(t, dense, r.stage, r.role); p != pathDense {
			t.Errorf("1GiB: %s %s data path %s, want dense", r.stage, r.role, p)
		}
	}
	small := run(2, "16KiB")
	for _, r := range roles {
		if r.role == "val" {
			continue // 50 rows: they fit or not, as the stages running at the same time hold
		}
		if p := dataPath(t, small, r.stage, r.role); p != pathMapped {
			t.Errorf("16KiB: %s %s data path %s, want mapped", r.stage, r.role, p)
		}
	}
	for _, st := range []string{"pre", "pseudo"} {
		held, _ := small.Stages[st].Info["unlabeled_dense_bytes"].(float64)
		if held <= 0 {
			t.Errorf("%s: unlabeled_dense_bytes %v, want the test split's dense bytes", st, small.Stages[st].Info["unlabeled_dense_bytes"])
		}
		if int64(held) > small.PeakTableMem {
			t.Errorf("%s held %d bytes, and the run's peak memory is %d: it does not count them", st, int64(held), small.PeakTableMem)
		}
		if !strings.Contains(strings.Join(small.Stages[st].Notes, "\n"), "unlabeled tables' dense copies") {
			t.Errorf("%s: no note that the unlabeled tables do not fit: %v", st, small.Stages[st].Notes)
		}
		if strings.Contains(strings.Join(dense.Stages[st].Notes, "\n"), "unlabeled tables' dense copies") {
			t.Errorf("%s, 1GiB: a note says the unlabeled tables do not fit: %v", st, dense.Stages[st].Notes)
		}
	}
	// The ensemble holds its members' validation and out-of-bag predictions until it is
	// built, past each member's own reservation: counted, and said when they do not fit.
	outs, _ := small.Stages["ens"].Info["member_output_bytes"].(float64)
	if outs <= 0 || int64(outs) > small.PeakTableMem {
		t.Errorf("ens: member_output_bytes %v, run peak %d: want the members' outputs, counted in the peak", small.Stages["ens"].Info["member_output_bytes"], small.PeakTableMem)
	}
	if !strings.Contains(strings.Join(small.Stages["ens"].Notes, "\n"), "out-of-bag predictions") {
		t.Errorf("ens, 16KiB: no note that the members' outputs do not fit: %v", small.Stages["ens"].Notes)
	}
	if strings.Contains(strings.Join(dense.Stages["ens"].Notes, "\n"), "out-of-bag predictions") {
		t.Errorf("ens, 1GiB: a note says the members' outputs do not fit: %v", dense.Stages["ens"].Notes)
	}
	one := run(1, "16KiB")
	for _, st := range []string{"pre", "pseudo", "ens"} {
		if len(dense.Stages[st].Metrics) == 0 {
			t.Fatalf("%s: no metrics", st)
		}
		for k, d := range dense.Stages[st].Metrics {
			mp, ok := small.Stages[st].Metrics[k]
			if !ok {
				t.Errorf("%s %s: missing on the mapped path", st, k)
				continue
			}
			if math.Abs(d-mp) > 1e-9*max(1, math.Abs(d)) && !(math.IsNaN(d) && math.IsNaN(mp)) {
				t.Errorf("%s %s: mapped %v, dense %v", st, k, mp, d)
			}
			if o := one.Stages[st].Metrics[k]; o != mp && !(math.IsNaN(o) && math.IsNaN(mp)) {
				t.Errorf("%s %s: mapped with 1 worker %v, with 2 %v", st, k, o, mp)
			}
		}
	}
}
