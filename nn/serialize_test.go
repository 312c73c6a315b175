package nn

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	spec := Spec{NumInputs: 5, Embeddings: []EmbeddingSpec{{Cardinality: 4, Dim: 2}},
		Layers: []LayerSpec{{Type: LayerDense, Units: 8, Activation: "relu", Dropout: 0.1}, {Type: LayerBatchNorm}, {Type: LayerResidual, Units: 6, Norm: LayerLayerNorm}},
		Heads:  []HeadSpec{{Name: "a", Kind: HeadSoftmax, Classes: 3, BatchNorm: true}, {Name: "b", Kind: HeadRegression, Outputs: 2}}}
	rng := rand.New(rand.NewPCG(1, 2))
	m, err := Build(spec, rng)
	if err != nil {
		t.Fatal(err)
	}
	// Train a step so batch-norm running statistics are not at their initial values.
	b := randomBatch(rng, m.Spec(), 16)
	if _, err := m.TrainStep(b, randomTargets(rng, m.Spec(), 16, 0)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(m.Params(), m.Buffers()...) {
		q := got.Param(p.Name)
		if q == nil {
			t.Fatalf("loaded model lacks %s", p.Name)
		}
		for i := range p.Value {
			if math.Float32bits(p.Value[i]) != math.Float32bits(q.Value[i]) {
				t.Fatalf("%s[%d] = %v after load, want %v", p.Name, i, q.Value[i], p.Value[i])
			}
		}
	}
	o1, _ := m.Predict(b)
	o2, _ := got.Predict(b)
	for h := range o1.Heads {
		for i := range o1.Heads[h] {
			if o1.Heads[h][i] != o2.Heads[h][i] {
				t.Fatalf("head %d output %d differs after load", h, i)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("model dir holds %d entries, want model.json and weights.bin (no temp files)", len(entries))
	}
}

func TestLoadErrors(t *testing.T) {
	spec := Spec{NumInputs: 3, Layers: []LayerSpec{{Type: LayerDense, Units: 4}}, Heads: softmaxHead(2)}
	m, err := Build(spec, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(dir string)
		want   string
	}{
		{"version", func(dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, SpecFile))
			_ = os.WriteFile(filepath.Join(dir, SpecFile), []byte(strings.Replace(string(b), `"format_version": 1`, `"format_version": 99`, 1)), 0o644)
		}, "format_version 99"},
		{"shape", func(dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, SpecFile))
			_ = os.WriteFile(filepath.Join(dir, SpecFile), []byte(strings.Replace(string(b), `"units": 4`, `"units": 5`, 1)), 0o644)
		}, "shape"},
		{"truncated", func(dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, WeightsFile))
			_ = os.WriteFile(filepath.Join(dir, WeightsFile), b[:len(b)-4], 0o644)
		}, "truncated"},
		{"magic", func(dir string) { _ = os.WriteFile(filepath.Join(dir, WeightsFile), []byte("nonsense-file"), 0o644) }, "magic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := m.Save(dir); err != nil {
				t.Fatal(err)
			}
			tc.mutate(dir)
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
