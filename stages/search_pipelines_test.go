package stages

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/pipeline"
)

// Scaled-down settings of every search pipeline in CI: a few trials of a few epochs in two
// rounds, ASHA judging from the first epoch so that pruning happens too (a search over
// ensembles is not pruned: its trials get smokeMembers members). The full searches
// (bench/search/README.md) take seconds to minutes each; these take well under a second.
const (
	smokeTrials = 6
	smokeRounds = 2
	smokeEpochs = 4
	// smokeMembers is the members of each trial of a search over ensembles (model = "ensemble").
	smokeMembers = 2
	// smokeTopK bounds top_k, the best trials averaged (and trained again) for the model.
	smokeTopK = 2
)

// searchPipelineFloors: per pipelines/*-search.toml, the test metric its scaled-down run must
// reach. They sit far below the full searches' figures (bench/search/README.md) and above
// chance (always the majority class: iris .33, wine .41, breast_cancer .63, digits .10,
// credit_data .72; R² 0 for the mean): the pipeline trains, scores the test table and the
// search picks a trial that learned. Every search pipeline must be listed: an unlisted one fails.
var searchPipelineFloors = map[string]string{ // file → "metric>=floor"
	"digits-search.toml":        "test_accuracy>=0.80",
	"breast_cancer-search.toml": "test_accuracy>=0.85",
	"credit_data-search.toml":   "test_accuracy>=0.74",
	"diabetes-search.toml":      "test_r2>=0.10",
	"iris-search.toml":          "test_accuracy>=0.60",
	"wine-search.toml":          "test_accuracy>=0.75",
}

// TestSearchPipelines runs every pipelines/*-search.toml scaled down (trials, rounds and epochs
// overridden), after loading it as written: the full-size file must validate, keep the peers'
// split (peer_split on the dataset stage, the search scored on a val table, never on test),
// and the scaled-down run must run every trial to at most smokeEpochs, score the test table
// and reach its floor. TestExamplePipelines leaves these files to this test.
func TestSearchPipelines(t *testing.T) {
	files, err := filepath.Glob("../pipelines/*-search.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no search pipelines: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		floor, ok := searchPipelineFloors[name]
		if !ok {
			t.Errorf("%s has no entry in searchPipelineFloors: every search pipeline must be run by this test", name)
			continue
		}
		t.Run(strings.TrimSuffix(name, ".toml"), func(t *testing.T) {
			metric, floorText, _ := strings.Cut(floor, ">=")
			var least float64
			if _, err := fmt.Sscan(floorText, &least); err != nil {
				t.Fatalf("floor %q: %v", floor, err)
			}
			full, err := pipeline.Load(f, registry(t), pipeline.LoadOptions{})
			if err != nil {
				t.Fatalf("the pipeline as written does not load: %v", err)
			}
			search := checkSearchPipelineSplit(t, full)
			if t.Failed() {
				return
			}

			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			overrides := []string{
				fmt.Sprintf("%s.trials=%d", search, smokeTrials),
				fmt.Sprintf("%s.rounds=%d", search, smokeRounds),
			}
			if sc, _ := full.Stage(search); sc.String("model") == searchModelEnsemble {
				// Trials of ensembles: fewer members, each of few epochs (they are not pruned).
				overrides = append(overrides, fmt.Sprintf("%s.base.members=%d", search, smokeMembers),
					fmt.Sprintf("%s.base.member.epochs=%d", search, smokeEpochs))
			} else {
				overrides = append(overrides, fmt.Sprintf("%s.base.epochs=%d", search, smokeEpochs),
					fmt.Sprintf("%s.prune.min_epochs=1", search))
			}
			if sc, _ := full.Stage(search); sc.Int("top_k") > smokeTopK {
				// The average of the best trials, each trained again: two of them here.
				overrides = append(overrides, fmt.Sprintf("%s.top_k=%d", search, smokeTopK))
			}
			if sc, _ := full.Stage(search); sc.Table("confirm") != nil {
				// The confirmation of the leaders: the 2 best trials, one more seed each.
				overrides = append(overrides, fmt.Sprintf("%s.confirm={ top = 2, seeds = 1 }", search))
			}
			p, err := pipeline.Load(f, registry(t), pipeline.LoadOptions{Overrides: overrides})
			if err != nil {
				t.Fatal(err)
			}
			res, err := pipeline.Run(context.Background(), p, pipeline.RunOptions{Dir: filepath.Join(t.TempDir(), "run"), Mem: mem})
			if err != nil {
				t.Fatal(err)
			}
			m := res.Manifest
			if m.Status != pipeline.StatusSucceeded {
				t.Fatalf("status %s: %s", m.Status, m.Error)
			}
			st := m.Stages[search]
			counts, _ := st.Info["trials"].(map[string]int)
			if counts["total"] != smokeTrials || counts["failed"] != 0 || counts["completed"]+counts["pruned"] != smokeTrials {
				t.Errorf("%s: trials %v, want %d, none failed", search, counts, smokeTrials)
			}
			epochs, _ := st.Info["epochs_run"].(int) // an ensemble trial's: its longest member's
			folds := 1                               // with cv: each fold's epochs count
			if sc, _ := full.Stage(search); sc.Int("cv") > 0 {
				folds = sc.Int("cv")
			}
			if epochs < smokeTrials*folds || epochs > smokeTrials*smokeEpochs*folds {
				t.Errorf("%s: %d epochs in all, want between %d and %d (%d trials of at most %d epochs, %d folds each)", search, epochs, smokeTrials*folds, smokeTrials*smokeEpochs*folds, smokeTrials, smokeEpochs, folds)
			}
			if v, ok := st.Info["best_value"].(float64); !ok || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("%s: best_value %v, want a finite number", search, st.Info["best_value"])
			}
			got, found := math.NaN(), false
			for _, s := range m.Stages {
				if s.Kind == "evaluate" {
					if v, ok := s.Metrics[metric]; ok {
						got, found = v, true
					}
				}
			}
			if !found {
				t.Fatalf("no evaluate stage reports %s: the pipeline must score the test table", metric)
			}
			t.Logf("%s = %.4f (floor %.2f) after %d trials of at most %d epochs (%v), %d epochs in all", metric, got, least, smokeTrials, smokeEpochs, counts, epochs)
			if got < least {
				t.Errorf("%s = %.4f, below the floor %.2f", metric, got, least)
			}
		})
	}
}

// checkSearchPipelineSplit checks that a search pipeline is on the peers' split and that its
// search chooses on val: the dataset stage sets peer_split, the split stage splits by that
// column, and the search stage reads a train table and is scored on a val table. It returns
// the search stage's name.
func checkSearchPipelineSplit(t *testing.T, p *pipeline.Pipeline) string {
	t.Helper()
	var search string
	for _, sc := range p.Stages {
		switch sc.Kind {
		case "dataset":
			if !sc.Bool("peer_split") {
				t.Errorf("stage %s: peer_split is not set: a search pipeline runs on the peers' split (BENCH.md)", sc.Name)
			}
		case "split":
			if sc.String("split_column") != "split" {
				t.Errorf("stage %s: split_column = %q, want \"split\" (the peers' split)", sc.Name, sc.String("split_column"))
			}
		case "search":
			if search != "" {
				t.Errorf("stages %s and %s: want one search stage", search, sc.Name)
			}
			search = sc.Name
			if refs := sc.Inputs("val"); len(refs) != 1 || refs[0].Port != "val" {
				t.Errorf("stage %s: val = %v, want one table of the val split: the search chooses on val alone", sc.Name, refs)
			}
		}
	}
	if search == "" {
		t.Errorf("no search stage")
	}
	return search
}
