package metrics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

const tol = 1e-6

func approxEqual(a, b, tol float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b))
}

func TestClassificationHandCases(t *testing.T) {
	nan := math.NaN()
	// probs3 has arg-max classes 0, 2, 2, 1 for labels 0, 1, 2, 1.
	labels3 := []int32{0, 1, 2, 1}
	probs3 := []float32{
		0.7, 0.2, 0.1, // argmax 0, label 0: correct
		0.1, 0.3, 0.6, // argmax 2, label 1: wrong
		0.2, 0.2, 0.6, // argmax 2, label 2: correct
		0.3, 0.4, 0.3, // argmax 1, label 1: correct
	}
	tests := []struct {
		name   string
		metric func() float64
		want   float64
	}{
		// 3 of 4 arg-maxes match.
		{"accuracy", func() float64 { return Accuracy(labels3, probs3, 3) }, 3.0 / 4},
		// Row 1 (the wrong one) has a missing label: 3 of 3.
		{"accuracy missing label", func() float64 { return Accuracy([]int32{0, -1, 2, 1}, probs3, 3) }, 1},
		// Weights 1,2,3,4: correct rows 0,2,3 weigh 1+3+4 = 8 of 10.
		{"accuracy weighted", func() float64 { return AccuracyWeighted(labels3, probs3, 3, []float32{1, 2, 3, 4}) }, 8.0 / 10},
		// Missing label 3 drops weight 4: correct 1+3 of 1+2+3.
		{"accuracy weighted missing", func() float64 { return AccuracyWeighted([]int32{0, 1, 2, -1}, probs3, 3, []float32{1, 2, 3, 4}) }, 4.0 / 6},
		// -(ln 0.8 + ln 0.6)/2 = (0.2231436 + 0.5108256)/2 = 0.3669846.
		{"logloss binary", func() float64 { return LogLoss([]int32{0, 1}, []float32{0.8, 0.2, 0.4, 0.6}, 2) }, 0.3669846},
		// -(1*ln 0.8 + 3*ln 0.6)/4 = (0.2231436 + 1.5324769)/4 = 0.4389051.
		{"logloss weighted", func() float64 {
			return LogLossWeighted([]int32{0, 1}, []float32{0.8, 0.2, 0.4, 0.6}, 2, []float32{1, 3})
		}, 0.4389051},
		// p[label] = 0 is clipped to 1e-15: -ln(1e-15) = 15*ln 10 = 34.5387764.
		{"logloss clipped", func() float64 { return LogLoss([]int32{1}, []float32{1, 0}, 2) }, 15 * math.Ln10},
		// Perfect predictions: -ln(1-1e-15) ~ 1e-15.
		{"logloss perfect", func() float64 { return LogLoss([]int32{0, 1}, []float32{1, 0, 0, 1}, 2) }, 1e-15},
		// 3 classes: -(ln 0.7 + ln 0.3 + ln 0.6 + ln 0.4)/4 = (0.3566749+1.2039728+0.5108256+0.9162907)/4.
		{"logloss multiclass", func() float64 { return LogLoss(labels3, probs3, 3) }, (0.3566749 + 1.2039728 + 0.5108256 + 0.9162907) / 4},
		// Labels 0,0,1,1,2,2, predictions 0,1,1,1,2,0:
		// class 0: TP 1, FP 1, FN 1 -> 2/(2+1+1) = 0.5; class 1: TP 2, FP 1, FN 0 -> 4/5 = 0.8;
		// class 2: TP 1, FP 0, FN 1 -> 2/3. Macro: (0.5+0.8+0.6666667)/3 = 0.6555556.
		{"f1 macro", func() float64 {
			return F1Macro([]int32{0, 0, 1, 1, 2, 2}, onehot([]int32{0, 1, 1, 1, 2, 0}, 3), 3)
		}, 0.6555556},
		// Class 2 never occurs (neither label nor prediction) and is left out: classes 0 and 1
		// each have TP 1, and one row of class 0 predicted 1: class 0 2/(2+0+1) = 2/3,
		// class 1 2/(2+1+0) = 2/3.
		{"f1 macro absent class", func() float64 {
			return F1Macro([]int32{0, 0, 1}, onehot([]int32{0, 1, 1}, 3), 3)
		}, 2.0 / 3},
		{"f1 perfect", func() float64 { return F1Macro([]int32{0, 1, 2}, onehot([]int32{0, 1, 2}, 3), 3) }, 1},
		// All wrong: every class has TP 0.
		{"f1 worst", func() float64 { return F1Macro([]int32{0, 1, 2}, onehot([]int32{1, 2, 0}, 3), 3) }, 0},
		{"accuracy worst", func() float64 { return Accuracy([]int32{0, 1, 2}, onehot([]int32{1, 2, 0}, 3), 3) }, 0},
		// Invalid inputs are NaN, never a plausible number.
		{"label >= k", func() float64 { return Accuracy([]int32{0, 3}, make([]float32, 6), 3) }, nan},
		{"length mismatch", func() float64 { return LogLoss([]int32{0, 1}, make([]float32, 5), 3) }, nan},
		{"k < 2", func() float64 { return F1Macro([]int32{0}, []float32{1}, 1) }, nan},
		{"all missing", func() float64 { return Accuracy([]int32{-1, -1}, make([]float32, 4), 2) }, nan},
		{"negative weight", func() float64 { return AccuracyWeighted([]int32{0}, []float32{1, 0}, 2, []float32{-1}) }, nan},
		{"nan weight", func() float64 { return LogLossWeighted([]int32{0}, []float32{1, 0}, 2, []float32{float32(nan)}) }, nan},
		{"nan probability", func() float64 { return LogLoss([]int32{0}, []float32{float32(nan), 0}, 2) }, nan},
		// A NaN row predicts no class: wrong.
		{"accuracy nan row", func() float64 { return Accuracy([]int32{0, 1}, []float32{float32(nan), 0, 0, 1}, 2) }, 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.metric(); !approxEqual(got, tc.want, tol) {
				t.Errorf("got %.9g, want %.9g", got, tc.want)
			}
		})
	}
}

