package nn

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func TestSummaryParamCounts(t *testing.T) {
	// 784 inputs + an embedding (10×4), dense 256 + inline dropout, batch norm, residual 128
	// with projection and layer norm, two heads.
	spec := Spec{NumInputs: 784, Embeddings: []EmbeddingSpec{{Name: "shop", Cardinality: 10, Dim: 4}}, Layers: []LayerSpec{
		{Type: LayerDense, Units: 256, Activation: "relu", Dropout: 0.2},
		{Type: LayerBatchNorm},
		{Type: LayerResidual, Units: 128, Norm: LayerLayerNorm},
	}, Heads: []HeadSpec{{Name: "digit", Kind: HeadSoftmax, Classes: 10}, {Name: "parity", Kind: HeadBinary}}}
	m := mustBuild(t, spec)
	in := 784 + 4
	want := map[string]int{
		"shop":            10 * 4,
		"dense_1":         in*256 + 256,
		"dense_1_dropout": 0,
		"batch_norm_1":    2 * 256,
		// layer norm (2·256) + dense_a (256·128+128) + dense_b (128·128+128) + proj (256·128)
		"residual_1":  2*256 + 256*128 + 128 + 128*128 + 128 + 256*128,
		"head_digit":  128*10 + 10,
		"head_parity": 128 + 1,
	}
	s := m.Summary()
	total := 0
	for _, v := range want {
		total += v
	}
	if s.Total != total {
		t.Errorf("total %d, want %d", s.Total, total)
	}
	var counted int
	for _, p := range m.Params() {
		counted += p.Size()
	}
	if counted != total {
		t.Errorf("params hold %d scalars, formula says %d", counted, total)
	}
	for _, r := range s.Rows {
		w, ok := want[r.Layer]
		if !ok {
			t.Errorf("unexpected row %q", r.Layer)
			continue
		}
		if r.Params != w {
			t.Errorf("%s: %d params, want %d", r.Layer, r.Params, w)
		}
		if got := float64(w) / float64(total); r.Share != got {
			t.Errorf("%s: share %v, want %v", r.Layer, r.Share, got)
		}
	}
	if len(s.Warnings) != 0 {
		t.Errorf("warnings %q for a model of %d parameters, want none", s.Warnings, total)
	}
	text := s.String()
	for _, line := range []string{"residual_1", "head_parity", "total trainable parameters"} {
		if !strings.Contains(text, line) {
			t.Errorf("summary text lacks %q:\n%s", line, text)
		}
	}
}

// TestSummaryWarnsOnlyAboutALargeLopsidedLayer: a layer is flagged when it holds over 90% of
// the parameters and over a million of them, embeddings included; a small model is never
// flagged, however lopsided. The warning is one line, in String and not in Table.
func TestSummaryWarnsOnlyAboutALargeLopsidedLayer(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		warn string // the layer the warning names; "" for none
	}{
		// dense_1 holds ~99% of ~200k parameters: small, not flagged.
		{"small_lopsided_dense", Spec{NumInputs: 784, Layers: []LayerSpec{{Type: LayerDense, Units: 256}}, Heads: softmaxHead(2)}, ""},
		// 60,000 categories × 50 = 3M parameters in the embedding, ~100% of the model.
		{"large_embedding", Spec{NumInputs: 2, Embeddings: []EmbeddingSpec{{Name: "user", Cardinality: 60000, Dim: 50}},
			Layers: []LayerSpec{{Type: LayerDense, Units: 8}}, Heads: softmaxHead(2)}, "user"},
		// dense_2 holds 1.1M of ~1.12M parameters.
		{"large_dense", Spec{NumInputs: 10, Layers: []LayerSpec{{Type: LayerDense, Units: 1100}, {Type: LayerDense, Units: 1000}}, Heads: softmaxHead(2)}, "dense_2"},
		// dense_2 holds 1.1M parameters, but under 90% of them: the model is balanced enough.
		{"large_but_balanced", Spec{NumInputs: 200, Layers: []LayerSpec{{Type: LayerDense, Units: 1100}, {Type: LayerDense, Units: 1000}}, Heads: softmaxHead(2)}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustBuild(t, tc.spec).Summary()
			var flagged []string
			for _, r := range s.Rows {
				if r.Share > 0.9 && r.Params > 1_000_000 {
					flagged = append(flagged, r.Layer)
				}
			}
			if tc.warn == "" {
				if len(s.Warnings) != 0 || len(flagged) != 0 {
					t.Fatalf("warnings %q (rows over the bar: %v), want none", s.Warnings, flagged)
				}
				return
			}
			if len(flagged) != 1 || flagged[0] != tc.warn {
				t.Fatalf("the case is wrong: rows over the bar %v, want [%s]", flagged, tc.warn)
			}
			if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], " "+tc.warn+" holds ") || !strings.Contains(s.Warnings[0], strconv.Itoa(s.Total)) {
				t.Fatalf("warnings %q, want one naming %s and the total %d", s.Warnings, tc.warn, s.Total)
			}
			if strings.Count(s.String(), s.Warnings[0]) != 1 || strings.Contains(s.Table(), s.Warnings[0]) {
				t.Errorf("the warning should be in String once and not in Table:\n%s", s.String())
			}
		})
	}
}

