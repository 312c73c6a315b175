package pretrain

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
	"github.com/pipe-ml/pipe/nn/train"
)

// DefaultThreshold is PseudoLabelOptions.Threshold's default.
const DefaultThreshold = 0.95

// PseudoLabelOptions configures PseudoLabel and SelfTrain. The zero value picks rows whose
// top class probability is at least 0.95, with weight 1.
type PseudoLabelOptions struct {
	// Head is the name of the softmax or binary head that is pseudo-labelled; default the
	// model's first classification head.
	Head string
	// Threshold is the minimum top-class probability of a picked row; default 0.95.
	Threshold float64
	// TopShare, when > 0, replaces Threshold: for every class, the TopShare most confident
	// of the rows predicted as that class are picked (ties broken by position). Default 0.
	TopShare float64
	// Weight is the sample weight of a pseudo-labelled row; default 1.
	Weight float64
	// ConfidenceWeight multiplies Weight by the row's top-class probability. Default false.
	ConfidenceWeight bool

	// The fields below are read by SelfTrain only.

	// Restart makes every round of SelfTrain train from the weights SelfTrain started with,
	// instead of continuing from the previous round's: the student does not inherit the
	// teacher's fit to its own pseudo-labels (less confirmation bias). Round r's
	// pseudo-labels still come from round r−1's model. Default false: continue.
	Restart bool
	// Views, when > 0 and the training config has an Augment, makes the pseudo-labels the
	// mean of the predicted probabilities of the clean row and of Views augmented copies of it
	// (test-time augmentation of the teacher; the copies are drawn from a stream seeded by the
	// config's Seed). Default 0: the clean row only.
	Views int
	// EnsembleDecay, when > 0, makes the pseudo-labels of a round the exponential moving
	// average, with this decay, of the probabilities predicted in every round so far
	// (temporal ensembling, Laine & Aila 2017, over rounds rather than epochs; bias-corrected
	// as in Adam, so round 1 uses its own prediction): Z ← d·Z + (1−d)·p, labels from
	// Z / (1−dʳ). Must be < 1. Default 0: the current model's prediction only.
	EnsembleDecay float64
	// KeepBest ends SelfTrain with the weights that had the best validation accuracy: the
	// starting model's or one of the rounds' (ties go to the later one). Default false: the
	// last round's weights.
	KeepBest bool
	// Anneal makes the rounds one training run for the learning rate: it follows a single
	// cosine from the optimizer's rate at the start of round 1 to 0 at the end of the last
	// round (each round anneals its share, from base·c((r−1)/R) to base·c(r/R) with
	// c(t) = (1+cos πt)/2), replacing the config's own schedule. The late rounds then refine
	// with small steps instead of ending on a constant rate's noise. Default false: every
	// round runs the config's schedule from the start.
	Anneal bool
}

// annealedRound returns tc with the learning rate of round r (1-based) of rounds under
// PseudoLabelOptions.Anneal.
func annealedRound(tc train.Config, r, rounds int) train.Config {
	base := tc.Optimizer.EffectiveLR()
	c := func(t float64) float64 { return (1 + math.Cos(math.Pi*t)) / 2 }
	tc.Optimizer.LR = base * c(float64(r-1)/float64(rounds))
	tc.Schedule = optim.ScheduleConfig{Name: "cosine", MinLR: base * c(float64(r)/float64(rounds))}
	return tc
}

func (o PseudoLabelOptions) withDefaults() (PseudoLabelOptions, error) {
	if o.Threshold == 0 {
		o.Threshold = DefaultThreshold
	}
	if o.Weight == 0 {
		o.Weight = 1
	}
	switch {
	case o.Threshold < 0 || o.Threshold > 1:
		return o, fmt.Errorf("pretrain: pseudo-label threshold %g not in [0, 1]", o.Threshold)
	case o.TopShare < 0 || o.TopShare > 1:
		return o, fmt.Errorf("pretrain: pseudo-label top share %g not in [0, 1]", o.TopShare)
	case o.Weight < 0:
		return o, fmt.Errorf("pretrain: pseudo-label weight %g < 0", o.Weight)
	case o.EnsembleDecay < 0 || o.EnsembleDecay >= 1:
		return o, fmt.Errorf("pretrain: pseudo-label ensemble decay %g not in [0, 1)", o.EnsembleDecay)
	case o.Views < 0:
		return o, fmt.Errorf("pretrain: pseudo-label views %d < 0", o.Views)
	}
	return o, nil
}

// classHead returns the index of the pseudo-labelled head.
func classHead(m *nn.Model, name string) (int, error) {
	for i, h := range m.Heads() {
		if (name == "" || h.Name == name) && (h.Kind == nn.HeadSoftmax || h.Kind == nn.HeadBinary) {
			return i, nil
		}
	}
	if name == "" {
		return 0, fmt.Errorf("pretrain: pseudo-label: the model has no classification head")
	}
	return 0, fmt.Errorf("pretrain: pseudo-label: no softmax or binary head named %q", name)
}