// onehot returns n×k probabilities with all mass on pred[i].
func onehot(pred []int32, k int) []float32 {
	p := make([]float32, len(pred)*k)
	for i, c := range pred {
		p[i*k+int(c)] = 1
	}
	return p
}

// binaryProbs returns n×2 probabilities [1-s, s].
func binaryProbs(scores []float32) []float32 {
	p := make([]float32, 2*len(scores))
	for i, s := range scores {
		p[2*i], p[2*i+1] = 1-s, s
	}
	return p
}

func TestROCAUCHandCases(t *testing.T) {
	tests := []struct {
		name   string
		labels []int32
		probs  []float32
		k      int
		want   float64
	}{
		// Positives 0.35, 0.8; negatives 0.1, 0.4. Pairs (pos > neg): 0.35>0.1 yes, 0.35>0.4 no,
		// 0.8>0.1 yes, 0.8>0.4 yes -> 3/4.
		{"binary", []int32{0, 0, 1, 1}, binaryProbs([]float32{0.1, 0.4, 0.35, 0.8}), 2, 0.75},
		// Positives 0.5, 0.9; negatives 0.5, 0.2. Pairs: (0.5,0.5) tie = 1/2, (0.5,0.2) 1,
		// (0.9,0.5) 1, (0.9,0.2) 1 -> 3.5/4 = 0.875.
		{"binary tie", []int32{0, 1, 0, 1}, binaryProbs([]float32{0.5, 0.5, 0.2, 0.9}), 2, 0.875},
		// Every score tied: each pair counts 1/2.
		{"all tied", []int32{0, 1, 0, 1}, binaryProbs([]float32{0.3, 0.3, 0.3, 0.3}), 2, 0.5},
		{"perfect", []int32{0, 0, 1, 1}, binaryProbs([]float32{0.1, 0.2, 0.3, 0.4}), 2, 1},
		{"worst", []int32{1, 1, 0, 0}, binaryProbs([]float32{0.1, 0.2, 0.3, 0.4}), 2, 0},
		// The missing label (score 0.99 would otherwise be a negative above all positives).
		{"missing label skipped", []int32{0, -1, 1}, binaryProbs([]float32{0.1, 0.99, 0.5}), 2, 1},
		// Three classes, four rows with labels 0, 1, 2, 2:
		//   column 0 = 0.6, 0.3, 0.2, 0.1: class 0 (0.6) above all three negatives -> 1.
		//   column 1 = 0.3, 0.4, 0.5, 0.2: class 1 (0.4) vs negatives 0.3, 0.5, 0.2 -> 2/3.
		//   column 2 = 0.1, 0.3, 0.3, 0.7: positives 0.3, 0.7 vs negatives 0.1, 0.3:
		//     (0.3,0.1) 1, (0.3,0.3) 1/2, (0.7,0.1) 1, (0.7,0.3) 1 -> 3.5/4.
		//   macro: (1 + 2/3 + 0.875)/3 = 0.8472222.
		{"ovr macro", []int32{0, 1, 2, 2}, []float32{
			0.6, 0.3, 0.1,
			0.3, 0.4, 0.3,
			0.2, 0.5, 0.3,
			0.1, 0.2, 0.7,
		}, 3, (1 + 2.0/3 + 0.875) / 3},
		// Class 2 absent: mean over classes 0 and 1. Column 0 = 0.6, 0.3, 0.2 with class 0 on
		// row 0 -> 1; column 1 = 0.3, 0.4, 0.5 with class 1 on rows 1, 2, negative 0.3 -> 1.
		{"ovr absent class", []int32{0, 1, 1}, []float32{
			0.6, 0.3, 0.1,
			0.3, 0.4, 0.3,
			0.2, 0.5, 0.3,
		}, 3, 1},
		// Scores need not be probabilities. Column 1 = -2, -0.5, -0, +0 for labels 0, 1, 0, 1:
		// positives -0.5, +0; negatives -2, -0. Pairs: (-0.5,-2) 1, (-0.5,-0) 0, (+0,-2) 1,
		// (+0,-0) a tie, 1/2 -> 2.5/4.
		{"negative scores and signed zeros", []int32{0, 1, 0, 1}, []float32{
			0, -2,
			0, -0.5,
			0, float32(math.Copysign(0, -1)),
			0, 0,
		}, 2, 0.625},
		{"single class", []int32{1, 1}, binaryProbs([]float32{0.2, 0.3}), 2, math.NaN()},
		{"nan score", []int32{0, 1}, binaryProbs([]float32{float32(math.NaN()), 0.3}), 2, math.NaN()},
		{"label >= k", []int32{0, 2}, binaryProbs([]float32{0.2, 0.3}), 2, math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ROCAUC(tc.labels, tc.probs, tc.k); !approxEqual(got, tc.want, tol) {
				t.Errorf("got %.9g, want %.9g", got, tc.want)
			}
		})
	}
}

