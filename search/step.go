package search

import "fmt"

// Steps drives a search whose trials run apart, in other processes or on other machines (an
// engine that spreads them over workers), with the decisions Run would make: the same trials,
// the same pruning, the same records, so that Run given every record as Config.Restore
// returns the Outcome of a Run that trained them itself.
//
// The engine keeps what Run keeps in memory where every process sees it (a store): each
// finished trial's TrialResult, and the reports so far of each trial in progress (its
// TrialProgress). A trial runs in segments. Each report is judged at once (Judge) when the
// trials below it have said enough; otherwise the segment ends there ("paused": the trial
// keeps its state and the report waits), and a later segment, started when Judge can decide,
// continues from it. No segment ever waits for another, so any number of workers, in any
// order, with any segments lost and run again, reaches the same decisions.
type Steps struct {
	cfg     Config
	sizes   []int
	roundOf []int
}

// NewSteps checks cfg and returns its Steps. cfg.Workers, Restore and OnTrialDone are not
// used.
func NewSteps(cfg Config) (*Steps, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Steps{cfg: cfg, sizes: RoundSizes(cfg.Trials, cfg.Rounds), roundOf: make([]int, cfg.Trials)}
	for r, i := 0, 0; r < len(s.sizes); r++ {
		for range s.sizes[r] {
			s.roundOf[i] = r
			i++
		}
	}
	return s, nil
}

// Trials returns the number of trials of the search.
func (s *Steps) Trials() int { return s.cfg.Trials }

// Round returns the round of trial i.
func (s *Steps) Round(i int) int { return s.roundOf[i] }

// Trial returns trial i, its Params drawn as Run draws them: from its round's region, which
// depends on every trial of the earlier rounds, or with the TPE sampler from trials
// 0 … i−Parallel. ok is false while one of those has no record in finished (by index; their
// Params are not read: they are drawn again). A record that is Failed counts as finished.
func (s *Steps) Trial(i int, finished map[int]TrialResult) (t Trial, ok bool) {
	if i < 0 || i >= s.cfg.Trials {
		return Trial{}, false
	}
	if s.cfg.Sampler == SamplerTPE {
		return s.tpeTrial(i, finished)
	}
	d := s.cfg.firstDrawer()
	first := 0
	var results []TrialResult
	for r := range s.roundOf[i] {
		for k := range s.sizes[r] {
			j := first + k
			rec, done := finished[j]
			if !done {
				return Trial{}, false
			}
			rec.Trial = d.trial(j, r)
			results = append(results, rec)
		}
		first += s.sizes[r]
		d = s.cfg.nextDrawer(d, results)
	}
	return d.trial(i, s.roundOf[i]), true
}

// Drawable returns every trial that Trial can draw now, by index: for the zoom sampler the
// trials of each round whose earlier rounds all have records in finished; for TPE each trial
// whose trials 0 … i−Parallel have. It draws each trial once (Trial, called for every i,
// would draw the trials below i again for each).
func (s *Steps) Drawable(finished map[int]TrialResult) map[int]Trial {
	out := map[int]Trial{}
	if s.cfg.Sampler == SamplerTPE {
		results := make([]TrialResult, 0, s.cfg.Trials)
		for i := range s.cfg.Trials {
			if s.cfg.tpeSees(i) > len(results) {
				break
			}
			t := s.cfg.tpeTrial(i, results[:s.cfg.tpeSees(i)])
			out[i] = t
			rec, done := finished[i]
			if len(results) != i || !done {
				continue // the trials above may still be drawable: they see only up to i−Parallel
			}
			rec.Trial = t
			results = append(results, rec)
		}
		return out
	}
	d := s.cfg.firstDrawer()
	first := 0
	var results []TrialResult
	for r, n := range s.sizes {
		complete := true
		for k := range n {
			j := first + k
			t := d.trial(j, r)
			out[j] = t
			rec, done := finished[j]
			if !done {
				complete = false
				continue
			}
			rec.Trial = t
			results = append(results, rec)
		}
		if !complete {
			break
		}
		first += n
		d = s.cfg.nextDrawer(d, results)
	}
	return out
}

