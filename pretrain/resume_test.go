package pretrain

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// epochRecorder is a train hook that keeps the wire form of every epoch's checkpoint (the
// last one wins, as in a stage store), counts the epochs, and cancels after epoch stopAt
// (0-based; < 0: never).
type epochRecorder struct {
	last   []byte
	epochs int
	stopAt int
	cancel context.CancelFunc
}

func (r *epochRecorder) hook() train.Hook {
	return train.OnEpochEnd("record", 0, func(e *train.EpochInfo) error {
		r.epochs++
		c, err := e.Checkpoint()
		if err != nil {
			return err
		}
		if r.last, err = c.MarshalBinary(); err != nil {
			return err
		}
		if r.cancel != nil && e.Epoch == r.stopAt {
			r.cancel()
		}
		return nil
	})
}

func (r *epochRecorder) checkpoint(t *testing.T) *train.Checkpoint {
	t.Helper()
	var c train.Checkpoint
	if err := c.UnmarshalBinary(r.last); err != nil {
		t.Fatal(err)
	}
	return &c
}

func sameParams(t *testing.T, what string, a, b *nn.Model) {
	t.Helper()
	pa, pb := append(a.Params(), a.Buffers()...), append(b.Params(), b.Buffers()...)
	if len(pa) != len(pb) {
		t.Fatalf("%s: %d tensors vs %d", what, len(pa), len(pb))
	}
	for i := range pa {
		if !bitEqual(pa[i].Value, pb[i].Value) {
			t.Fatalf("%s: tensor %s differs", what, pa[i].Name)
		}
	}
}

// TestAutoencoderResume interrupts a denoising autoencoder's training after its epoch 2 and
// continues it from the checkpoint that a hook of tc.Hooks took: the encoder and the report
// (losses, best epoch, the measured corruption) are bit-identical to an uninterrupted
// training's, and only the remaining epochs run.
func TestAutoencoderResume(t *testing.T) {
	x, _ := lowRank(400, 12, 3)
	base := train.Dataset{X: x, NumInputs: 12}
	data, val := rowsView(base, 0, 320), rowsView(base, 320, 400)
	cfg := AutoencoderConfig{Encoder: []nn.LayerSpec{{Type: nn.LayerDense, Units: 8, Activation: "relu"}, {Type: nn.LayerDense, Units: 4}}, Type: TypeDenoising}
	const epochs, stopAt = 6, 2
	tc := train.Config{Epochs: epochs, BatchSize: 32, Seed: 9, Optimizer: optimLR(0.01), EarlyStopping: train.EarlyStopping{Patience: 2}}

	want, wantRep, err := TrainAutoencoder(context.Background(), cfg, data, val, tc)
	mustNoErr(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &epochRecorder{cancel: cancel, stopAt: stopAt}
	itc := tc
	itc.Hooks = []train.Hook{rec.hook()}
	if _, _, err := TrainAutoencoder(ctx, cfg, data, val, itc); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted training: %v, want canceled", err)
	}

	count := &epochRecorder{stopAt: -1}
	rtc := tc
	rtc.Resume = rec.checkpoint(t)
	rtc.Hooks = []train.Hook{count.hook()}
	got, gotRep, err := TrainAutoencoder(context.Background(), cfg, data, val, rtc)
	mustNoErr(t, err)
	sameParams(t, "encoder", want.Model(), got.Model())
	wantRep.Seconds, gotRep.Seconds = 0, 0
	if a, b := fmt.Sprintf("%+v", wantRep), fmt.Sprintf("%+v", gotRep); a != b {
		t.Fatalf("reports differ:\nuninterrupted %s\nresumed       %s", a, b)
	}
	if count.epochs != len(wantRep.TrainLoss)-(stopAt+1) {
		t.Errorf("resumed training ran %d epochs; %d of %d remained", count.epochs, len(wantRep.TrainLoss)-(stopAt+1), len(wantRep.TrainLoss))
	}
	if wantRep.MeasuredCorruption == 0 {
		t.Error("no corruption measured: the comparison of the measurement is vacuous")
	}

	// A checkpoint of another autoencoder is refused before anything changes.
	other := cfg
	other.Encoder = []nn.LayerSpec{{Type: nn.LayerDense, Units: 8, Activation: "tanh"}, {Type: nn.LayerDense, Units: 4}}
	if _, _, err := TrainAutoencoder(context.Background(), other, data, val, rtc); !errors.Is(err, train.ErrCheckpoint) {
		t.Errorf("checkpoint of another encoder: %v, want train.ErrCheckpoint", err)
	}
}

