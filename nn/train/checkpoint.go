package train

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"os"

	"github.com/pipe-ml/pipe/internal/atomicfile"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// checkpointVersion is the encoding version of Checkpoint.MarshalBinary.
const checkpointVersion = 1

// Tensor is a named float32 tensor of a checkpoint.
type Tensor struct {
	Name  string
	Value []float32
}

// Checkpoint is the complete state of a training run at the end of an epoch: model weights and
// buffers, optimizer, schedule and EMA state, the random streams, progress counters, early
// stopping state and history. Save it with MarshalBinary; resume with Config.Resume.
type Checkpoint struct {
	Version int
	Spec    nn.Spec
	// Weights are the model's params and buffers (live values, not EMA).
	Weights []Tensor
	// Optimizer, Schedule and EMA are the marshalled states (EMA nil when off).
	OptimizerName string
	Optimizer     []byte
	Schedule      []byte
	EMA           []byte
	// ShuffleRNG and NoiseRNG are the marshalled PCG states.
	ShuffleRNG []byte
	NoiseRNG   []byte
	// AugmentRNG is the augmentation stream's state (Config.Augment).
	AugmentRNG []byte
	// Epoch is the number of completed epochs; Step the number of optimizer steps taken.
	Epoch  int
	Step   int
	BaseLR float64
	// Early stopping.
	BestMetric float64
	// BestTie is the tie-break metric at the best epoch (nil in checkpoints written before
	// EarlyStopping.TieBreak existed).
	BestTie     *float64
	BestEpoch   int
	BadEpochs   int
	BestWeights []Tensor
	History     History
	// Stopped reports that training ended at this epoch (early stopping): Fit resumed from
	// it trains no further epoch.
	Stopped bool
	// RangeTest is the AutoLR sweep of the run (nil without AutoLR), returned again in the
	// Result of a resumed Fit.
	RangeTest *optim.RangeTestResult
	// AugmentState is Config.AugmentState's marshalled state (nil when not set).
	AugmentState []byte
	// Frozen and LRScales are, per param (in the model's order), whether it is frozen and
	// its learning-rate multiplier at the end of the epoch: a resumed Fit restores them, so a
	// schedule that changes them between epochs (gradual unfreezing) goes on from where it
	// stood. nil in checkpoints written before they existed: the model's own are kept.
	Frozen   []bool
	LRScales []float32
	// Semi is the semi-supervised state (Config.Semi: its random stream and the Mean
	// Teacher's weights); nil when training is supervised.
	Semi []byte
}

// ErrCheckpoint is wrapped by the error of a Fit whose Config.Resume does not fit the model
// or the config. Fit returns it before changing the model.
var ErrCheckpoint = errors.New("train: the checkpoint does not fit this model and config")

// MarshalBinary encodes the checkpoint (gob; floats bit-exact).
func (c *Checkpoint) MarshalBinary() ([]byte, error) {
	type plain Checkpoint // without the methods: gob would call MarshalBinary again
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode((*plain)(c)); err != nil {
		return nil, fmt.Errorf("train: encode checkpoint: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary decodes a checkpoint written by MarshalBinary.
func (c *Checkpoint) UnmarshalBinary(b []byte) error {
	type plain Checkpoint
	var tmp plain
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&tmp); err != nil {
		return fmt.Errorf("train: decode checkpoint: %w", err)
	}
	if tmp.Version != checkpointVersion {
		return fmt.Errorf("train: checkpoint version %d, this build reads version %d", tmp.Version, checkpointVersion)
	}
	*c = Checkpoint(tmp)
	return nil
}

// snapshot copies the model's params and buffers.
func snapshot(m *nn.Model) []Tensor {
	var out []Tensor
	all := append(append([]*optim.Param(nil), m.Params()...), m.Buffers()...)
	for _, p := range all {
		out = append(out, Tensor{Name: p.Name, Value: append([]float32(nil), p.Value...)})
	}
	return out
}

// snapshotInto copies the model's params and buffers into dst (same layout as snapshot),
// without allocating.
func snapshotInto(dst []Tensor, m *nn.Model) {
	i := 0
	for _, p := range m.Params() {
		copy(dst[i].Value, p.Value)
		i++
	}
	for _, p := range m.Buffers() {
		copy(dst[i].Value, p.Value)
		i++
	}
}

// restore copies tensors into the model by name, checking sizes first: on error the model is
// unchanged.
func restore(m *nn.Model, ts []Tensor) error {
	for _, t := range ts {
		p := m.Param(t.Name)
		if p == nil {
			return fmt.Errorf("train: checkpoint tensor %q is not in the model", t.Name)
		}
		if len(p.Value) != len(t.Value) {
			return fmt.Errorf("train: checkpoint tensor %q has %d values, the model's has %d", t.Name, len(t.Value), len(p.Value))
		}
	}
	for _, t := range ts {
		copy(m.Param(t.Name).Value, t.Value)
	}
	return nil
}

// RestoreWeights copies named tensors (a Checkpoint's Weights, or a snapshot of the same
// layout) into m's params and buffers. Every tensor is checked against the model (name and
// size) before anything is copied, so on error m is unchanged.
func RestoreWeights(m *nn.Model, ts []Tensor) error { return restore(m, ts) }

// Snapshot copies m's params and buffers as named tensors, in the model's order (the layout
// of a Checkpoint's Weights).
func Snapshot(m *nn.Model) []Tensor { return snapshot(m) }

// sameLayout checks that ts has the layout of snapshot(m): the same names and sizes in the
// same order.
func sameLayout(m *nn.Model, ts []Tensor) error {
	all := append(append([]*optim.Param(nil), m.Params()...), m.Buffers()...)
	if len(ts) != len(all) {
		return fmt.Errorf("%d tensors, the model has %d", len(ts), len(all))
	}
	for i, p := range all {
		if ts[i].Name != p.Name || len(ts[i].Value) != len(p.Value) {
			return fmt.Errorf("tensor %d is %q (%d values), the model's is %q (%d values)", i, ts[i].Name, len(ts[i].Value), p.Name, len(p.Value))
		}
	}
	return nil
}

// SameSpec reports whether a and b describe the same model, as Fit's resume checks a
// checkpoint's spec: empty and nil lists are the same, and the FormatVersion that nn's Save
// writes is left out (a model read back from disk is the model that was saved), so a spec that
// went through a checkpoint's encoding or a model file compares equal to the original.
func SameSpec(a, b nn.Spec) bool {
	a.FormatVersion, b.FormatVersion = 0, 0
	x, errA := specBytes(a)
	y, errB := specBytes(b)
	return errA == nil && errB == nil && bytes.Equal(x, y)
}

// specBytes is a canonical encoding of a spec for comparison (gob leaves out empty slices,
// so a spec that went through a checkpoint compares equal to the original).
func specBytes(s nn.Spec) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(s); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Save writes the checkpoint to path atomically (temporary file in the same directory, fsync,
// rename).
func (c *Checkpoint) Save(path string) error {
	b, err := c.MarshalBinary()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, b); err != nil {
		return fmt.Errorf("train: save checkpoint: %w", err)
	}
	return nil
}

// LoadCheckpoint reads a checkpoint written by Save.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("train: load checkpoint: %w", err)
	}
	var c Checkpoint
	if err := c.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("train: load checkpoint %s: %w", path, err)
	}
	return &c, nil
}