// tpeTrial is Trial for the TPE sampler: trial i is drawn from trials 0 … i−Parallel, each
// of them drawn again the same way from its own records.
func (s *Steps) tpeTrial(i int, finished map[int]TrialResult) (Trial, bool) {
	n := s.cfg.tpeSees(i)
	results := make([]TrialResult, n)
	for j := range n {
		rec, done := finished[j]
		if !done {
			return Trial{}, false
		}
		rec.Trial = s.cfg.tpeTrial(j, results[:s.cfg.tpeSees(j)])
		results[j] = rec
	}
	return s.cfg.tpeTrial(i, results), true
}

// TrialProgress is a trial in progress: its reports so far and where its pruning stands.
type TrialProgress struct {
	// History holds the trial's reports, the last one perhaps not judged yet (Pending).
	History []Point
	// NextRung is ASHA's next rung to judge.
	NextRung int
	// Pending: the last report of History waits for its decision.
	Pending bool
}

// BoardView tells what the search knows of trial j: its reports so far (a prefix of all it
// will make) and whether it makes no more (a finished record: completed, pruned or failed).
type BoardView func(j int) (history []Point, done bool)

// Report records trial i's report of value at epoch in p and judges it against the trials
// below i as view shows them, as Run's Report does. decided is false when the decision
// waits on a trial below that has not reported at that epoch yet and is not done: the report
// is then Pending in p, and Judge decides it later. An epoch that does not increase is an
// error (not recorded).
func (s *Steps) Report(i int, p *TrialProgress, epoch int, value float64, view BoardView) (decided, cont bool, err error) {
	if p.Pending {
		return false, false, fmt.Errorf("search: trial %d: report of epoch %d while the report of epoch %d waits for its decision", i, epoch, p.History[len(p.History)-1].Epoch)
	}
	if n := len(p.History); (n > 0 && epoch <= p.History[n-1].Epoch) || epoch < 1 {
		last := 0
		if n > 0 {
			last = p.History[n-1].Epoch
		}
		return false, false, fmt.Errorf("search: trial %d: report of epoch %d after epoch %d: epochs start at 1 and increase", i, epoch, last)
	}
	p.History = append(p.History, Point{Epoch: epoch, Value: value})
	p.Pending = true
	decided, cont = s.Judge(i, p, view)
	return decided, cont, nil
}

// Judge decides p's pending report (the last of its History) when view says enough of the
// trials below i, and clears Pending then. It returns decided false (and changes only
// NextRung, past the rungs already passed) while a trial below has not said enough;
// otherwise whether trial i continues. With no pending report it returns true, true.
func (s *Steps) Judge(i int, p *TrialProgress, view BoardView) (decided, cont bool) {
	if !p.Pending {
		return true, true
	}
	epoch := p.History[len(p.History)-1].Epoch
	pr, maximize := s.cfg.Prune, s.cfg.Maximize
	others := func(e int) ([]float64, bool) {
		vals := make([]float64, 0, i)
		for j := range i {
			h, done := view(j)
			v, reached := valueAt(h, e, maximize)
			if !reached && !done {
				return nil, false
			}
			if reached {
				vals = append(vals, v)
			}
		}
		return vals, true
	}
	own := func(e int) float64 { v, _ := valueAt(p.History, e, maximize); return v }
	switch pr.Method {
	case PruneASHA:
		for {
			e := pr.rungEpoch(p.NextRung)
			if e > epoch {
				break
			}
			vals, known := others(e)
			if !known {
				return false, false
			}
			if !ashaContinue(own(e), vals, pr.Reduction, maximize) {
				p.Pending = false
				return true, false
			}
			p.NextRung++
		}
	case PruneMedian:
		if epoch >= pr.MinEpochs && i >= pr.MinTrials {
			vals, known := others(epoch)
			if !known {
				return false, false
			}
			if len(vals) >= pr.MinTrials && !medianContinue(own(epoch), vals, maximize) {
				p.Pending = false
				return true, false
			}
		}
	}
	p.Pending = false
	return true, true
}

// valueAt returns the value at epoch e of a trial with the given reports: its best value so
// far at its first report at or after e (as the board's), and false when it has none.
func valueAt(history []Point, e int, maximize bool) (float64, bool) {
	var best float64
	for k, pt := range history {
		if k == 0 || better(pt.Value, best, maximize) {
			best = pt.Value
		}
		if pt.Epoch >= e {
			return best, true
		}
	}
	return 0, false
}
