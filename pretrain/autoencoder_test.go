package pretrain

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

func encoderLayers(units ...int) []nn.LayerSpec {
	var out []nn.LayerSpec
	for _, u := range units {
		out = append(out, nn.LayerSpec{Type: nn.LayerDense, Units: u, Activation: "relu"})
	}
	return out
}

func TestTrainAutoencoderLossFalls(t *testing.T) {
	const rows, cols = 600, 16
	x, _ := lowRank(rows, cols, 1)
	data := train.Dataset{X: x, NumInputs: cols}
	for _, tc := range []struct {
		name string
		cfg  AutoencoderConfig
	}{
		{"plain", AutoencoderConfig{Encoder: encoderLayers(12, 6)}},
		{"denoising_mask", AutoencoderConfig{Encoder: encoderLayers(12, 6), Type: TypeDenoising}},
		{"denoising_gaussian", AutoencoderConfig{Encoder: encoderLayers(12, 6), Type: TypeDenoising, Corruption: Corruption{Kind: CorruptGaussian, Rate: 0.05}}},
		{"sparse_tied", AutoencoderConfig{Encoder: encoderLayers(12, 6), Type: TypeSparse, Tied: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, rep, err := TrainAutoencoder(context.Background(), tc.cfg, rowsView(data, 0, 500), rowsView(data, 500, rows), quietConfig(15, 3))
			mustNoErr(t, err)
			if len(rep.ValLoss) != 15 {
				t.Fatalf("%d epochs of val loss, want 15", len(rep.ValLoss))
			}
			first, last := rep.ValLoss[0], rep.ValLoss[len(rep.ValLoss)-1]
			if !(last < 0.7*first) {
				t.Errorf("val reconstruction loss %g -> %g, want a fall of at least 30%%", first, last)
			}
			// Baseline: predicting every column's mean. A useful autoencoder beats it.
			if base := meanPredictorMSE(x, cols); !(last < base) {
				t.Errorf("final val loss %g not below the column-mean predictor's %g", last, base)
			}
			if got := enc.ParamLayers(); strings.Join(got, ",") != "enc_1,enc_2" {
				t.Errorf("encoder layers %v, want enc_1, enc_2", got)
			}
		})
	}
}

// meanPredictorMSE is the MSE of predicting each column by its mean (the variance per value).
func meanPredictorMSE(x []float32, cols int) float64 {
	rows := len(x) / cols
	var s float64
	for c := range cols {
		var m float64
		for r := range rows {
			m += float64(x[r*cols+c])
		}
		m /= float64(rows)
		for r := range rows {
			d := float64(x[r*cols+c]) - m
			s += d * d
		}
	}
	return s / float64(rows*cols)
}

func TestCorruptionRateAndCleanTargets(t *testing.T) {
	for _, tc := range []struct {
		kind     string
		rate     float64
		unscaled bool
	}{{CorruptMask, 0.25, false}, {CorruptMask, 0.5, false}, {CorruptMask, 0.25, true}, {CorruptGaussian, 0.2, false}} {
		t.Run(fmt.Sprintf("%s_%g_unscaled=%v", tc.kind, tc.rate, tc.unscaled), func(t *testing.T) {
			const rows, cols = 200, 50
			x, _ := lowRank(rows, cols, 2)
			b := nn.Batch{Rows: rows, X: append([]float32(nil), x...)}
			targets := append([]float32(nil), x...)
			tg := nn.Targets{Heads: []nn.HeadTargets{{Values: targets}}}
			c := &corruptor{kind: tc.kind, rate: tc.rate, unscaled: tc.unscaled}
			c.augment(&b, &tg, rand.New(rand.NewPCG(1, 2)))
			if !bitEqual(tg.Heads[0].Values, x) {
				t.Fatal("the corruption modified the reconstruction targets")
			}
			n := float64(rows * cols)
			switch tc.kind {
			case CorruptMask:
				// A kept value is x/(1-rate) (inverted dropout), or x itself when unscaled.
				keep := 1 / (1 - tc.rate)
				if tc.unscaled {
					keep = 1
				}
				masked := 0
				for i, v := range b.X {
					want := float64(x[i]) * keep
					if v == 0 && x[i] != 0 {
						masked++
					} else if math.Abs(float64(v)-want) > 1e-6*math.Max(1, math.Abs(want)) {
						t.Fatalf("value %d changed from %g to %g, neither kept (%g) nor masked", i, x[i], v, want)
					}
				}
				// Binomial: 4 standard deviations.
				tol := 4 * math.Sqrt(tc.rate*(1-tc.rate)/n)
				if got := float64(masked) / n; math.Abs(got-tc.rate) > tol {
					t.Errorf("masked share on the batch %g, want %g ± %g", got, tc.rate, tol)
				}
				if got := c.measured(); math.Abs(got-tc.rate) > tol {
					t.Errorf("measured rate %g, want %g ± %g", got, tc.rate, tol)
				}
			case CorruptGaussian:
				var s float64
				for i, v := range b.X {
					d := float64(v - x[i])
					s += d * d
				}
				// The sample std of n normals has relative sd ≈ 1/√(2n).
				tol := 4 * tc.rate / math.Sqrt(2*n)
				if got := math.Sqrt(s / n); math.Abs(got-tc.rate) > tol+1e-6 {
					t.Errorf("noise std on the batch %g, want %g ± %g", got, tc.rate, tol)
				}
			}
		})
	}
}

