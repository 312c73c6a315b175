package stages

import (
	"strings"
	"testing"
)

// TestEvaluateLeavesOutHardVoteLogLoss: a vote-combined ensemble's outputs are 0/1 votes, so
// evaluate reports its accuracy and f1_macro but no logloss or auc (which the same members
// combined by mean do get), and says why in the manifest's notes.
func TestEvaluateLeavesOutHardVoteLogLoss(t *testing.T) {
	src := strings.Replace(ensembleSrc, `[stages.scores]`, `[stages.vote]
kind = "combine"
ensemble = "members.ensemble"
method = "vote"
[stages.eval]
kind = "evaluate"
models = ["mean.model", "vote.model"]
tables = ["scale.val"]
worst_k = 0
[stages.scores]`, 1)
	m, _, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	ms := m.Stages["eval"].Metrics
	for _, k := range []string{"accuracy", "f1_macro"} {
		for _, model := range []string{"mean", "vote"} {
			if _, ok := ms[model+"/val_"+k]; !ok {
				t.Errorf("metrics lack %s/val_%s: %v", model, k, ms)
			}
		}
	}
	for _, k := range []string{"logloss", "auc"} {
		if _, ok := ms["mean/val_"+k]; !ok {
			t.Errorf("the mean combiner lacks val_%s: %v", k, ms)
		}
		if v, ok := ms["vote/val_"+k]; ok {
			t.Errorf("the vote combiner has val_%s = %v, computed from 0/1 votes", k, v)
		}
	}
	notes := strings.Join(m.Stages["eval"].Notes, "\n")
	if !strings.Contains(notes, "vote.model") || !strings.Contains(notes, "hard vote") || strings.Contains(notes, "mean.model") {
		t.Errorf("notes %q: want one saying vote.model's logloss is left out, and none about mean.model", notes)
	}
}