// naivePairwiseAUC counts, over every (positive, negative) pair, 1 when the positive scores
// higher and 1/2 on a tie: the definition of the AUC, in O(n²).
func naivePairwiseAUC(pos []bool, scores []float32) float64 {
	var sum, pairs float64
	for i := range scores {
		if !pos[i] {
			continue
		}
		for j := range scores {
			if pos[j] {
				continue
			}
			pairs++
			switch {
			case scores[i] > scores[j]:
				sum++
			case scores[i] == scores[j]:
				sum += 0.5
			}
		}
	}
	return sum / pairs
}

func TestROCAUCMatchesPairwiseDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name   string
		n, k   int
		levels int // scores are quantised to this many levels, to create ties
	}{
		{"binary continuous", 300, 2, 0},
		{"binary heavy ties", 300, 2, 5},
		{"4 classes", 400, 4, 0},
		{"4 classes ties", 400, 4, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			labels := make([]int32, tc.n)
			probs := make([]float32, tc.n*tc.k)
			for i := range labels {
				labels[i] = int32(rng.IntN(tc.k))
				if rng.IntN(10) == 0 {
					labels[i] = -1
				}
				for c := range tc.k {
					s := rng.Float32() - 0.5 // negative scores too (logits)
					if c == int(labels[i]) {
						s += 0.3 // informative but imperfect
					}
					if tc.levels > 0 {
						s = float32(math.Floor(float64(s)*float64(tc.levels))) / float32(tc.levels)
					}
					probs[i*tc.k+c] = s
				}
			}
			columnAUC := func(c int) float64 {
				var pos []bool
				var scores []float32
				for i, l := range labels {
					if l >= 0 {
						pos = append(pos, int(l) == c)
						scores = append(scores, probs[i*tc.k+c])
					}
				}
				return naivePairwiseAUC(pos, scores)
			}
			var want float64
			if tc.k == 2 {
				want = columnAUC(1)
			} else {
				for c := range tc.k {
					want += columnAUC(c) / float64(tc.k)
				}
			}
			if got := ROCAUC(labels, probs, tc.k); !approxEqual(got, want, 1e-12) {
				t.Errorf("ROCAUC = %.15g, pairwise definition = %.15g", got, want)
			}
		})
	}
}