// predictView returns the probabilities of head h for every row of d (rows×width), in chunks.
func predictView(m *nn.Model, d train.Dataset, h int) ([]float32, int, error) {
	return predictViews(m, d, h, 0, nil, nil)
}

// predictViews is predictView averaged over the clean rows and views copies transformed by
// augment (drawing from rng); views 0 or a nil augment is the clean prediction only.
func predictViews(m *nn.Model, d train.Dataset, h, views int, augment func(*nn.Batch, *nn.Targets, *rand.Rand), rng *rand.Rand) ([]float32, int, error) {
	if augment == nil {
		views = 0
	}
	n := d.Len()
	const chunk = 4096
	var out []float32
	width := 0
	g := newGatherer(d, chunk)
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		b := g.batch(lo, hi)
		o, err := m.Predict(b)
		if err != nil {
			return nil, 0, fmt.Errorf("pretrain: predict rows %d-%d: %w", lo, hi, err)
		}
		width = o.Width[h]
		if out == nil {
			out = make([]float32, 0, n*width)
		}
		at := len(out)
		out = append(out, o.Heads[h]...)
		if views == 0 {
			continue
		}
		clean := append([]float32(nil), b.X...)
		for range views {
			copy(b.X, clean)
			augment(&b, &nn.Targets{}, rng)
			o, err := m.Predict(b)
			if err != nil {
				return nil, 0, fmt.Errorf("pretrain: predict augmented rows %d-%d: %w", lo, hi, err)
			}
			for i, p := range o.Heads[h] {
				out[at+i] += p
			}
		}
		scale := 1 / float32(views+1)
		for i := at; i < len(out); i++ {
			out[i] *= scale
		}
	}
	return out, width, nil
}

// PseudoLabel predicts the rows of unlabeled with m and picks the confident ones (Lee 2013):
// those whose top-class probability reaches opts.Threshold, or with opts.TopShare the most
// confident share of the rows predicted as each class. picked lists positions in unlabeled
// (ascending); labels and weights are aligned with picked. unlabeled's targets are ignored.
func PseudoLabel(m *nn.Model, unlabeled train.Dataset, opts PseudoLabelOptions) (labels []int32, weights []float32, picked []int, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, nil, nil, err
	}
	h, err := classHead(m, opts.Head)
	if err != nil {
		return nil, nil, nil, err
	}
	if unlabeled.Len() == 0 {
		return nil, nil, nil, nil
	}
	probs, k, err := predictView(m, unlabeled, h)
	if err != nil {
		return nil, nil, nil, err
	}
	return selectConfident(probs, k, opts)
}

// selectConfident implements the selection of PseudoLabel on a rows×k probability matrix.
func selectConfident(probs []float32, k int, opts PseudoLabelOptions) (labels []int32, weights []float32, picked []int, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, nil, nil, err
	}
	n := len(probs) / k
	top := make([]int32, n)
	conf := make([]float32, n)
	for r := range n {
		p := probs[r*k : (r+1)*k]
		best := 0
		for c := 1; c < k; c++ {
			if p[c] > p[best] {
				best = c
			}
		}
		top[r], conf[r] = int32(best), p[best]
	}
	take := make([]bool, n)
	if opts.TopShare > 0 {
		byClass := make([][]int, k)
		for r := range n {
			byClass[top[r]] = append(byClass[top[r]], r)
		}
		for _, rows := range byClass {
			sort.SliceStable(rows, func(i, j int) bool { return conf[rows[i]] > conf[rows[j]] })
			keep := int(math.Round(opts.TopShare * float64(len(rows))))
			for _, r := range rows[:keep] {
				take[r] = true
			}
		}
	} else {
		for r := range n {
			take[r] = float64(conf[r]) >= opts.Threshold
		}
	}
	for r := range n {
		if !take[r] {
			continue
		}
		w := opts.Weight
		if opts.ConfidenceWeight {
			w *= float64(conf[r])
		}
		picked = append(picked, r)
		labels = append(labels, top[r])
		weights = append(weights, float32(w))
	}
	return labels, weights, picked, nil
}

// RoundReport describes one self-training round.
type RoundReport struct {
	Round int // 1-based
	// Added is the number of pseudo-labelled rows trained on in this round.
	Added int
	// PseudoAccuracy is the accuracy of the added rows' pseudo-labels against the hidden
	// labels, over the added rows whose hidden label is known (NaN when SelfTrain got none,
	// or no such row was added).
	PseudoAccuracy float64
	// MeanConfidence is the mean top-class probability the added rows were picked with (NaN
	// when none was added).
	MeanConfidence float64
	// ValAccuracy is the accuracy on the validation set after the round's training.
	ValAccuracy float64
	// Epochs is the number of epochs trained in the round; Seconds its wall time.
	Epochs  int
	Seconds float64
}

