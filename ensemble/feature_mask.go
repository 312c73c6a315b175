package ensemble

import (
	"fmt"
	"math"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
	"github.com/pipe-ml/pipe/nn/train"
)

// inputMask zeroes the rows of the weight tensors that read the unused numeric input columns,
// so that a member ignores them (see Config.FeatureFraction).
type inputMask struct {
	weights []*optim.Param // [in, out] tensors whose first NumInputs rows read the numeric inputs
	unused  []int          // numeric input columns to ignore
}

// newInputMask finds the tensors that read the model's inputs: those of the first layer that
// mixes columns (dense, or residual with a projection skip), looking through layers that act
// on each column separately (dropout, gaussian_noise, activation, batch_norm); with no mixing
// layer, the heads' weights.
func newInputMask(m *nn.Model, used []int) (*inputMask, error) {
	spec := m.Spec()
	mask := &inputMask{}
	in := make([]bool, spec.NumInputs)
	for _, j := range used {
		in[j] = true
	}
	for j, ok := range in {
		if !ok {
			mask.unused = append(mask.unused, j)
		}
	}
	var names []string
layers:
	for _, l := range spec.Layers {
		switch l.Type {
		case nn.LayerDropout, nn.LayerGaussianNoise, nn.LayerActivation, nn.LayerBatchNorm:
			continue
		case nn.LayerDense:
			if l.Tie != "" {
				return nil, fmt.Errorf("ensemble: feature_fraction: the first dense layer %q is tied to another layer; its input rows cannot be masked", l.Name)
			}
			names = []string{l.Name + "/W"}
		case nn.LayerResidual:
			if l.Norm == nn.LayerLayerNorm {
				return nil, fmt.Errorf("ensemble: feature_fraction: residual layer %q normalises its input with layer_norm, which mixes every column; start the model with a dense layer", l.Name)
			}
			names = []string{l.Name + "/dense_a/W", l.Name + "/proj/W"}
		default:
			return nil, fmt.Errorf("ensemble: feature_fraction: the first layer %q (%s) mixes the input columns before any dense layer; start the model with a dense layer", l.Name, l.Type)
		}
		break layers
	}
	if names == nil {
		for _, h := range spec.Heads {
			names = append(names, "head_"+h.Name+"/W")
		}
	}
	for _, name := range names {
		p := m.Param(name)
		if p == nil {
			return nil, fmt.Errorf("ensemble: feature_fraction: layer %q has no projection of its input (identity skip); start the model with a dense layer", name[:len(name)-len("/proj/W")])
		}
		if len(p.Shape) != 2 || p.Shape[0] < spec.NumInputs {
			return nil, fmt.Errorf("ensemble: feature_fraction: %s has shape %v, want [inputs >= %d, out]", name, p.Shape, spec.NumInputs)
		}
		mask.weights = append(mask.weights, p)
	}
	return mask, nil
}

// apply zeroes the masked rows of every input tensor.
func (k *inputMask) apply() {
	for _, p := range k.weights {
		out := p.Shape[1]
		for _, j := range k.unused {
			clear(p.Value[j*out : (j+1)*out])
		}
	}
}

// hook re-applies the mask after every optimizer step, before any other step hook.
func (k *inputMask) hook() train.Hook {
	return train.OnStep("ensemble_feature_mask", math.MinInt, func(*train.StepInfo) error {
		k.apply()
		return nil
	})
}
