package pretrain

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// categoricalRows returns three index columns that determine each other: a in 1..8,
// b = a mod 4 + 1 (1..4), c = (a-1)/2 + 1 (1..4). Given a, both others are known; given b
// and c together, a is known.
func categoricalRows(rows int, seed uint64) [][]int32 {
	rng := rand.New(rand.NewPCG(seed, 5))
	cat := [][]int32{make([]int32, rows), make([]int32, rows), make([]int32, rows)}
	for r := range rows {
		a := int32(rng.IntN(8) + 1)
		cat[0][r], cat[1][r], cat[2][r] = a, a%4+1, (a-1)/2+1
	}
	return cat
}

func TestPretrainEmbeddingsMaskedColumns(t *testing.T) {
	cat := categoricalRows(1200, 1)
	embeds := []nn.EmbeddingSpec{{Name: "a", Cardinality: 9, Dim: 4}, {Name: "b", Cardinality: 5, Dim: 3}, {Name: "c", Cardinality: 5, Dim: 3}}
	data := train.Dataset{Cat: cat, Index: seq(0, 1000)}
	val := train.Dataset{Cat: cat, Index: seq(1000, 1200)}
	tc := train.Config{Epochs: 40, BatchSize: 32, Seed: 2, Optimizer: optimLR(0.01), EarlyStopping: train.EarlyStopping{Disabled: true}}
	enc, rep, err := PretrainEmbeddings(context.Background(), EmbeddingConfig{Embeddings: embeds}, data, val, tc)
	mustNoErr(t, err)
	if first, last := rep.ValLoss[0], rep.ValLoss[len(rep.ValLoss)-1]; !(last < 0.5*first) {
		t.Errorf("masked-prediction val loss %g -> %g, want it to halve", first, last)
	}
	// Every column is a function of the others: prediction should be near perfect (chance
	// 1/8 for a, 1/4 for b and c).
	for name, acc := range rep.ValAccuracy {
		if acc < 0.9 {
			t.Errorf("column %s: masked prediction accuracy %.3f, want >= 0.9", name, acc)
		}
	}
	tables := enc.Tables()
	if len(tables) != 3 || len(tables["a"]) != 9*4 || len(tables["b"]) != 5*3 {
		t.Fatalf("tables %d, shapes a %d b %d", len(tables), len(tables["a"]), len(tables["b"]))
	}
	// Transfer into a supervised model with the same embeddings.
	m, err := nn.Build(nn.Spec{Embeddings: embeds, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 8, Activation: "relu"}},
		Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 2}}}, rand.New(rand.NewPCG(1, 1)))
	mustNoErr(t, err)
	loaded, err := InitFrom(m, enc)
	mustNoErr(t, err)
	if strings.Join(loaded, ",") != "a/W,b/W,c/W" {
		t.Errorf("loaded %v, want the three tables", loaded)
	}
	for name, tab := range tables {
		if !bitEqual(m.Param(name+"/W").Value, tab) {
			t.Errorf("table %s not copied", name)
		}
	}
}

func TestPretrainEmbeddingsErrors(t *testing.T) {
	cat := categoricalRows(50, 1)
	for _, tc := range []struct {
		name   string
		embeds []nn.EmbeddingSpec
		cat    [][]int32
		want   string
	}{
		{"one_column", []nn.EmbeddingSpec{{Cardinality: 9, Dim: 2}}, cat[:1], "at least 2"},
		{"cardinality_1", []nn.EmbeddingSpec{{Cardinality: 9, Dim: 2}, {Cardinality: 1, Dim: 2}}, cat[:2], "cardinality 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := PretrainEmbeddings(context.Background(), EmbeddingConfig{Embeddings: tc.embeds}, train.Dataset{Cat: tc.cat}, train.Dataset{}, train.Config{Epochs: 1})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func seq(lo, hi int) []int {
	out := make([]int, hi-lo)
	for i := range out {
		out[i] = lo + i
	}
	return out
}