// TestMaskCorruptionKeepsExpectation checks that masking, unless unscaled, leaves every
// input's expectation unchanged: averaged over many draws, the corrupted value of each column
// is the clean value (the encoder of a denoising autoencoder encodes clean inputs once trained,
// so it must not learn on inputs (1-rate) times smaller). Unscaled, the average is (1-rate)x.
func TestMaskCorruptionKeepsExpectation(t *testing.T) {
	const cols, draws = 8, 20000
	clean := []float32{0.1, 0.5, 1, 0.25, 0.75, 0.9, 0.05, 0.6}
	for _, tc := range []struct {
		rate     float64
		unscaled bool
	}{{0.25, false}, {0.5, false}, {0.25, true}} {
		t.Run(fmt.Sprintf("rate_%g_unscaled=%v", tc.rate, tc.unscaled), func(t *testing.T) {
			c := &corruptor{kind: CorruptMask, rate: tc.rate, unscaled: tc.unscaled}
			rng := rand.New(rand.NewPCG(3, 4))
			x := make([]float32, draws*cols)
			for r := range draws {
				copy(x[r*cols:], clean)
			}
			b := nn.Batch{Rows: draws, X: x}
			c.augment(&b, &nn.Targets{}, rng)
			factor := 1.0
			if tc.unscaled {
				factor = 1 - tc.rate
			}
			for j, v := range clean {
				var sum float64
				for r := range draws {
					sum += float64(x[r*cols+j])
				}
				mean := sum / draws
				want := factor * float64(v)
				// The kept value is v/(1-rate) with probability 1-rate: sd of one draw
				// v·sqrt(rate/(1-rate)) (scaled); 5 standard errors.
				sd := float64(v) * math.Sqrt(tc.rate/(1-tc.rate))
				if tc.unscaled {
					sd = float64(v) * math.Sqrt(tc.rate*(1-tc.rate))
				}
				if tol := 5 * sd / math.Sqrt(draws); math.Abs(mean-want) > tol {
					t.Errorf("column %d: mean corrupted value %g, want %g ± %g", j, mean, want, tol)
				}
			}
		})
	}
}

// TestDenoisingTrainingMeasuresRate checks the rate Report measures over a whole training run
// and that the reconstruction targets the trainer sees are the clean inputs.
func TestDenoisingTrainingMeasuresRate(t *testing.T) {
	const rows, cols, rate = 300, 20, 0.3
	x, _ := lowRank(rows, cols, 4)
	cfg := AutoencoderConfig{Encoder: encoderLayers(8), Type: TypeDenoising, Corruption: Corruption{Rate: rate}}
	lay, err := resolveAutoencoder(cfg, cols)
	mustNoErr(t, err)
	tg := lay.targets(train.Dataset{X: x, NumInputs: cols})
	if len(tg) != 1 || !bitEqual(tg[0].Values, x) {
		t.Fatal("reconstruction targets are not the clean inputs")
	}
	_, rep, err := TrainAutoencoder(context.Background(), cfg, train.Dataset{X: x, NumInputs: cols}, train.Dataset{}, quietConfig(3, 1))
	mustNoErr(t, err)
	n := 3 * 270 * cols // 3 epochs of the 90% that Fit keeps for training
	tol := 4 * math.Sqrt(rate*(1-rate)/float64(n))
	if rep.CorruptionKind != CorruptMask || rep.CorruptionRate != rate || math.Abs(rep.MeasuredCorruption-rate) > tol {
		t.Errorf("report corruption %s %g measured %g, want mask %g ± %g", rep.CorruptionKind, rep.CorruptionRate, rep.MeasuredCorruption, rate, tol)
	}
}

