package nn

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// setLogits makes every row's logits equal bias (no trunk, zero head weights).
func setLogits(t *testing.T, spec Spec, bias []float32) *Model {
	t.Helper()
	m := mustBuild(t, spec)
	clear(m.Param("head_out/W").Value)
	copy(m.Param("head_out/b").Value, bias)
	return m
}

// TestSoftTargetLossByHand checks the soft-target losses against formulas written out here,
// on models whose logits are set directly (the same for every row).
func TestSoftTargetLossByHand(t *testing.T) {
	logSoftmax := func(z []float64) []float64 {
		var s float64
		for _, v := range z {
			s += math.Exp(v)
		}
		out := make([]float64, len(z))
		for i, v := range z {
			out[i] = v - math.Log(s)
		}
		return out
	}
	lp := logSoftmax([]float64{1, 2, 0.5})
	ce := func(q []float64) float64 { return -(q[0]*lp[0] + q[1]*lp[1] + q[2]*lp[2]) }
	sig := 1 / (1 + math.Exp(-0.8))
	bce := func(tt float64) float64 { return -(tt*math.Log(sig) + (1-tt)*math.Log(1-sig)) }
	cases := []struct {
		name    string
		head    HeadSpec
		bias    []float32
		target  HeadTargets
		weights []float32
		want    float64
	}{
		{"softmax", HeadSpec{Kind: HeadSoftmax, Classes: 3}, []float32{1, 2, 0.5},
			HeadTargets{Labels: []int32{0}, Soft: []float32{0.2, 0.7, 0.1}}, nil, ce([]float64{0.2, 0.7, 0.1})},
		{"softmax_smoothing", HeadSpec{Kind: HeadSoftmax, Classes: 3, LabelSmoothing: 0.3}, []float32{1, 2, 0.5},
			HeadTargets{Labels: []int32{0}, Soft: []float32{0.2, 0.7, 0.1}}, nil,
			// q = 0.7·t + 0.1
			ce([]float64{0.7*0.2 + 0.1, 0.7*0.7 + 0.1, 0.7*0.1 + 0.1})},
		{"softmax_class_and_sample_weights_missing_row", HeadSpec{Kind: HeadSoftmax, Classes: 3, ClassWeights: []float64{1, 2, 0.5}}, []float32{1, 2, 0.5},
			HeadTargets{Labels: []int32{0, -1, 2}, Soft: []float32{0.5, 0.5, 0, 9, 9, 9, 0, 0.25, 0.75}}, []float32{2, 1, 1},
			func() float64 {
				// Row weights: sample weight × class mix Σ t_j·w_j; the missing row counts nothing.
				w0 := 2 * (0.5*1 + 0.5*2)
				w2 := 1 * (0.25*2 + 0.75*0.5)
				return (w0*ce([]float64{0.5, 0.5, 0}) + w2*ce([]float64{0, 0.25, 0.75})) / (w0 + w2)
			}()},
		{"binary", HeadSpec{Kind: HeadBinary}, []float32{0.8},
			HeadTargets{Labels: []int32{0}, Soft: []float32{0.3, 0.7}}, nil, bce(0.7)},
		{"binary_smoothing_class_weights", HeadSpec{Kind: HeadBinary, LabelSmoothing: 0.2, ClassWeights: []float64{1, 3}}, []float32{0.8},
			HeadTargets{Labels: []int32{1, 0}, Soft: []float32{0.3, 0.7, 1, 0}}, nil,
			func() float64 {
				w0, w1 := 0.3*1+0.7*3, 1.0
				return (w0*bce(0.7*0.8+0.1) + w1*bce(0.1)) / (w0 + w1)
			}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := setLogits(t, Spec{NumInputs: 1, Heads: []HeadSpec{tc.head}}, tc.bias)
			rows := len(tc.target.Labels)
			l, err := m.EvalLoss(Batch{Rows: rows, X: make([]float32, rows)}, Targets{Heads: []HeadTargets{tc.target}, Weights: tc.weights})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(l.Total-tc.want) > 1e-6*max(1, math.Abs(tc.want)) {
				t.Fatalf("loss %.9g, want %.9g", l.Total, tc.want)
			}
		})
	}
}