// TestEmbeddingsResume: the same for masked-column pretraining of embeddings.
func TestEmbeddingsResume(t *testing.T) {
	cat := categoricalRows(600, 2)
	embeds := []nn.EmbeddingSpec{{Name: "a", Cardinality: 9, Dim: 4}, {Name: "b", Cardinality: 5, Dim: 3}, {Name: "c", Cardinality: 5, Dim: 3}}
	data := train.Dataset{Cat: cat, Index: seq(0, 500)}
	val := train.Dataset{Cat: cat, Index: seq(500, 600)}
	tc := train.Config{Epochs: 5, BatchSize: 32, Seed: 3, Optimizer: optimLR(0.01), EarlyStopping: train.EarlyStopping{Disabled: true}}
	ecfg := EmbeddingConfig{Embeddings: embeds}
	want, wantRep, err := PretrainEmbeddings(context.Background(), ecfg, data, val, tc)
	mustNoErr(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &epochRecorder{cancel: cancel, stopAt: 1}
	itc := tc
	itc.Hooks = []train.Hook{rec.hook()}
	if _, _, err := PretrainEmbeddings(ctx, ecfg, data, val, itc); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted training: %v, want canceled", err)
	}
	rtc := tc
	rtc.Resume = rec.checkpoint(t)
	got, gotRep, err := PretrainEmbeddings(context.Background(), ecfg, data, val, rtc)
	mustNoErr(t, err)
	sameParams(t, "embeddings", want.Model(), got.Model())
	wantRep.Seconds, gotRep.Seconds = 0, 0
	if a, b := fmt.Sprintf("%+v", wantRep), fmt.Sprintf("%+v", gotRep); a != b {
		t.Fatalf("reports differ:\nuninterrupted %s\nresumed       %s", a, b)
	}
}

// selfTrainRecorder keeps what SelfTrainWith hands out, in wire form, and cancels at a chosen
// point: after round stopRound's state (stopEpoch < 0), or after epoch stopEpoch of round
// stopRound's training.
type selfTrainRecorder struct {
	state      []byte
	epoch      []byte
	epochRound int
	rounds     int // RoundEnd calls
	epochs     int // epochs trained (through tc.Hooks)
	stopRound  int
	stopEpoch  int
	cancel     context.CancelFunc
}

func (r *selfTrainRecorder) run() SelfTrainRun {
	return SelfTrainRun{
		RoundEnd: func(s *SelfTrainState) error {
			b, err := s.MarshalBinary()
			if err != nil {
				return err
			}
			r.state, r.rounds = b, r.rounds+1
			if r.cancel != nil && r.stopEpoch < 0 && s.Round == r.stopRound {
				r.cancel()
			}
			return nil
		},
		Checkpoint: func(round int, c *train.Checkpoint) error {
			b, err := c.MarshalBinary()
			if err != nil {
				return err
			}
			r.epoch, r.epochRound = b, round
			return nil
		},
	}
}

// hook counts epochs and cancels mid-round; it runs before SelfTrain's checkpoint hook, so
// the epoch it cancels at is checkpointed.
func (r *selfTrainRecorder) hook() train.Hook {
	return train.OnEpochEnd("count", 0, func(e *train.EpochInfo) error {
		r.epochs++
		if r.cancel != nil && r.stopEpoch >= 0 && r.rounds+1 == r.stopRound && e.Epoch == r.stopEpoch {
			r.cancel()
		}
		return nil
	})
}

// resumeFrom is the SelfTrainRun of a second run, from what r recorded.
func (r *selfTrainRecorder) resumeFrom(t *testing.T) SelfTrainRun {
	t.Helper()
	var run SelfTrainRun
	if r.state != nil {
		run.State = &SelfTrainState{}
		mustNoErr(t, run.State.UnmarshalBinary(r.state))
	}
	if r.epoch != nil {
		run.Epoch = &train.Checkpoint{}
		mustNoErr(t, run.Epoch.UnmarshalBinary(r.epoch))
		run.EpochRound = r.epochRound
	}
	return run
}

func selfTrainText(rep SelfTrainReport) string {
	for i := range rep.Rounds {
		rep.Rounds[i].Seconds = 0
	}
	rep.ResumedRounds, rep.ResumedEpochs = 0, 0
	return fmt.Sprintf("%+v", rep)
}

// jitter is a stateless augmentation for the teacher's views.
func jitter(b *nn.Batch, _ *nn.Targets, rng *rand.Rand) {
	for i := range b.X {
		b.X[i] += float32(0.2 * rng.NormFloat64())
	}
}