// SelfTrainReport describes a SelfTrain run.
type SelfTrainReport struct {
	// InitialValAccuracy is the validation accuracy before the first round.
	InitialValAccuracy float64
	Rounds             []RoundReport
	// BestRound is the round whose weights m ended with: the last one, or with KeepBest the
	// one of best validation accuracy (0: the starting weights).
	BestRound int
	// Last is the pseudo-labelling of the last round: the rows of unlabeled it picked
	// (positions), their labels, the top-class probability each was picked with, and the
	// sample weight each was trained with.
	Last PseudoLabels
	// ResumedRounds is the number of rounds taken from SelfTrainRun.State, and ResumedEpochs
	// the epochs of the next round's training taken from SelfTrainRun.Epoch (0: none). Like
	// the timings, they describe how this run went, not its result.
	ResumedRounds, ResumedEpochs int
}

// PseudoLabels is one round's pseudo-labelling.
type PseudoLabels struct {
	Picked     []int
	Labels     []int32
	Confidence []float32
	Weights    []float32
}

// SelfTrain runs rounds of self-training on m (in place): each round predicts the rows of
// unlabeled with the current model (averaged over opts.Views augmented copies when tc has an
// Augment, and over the rounds with opts.EnsembleDecay), picks the confident ones (as PseudoLabel does with opts), and trains with
// train.Fit(tc, Seed+round) on labelled plus the pseudo-labelled rows (weighted as opts says;
// the labelled rows keep their weights), continuing from the current weights or, with
// opts.Restart, from the weights m had when SelfTrain was called. tc.Augment applies to the
// pseudo-labelled rows as to the labelled ones. The pseudo-labels are recomputed from scratch
// every round. With opts.KeepBest m ends with the weights of best validation accuracy
// (SelfTrainReport.BestRound says which), otherwise with the last round's. hidden, when not
// nil, holds the true labels of unlabeled's rows (positions in unlabeled; negative: unknown) and
// is used only to report the pseudo-labels' accuracy. val must hold labels for the pseudo-labelled head; it is
// the early-stopping set of every round. labelled, unlabeled and val are not modified.
//
// SelfTrain is SelfTrainWith without checkpoints.
func SelfTrain(ctx context.Context, m *nn.Model, labelled, unlabeled, val train.Dataset, tc train.Config, opts PseudoLabelOptions, rounds int, hidden []int32) (SelfTrainReport, error) {
	return SelfTrainWith(ctx, m, labelled, unlabeled, val, tc, opts, rounds, hidden, SelfTrainRun{})
}

// SelfTrainRun holds the checkpoint hooks and the resume state of SelfTrainWith. None of them
// changes the result. The zero value records nothing and starts from the first round.
type SelfTrainRun struct {
	// RoundEnd, when set, is called after every finished round with the state to continue
	// from (State). An error ends SelfTrain with it.
	RoundEnd func(s *SelfTrainState) error
	// Checkpoint, when set, is called at the end of the epochs of round's training (1-based
	// round) with the trainer's checkpoint, after the other epoch hooks: every epoch's,
	// except where taking it would cost more than 1/train.CheckpointGap of the training
	// (train.OnCheckpoint). An error ends SelfTrain with it.
	Checkpoint func(round int, c *train.Checkpoint) error
	// State, when set, is the last state an earlier, interrupted SelfTrainWith with the same
	// arguments gave RoundEnd: the rounds it covers are not run again.
	State *SelfTrainState
	// Epoch, when set, is the last checkpoint an earlier SelfTrainWith gave Checkpoint, and
	// EpochRound its round: when that is the round after State's (round 1 without State), the
	// round's training continues from it (its pseudo-labels are recomputed from State, the
	// same predictions); otherwise it is not used.
	Epoch      *train.Checkpoint
	EpochRound int
}

// selfTrainVersion is the encoding version of SelfTrainState.MarshalBinary.
const selfTrainVersion = 1

// SelfTrainState is the state of a self-training after a finished round.
type SelfTrainState struct {
	// Version is the encoding version (set by MarshalBinary).
	Version int
	// Round is the number of rounds finished.
	Round int
	// Spec is the model's spec; a state of another spec is not used.
	Spec nn.Spec
	// Weights are the model's params and buffers after Round (train.Snapshot's layout);
	// Start the weights the self-training started with (with opts.Restart, else nil).
	Weights []train.Tensor
	Start   []train.Tensor
	// BestWeights, BestAccuracy and Report.BestRound are KeepBest's best so far (weights nil
	// without KeepBest).
	BestWeights  []train.Tensor
	BestAccuracy float64
	// ViewRNG is the PCG state of the augmented views' stream.
	ViewRNG []byte
	// Ensemble is EnsembleDecay's moving average of the predictions (rows×classes; nil when
	// off).
	Ensemble []float64
	// Report is the report so far: the initial validation accuracy, the finished rounds and
	// the last pseudo-labels.
	Report SelfTrainReport
}

