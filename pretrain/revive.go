package pretrain

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// ReviveDeadUnits finds the ReLU units of the encoder's dense layers that are zero on every
// row of data (dead: they pass nothing on, and a network fine-tuned from them gets no
// gradient for them either, so they stay dead and the transferred layer is narrower than
// it looks) and re-initialises their incoming weights (He normal, from rng) and bias (0),
// so that fine-tuning starts them as fresh random features. It returns the number of units
// revived per layer.
func ReviveDeadUnits(e *Encoder, data train.Dataset, rng *rand.Rand) (map[string]int, error) {
	m := e.model
	spec := m.Spec()
	alive := map[string][]bool{} // layer name → per unit
	var order []nn.LayerSpec
	for _, l := range spec.Layers {
		if l.Type == nn.LayerDense && l.Activation == "relu" && l.Tie == "" {
			alive[l.Name] = make([]bool, l.Units)
			order = append(order, l)
		}
	}
	if len(alive) == 0 || data.Len() == 0 {
		return map[string]int{}, nil
	}
	n := data.Len()
	const chunk = 2048
	g := newGatherer(data, chunk)
	codeTargets := make([]float32, min(chunk, n)*e.CodeWidth())
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		rows := hi - lo
		b := g.batch(lo, hi)
		// EvalLoss runs the eval-mode forward pass into the buffers LayerTensors reads (the
		// code head's targets are irrelevant: zeros).
		if _, err := m.EvalLoss(b, nn.Targets{Heads: []nn.HeadTargets{{Values: codeTargets[:rows*e.CodeWidth()]}}}); err != nil {
			return nil, fmt.Errorf("pretrain: revive dead units: %w", err)
		}
		for _, lt := range m.LayerTensors(rows) {
			a := alive[lt.Layer]
			if a == nil {
				continue
			}
			for r := range rows {
				row := lt.Output[r*lt.Cols : (r+1)*lt.Cols]
				for j, v := range row {
					if v > 0 {
						a[j] = true
					}
				}
			}
		}
	}
	out := map[string]int{}
	for _, l := range order { // in layer order: the draws from rng are reproducible
		a := alive[l.Name]
		w, bias := m.Param(l.Name+"/W"), m.Param(l.Name+"/b")
		if w == nil || bias == nil {
			return nil, fmt.Errorf("pretrain: revive dead units: layer %s has no W or b", l.Name)
		}
		in, units := w.Shape[0], w.Shape[1]
		std := math.Sqrt(2 / float64(in))
		for j, ok := range a {
			if ok {
				continue
			}
			for k := range in {
				w.Value[k*units+j] = float32(rng.NormFloat64() * std)
			}
			bias.Value[j] = 0
			out[l.Name]++
		}
	}
	return out, nil
}