// TestTiedDecoder checks that a tied autoencoder has no decoder weights of its own and that its
// reconstruction equals a naive forward pass using the transposed encoder weights.
func TestTiedDecoder(t *testing.T) {
	const rows, cols = 5, 6
	x, _ := lowRank(rows, cols, 5)
	cfg := AutoencoderConfig{Encoder: encoderLayers(4, 3), Tied: true}
	var ae *nn.Model
	_, _, err := trainAutoencoder(context.Background(), cfg, train.Dataset{X: x, NumInputs: cols}, train.Dataset{X: x, NumInputs: cols}, quietConfig(2, 1), func(m *nn.Model) { ae = m })
	mustNoErr(t, err)
	for _, p := range ae.Params() {
		if strings.HasPrefix(p.Name, "dec_") && strings.HasSuffix(p.Name, "/W") {
			t.Errorf("tied decoder owns weight %s", p.Name)
		}
	}
	w1, b1 := ae.Param("enc_1/W").Value, ae.Param("enc_1/b").Value
	w2, b2 := ae.Param("enc_2/W").Value, ae.Param("enc_2/b").Value
	bd1, bdo := ae.Param("dec_1/b").Value, ae.Param("dec_out/b").Value
	out, err := ae.Predict(nn.Batch{Rows: rows, X: x})
	mustNoErr(t, err)
	relu := func(v float64) float64 { return math.Max(v, 0) }
	for r := range rows {
		h1 := make([]float64, 4)
		for j := range 4 {
			s := float64(b1[j])
			for i := range cols {
				s += float64(x[r*cols+i]) * float64(w1[i*4+j])
			}
			h1[j] = relu(s)
		}
		h2 := make([]float64, 3)
		for j := range 3 {
			s := float64(b2[j])
			for i := range 4 {
				s += h1[i] * float64(w2[i*3+j])
			}
			h2[j] = relu(s)
		}
		d1 := make([]float64, 4) // dec_1 = relu(h2·W2ᵀ + b)
		for j := range 4 {
			s := float64(bd1[j])
			for i := range 3 {
				s += h2[i] * float64(w2[j*3+i])
			}
			d1[j] = relu(s)
		}
		for j := range cols { // dec_out = d1·W1ᵀ + b, linear; the head selects every column
			s := float64(bdo[j])
			for i := range 4 {
				s += d1[i] * float64(w1[j*4+i])
			}
			if got := float64(out.Heads[0][r*cols+j]); math.Abs(got-s) > 1e-5 {
				t.Fatalf("row %d col %d: reconstruction %g, naive tied reference %g", r, j, got, s)
			}
		}
	}
}

// TestAutoencoderGradients checks backward against finite differences on the autoencoder
// layouts this package builds: tied with selection heads, a one-hot group and a sparsity
// penalty.
func TestAutoencoderGradients(t *testing.T) {
	const rows, cols = 6, 7
	x, _ := lowRank(rows, cols, 6)
	// Columns 4..6 are a one-hot group.
	for r := range rows {
		copy(x[r*cols+4:r*cols+7], []float32{0, 0, 0})
		x[r*cols+4+r%3] = 1
	}
	groups := []ColumnGroup{{Start: 0, Len: 4}, {Start: 4, Len: 3, Kind: GroupOneHot}}
	for _, tc := range []struct {
		name string
		cfg  AutoencoderConfig
	}{
		{"untied_sparse", AutoencoderConfig{Encoder: []nn.LayerSpec{{Type: nn.LayerDense, Units: 5, Activation: "tanh"}, {Type: nn.LayerDense, Units: 3, Activation: "tanh"}}, Type: TypeSparse, Sparsity: 0.01, Groups: groups}},
		{"tied", AutoencoderConfig{Encoder: []nn.LayerSpec{{Type: nn.LayerDense, Units: 5, Activation: "tanh"}, {Type: nn.LayerDense, Units: 3, Activation: "tanh"}}, Tied: true, Groups: groups}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lay, err := resolveAutoencoder(tc.cfg, cols)
			mustNoErr(t, err)
			m, err := nn.Build(lay.spec(cols, nil), rand.New(rand.NewPCG(1, 1)))
			mustNoErr(t, err)
			if tc.cfg.Tied {
				mustNoErr(t, selectionHeads(m, lay, cols))
			}
			tg := lay.targets(train.Dataset{X: x, NumInputs: cols})
			targets := nn.Targets{}
			for _, t := range tg {
				targets.Heads = append(targets.Heads, nn.HeadTargets{Labels: t.Labels, Values: t.Values})
			}
			if got := targets.Heads[1].Labels; got[0] != 0 || got[1] != 1 || got[2] != 2 {
				t.Fatalf("one-hot targets %v, want the hot column's index 0, 1, 2, ...", got)
			}
			res, err := nn.GradCheck(m, nn.Batch{Rows: rows, X: x}, targets, nn.GradCheckOptions{})
			mustNoErr(t, err)
			if len(res) < 6 {
				t.Fatalf("gradient check covered %d tensors, want every trainable one", len(res))
			}
			for _, r := range res {
				if r.RelError > 1e-2 {
					t.Errorf("%s: analytic %g numeric %g (rel error %g)", r.Param, r.Analytic, r.Numeric, r.RelError)
				}
			}
		})
	}
}