func TestRegressionHandCases(t *testing.T) {
	nan := float32(math.NaN())
	// y = 1, 2, 3, NaN; pred = 1, 3, 5, 100: the NaN row is skipped; errors 0, -1, -2.
	y := []float32{1, 2, 3, nan}
	pred := []float32{1, 3, 5, 100}
	tests := []struct {
		name   string
		metric func() float64
		want   float64
	}{
		// sqrt((0 + 1 + 4)/3).
		{"rmse", func() float64 { return RMSE(y, pred) }, math.Sqrt(5.0 / 3)},
		// (0 + 1 + 2)/3.
		{"mae", func() float64 { return MAE(y, pred) }, 1},
		// mean(y) = 2, SS_tot = 1 + 0 + 1 = 2, SS_res = 5: 1 - 5/2.
		{"r2", func() float64 { return R2(y, pred) }, -1.5},
		// Weights 1, 1, 2 (the NaN row's weight is ignored): sqrt((0 + 1 + 2*4)/4).
		{"rmse weighted", func() float64 { return RMSEWeighted(y, pred, []float32{1, 1, 2, 7}) }, 1.5},
		// (0 + 1 + 2*2)/4.
		{"mae weighted", func() float64 { return MAEWeighted(y, pred, []float32{1, 1, 2, 7}) }, 1.25},
		{"r2 perfect", func() float64 { return R2([]float32{1, 2, 4}, []float32{1, 2, 4}) }, 1},
		// Predicting the mean 7/3 everywhere: SS_res = SS_tot.
		{"r2 mean", func() float64 { return R2([]float32{1, 2, 4}, []float32{7.0 / 3, 7.0 / 3, 7.0 / 3}) }, 0},
		{"rmse perfect", func() float64 { return RMSE([]float32{1, 2}, []float32{1, 2}) }, 0},
		{"r2 constant target", func() float64 { return R2([]float32{3, 3}, []float32{3, 3}) }, math.NaN()},
		{"all targets missing", func() float64 { return MAE([]float32{nan}, []float32{1}) }, math.NaN()},
		{"nan prediction", func() float64 { return RMSE([]float32{1}, []float32{nan}) }, math.NaN()},
		{"length mismatch", func() float64 { return R2([]float32{1, 2}, []float32{1}) }, math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.metric(); !approxEqual(got, tc.want, tol) {
				t.Errorf("got %.9g, want %.9g", got, tc.want)
			}
		})
	}
}

func TestArgMax(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name  string
		probs []float32
		k     int
		want  []int32
	}{
		{"plain", []float32{0.1, 0.7, 0.2, 0.5, 0.2, 0.3}, 3, []int32{1, 0}},
		{"tie goes to lowest", []float32{0.4, 0.4, 0.2}, 3, []int32{0}},
		{"nan row", []float32{0.1, nan, 0.9, 0.1}, 2, []int32{-1, 0}},
		{"bad shape", []float32{0.1, 0.2, 0.3}, 2, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]int32, 0, 8)
			got := ArgMax(tc.probs, tc.k, dst)
			if len(got) != len(tc.want) || (tc.want == nil) != (got == nil) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
			if len(got) > 0 && &got[0] != &dst[:1][0] {
				t.Error("dst with enough capacity was not reused")
			}
		})
	}
}

func randomClassification(n, k int) ([]int32, []float32) {
	rng := rand.New(rand.NewPCG(3, 4))
	labels := make([]int32, n)
	probs := make([]float32, n*k)
	for i := range labels {
		labels[i] = int32(rng.IntN(k))
		var sum float32
		for c := range k {
			p := rng.Float32() + 0.01
			probs[i*k+c] = p
			sum += p
		}
		for c := range k {
			probs[i*k+c] /= sum
		}
	}
	return labels, probs
}

func BenchmarkMetrics(b *testing.B) {
	const n = 100_000
	for _, k := range []int{2, 10} {
		labels, probs := randomClassification(n, k)
		for _, m := range []struct {
			name string
			f    func([]int32, []float32, int) float64
		}{{"Accuracy", Accuracy}, {"LogLoss", LogLoss}, {"F1Macro", F1Macro}, {"ROCAUC", ROCAUC}} {
			b.Run(fmt.Sprintf("%s/k=%d", m.name, k), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					m.f(labels, probs, k)
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}
