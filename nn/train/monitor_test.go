package train

import (
	"context"
	"math"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

func TestMonitor(t *testing.T) {
	train, val := blobs(1, 256), blobs(2, 64)
	m := buildModel(t, nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 10, Activation: "relu"}}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}})
	// Kill units 0..3: a bias of -100 keeps them at 0 for every input, and their gradient is 0.
	for j := 0; j < 4; j++ {
		m.Param("dense_1/b").Value[j] = -100
	}
	const lr = 0.05
	var samples []MonitorSample
	hooks := Monitor("monitor", 3, 8, func(s MonitorSample) error {
		samples = append(samples, s)
		return nil
	})
	// Reference for the update ratio: with plain SGD, w_before = w_after + lr·g, so
	// update/param = lr·‖g‖/‖w_before‖, computed here from the params after the step.
	want := map[int]map[string]float64{}
	ref := OnStep("reference", 0, func(s *StepInfo) error {
		if (s.Step+1)%3 != 0 {
			return nil
		}
		want[s.Step] = map[string]float64{}
		for _, p := range s.Model.Params() {
			var g, w float64
			for i, v := range p.Value {
				before := float64(v) + lr*float64(p.Grad[i])
				w += before * before
				g += float64(p.Grad[i]) * float64(p.Grad[i])
			}
			want[s.Step][p.Name] = lr * math.Sqrt(g) / math.Sqrt(w)
		}
		return nil
	})
	hooks = append(hooks, ref)
	cfg := Config{Epochs: 2, BatchSize: 32, Seed: 1, Optimizer: optim.Config{Name: "sgd", LR: lr}, EarlyStopping: EarlyStopping{Disabled: true}}
	if _, err := Fit(context.Background(), m, train, val, cfg, hooks...); err != nil {
		t.Fatal(err)
	}
	// 2 epochs × 8 steps = 16 steps; sampled steps 2, 5, 8, 11, 14.
	if len(samples) != 5 || samples[0].Step != 2 || samples[4].Step != 14 {
		t.Fatalf("%d samples (first step %d)", len(samples), samples[0].Step)
	}
	for _, s := range samples {
		l := s.Layers[0]
		if math.Abs(l.DeadFraction-0.4) > 1e-12 {
			t.Errorf("step %d: dead fraction %v, want 0.4 (4 of 10 units)", s.Step, l.DeadFraction)
		}
		total := 0
		for _, c := range l.Histogram.Counts {
			total += c
		}
		if total != 32*10 {
			t.Errorf("histogram counts %d values, want 320", total)
		}
		if l.GradNorm == 0 {
			t.Errorf("step %d: no recorded output gradient", s.Step)
		}
		for _, p := range s.Params {
			w := want[s.Step][p.Param]
			if math.Abs(p.UpdateToParam-w) > 1e-4*w+1e-9 {
				t.Errorf("step %d %s: update ratio %v, want %v", s.Step, p.Param, p.UpdateToParam, w)
			}
		}
	}
}