func TestSparsityReducesCodeActivation(t *testing.T) {
	const rows, cols = 500, 16
	x, _ := lowRank(rows, cols, 7)
	data := train.Dataset{X: x, NumInputs: cols}
	meanCode := func(cfg AutoencoderConfig) float64 {
		enc, _, err := TrainAutoencoder(context.Background(), cfg, data, train.Dataset{}, quietConfig(10, 2))
		mustNoErr(t, err)
		code, err := enc.Encode(nn.Batch{Rows: rows, X: x})
		mustNoErr(t, err)
		var s float64
		for _, v := range code {
			s += math.Abs(float64(v))
		}
		return s / float64(len(code))
	}
	plain := meanCode(AutoencoderConfig{Encoder: encoderLayers(12, 8)})
	sparse := meanCode(AutoencoderConfig{Encoder: encoderLayers(12, 8), Type: TypeSparse, Sparsity: 0.05})
	if !(sparse < 0.5*plain) {
		t.Errorf("mean |code| sparse %g vs plain %g, want sparse below half of plain", sparse, plain)
	}
}

func TestEncoderSaveLoadEncode(t *testing.T) {
	const rows, cols = 50, 10
	x, _ := lowRank(rows, cols, 8)
	enc, _, err := TrainAutoencoder(context.Background(), AutoencoderConfig{Encoder: encoderLayers(6, 4)}, train.Dataset{X: x, NumInputs: cols}, train.Dataset{}, quietConfig(2, 1))
	mustNoErr(t, err)
	dir := filepath.Join(t.TempDir(), "enc")
	mustNoErr(t, enc.Save(dir))
	back, err := LoadEncoder(dir)
	mustNoErr(t, err)
	a, err := enc.Encode(nn.Batch{Rows: rows, X: x})
	mustNoErr(t, err)
	b, err := back.Encode(nn.Batch{Rows: rows, X: x})
	mustNoErr(t, err)
	if !bitEqual(a, b) || len(a) != rows*4 || enc.CodeWidth() != 4 {
		t.Fatalf("encode after load differs or has the wrong width (%d values, code width %d)", len(a), enc.CodeWidth())
	}
	// The code is the encoder trunk: relu(relu(x·W1+b1)·W2+b2), computed naively.
	m := enc.Model()
	w1, b1, w2, b2 := m.Param("enc_1/W").Value, m.Param("enc_1/b").Value, m.Param("enc_2/W").Value, m.Param("enc_2/b").Value
	for r := range rows {
		h := make([]float64, 6)
		for j := range 6 {
			s := float64(b1[j])
			for i := range cols {
				s += float64(x[r*cols+i]) * float64(w1[i*6+j])
			}
			h[j] = math.Max(s, 0)
		}
		for j := range 4 {
			s := float64(b2[j])
			for i := range 6 {
				s += h[i] * float64(w2[i*4+j])
			}
			if got := float64(a[r*4+j]); math.Abs(got-math.Max(s, 0)) > 1e-5 {
				t.Fatalf("row %d code %d: %g, naive %g", r, j, got, math.Max(s, 0))
			}
		}
	}
}

func TestAutoencoderConfigErrors(t *testing.T) {
	x, _ := lowRank(20, 4, 1)
	data := train.Dataset{X: x, NumInputs: 4}
	for _, tc := range []struct {
		name string
		cfg  AutoencoderConfig
		tc   train.Config
		want string
	}{
		{"no_encoder", AutoencoderConfig{}, train.Config{}, "no layers"},
		{"bad_type", AutoencoderConfig{Encoder: encoderLayers(2), Type: "variational"}, train.Config{}, "type \"variational\""},
		{"bad_rate", AutoencoderConfig{Encoder: encoderLayers(2), Type: TypeDenoising, Corruption: Corruption{Rate: 1.5}}, train.Config{}, "not in [0, 1)"},
		{"bad_group", AutoencoderConfig{Encoder: encoderLayers(2), Groups: []ColumnGroup{{Start: 3, Len: 2}}}, train.Config{}, "outside the 4 inputs"},
		{"augment_set", AutoencoderConfig{Encoder: encoderLayers(2)}, train.Config{Augment: func(*nn.Batch, *nn.Targets, *rand.Rand) {}}, "Augment is set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := TrainAutoencoder(context.Background(), tc.cfg, data, train.Dataset{}, tc.tc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
