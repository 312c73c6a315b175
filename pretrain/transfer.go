package pretrain

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// InitFrom copies the encoder's tensors into dst, layer by layer by name (every layer of
// enc.ParamLayers must exist in dst with tensors of the same shapes). On a shape mismatch the
// error names the tensor and both shapes. It returns the names of the copied tensors.
func InitFrom(dst *nn.Model, enc *Encoder) (loaded []string, err error) {
	if dst == nil || enc == nil {
		return nil, fmt.Errorf("pretrain: init from: nil model or encoder")
	}
	layers := enc.ParamLayers()
	if len(layers) == 0 {
		return nil, fmt.Errorf("pretrain: init from: the encoder has no layers with weights")
	}
	loaded, err = dst.InitFrom(enc.model, layers...)
	if err != nil {
		return loaded, fmt.Errorf("pretrain: init from encoder (layers %v): %w", layers, err)
	}
	return loaded, nil
}

// SupervisedSpec returns a supervised model spec whose inputs (with a convolutional encoder's
// input shape) and first layers are the encoder's (same names and shapes, so InitFrom fills them), followed by extra layers and
// heads. Activity penalties of the encoder layers (the sparse autoencoder's) are dropped.
func SupervisedSpec(enc *Encoder, extra []nn.LayerSpec, heads []nn.HeadSpec) nn.Spec {
	es := enc.Spec()
	layers := append([]nn.LayerSpec(nil), es.Layers...)
	for i := range layers {
		layers[i].ActivityL1, layers[i].ActivityL2 = 0, 0
	}
	layers = append(layers, extra...)
	return nn.Spec{
		NumInputs:  es.NumInputs,
		InputShape: append([]int(nil), es.InputShape...),
		Embeddings: append([]nn.EmbeddingSpec(nil), es.Embeddings...),
		Layers:     layers,
		Heads:      append([]nn.HeadSpec(nil), heads...),
	}
}

// EncoderPattern is the nn.Freeze pattern matching every param of the encoder's layers.
func EncoderPattern(enc *Encoder) string {
	names := enc.ParamLayers()
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = regexp.QuoteMeta(n)
	}
	return strings.Join(q, "|")
}

// FreezeEncoder freezes every param of the encoder's layers in m and returns how many.
func FreezeEncoder(m *nn.Model, enc *Encoder) (int, error) {
	n, err := m.Freeze(EncoderPattern(enc))
	if err != nil {
		return 0, fmt.Errorf("pretrain: freeze encoder: %w", err)
	}
	if n == 0 {
		return 0, fmt.Errorf("pretrain: freeze encoder: the model has none of the layers %v", enc.ParamLayers())
	}
	return n, nil
}

// UnfreezeSchedule returns the gradual-unfreezing schedule of the encoder's layers (input side
// first, as nn.UnfreezeSchedule wants them): one more layer is unfrozen from the top every
// everyEpochs epochs (0 means 1), with learning-rate multiplier lrScale (0 means 1), the
// discriminative rate of ULMFiT.
func UnfreezeSchedule(enc *Encoder, everyEpochs int, lrScale float32) nn.UnfreezeSchedule {
	return nn.UnfreezeSchedule{Layers: enc.ParamLayers(), EveryEpochs: everyEpochs, LRScale: lrScale}
}

// UnfreezeHook returns a train.OnEpochEnd hook that applies s for the next epoch. Apply the
// schedule for epoch 0 before Fit (s.Apply(m, 0)), which freezes every layer of s.
func UnfreezeHook(s nn.UnfreezeSchedule) train.Hook {
	return train.OnEpochEnd("pretrain_unfreeze", 0, func(info *train.EpochInfo) error {
		if _, err := s.Apply(info.Model, info.Epoch+1); err != nil {
			return fmt.Errorf("pretrain: unfreeze schedule at epoch %d: %w", info.Epoch+1, err)
		}
		return nil
	})
}

// FineTuneConfig returns tc with the fine-tuning defaults: cosine annealing of the learning
// rate over tc.Epochs when tc.Schedule.Name is unset (a pretrained trunk is best moved gently
// towards the end of training; the cosine schedule also removes the need to tune a step
// schedule for the small labelled sets fine-tuning usually sees). Other fields are unchanged.
func FineTuneConfig(tc train.Config) train.Config {
	if tc.Schedule.Name == "" {
		tc.Schedule.Name = "cosine"
	}
	return tc
}