// TestSelfTrainResume interrupts SelfTrainWith at a round boundary and in the middle of a
// round's training, under two sets of options that each keep state across rounds, and
// resumes it from what RoundEnd and Checkpoint handed out: the final weights and report are
// bit-identical to an uninterrupted run's, and only the epochs left are trained.
func TestSelfTrainResume(t *testing.T) {
	const rounds = 3
	for _, oc := range []struct {
		name    string
		opts    PseudoLabelOptions
		augment bool
	}{
		{"views_decay_keep_best", PseudoLabelOptions{Threshold: 0.8, Views: 2, EnsembleDecay: 0.5, KeepBest: true}, true},
		{"restart_anneal", PseudoLabelOptions{Threshold: 0.8, Restart: true, Anneal: true, ConfidenceWeight: true}, false},
	} {
		setup := func(t *testing.T) (*nn.Model, train.Dataset, train.Dataset, train.Dataset, train.Config) {
			m, labelled, unlabeled, val, tc := selfTrainSetup(t)
			if oc.augment {
				tc.Augment = jitter
			}
			return m, labelled, unlabeled, val, tc
		}
		want, labelled, unlabeled, val, tc := setup(t)
		hidden := make([]int32, unlabeled.Len())
		wantRep, err := SelfTrain(context.Background(), want, labelled, unlabeled, val, tc, oc.opts, rounds, hidden)
		mustNoErr(t, err)
		epochsPerRound := tc.Epochs
		for _, ic := range []struct {
			name                 string
			stopRound, stopEpoch int
			wantResumedEpochs    int
		}{
			{"after_round_1", 1, -1, 0},
			{"round_2_after_epoch_0", 2, 0, 1},
			{"round_1_after_epoch_1", 1, 1, 2},
		} {
			t.Run(oc.name+"/"+ic.name, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				m, labelled, unlabeled, val, tc := setup(t)
				rec := &selfTrainRecorder{stopRound: ic.stopRound, stopEpoch: ic.stopEpoch, cancel: cancel}
				itc := tc
				itc.Hooks = []train.Hook{rec.hook()}
				if _, err := SelfTrainWith(ctx, m, labelled, unlabeled, val, itc, oc.opts, rounds, hidden, rec.run()); !errors.Is(err, context.Canceled) {
					t.Fatalf("interrupted self-training: %v, want canceled", err)
				}
				run := rec.resumeFrom(t)
				count := &selfTrainRecorder{}
				m2, labelled, unlabeled, val, tc := setup(t)
				rtc := tc
				rtc.Hooks = []train.Hook{count.hook()}
				got, err := SelfTrainWith(context.Background(), m2, labelled, unlabeled, val, rtc, oc.opts, rounds, hidden, run)
				mustNoErr(t, err)
				sameParams(t, "model", want, m2)
				if a, b := selfTrainText(wantRep), selfTrainText(got); a != b {
					t.Fatalf("reports differ:\nuninterrupted %s\nresumed       %s", a, b)
				}
				finished := ic.stopRound
				if ic.stopEpoch >= 0 {
					finished--
				}
				if got.ResumedRounds != finished || got.ResumedEpochs != ic.wantResumedEpochs {
					t.Errorf("resumed %d rounds and %d epochs, want %d and %d", got.ResumedRounds, got.ResumedEpochs, finished, ic.wantResumedEpochs)
				}
				if left := (rounds-finished)*epochsPerRound - ic.wantResumedEpochs; count.epochs != left {
					t.Errorf("resumed self-training ran %d epochs, want the %d left", count.epochs, left)
				}
			})
		}
	}
}

// TestSelfTrainSetsAsideAForeignState: a state taken with other options (or of another
// model) is set aside, with the epoch checkpoint that came with it, and the self-training
// runs from the start to the uninterrupted result.
func TestSelfTrainSetsAsideAForeignState(t *testing.T) {
	const rounds = 2
	opts := PseudoLabelOptions{Threshold: 0.8, KeepBest: true}
	want, labelled, unlabeled, val, tc := selfTrainSetup(t)
	wantRep, err := SelfTrain(context.Background(), want, labelled, unlabeled, val, tc, opts, rounds, nil)
	mustNoErr(t, err)

	// Record a full run with Restart: its state does not fit opts.
	foreign := &selfTrainRecorder{}
	m, labelled, unlabeled, val, tc := selfTrainSetup(t)
	restart := opts
	restart.Restart = true
	_, err = SelfTrainWith(context.Background(), m, labelled, unlabeled, val, tc, restart, 1, nil, foreign.run())
	mustNoErr(t, err)
	run := foreign.resumeFrom(t)
	run.EpochRound = 2 // as if it came with a checkpoint of the next round
	for _, tc2 := range []struct {
		name  string
		spoil func(*SelfTrainRun)
	}{
		{"other_options", func(*SelfTrainRun) {}},
		{"other_spec", func(r *SelfTrainRun) {
			s := *r.State
			s.Start, s.Spec.Layers = nil, []nn.LayerSpec{{Type: nn.LayerDense, Units: 12, Activation: "tanh"}}
			r.State = &s
		}},
	} {
		t.Run(tc2.name, func(t *testing.T) {
			r := run
			tc2.spoil(&r)
			m2, labelled, unlabeled, val, tc := selfTrainSetup(t)
			count := &selfTrainRecorder{}
			tc.Hooks = []train.Hook{count.hook()}
			got, err := SelfTrainWith(context.Background(), m2, labelled, unlabeled, val, tc, opts, rounds, nil, r)
			mustNoErr(t, err)
			sameParams(t, "model", want, m2)
			if a, b := selfTrainText(wantRep), selfTrainText(got); a != b {
				t.Fatalf("reports differ:\nuninterrupted %s\nresumed       %s", a, b)
			}
			if got.ResumedRounds != 0 || got.ResumedEpochs != 0 || count.epochs != rounds*tc.Epochs {
				t.Errorf("resumed %d rounds, %d epochs, trained %d epochs; want 0, 0, %d", got.ResumedRounds, got.ResumedEpochs, count.epochs, rounds*tc.Epochs)
			}
		})
	}
}