// TestSoftOneHotEqualsLabels: one-hot soft targets give the same loss and gradients as the
// labels they encode, with label smoothing, class weights, sample weights and missing rows.
func TestSoftOneHotEqualsLabels(t *testing.T) {
	cases := []struct {
		name string
		head HeadSpec
	}{
		{"softmax", HeadSpec{Kind: HeadSoftmax, Classes: 4}},
		{"softmax_smoothing_class_weights", HeadSpec{Kind: HeadSoftmax, Classes: 3, LabelSmoothing: 0.1, ClassWeights: []float64{1, 2, 0.5}}},
		{"binary_smoothing_class_weights", HeadSpec{Kind: HeadBinary, LabelSmoothing: 0.05, ClassWeights: []float64{1, 3}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := Spec{NumInputs: 5, Layers: []LayerSpec{{Type: LayerDense, Units: 6, Activation: "tanh"}}, Heads: []HeadSpec{tc.head}}
			rng := rand.New(rand.NewPCG(9, 9))
			const rows = 11
			b := randomBatch(rng, spec, rows)
			hard := randomTargets(rng, spec, rows, 4)
			hard.Weights = make([]float32, rows)
			for i := range hard.Weights {
				hard.Weights[i] = 0.5 + rng.Float32()
			}
			k := tc.head.Classes
			if tc.head.Kind == HeadBinary {
				k = 2
			}
			soft := hard
			soft.Heads = []HeadTargets{{Labels: hard.Heads[0].Labels, Soft: make([]float32, rows*k)}}
			for r, l := range hard.Heads[0].Labels {
				if l >= 0 {
					soft.Heads[0].Soft[r*k+int(l)] = 1
				} else {
					soft.Heads[0].Soft[r*k] = -7 // a missing row's soft target is ignored
				}
			}
			step := func(tg Targets) (float64, [][]float32) {
				m := mustBuild(t, spec)
				l, err := m.TrainStep(b, tg)
				if err != nil {
					t.Fatal(err)
				}
				var g [][]float32
				for _, p := range m.Params() {
					g = append(g, append([]float32(nil), p.Grad...))
				}
				return l.Total, g
			}
			lh, gh := step(hard)
			ls, gs := step(soft)
			if math.Abs(lh-ls) > 1e-6*max(1, math.Abs(lh)) {
				t.Fatalf("loss with labels %.9g, with one-hot soft targets %.9g", lh, ls)
			}
			for i := range gh {
				for j := range gh[i] {
					if math.Abs(float64(gh[i][j]-gs[i][j])) > 1e-6 {
						t.Fatalf("grad %d[%d]: labels %v, soft %v", i, j, gh[i][j], gs[i][j])
					}
				}
			}
		})
	}
}

func TestSoftTargetErrors(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := []struct {
		name string
		head HeadSpec
		tg   HeadTargets
		want string // "" = valid
	}{
		{"valid_with_missing_row_garbage", softmaxHead(3)[0], HeadTargets{Labels: []int32{0, -1}, Soft: []float32{0.5, 0.25, 0.25, nan, -1, 5}}, ""},
		{"too_short", softmaxHead(3)[0], HeadTargets{Labels: []int32{0, 1}, Soft: []float32{1, 0, 0}}, "3 soft targets for 2 rows × 3 classes"},
		{"negative", softmaxHead(3)[0], HeadTargets{Labels: []int32{0, 1}, Soft: []float32{1, 0, 0, 0.5, 0.6, -0.1}}, "row 1, class 2 is -0.1"},
		{"nan", softmaxHead(3)[0], HeadTargets{Labels: []int32{0, 1}, Soft: []float32{nan, 0, 1, 0, 1, 0}}, "row 0, class 0 is NaN"},
		{"inf", softmaxHead(3)[0], HeadTargets{Labels: []int32{0, 1}, Soft: []float32{1, 0, 0, 0, inf, 0}}, "finite and ≥ 0"},
		{"not_a_distribution", softmaxHead(3)[0], HeadTargets{Labels: []int32{0, 1}, Soft: []float32{1, 0, 0, 0.3, 0.3, 0.3}}, "row 1 sum to 0.9"},
		{"binary_width_two", HeadSpec{Kind: HeadBinary}, HeadTargets{Labels: []int32{0, 1}, Soft: []float32{0.3, 0.7}}, "2 soft targets for 2 rows × 2 classes"},
		{"binary_not_a_distribution", HeadSpec{Kind: HeadBinary}, HeadTargets{Labels: []int32{0, 1}, Soft: []float32{0.3, 0.7, 0.7, 0.7}}, "row 1 sum to 1.4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := mustBuild(t, Spec{NumInputs: 1, Heads: []HeadSpec{tc.head}})
			_, err := m.TrainStep(Batch{Rows: 2, X: []float32{0.1, 0.2}}, Targets{Heads: []HeadTargets{tc.tg}})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid soft targets refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
