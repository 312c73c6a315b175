package nn

import (
	"fmt"
	"regexp"
	"strings"
)

// InitFrom copies params (and batch-norm buffers) from src into m for every layer of m whose
// name is in layers (all layers present in both models when layers is empty). Every copied
// tensor must have the same shape in both models; a layer named explicitly must exist in src.
// It returns the names of the copied tensors.
func (m *Model) InitFrom(src *Model, layers ...string) ([]string, error) {
	want := map[string]bool{}
	for _, l := range layers {
		want[l] = true
	}
	found := map[string]bool{}
	var copied []string
	for _, p := range m.stateTensors() {
		layer := layerOf(p.Name)
		if len(want) > 0 && !want[layer] {
			continue
		}
		q := src.byName[p.Name]
		if q == nil {
			if len(want) > 0 {
				return copied, fmt.Errorf("nn: init from: source model has no tensor %q (layer %q)", p.Name, layer)
			}
			continue
		}
		if fmt.Sprint(p.Shape) != fmt.Sprint(q.Shape) {
			return copied, fmt.Errorf("nn: init from: %s has shape %v here and %v in the source model", p.Name, p.Shape, q.Shape)
		}
		copy(p.Value, q.Value)
		copied = append(copied, p.Name)
		found[layer] = true
	}
	for _, l := range layers {
		if !found[l] {
			return copied, fmt.Errorf("nn: init from: layer %q has no tensors in this model", l)
		}
	}
	return copied, nil
}

// Freeze marks the params whose names match pattern (anchored regular expression, e.g.
// "enc.*" or "dense_1/.*") as frozen and returns how many matched. A pattern without '/'
// also matches every param of the layers it names ("dense_1" freezes dense_1/W and
// dense_1/b).
func (m *Model) Freeze(pattern string) (int, error) { return m.setFrozen(pattern, true) }

// Unfreeze is the inverse of Freeze.
func (m *Model) Unfreeze(pattern string) (int, error) { return m.setFrozen(pattern, false) }

func (m *Model) setFrozen(pattern string, frozen bool) (int, error) {
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		return 0, fmt.Errorf("nn: pattern %q: %w", pattern, err)
	}
	n := 0
	for _, p := range m.params {
		if re.MatchString(p.Name) || (!strings.Contains(pattern, "/") && re.MatchString(layerOf(p.Name))) {
			p.Frozen = frozen
			n++
		}
	}
	return n, nil
}

// UnfreezeSchedule is gradual unfreezing for fine-tuning (ULMFiT style): Layers lists the
// frozen layers from the bottom (input side) to the top; every EveryEpochs epochs one more
// layer is unfrozen, from the top, and given LRScale.
type UnfreezeSchedule struct {
	Layers      []string
	EveryEpochs int     // default 1
	LRScale     float32 // learning-rate multiplier of unfrozen layers; 0 means 1
}

// Apply sets the frozen state for the given (0-based) epoch: at epoch e the top
// min(len(Layers), e/EveryEpochs) layers are trainable, the rest frozen. Call it at the start
// of every epoch (for example from a train.OnEpochEnd hook for the next epoch). It returns the
// layers that are trainable.
func (u UnfreezeSchedule) Apply(m *Model, epoch int) ([]string, error) {
	every := u.EveryEpochs
	if every <= 0 {
		every = 1
	}
	open := min(len(u.Layers), epoch/every)
	var trainable []string
	for i, l := range u.Layers {
		frozen := i < len(u.Layers)-open
		n, err := m.setFrozen(regexp.QuoteMeta(l), frozen)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("nn: unfreeze schedule: no params in layer %q", l)
		}
		if !frozen {
			trainable = append(trainable, l)
			for _, p := range m.params {
				if layerOf(p.Name) == l {
					p.LRScale = u.LRScale
				}
			}
		}
	}
	return trainable, nil
}
