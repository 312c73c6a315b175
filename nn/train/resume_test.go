package train

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// TestConfigHooksRun checks that Config.Hooks run with Fit's own hooks, ordered by priority
// and name, a Config hook before a Fit hook of the same priority and name.
func TestConfigHooksRun(t *testing.T) {
	train, val := blobs(1, 128), blobs(2, 64)
	m := buildModel(t, nn.Spec{NumInputs: 6, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
	var order []string
	mk := func(label, name string, prio int) Hook {
		return OnEpochEnd(name, prio, func(e *EpochInfo) error {
			order = append(order, label)
			return nil
		})
	}
	steps := 0
	cfg := Config{Epochs: 2, Seed: 1, Hooks: []Hook{
		mk("cfg-late", "m", 9), mk("cfg-same", "same", 2), mk("cfg-early", "x", -1),
		OnStep("count", 0, func(*StepInfo) error { steps++; return nil }),
	}}
	res, err := Fit(context.Background(), m, train, val, cfg, mk("fit-same", "same", 2), mk("fit-mid", "a", 5), mk("fit-first", "z", -7))
	if err != nil {
		t.Fatal(err)
	}
	epoch := "fit-first,cfg-early,cfg-same,fit-same,fit-mid,cfg-late"
	if got, want := strings.Join(order, ","), epoch+","+epoch; got != want {
		t.Fatalf("hook order %s, want %s", got, want)
	}
	if steps != res.Steps || steps == 0 {
		t.Fatalf("the config's step hook ran %d times for %d steps", steps, res.Steps)
	}
}

// checkpointAt returns a hook that keeps the checkpoint of epoch (0-based) in *dst.
func checkpointAt(epoch int, dst **Checkpoint) Hook {
	return OnEpochEnd("keep_checkpoint", 1000, func(e *EpochInfo) error {
		if e.Epoch != epoch {
			return nil
		}
		c, err := e.Checkpoint()
		if err != nil {
			return err
		}
		// Through the wire form, as a resumed process would read it.
		b, err := c.MarshalBinary()
		if err != nil {
			return err
		}
		var back Checkpoint
		if err := back.UnmarshalBinary(b); err != nil {
			return err
		}
		*dst = &back
		return nil
	})
}

// TestResumeFromTheEpochThatStopped resumes from the checkpoint of the epoch at which early
// stopping ended training: the resumed Fit trains no further epoch and ends as the original.
func TestResumeFromTheEpochThatStopped(t *testing.T) {
	train, val := blobs(1, 60), blobs(2, 300)
	spec := nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 64, Activation: "relu"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}
	cfg := Config{Epochs: 200, BatchSize: 8, Seed: 1, Optimizer: optim.Config{LR: 0.01}, EarlyStopping: EarlyStopping{Patience: 3}}
	m := buildModel(t, spec)
	var last *Checkpoint
	keepLast := OnEpochEnd("keep_last", 1000, func(e *EpochInfo) error {
		var err error
		last, err = e.Checkpoint()
		return err
	})
	full, err := Fit(context.Background(), m, train, val, cfg, keepLast)
	if err != nil {
		t.Fatal(err)
	}
	if !full.StoppedEarly {
		t.Fatalf("training ran all %d epochs: the test needs early stopping", full.Epochs)
	}
	if !last.Stopped || last.Epoch != full.Epochs {
		t.Fatalf("the last checkpoint (epoch %d) says stopped = %v; training stopped after %d epochs", last.Epoch, last.Stopped, full.Epochs)
	}
	resumed := buildModel(t, spec)
	cfg.Resume = last
	epochs := 0
	res, err := Fit(context.Background(), resumed, train, val, cfg, OnEpochEnd("count", 0, func(*EpochInfo) error { epochs++; return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if epochs != 0 || res.Epochs != full.Epochs || !res.StoppedEarly || res.BestEpoch != full.BestEpoch {
		t.Fatalf("resumed: %d more epochs, %d in all, stopped early %v, best %d; want 0, %d, true, %d", epochs, res.Epochs, res.StoppedEarly, res.BestEpoch, full.Epochs, full.BestEpoch)
	}
	sameWeights(t, weightsOf(m), weightsOf(resumed))
}

// TestResumeKeepsRangeTest: a Fit resumed from a checkpoint of an AutoLR run reports the
// original range test and base LR (it does not sweep again).
func TestResumeKeepsRangeTest(t *testing.T) {
	train, val := blobs(1, 256), blobs(2, 64)
	spec := nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 16, Activation: "relu"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}
	cfg := Config{Epochs: 4, Seed: 1, AutoLR: true, RangeTest: optim.RangeTestConfig{Steps: 40}}
	m := buildModel(t, spec)
	var c *Checkpoint
	full, err := Fit(context.Background(), m, train, val, cfg, checkpointAt(1, &c))
	if err != nil {
		t.Fatal(err)
	}
	resumed := buildModel(t, spec)
	cfg.Resume = c
	res, err := Fit(context.Background(), resumed, train, val, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.RangeTest == nil || res.RangeTest.Suggested != full.RangeTest.Suggested || len(res.RangeTest.LRs) != len(full.RangeTest.LRs) || res.BaseLR != full.BaseLR {
		t.Fatalf("resumed range test %+v, base LR %g; original %+v, %g", res.RangeTest, res.BaseLR, full.RangeTest, full.BaseLR)
	}
	sameWeights(t, weightsOf(m), weightsOf(resumed))
}

// countingAugment adds noise and counts the values it changed: state of its own that a
// checkpoint carries through Config.AugmentState.
type countingAugment struct{ changed uint64 }

func (a *countingAugment) augment(b *nn.Batch, _ *nn.Targets, rng *rand.Rand) {
	for i := range b.X {
		if rng.Float64() < 0.5 {
			b.X[i] += 0.1
			a.changed++
		}
	}
}

func (a *countingAugment) MarshalBinary() ([]byte, error) {
	return binary.LittleEndian.AppendUint64(nil, a.changed), nil
}

func (a *countingAugment) UnmarshalBinary(b []byte) error {
	if len(b) != 8 {
		return fmt.Errorf("counting augment: %d bytes", len(b))
	}
	a.changed = binary.LittleEndian.Uint64(b)
	return nil
}

func TestResumeRestoresAugmentState(t *testing.T) {
	train, val := blobs(1, 200), blobs(2, 64)
	var full, resumed countingAugment
	cfg := Config{Epochs: 4, BatchSize: 32, Seed: 2, Augment: full.augment, AugmentState: &full}
	m := buildModel(t, richSpec())
	var c *Checkpoint
	if _, err := Fit(context.Background(), m, train, val, cfg, checkpointAt(1, &c)); err != nil {
		t.Fatal(err)
	}
	cfg.Augment, cfg.AugmentState, cfg.Resume = resumed.augment, &resumed, c
	m2 := buildModel(t, richSpec())
	if _, err := Fit(context.Background(), m2, train, val, cfg); err != nil {
		t.Fatal(err)
	}
	if full.changed == 0 || resumed.changed != full.changed {
		t.Fatalf("augmenter counted %d values resumed, %d uninterrupted", resumed.changed, full.changed)
	}
	sameWeights(t, weightsOf(m), weightsOf(m2))
}

// TestResumeRefusesAForeignCheckpoint: a checkpoint of another spec, optimizer or tensor
// layout, or with a damaged state, is an error wrapping ErrCheckpoint, and the model keeps
// the weights it was given.
func TestResumeRefusesAForeignCheckpoint(t *testing.T) {
	train, val := blobs(1, 128), blobs(2, 64)
	cfg := Config{Epochs: 2, Seed: 1}
	var c *Checkpoint
	if _, err := Fit(context.Background(), buildModel(t, richSpec()), train, val, cfg, checkpointAt(0, &c)); err != nil {
		t.Fatal(err)
	}
	otherAct := richSpec()
	otherAct.Layers[3].Activation = "relu" // same tensors, another model
	wider := richSpec()
	wider.Layers[3].Units = 41
	for _, tc := range []struct {
		name   string
		spec   nn.Spec
		cfg    func(Config) Config
		damage func(*Checkpoint)
	}{
		{"other_activation", otherAct, nil, nil},
		{"other_shape", wider, nil, nil},
		{"other_optimizer", richSpec(), func(c Config) Config { c.Optimizer.Name = "sgd"; return c }, nil},
		{"ema_added", richSpec(), func(c Config) Config { c.EMADecay = 0.9; return c }, nil},
		{"damaged_optimizer_state", richSpec(), nil, func(c *Checkpoint) { c.Optimizer = c.Optimizer[:len(c.Optimizer)/2] }},
		{"damaged_rng", richSpec(), nil, func(c *Checkpoint) { c.ShuffleRNG = []byte("x") }},
		{"tensor_missing", richSpec(), nil, func(c *Checkpoint) { c.BestWeights = c.BestWeights[1:] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ck := *c
			ck.Optimizer = append([]byte(nil), c.Optimizer...)
			if tc.damage != nil {
				tc.damage(&ck)
			}
			rc := cfg
			if tc.cfg != nil {
				rc = tc.cfg(rc)
			}
			rc.Resume = &ck
			m := buildModel(t, tc.spec)
			before := weightsOf(m)
			_, err := Fit(context.Background(), m, train, val, rc)
			if !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("error %v, want ErrCheckpoint", err)
			}
			after := weightsOf(m)
			for i := range before {
				for j := range before[i] {
					if math.Float32bits(before[i][j]) != math.Float32bits(after[i][j]) {
						t.Fatalf("tensor %d changed by a refused resume", i)
					}
				}
			}
		})
	}
}

// TestResumeRestoresTrainability: a hook that unfreezes a layer and changes its learning-rate
// multiplier at the end of epoch 0 (gradual unfreezing) is not run again for the epochs a
// resumed Fit skips, so the checkpoint carries the params' frozen flags and multipliers.
func TestResumeRestoresTrainability(t *testing.T) {
	train, val := blobs(1, 200), blobs(2, 64)
	spec := nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Name: "base", Units: 16, Activation: "relu"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}
	frozen := func(t *testing.T) *nn.Model {
		m := buildModel(t, spec)
		if n, err := m.Freeze("base"); err != nil || n == 0 {
			t.Fatalf("freeze: %d, %v", n, err)
		}
		return m
	}
	unfreeze := OnEpochEnd("unfreeze", 0, func(e *EpochInfo) error {
		if e.Epoch == 0 {
			for _, p := range e.Model.Params() {
				if p.Frozen {
					p.Frozen, p.LRScale = false, 0.5
				}
			}
		}
		return nil
	})
	cfg := Config{Epochs: 4, BatchSize: 32, Seed: 3, EarlyStopping: EarlyStopping{Disabled: true}}
	m := frozen(t)
	var c *Checkpoint
	if _, err := Fit(context.Background(), m, train, val, cfg, unfreeze, checkpointAt(1, &c)); err != nil {
		t.Fatal(err)
	}
	resumed := frozen(t)
	cfg.Resume = c
	if _, err := Fit(context.Background(), resumed, train, val, cfg, unfreeze); err != nil {
		t.Fatal(err)
	}
	sameWeights(t, weightsOf(m), weightsOf(resumed))
	for _, p := range resumed.Params() {
		if p.Frozen {
			t.Fatalf("%s still frozen after the resume", p.Name)
		}
	}
}

// TestResumeIntoAModelReadBack: a checkpoint of a model resumes into the same model saved
// and read back (nn.Load, whose spec carries the file's format version), as a stage that
// starts from a bundle of the stage store does.
func TestResumeIntoAModelReadBack(t *testing.T) {
	train, val := blobs(1, 128), blobs(2, 64)
	start := buildModel(t, richSpec())
	dir := t.TempDir()
	if err := start.Save(dir); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Epochs: 3, Seed: 1}
	var c *Checkpoint
	if _, err := Fit(context.Background(), start, train, val, cfg, checkpointAt(0, &c)); err != nil {
		t.Fatal(err)
	}
	loaded, err := nn.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Spec().FormatVersion == c.Spec.FormatVersion {
		t.Fatalf("format versions %d and %d: the test needs them to differ", loaded.Spec().FormatVersion, c.Spec.FormatVersion)
	}
	cfg.Resume = c
	if _, err := Fit(context.Background(), loaded, train, val, cfg); err != nil {
		t.Fatalf("resume into the model read back: %v", err)
	}
	sameWeights(t, weightsOf(start), weightsOf(loaded))
	wider := richSpec()
	wider.Layers[1].Units++
	if !SameSpec(buildModel(t, richSpec()).Spec(), start.Spec()) || SameSpec(buildModel(t, wider).Spec(), start.Spec()) {
		t.Error("SameSpec does not tell the same spec from another")
	}
}