func TestInferTask(t *testing.T) {
	many := func(n, distinct int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = strconv.Itoa(i % distinct)
		}
		return out
	}
	cases := []struct {
		name     string
		values   []string
		override string
		kind     string
		classes  int
	}{
		{"strings", []string{"cat", "dog", "", "bird", "cat"}, "", HeadSoftmax, 3},
		{"bools_binary", []string{"true", "false", "true"}, "", HeadBinary, 2},
		{"ints_few_binary", many(1000, 2), "", HeadBinary, 2},
		{"ints_ten_classes", many(1000, 10), "", HeadSoftmax, 10},
		{"ints_too_many_distinct", many(1000, 21), "", HeadRegression, 0},
		{"ints_too_few_rows", many(100, 10), "", HeadRegression, 0}, // 10 > 5% of 100
		{"fractions", []string{"0.5", "1.25", "3"}, "", HeadRegression, 0},
		{"override_regression", []string{"a", "b"}, HeadRegression, HeadRegression, 0},
		{"override_softmax", many(100, 10), HeadSoftmax, HeadSoftmax, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := InferTask(tc.values, tc.override)
			if got.Kind != tc.kind || len(got.Classes) != tc.classes {
				t.Fatalf("got %s with %d classes (%s), want %s with %d", got.Kind, len(got.Classes), got.Reason, tc.kind, tc.classes)
			}
		})
	}
	if c := InferTask([]string{"10", "9", "10", "2"}, HeadSoftmax).Classes; strings.Join(c, ",") != "2,9,10" {
		t.Errorf("numeric classes sorted as %v, want 2,9,10", c)
	}
}

func TestTransfer(t *testing.T) {
	src := mustBuild(t, Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Name: "enc", Units: 3}, {Type: LayerDense, Name: "mid", Units: 5}}, Heads: softmaxHead(2)})
	dst, err := Build(Spec{NumInputs: 4, Layers: []LayerSpec{{Type: LayerDense, Name: "enc", Units: 3}, {Type: LayerDense, Name: "mid", Units: 6}}, Heads: softmaxHead(3)}, rand.New(rand.NewPCG(9, 9)))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("copy_named_layer", func(t *testing.T) {
		names, err := dst.InitFrom(src, "enc")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(names, ",") != "enc/W,enc/b" {
			t.Fatalf("copied %v", names)
		}
		for i, v := range src.Param("enc/W").Value {
			if dst.Param("enc/W").Value[i] != v {
				t.Fatal("enc/W not copied")
			}
		}
	})
	t.Run("shape_mismatch", func(t *testing.T) {
		_, err := dst.InitFrom(src, "mid")
		if err == nil || !strings.Contains(err.Error(), "mid/W has shape [3 6] here and [3 5]") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("missing_layer", func(t *testing.T) {
		if _, err := dst.InitFrom(src, "nope"); err == nil {
			t.Fatal("no error for an unknown layer")
		}
	})
	t.Run("freeze_pattern", func(t *testing.T) {
		n, err := dst.Freeze("enc.*")
		if err != nil || n != 2 {
			t.Fatalf("froze %d (%v), want 2", n, err)
		}
		if !dst.Param("enc/b").Frozen || dst.Param("mid/W").Frozen {
			t.Fatal("wrong params frozen")
		}
		if n, _ := dst.Unfreeze("enc"); n != 2 || dst.Param("enc/W").Frozen {
			t.Fatal("unfreeze by layer name failed")
		}
	})
	t.Run("unfreeze_schedule", func(t *testing.T) {
		u := UnfreezeSchedule{Layers: []string{"enc", "mid", "head_out"}, EveryEpochs: 2, LRScale: 0.1}
		for _, tc := range []struct {
			epoch int
			open  string
		}{{0, ""}, {1, ""}, {2, "head_out"}, {4, "mid,head_out"}, {9, "enc,mid,head_out"}} {
			got, err := u.Apply(dst, tc.epoch)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != tc.open {
				t.Fatalf("epoch %d: trainable %v, want %s", tc.epoch, got, tc.open)
			}
		}
		if dst.Param("enc/W").LRScale != 0.1 {
			t.Fatal("LR scale not applied")
		}
	})
}
