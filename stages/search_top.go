package stages

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/ensemble"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/search"
)

// topTrials returns the k best completed trials of a search, best first (the search's own
// ranking); fewer when fewer completed. Pruned trials stopped before their training ended,
// so they are never members.
func topTrials(out search.Outcome, k int) []search.TrialResult {
	var top []search.TrialResult
	for _, i := range out.Ranking {
		if len(top) == k {
			break
		}
		if t := out.Trials[i]; t.Status == search.Completed {
			top = append(top, t)
		}
	}
	return top
}

// finalTop makes the stage's model the mean of the top_k best completed trials: each is
// trained again from its seed (so each member is exactly that trial's model, which
// checkSame verifies), concurrently on the stage's workers, one core each; the members are
// combined as an ensemble stage combines its members with method = "mean" (class
// probabilities averaged, regression outputs averaged). The members differ in their
// hyperparameters, architecture included, which is what makes the average better than its
// best member on small datasets (Caruana et al. 2004, ensemble selection from libraries of
// models). With fewer than two completed trials it falls back to the best trial alone.
func (r *searchRun) finalTop(ctx context.Context, dir string, out search.Outcome, workers int) error {
	sc := r.sc
	best, _ := out.BestTrial()
	top := topTrials(out, r.s.top)
	if len(top) < 2 {
		sc.Note("top_k = %d: only %d trial completed, so the model is the best trial alone", r.s.top, len(top))
		return r.final(ctx, dir, best, workers)
	}
	if len(top) < r.s.top {
		sc.Note("top_k = %d: only %d trials completed (the others were pruned or failed), so the model averages %d", r.s.top, len(top), len(top))
	}
	// Each top trial trained again: its network (one member), or with model = "ensemble" its
	// members (all of them join the average).
	members := make([][]*nn.Model, len(top))
	histories := make([][]train.History, len(top))
	errs := make([]error, len(top))
	sem := make(chan struct{}, max(workers, 1))
	var wg sync.WaitGroup
	for i, t := range top {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			members[i], histories[i], errs[i] = r.trainAgain(ctx, t)
		}()
	}
	wg.Wait()
	var models []*nn.Model
	var names []string
	var allHistories []train.History
	indices := make([]int, len(top))
	for i, t := range top {
		if errs[i] != nil {
			return fmt.Errorf("top_k: trial %d trained again: %w", t.Index, errs[i])
		}
		indices[i] = t.Index
		for j, m := range members[i] {
			name := fmt.Sprintf("trial_%03d", t.Index)
			if r.s.model == searchModelEnsemble {
				name += fmt.Sprintf("_member_%02d", j)
			}
			models, names, allHistories = append(models, m), append(names, name), append(allHistories, histories[i][j])
		}
	}
	ens, err := ensemble.New(models, names)
	if err != nil {
		return fmt.Errorf("top_k: %w", err)
	}
	eb, err := bundle.NewEnsemble(sc.Name, ens, r.data.plan, bundleSteps(r.data.trainT.Lineage()), r.data.trainT.Schema())
	if err != nil {
		return fmt.Errorf("top_k: %w", err)
	}
	eb = eb.WithCombiner(ensemble.CombinerMean)
	vals, err := predictorMetrics(eb, r.data.valData)
	if err != nil {
		return err
	}
	for i, h := range allHistories {
		if err := writeHistory(filepath.Join(dir, memberHistoryFile(i)), h); err != nil {
			return fmt.Errorf("top_k: member %d (%s): history: %w", i, names[i], err)
		}
	}
	eb.Meta.Metrics = vals
	for k, v := range vals {
		sc.Metrics.Set(k, v)
	}
	sc.SetInfo("top_k", map[string]any{"trials": indices, "objective": r.objective, "value": vals[r.objective], "best_trial_value": best.Value})
	trials := make([]string, len(top))
	for i, t := range top {
		trials[i] = fmt.Sprint(t.Index)
	}
	sc.Note("top_k: the model averages the %d best completed trials (%s; %d networks), each trained again from its seed: %s %.4g, against %.4g for the best trial alone",
		len(top), strings.Join(trials, ", "), len(models), r.objective, vals[r.objective], best.Value)
	if err := eb.Save(filepath.Join(dir, bundleDir)); err != nil {
		return err
	}
	return sc.SetArtifact("model", eb)
}

// trainAgain trains a trial again from its seed: its network, or its ensemble's members, with
// their histories. Its objective is checked against the trial's.
func (r *searchRun) trainAgain(ctx context.Context, t search.TrialResult) ([]*nn.Model, []train.History, error) {
	c, err := r.s.trialConfig(r.sc.Config, t.Params)
	if err != nil {
		return nil, nil, err
	}
	if r.s.model == searchModelEnsemble {
		eb, rep, err := r.trainEnsemble(ctx, c, t.Trial, 1)
		if err != nil {
			return nil, nil, err
		}
		vals, err := predictorMetrics(eb, r.data.valData)
		if err != nil {
			return nil, nil, err
		}
		r.checkSame(t, vals[r.objective])
		byName := map[string]train.History{}
		for _, m := range rep.Members {
			byName[m.Name] = m.History
		}
		names := eb.Ens.Names()
		hist := make([]train.History, len(names))
		for i, n := range names {
			hist[i] = byName[n] // a member kept by the ensemble has its report
		}
		return eb.Ens.Models(), hist, nil
	}
	m, res, value, err := r.fit(ctx, c, t.Trial, 1, 0, nil)
	if err != nil {
		return nil, nil, err
	}
	r.checkSame(t, value)
	return []*nn.Model{m}, []train.History{res.History}, nil
}
