package pretrain

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// EmbeddingConfig configures PretrainEmbeddings.
//
// Method (masked-column prediction, the categorical analogue of BERT's masked tokens and of
// TabTransformer's / VIME's pretext tasks): every training row hides one of its categorical
// columns, chosen uniformly at random afresh at every step, by setting its index to 0 (the
// unknown bucket), and a softmax head per column (mask_<embedding name>) predicts the hidden
// value from the other columns (and the numeric block, if any) through a small trunk. Only the
// hidden column's head has a target in that row, so each row trains exactly one head. Rows
// whose hidden value is already 0 (unknown) carry no target. Validation hides one column per
// row with a fixed seeded draw. The tables learn to place categories that predict each
// other's co-occurring values close together; transfer copies them by name.
type EmbeddingConfig struct {
	// Embeddings are the categorical columns, in the order of the dataset's Cat (each needs
	// Cardinality >= 2; names default to embedding_<i>). At least two are required: a column
	// is predicted from the others.
	Embeddings []nn.EmbeddingSpec
	// Trunk are the layers between the concatenated embeddings and the heads; default one
	// dense layer of 64 relu units named mask_trunk_1. The trunk is not part of the returned
	// Encoder.
	Trunk []nn.LayerSpec
}

// EmbeddingReport describes an embedding pretraining run.
type EmbeddingReport struct {
	// TrainLoss and ValLoss are the per-epoch masked-prediction losses (sum over heads of
	// each head's mean over the rows where it has a target).
	TrainLoss, ValLoss []float64
	// ValAccuracy is, per column, the accuracy of predicting the hidden value on the
	// validation rows that hide it (best epoch's weights).
	ValAccuracy map[string]float64
	BestEpoch   int
	Seconds     float64
}

// PretrainEmbeddings pretrains the embedding tables of data's categorical columns by
// masked-column prediction (see EmbeddingConfig) and returns an Encoder holding the tables
// (no trunk layers: its code is the numeric block followed by the embeddings). data's targets
// are ignored; val, when not empty, gives the early-stopping set. tc.Augment must be nil (the
// masking is installed as the augmentation). As with TrainAutoencoder, tc.Hooks can take
// epoch checkpoints and tc.Resume continues from one bit-identically.
func PretrainEmbeddings(ctx context.Context, cfg EmbeddingConfig, data, val train.Dataset, tc train.Config) (*Encoder, EmbeddingReport, error) {
	var rep EmbeddingReport
	if tc.Augment != nil {
		return nil, rep, fmt.Errorf("pretrain: embeddings: train.Config.Augment is set; the masking is installed as the augmentation")
	}
	if len(cfg.Embeddings) < 2 || len(cfg.Embeddings) != len(data.Cat) {
		return nil, rep, fmt.Errorf("pretrain: embeddings: %d embedding specs and %d categorical columns; want the same number, at least 2", len(cfg.Embeddings), len(data.Cat))
	}
	embeds := append([]nn.EmbeddingSpec(nil), cfg.Embeddings...)
	var heads []nn.HeadSpec
	for i := range embeds {
		e := &embeds[i]
		if e.Name == "" {
			e.Name = fmt.Sprintf("embedding_%d", i+1)
		}
		if e.Cardinality < 2 {
			return nil, rep, fmt.Errorf("pretrain: embeddings: %s has cardinality %d, want >= 2", e.Name, e.Cardinality)
		}
		heads = append(heads, nn.HeadSpec{Name: "mask_" + e.Name, Kind: nn.HeadSoftmax, Classes: e.Cardinality})
	}
	trunk := cfg.Trunk
	if len(trunk) == 0 {
		trunk = []nn.LayerSpec{{Type: nn.LayerDense, Name: "mask_trunk_1", Units: 64, Activation: "relu"}}
	}
	spec := nn.Spec{NumInputs: data.NumInputs, Embeddings: embeds, Layers: trunk, Heads: heads}
	m, err := nn.Build(spec, rand.New(rand.NewPCG(tc.Seed, 0xe3b)))
	if err != nil {
		return nil, rep, fmt.Errorf("pretrain: build masked-column model: %w", err)
	}
	trainSet := data
	trainSet.Targets = catTargets(data.Cat, embeds)
	trainSet.Weights = nil
	valSet := train.Dataset{Index: []int{}}
	if val.Len() > 0 {
		if len(val.Cat) != len(data.Cat) || val.NumInputs != data.NumInputs {
			return nil, rep, fmt.Errorf("pretrain: embeddings: validation data does not have the training data's columns")
		}
		valSet = maskedValidation(val, embeds, rand.New(rand.NewPCG(tc.Seed, 0x7a1)))
	}
	ncat := len(embeds)
	tc.Augment = func(b *nn.Batch, t *nn.Targets, rng *rand.Rand) {
		for r := range b.Rows {
			hide := rng.IntN(ncat)
			b.Cat[hide][r] = 0
			for h := range ncat {
				if h != hide {
					t.Heads[h].Labels[r] = -1
				}
			}
		}
	}
	start := time.Now()
	res, err := train.Fit(ctx, m, trainSet, valSet, tc)
	rep.Seconds = time.Since(start).Seconds()
	rep.TrainLoss, rep.ValLoss, rep.BestEpoch = res.History.Series("loss"), res.History.Series("val_loss"), res.BestEpoch
	if err != nil {
		return nil, rep, fmt.Errorf("pretrain: masked-column training: %w", err)
	}
	if valSet.Len() > 0 {
		rep.ValAccuracy = map[string]float64{}
		for h, e := range embeds {
			if acc, err := accuracy(m, valSet, h); err == nil {
				rep.ValAccuracy[e.Name] = acc
			}
		}
	}
	enc, err := newEncoder(m, data.NumInputs, nil, embeds, nil, data.NumInputs+sumDims(embeds))
	if err != nil {
		return nil, rep, err
	}
	return enc, rep, nil
}

func sumDims(es []nn.EmbeddingSpec) int {
	s := 0
	for _, e := range es {
		s += e.Dim
	}
	return s
}

// catTargets turns each categorical column into the labels of its head (index 0, unknown,
// and out-of-range indices become missing).
func catTargets(cat [][]int32, embeds []nn.EmbeddingSpec) []train.Target {
	out := make([]train.Target, len(cat))
	for c, col := range cat {
		labels := make([]int32, len(col))
		for i, v := range col {
			labels[i] = v
			if v <= 0 || int(v) >= embeds[c].Cardinality {
				labels[i] = -1
			}
		}
		out[c] = train.Target{Labels: labels}
	}
	return out
}

// maskedValidation gathers val into a new base where each row hides one column (seeded).
func maskedValidation(val train.Dataset, embeds []nn.EmbeddingSpec, rng *rand.Rand) train.Dataset {
	g := gatherView(train.Dataset{X: val.X, NumInputs: val.NumInputs, Cat: val.Cat, Index: val.Index})
	g.Targets = catTargets(g.Cat, embeds)
	n := g.Len()
	for r := range n {
		hide := rng.IntN(len(g.Cat))
		g.Cat[hide][r] = 0
		for h := range g.Targets {
			if h != hide {
				g.Targets[h].Labels[r] = -1
			}
		}
	}
	return g
}