// MarshalBinary encodes the state (gob; floats bit-exact).
func (s *SelfTrainState) MarshalBinary() ([]byte, error) {
	type plain SelfTrainState // without the methods: gob would call MarshalBinary again
	c := *s
	c.Version = selfTrainVersion
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode((*plain)(&c)); err != nil {
		return nil, fmt.Errorf("pretrain: encode self-training state: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary decodes a state written by MarshalBinary.
func (s *SelfTrainState) UnmarshalBinary(b []byte) error {
	type plain SelfTrainState
	var tmp plain
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&tmp); err != nil {
		return fmt.Errorf("pretrain: decode self-training state: %w", err)
	}
	if tmp.Version != selfTrainVersion {
		return fmt.Errorf("pretrain: self-training state version %d, this build reads version %d", tmp.Version, selfTrainVersion)
	}
	*s = SelfTrainState(tmp)
	return nil
}

// selfTrain is the running state of SelfTrainWith.
type selfTrain struct {
	m        *nn.Model
	start    weights // with Restart
	best     weights // with KeepBest
	bestAcc  float64
	viewPCG  *rand.PCG
	viewRNG  *rand.Rand
	ensemble []float64 // EnsembleDecay's moving average, rows×classes
	rep      SelfTrainReport
	round    int // rounds finished
}

// state captures the state after the last finished round.
func (st *selfTrain) state() (*SelfTrainState, error) {
	rng, err := st.viewPCG.MarshalBinary()
	if err != nil {
		return nil, err
	}
	s := &SelfTrainState{Version: selfTrainVersion, Round: st.round, Spec: st.m.Spec(), Weights: train.Snapshot(st.m),
		BestAccuracy: st.bestAcc, ViewRNG: rng, Ensemble: slices.Clone(st.ensemble), Report: st.rep}
	s.Report.Rounds = slices.Clone(st.rep.Rounds)
	s.Report.ResumedRounds, s.Report.ResumedEpochs = 0, 0
	if st.start != nil {
		s.Start = st.start.tensors(st.m)
	}
	if st.best != nil {
		s.BestWeights = st.best.tensors(st.m)
	}
	return s, nil
}

// resume checks s against the model and the options and, when it fits, sets the running state
// and the model's weights from it. On error m is unchanged.
func (st *selfTrain) resume(s *SelfTrainState, opts PseudoLabelOptions, rounds int, unlabeled train.Dataset) error {
	switch {
	case !train.SameSpec(s.Spec, st.m.Spec()):
		return errors.New("it is of a model of another spec")
	case s.Round < 0 || s.Round > rounds || len(s.Report.Rounds) != s.Round:
		return fmt.Errorf("it has %d rounds (%d reported) of %d", s.Round, len(s.Report.Rounds), rounds)
	case (s.Start != nil) != opts.Restart || (s.BestWeights != nil) != opts.KeepBest:
		return errors.New("it was taken with other restart or keep_best options")
	case (s.Ensemble != nil) != (opts.EnsembleDecay > 0 && s.Round > 0 && unlabeled.Len() > 0):
		return errors.New("it was taken with another ensemble decay")
	case s.Ensemble != nil && len(s.Ensemble)%unlabeled.Len() != 0:
		return fmt.Errorf("its moving average has %d values for %d unlabelled rows", len(s.Ensemble), unlabeled.Len())
	}
	w, err := weightsOf(st.m, s.Weights)
	if err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	var start, best weights
	if s.Start != nil {
		if start, err = weightsOf(st.m, s.Start); err != nil {
			return fmt.Errorf("starting weights: %w", err)
		}
	}
	if s.BestWeights != nil {
		if best, err = weightsOf(st.m, s.BestWeights); err != nil {
			return fmt.Errorf("best weights: %w", err)
		}
	}
	pcg := rand.NewPCG(0, 0)
	if err := pcg.UnmarshalBinary(s.ViewRNG); err != nil {
		return fmt.Errorf("views' random state: %w", err)
	}
	w.restoreTo(st.m)
	st.start, st.best, st.bestAcc = start, best, s.BestAccuracy
	st.viewPCG, st.viewRNG = pcg, rand.New(pcg)
	st.ensemble = slices.Clone(s.Ensemble)
	st.rep = s.Report
	st.rep.Rounds = slices.Clone(s.Report.Rounds)
	st.rep.ResumedRounds = s.Round
	st.round = s.Round
	return nil
}

// SelfTrainWith is SelfTrain with checkpoints (run.RoundEnd after every round, run.Checkpoint
// after every epoch of a round's training) and resume: given the last state and epoch
// checkpoint an interrupted SelfTrainWith handed out, and m built as before (the same spec),
// it continues where that one stopped, with the same final weights and report (timings and the
// Resumed fields aside) as an uninterrupted run. A state or checkpoint that does not fit (another
// spec or options, a damaged state) is set aside with a warning on tc.Logger, and the rounds
// it covered run again: a resume is never wrong.
func SelfTrainWith(ctx context.Context, m *nn.Model, labelled, unlabeled, val train.Dataset, tc train.Config, opts PseudoLabelOptions, rounds int, hidden []int32, run SelfTrainRun) (SelfTrainReport, error) {
	var rep SelfTrainReport
	opts, err := opts.withDefaults()
	if err != nil {
		return rep, err
	}
	h, err := classHead(m, opts.Head)
	if err != nil {
		return rep, err
	}
	if hidden != nil && len(hidden) != unlabeled.Len() {
		return rep, fmt.Errorf("pretrain: self-train: %d hidden labels for %d unlabelled rows", len(hidden), unlabeled.Len())
	}
	if labelled.NumInputs != unlabeled.NumInputs || len(labelled.Cat) != len(unlabeled.Cat) {
		return rep, fmt.Errorf("pretrain: self-train: labelled data has %d inputs and %d categorical columns, unlabelled %d and %d",
			labelled.NumInputs, len(labelled.Cat), unlabeled.NumInputs, len(unlabeled.Cat))
	}
	st := &selfTrain{m: m}
	epochRound := 1 // the round whose training may continue from run.Epoch
	if run.State != nil {
		if err := st.resume(run.State, opts, rounds, unlabeled); err != nil {
			// The epoch checkpoint came with that state: it is not used either.
			tc.Logger.Warn().Err(err).Int("rounds", run.State.Round).Msg("self-training: the saved state of the finished rounds is set aside; they run again")
			epochRound = -1
		} else {
			epochRound = st.round + 1
		}
	}
	if st.viewPCG == nil { // from the start
		if st.rep.InitialValAccuracy, err = accuracy(m, val, h); err != nil {
			return st.rep, err
		}
		if opts.Restart {
			st.start = snapshot(m)
		}
		st.bestAcc = st.rep.InitialValAccuracy
		if opts.KeepBest {
			st.best = snapshot(m)
		}
		st.viewPCG = rand.NewPCG(tc.Seed, streamViews)
		st.viewRNG = rand.New(st.viewPCG)
	}
	for round := st.round + 1; round <= rounds; round++ {
		if err := ctx.Err(); err != nil {
			return st.rep, fmt.Errorf("pretrain: self-train round %d: %w", round, err)
		}
		var ck *train.Checkpoint
		if run.Epoch != nil && run.EpochRound == round && round == epochRound {
			ck = run.Epoch
		}
		if err := st.runRound(ctx, round, rounds, h, labelled, unlabeled, val, tc, opts, hidden, run.Checkpoint, ck); err != nil {
			return st.rep, err
		}
		if run.RoundEnd != nil {
			s, err := st.state()
			if err != nil {
				return st.rep, fmt.Errorf("pretrain: self-train round %d: state: %w", round, err)
			}
			if err := run.RoundEnd(s); err != nil {
				return st.rep, fmt.Errorf("pretrain: self-train round %d: %w", round, err)
			}
		}
	}
	if opts.KeepBest {
		st.best.restoreTo(m)
	} else {
		st.rep.BestRound = len(st.rep.Rounds)
	}
	return st.rep, nil
}

// runRound runs one round: pseudo-labels from the current model, then training (from ck when
// it fits).
func (st *selfTrain) runRound(ctx context.Context, round, rounds, h int, labelled, unlabeled, val train.Dataset, tc train.Config, opts PseudoLabelOptions, hidden []int32,
	checkpoint func(int, *train.Checkpoint) error, ck *train.Checkpoint) error {
	m := st.m
	began := time.Now()
	var labels []int32
	var weights []float32
	var picked []int
	if unlabeled.Len() > 0 {
		probs, k, err := predictViews(m, unlabeled, h, opts.Views, tc.Augment, st.viewRNG)
		if err != nil {
			return fmt.Errorf("pretrain: self-train round %d: %w", round, err)
		}
		if d := opts.EnsembleDecay; d > 0 {
			if st.ensemble == nil {
				st.ensemble = make([]float64, len(probs))
			}
			if len(st.ensemble) != len(probs) {
				return fmt.Errorf("pretrain: self-train round %d: the moving average has %d values, the predictions %d", round, len(st.ensemble), len(probs))
			}
			correction := 1 / (1 - math.Pow(d, float64(round)))
			for i, p := range probs {
				st.ensemble[i] = d*st.ensemble[i] + (1-d)*float64(p)
				probs[i] = float32(st.ensemble[i] * correction)
			}
		}
		if labels, weights, picked, err = selectConfident(probs, k, opts); err != nil {
			return fmt.Errorf("pretrain: self-train round %d: %w", round, err)
		}
		conf := make([]float32, len(picked))
		for i, r := range picked {
			conf[i] = probs[r*k+int(labels[i])]
		}
		st.rep.Last = PseudoLabels{Picked: picked, Labels: labels, Confidence: conf, Weights: weights}
	}
	rr := RoundReport{Round: round, Added: len(picked), PseudoAccuracy: math.NaN(), MeanConfidence: math.NaN()}
	if len(picked) > 0 {
		var sum float64
		for _, c := range st.rep.Last.Confidence {
			sum += float64(c)
		}
		rr.MeanConfidence = sum / float64(len(picked))
	}
	if hidden != nil {
		ok, known := 0, 0
		for i, p := range picked {
			if hidden[p] < 0 {
				continue // no true label to compare with
			}
			known++
			if hidden[p] == labels[i] {
				ok++
			}
		}
		if known > 0 {
			rr.PseudoAccuracy = float64(ok) / float64(known)
		}
	}
	combined, err := withPseudoLabels(labelled, unlabeled, h, picked, labels, weights)
	if err != nil {
		return err
	}
	if opts.Restart {
		st.start.restoreTo(m)
	}
	rtc := tc
	rtc.Seed = tc.Seed + uint64(round)
	if opts.Anneal {
		rtc = annealedRound(rtc, round, rounds)
	}
	var hooks []train.Hook
	if checkpoint != nil {
		hooks = append(hooks, train.OnCheckpoint("self_train_checkpoint", func(c *train.Checkpoint, err error) error {
			if err != nil {
				return err
			}
			return checkpoint(round, c)
		}))
	}
	res, err := fitRound(ctx, m, combined, val, rtc, ck, hooks, &st.rep)
	if err != nil {
		return fmt.Errorf("pretrain: self-train round %d: %w", round, err)
	}
	rr.Epochs = res.Epochs
	if rr.ValAccuracy, err = accuracy(m, val, h); err != nil {
		return err
	}
	if opts.KeepBest && !(rr.ValAccuracy < st.bestAcc) {
		st.bestAcc, st.rep.BestRound = rr.ValAccuracy, round
		st.best = snapshot(m)
	}
	rr.Seconds = time.Since(began).Seconds()
	st.rep.Rounds = append(st.rep.Rounds, rr)
	st.round = round
	tc.Logger.Info().Int("round", round).Int("added", rr.Added).Float64("pseudo_accuracy", rr.PseudoAccuracy).
		Float64("val_accuracy", rr.ValAccuracy).Msg("self-training round")
	return nil
}

// fitRound trains a round, from ck when it is set and fits (rep.ResumedEpochs then says from
// which epoch), else from the model's weights.
func fitRound(ctx context.Context, m *nn.Model, set, val train.Dataset, tc train.Config, ck *train.Checkpoint, hooks []train.Hook, rep *SelfTrainReport) (train.Result, error) {
	if ck != nil {
		tc.Resume = ck
		res, err := train.Fit(ctx, m, set, val, tc, hooks...)
		if err == nil || !errors.Is(err, train.ErrCheckpoint) {
			rep.ResumedEpochs = ck.Epoch
			return res, err
		}
		// Fit refused it before changing the model.
		tc.Logger.Warn().Err(err).Msg("self-training: the checkpoint of the round in progress is set aside; the round trains from its start")
		tc.Resume = nil
	}
	return train.Fit(ctx, m, set, val, tc, hooks...)
}

// streamViews is the PCG stream of SelfTrain's augmented prediction views.
const streamViews = 11

// weights is a copy of a model's params and buffers, in the model's order.
type weights [][]float32

// snapshot copies the params and buffers of m.
func snapshot(m *nn.Model) weights {
	var w weights
	for _, p := range m.Params() {
		w = append(w, append([]float32(nil), p.Value...))
	}
	for _, p := range m.Buffers() {
		w = append(w, append([]float32(nil), p.Value...))
	}
	return w
}

// tensors names w's tensors as m's params and buffers (train.Snapshot's layout).
func (w weights) tensors(m *nn.Model) []train.Tensor {
	var out []train.Tensor
	for i, p := range append(append([]*optim.Param(nil), m.Params()...), m.Buffers()...) {
		out = append(out, train.Tensor{Name: p.Name, Value: slices.Clone(w[i])})
	}
	return out
}

// weightsOf checks that ts has the layout of m's params and buffers (names and sizes, in
// order) and returns their values.
func weightsOf(m *nn.Model, ts []train.Tensor) (weights, error) {
	all := append(append([]*optim.Param(nil), m.Params()...), m.Buffers()...)
	if len(ts) != len(all) {
		return nil, fmt.Errorf("%d tensors, the model has %d", len(ts), len(all))
	}
	w := make(weights, len(ts))
	for i, p := range all {
		if ts[i].Name != p.Name || len(ts[i].Value) != len(p.Value) {
			return nil, fmt.Errorf("tensor %d is %q (%d values), the model's is %q (%d values)", i, ts[i].Name, len(ts[i].Value), p.Name, len(p.Value))
		}
		w[i] = ts[i].Value
	}
	return w, nil
}

// restoreTo copies w back into m, which must be the model (or an identically built one) w
// was taken from.
func (w weights) restoreTo(m *nn.Model) {
	i := 0
	for _, p := range m.Params() {
		copy(p.Value, w[i])
		i++
	}
	for _, p := range m.Buffers() {
		copy(p.Value, w[i])
		i++
	}
}

// accuracy is the accuracy of head h of m on d (NaN when d is empty).
func accuracy(m *nn.Model, d train.Dataset, h int) (float64, error) {
	if d.Len() == 0 {
		return math.NaN(), nil
	}
	if h >= len(d.Targets) || d.Targets[h].Labels == nil {
		return 0, fmt.Errorf("pretrain: validation data has no labels for head %d", h)
	}
	probs, k, err := predictView(m, d, h)
	if err != nil {
		return 0, err
	}
	ok := 0
	n := 0
	for i := range d.Len() {
		r := i
		if d.Index != nil {
			r = d.Index[i]
		}
		y := d.Targets[h].Labels[r]
		if y < 0 {
			continue
		}
		p := probs[i*k : (i+1)*k]
		best := 0
		for c := 1; c < k; c++ {
			if p[c] > p[best] {
				best = c
			}
		}
		n++
		if int32(best) == y {
			ok++
		}
	}
	if n == 0 {
		return math.NaN(), nil
	}
	return float64(ok) / float64(n), nil
}

// sameBase reports whether two datasets view the same base matrix.
func sameBase(a, b train.Dataset) bool {
	if len(a.X) != len(b.X) || a.NumInputs != b.NumInputs || len(a.Cat) != len(b.Cat) {
		return false
	}
	if len(a.X) > 0 {
		return &a.X[0] == &b.X[0]
	}
	for c := range a.Cat {
		if len(a.Cat[c]) == 0 || &a.Cat[c][0] != &b.Cat[c][0] {
			return false
		}
	}
	return len(a.Cat) > 0
}

// withPseudoLabels returns the training set of a self-training round: labelled's rows plus
// the picked rows of unlabeled with their pseudo-labels on head h (other heads' targets
// missing). When both views share a base matrix no input is copied; otherwise the rows are
// gathered into a new base.
func withPseudoLabels(labelled, unlabeled train.Dataset, h int, picked []int, labels []int32, weights []float32) (train.Dataset, error) {
	if h >= len(labelled.Targets) || labelled.Targets[h].Labels == nil {
		return train.Dataset{}, fmt.Errorf("pretrain: self-train: the labelled data has no labels for head %d", h)
	}
	if !sameBase(labelled, unlabeled) {
		labelled = gatherView(labelled)
		unlabeled = gatherView(unlabeled)
		base := concatBase(labelled, unlabeled)
		offset := labelled.Len()
		lab := base
		lab.Index = make([]int, labelled.Len())
		for i := range lab.Index {
			lab.Index[i] = i
		}
		unl := base
		unl.Index = make([]int, unlabeled.Len())
		for i := range unl.Index {
			unl.Index[i] = offset + i
		}
		labelled, unlabeled = lab, unl
	}
	n := baseRows(labelled)
	out := labelled
	out.Targets = make([]train.Target, len(labelled.Targets))
	for i, t := range labelled.Targets {
		nt := t
		if t.Labels != nil {
			nt.Labels = append([]int32(nil), t.Labels...)
		} else {
			nt.Values = append([]float32(nil), t.Values...)
		}
		out.Targets[i] = nt
	}
	out.Weights = make([]float32, n)
	for i := range out.Weights {
		out.Weights[i] = 1
		if labelled.Weights != nil {
			out.Weights[i] = labelled.Weights[i]
		}
	}
	index := make([]int, 0, labelled.Len()+len(picked))
	for i := range labelled.Len() {
		index = append(index, rowOf(labelled, i))
	}
	for j, p := range picked {
		r := rowOf(unlabeled, p)
		index = append(index, r)
		out.Weights[r] = weights[j]
		for i := range out.Targets {
			t := &out.Targets[i]
			switch {
			case i == h:
				t.Labels[r] = labels[j]
			case t.Labels != nil:
				t.Labels[r] = -1
			default:
				k := max(t.Outputs, 1)
				for c := range k {
					t.Values[r*k+c] = float32(math.NaN())
				}
			}
		}
	}
	out.Index = index
	return out, nil
}

func rowOf(d train.Dataset, i int) int {
	if d.Index != nil {
		return d.Index[i]
	}
	return i
}

func baseRows(d train.Dataset) int {
	if d.NumInputs > 0 {
		return len(d.X) / d.NumInputs
	}
	if len(d.Cat) > 0 {
		return len(d.Cat[0])
	}
	return 0
}

// gatherView copies the rows of d's view into a new base (Index nil). Targets of the other
// dataset's shape are kept when present.
func gatherView(d train.Dataset) train.Dataset {
	n, ni := d.Len(), d.NumInputs
	out := train.Dataset{NumInputs: ni, X: make([]float32, n*ni)}
	out.Cat = make([][]int32, len(d.Cat))
	for c := range out.Cat {
		out.Cat[c] = make([]int32, n)
	}
	out.Targets = make([]train.Target, len(d.Targets))
	for i, t := range d.Targets {
		nt := train.Target{Outputs: t.Outputs}
		if t.Labels != nil {
			nt.Labels = make([]int32, n)
		} else if t.Values != nil {
			nt.Values = make([]float32, n*max(t.Outputs, 1))
		}
		out.Targets[i] = nt
	}
	if d.Weights != nil {
		out.Weights = make([]float32, n)
	}
	for i := range n {
		r := rowOf(d, i)
		copy(out.X[i*ni:(i+1)*ni], d.X[r*ni:(r+1)*ni])
		for c, col := range d.Cat {
			out.Cat[c][i] = col[r]
		}
		for j, t := range d.Targets {
			if t.Labels != nil {
				out.Targets[j].Labels[i] = t.Labels[r]
			} else if t.Values != nil {
				k := max(t.Outputs, 1)
				copy(out.Targets[j].Values[i*k:(i+1)*k], t.Values[r*k:(r+1)*k])
			}
		}
		if d.Weights != nil {
			out.Weights[i] = d.Weights[r]
		}
	}
	return out
}

// concatBase stacks two gathered datasets; b's targets (unlabelled: possibly absent) are
// replaced by missing values shaped like a's.
func concatBase(a, b train.Dataset) train.Dataset {
	na, nb := a.Len(), b.Len()
	out := train.Dataset{NumInputs: a.NumInputs, X: append(append([]float32(nil), a.X...), b.X...)}
	for c := range a.Cat {
		out.Cat = append(out.Cat, append(append([]int32(nil), a.Cat[c]...), b.Cat[c]...))
	}
	for _, t := range a.Targets {
		nt := train.Target{Outputs: t.Outputs}
		if t.Labels != nil {
			nt.Labels = append(append([]int32(nil), t.Labels...), make([]int32, nb)...)
			for i := na; i < na+nb; i++ {
				nt.Labels[i] = -1
			}
		} else {
			k := max(t.Outputs, 1)
			nt.Values = append(append([]float32(nil), t.Values...), make([]float32, nb*k)...)
			for i := na * k; i < (na+nb)*k; i++ {
				nt.Values[i] = float32(math.NaN())
			}
		}
		out.Targets = append(out.Targets, nt)
	}
	if a.Weights != nil {
		out.Weights = append(append([]float32(nil), a.Weights...), make([]float32, nb)...)
	}
	return out
}

// gatherer copies row ranges of a dataset (through its Index) into reused batch buffers.
type gatherer struct {
	d   train.Dataset
	x   []float32
	cat [][]int32
}

// newGatherer makes buffers for batches of up to chunk rows of d.
func newGatherer(d train.Dataset, chunk int) *gatherer {
	rows := min(chunk, d.Len())
	g := &gatherer{d: d, x: make([]float32, rows*d.NumInputs), cat: make([][]int32, len(d.Cat))}
	for c := range g.cat {
		g.cat[c] = make([]int32, rows)
	}
	return g
}

// batch returns rows [lo, hi) of the dataset; it is valid until the next call.
func (g *gatherer) batch(lo, hi int) nn.Batch {
	d, ni, rows := g.d, g.d.NumInputs, hi-lo
	b := nn.Batch{Rows: rows, X: g.x[:rows*ni], Cat: make([][]int32, len(d.Cat))}
	for i := lo; i < hi; i++ {
		r := i
		if d.Index != nil {
			r = d.Index[i]
		}
		copy(b.X[(i-lo)*ni:(i-lo+1)*ni], d.X[r*ni:(r+1)*ni])
		for c, col := range d.Cat {
			g.cat[c][i-lo] = col[r]
		}
	}
	for c := range g.cat {
		b.Cat[c] = g.cat[c][:rows]
	}
	return b
}
