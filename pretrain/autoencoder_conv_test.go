package pretrain

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// digitsImages returns the first rows of the embedded digits dataset as 1×8×8 images scaled
// to [0, 1], and their labels.
func digitsImages(t *testing.T, rows int) ([]float32, []int32) {
	t.Helper()
	b, err := datasets.CSV("digits")
	mustNoErr(t, err)
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	mustNoErr(t, err)
	if len(recs) < rows+1 || len(recs[0]) != 65 || !strings.HasPrefix(recs[0][0], "pixel_0_0") {
		t.Fatalf("digits CSV: %d rows, header %v", len(recs), recs[0][:2])
	}
	x := make([]float32, 0, rows*64)
	y := make([]int32, rows)
	for r, rec := range recs[1 : rows+1] {
		for _, s := range rec[:64] {
			v, err := strconv.ParseFloat(s, 64)
			mustNoErr(t, err)
			x = append(x, float32(v/16))
		}
		l, err := strconv.Atoi(rec[64])
		mustNoErr(t, err)
		y[r] = int32(l)
	}
	return x, y
}

// convEncoder is conv 8 → max_pool 2 → conv 4 on an 8×8 image: a 4×4×4 code.
func convEncoder() []nn.LayerSpec {
	return []nn.LayerSpec{
		{Type: nn.LayerConv, Filters: 8, Kernel: 3, Padding: nn.PaddingSame, Activation: "relu"},
		{Type: nn.LayerMaxPool, Kernel: 2},
		{Type: nn.LayerConv, Filters: 4, Kernel: 3, Padding: nn.PaddingSame, Activation: "relu"},
	}
}

// TestConvAutoencoderLossFalls trains convolutional autoencoders (plain, denoising with mask
// and with gaussian noise, sparse, sigmoid output) on digits: the clean validation
// reconstruction loss must fall to half its first epoch's or less (measured: 2.1× to 4×
// in 12 epochs) and end below 3/4 of the per-pixel mean predictor's (measured 0.2 to 0.68
// of it); the encoder keeps the image shape and its layer names, and the decoder
// mirrors it (upsample, conv back to 8 channels, dec_out back to 1).
func TestConvAutoencoderLossFalls(t *testing.T) {
	const rows = 800
	x, _ := digitsImages(t, rows)
	data := train.Dataset{X: x, NumInputs: 64}
	shape := []int{1, 8, 8}
	for _, tc := range []struct {
		name string
		cfg  AutoencoderConfig
	}{
		{"plain", AutoencoderConfig{Encoder: convEncoder(), InputShape: shape}},
		{"denoising_mask", AutoencoderConfig{Encoder: convEncoder(), InputShape: shape, Type: TypeDenoising}},
		{"denoising_gaussian", AutoencoderConfig{Encoder: convEncoder(), InputShape: shape, Type: TypeDenoising, Corruption: Corruption{Kind: CorruptGaussian, Rate: 0.1}}},
		{"sparse", AutoencoderConfig{Encoder: convEncoder(), InputShape: shape, Type: TypeSparse}},
		{"sigmoid_output", AutoencoderConfig{Encoder: convEncoder(), InputShape: shape, Output: OutputSigmoid}},
	} {
		if raceEnabled && tc.name != "plain" {
			continue // the cases differ only in configuration; each takes ~50 s under -race
		}
		t.Run(tc.name, func(t *testing.T) {
			tcfg := quietConfig(12, 5)
			tcfg.Optimizer = optimLR(1e-2)
			var ae *nn.Model
			enc, rep, err := trainAutoencoder(context.Background(), tc.cfg, rowsView(data, 0, 600), rowsView(data, 600, rows), tcfg, func(m *nn.Model) { ae = m })
			mustNoErr(t, err)
			first, last := rep.ValLoss[0], rep.ValLoss[len(rep.ValLoss)-1]
			if !(last < first/2) {
				t.Errorf("val reconstruction loss %g -> %g, want a fall to half or less", first, last)
			}
			if base := meanPredictorMSE(x, 64); !(last < 0.75*base) {
				t.Errorf("final val loss %g not below 3/4 of the per-pixel mean predictor's %g", last, base)
			}
			t.Logf("val loss %.4f -> %.4f (mean predictor %.4f)", first, last, meanPredictorMSE(x, 64))
			if got := strings.Join(enc.ParamLayers(), ","); got != "enc_1,enc_3" {
				t.Errorf("encoder param layers %s, want enc_1,enc_3", got)
			}
			if es := enc.Spec(); enc.CodeWidth() != 4*4*4 || len(es.InputShape) != 3 || es.InputShape[1] != 8 || len(es.Layers) != 3 {
				t.Errorf("encoder: code width %d, input shape %v, %d layers; want 64, [1 8 8], 3", enc.CodeWidth(), es.InputShape, len(es.Layers))
			}
			var dec []string
			for _, l := range ae.Spec().Layers[3:] {
				d := l.Type
				if l.Type == nn.LayerConv {
					d += "(" + strconv.Itoa(l.Filters) + "," + l.Activation + ")"
				}
				dec = append(dec, l.Name+":"+d)
			}
			wantOut := "linear"
			if tc.cfg.Output == OutputSigmoid {
				wantOut = "sigmoid"
			}
			if got, want := strings.Join(dec, " "), "dec_1:conv(8,relu) dec_2:upsample dec_out:conv(1,"+wantOut+")"; got != want {
				t.Errorf("decoder %s, want %s", got, want)
			}
			// The encoder's code is the autoencoder's enc_3 output: same weights.
			b := nn.Batch{X: x[:5*64], Rows: 5}
			code, err := enc.Encode(b)
			mustNoErr(t, err)
			if _, err := ae.EvalLoss(b, nn.Targets{Heads: []nn.HeadTargets{{Values: make([]float32, 5*64)}}}); err != nil {
				t.Fatal(err)
			}
			var got []float32
			for _, lt := range ae.LayerTensors(5) {
				if lt.Layer == "enc_3" {
					got = lt.Output
				}
			}
			if !bitEqual(code, got[:len(code)]) {
				t.Errorf("the encoder's code differs from the autoencoder's enc_3 output")
			}
		})
	}
}

// TestConvAutoencoderSameForAnyWorkers: the encoder's weights and the losses are bit-identical
// with 1 and 3 GEMM workers.
func TestConvAutoencoderSameForAnyWorkers(t *testing.T) {
	x, _ := digitsImages(t, 300)
	data := train.Dataset{X: x, NumInputs: 64}
	cfg := AutoencoderConfig{Encoder: convEncoder(), InputShape: []int{1, 8, 8}, Type: TypeDenoising}
	run := func(workers int) (*Encoder, Report) {
		tc := quietConfig(3, 9)
		tc.Workers = workers
		enc, rep, err := TrainAutoencoder(context.Background(), cfg, rowsView(data, 0, 250), rowsView(data, 250, 300), tc)
		mustNoErr(t, err)
		return enc, rep
	}
	e1, r1 := run(1)
	e3, r3 := run(3)
	p1, p3 := paramCopy(e1.Model()), paramCopy(e3.Model())
	for name, v := range p1 {
		if !bitEqual(v, p3[name]) {
			t.Errorf("param %s differs between 1 and 3 workers", name)
		}
	}
	for i := range r1.ValLoss {
		if r1.ValLoss[i] != r3.ValLoss[i] || r1.TrainLoss[i] != r3.TrainLoss[i] {
			t.Errorf("epoch %d: losses %v/%v with 1 worker, %v/%v with 3", i, r1.TrainLoss[i], r1.ValLoss[i], r3.TrainLoss[i], r3.ValLoss[i])
		}
	}
}

// TestConvAutoencoderTransfer: SupervisedSpec keeps the image shape, and InitFrom fills a
// supervised CNN's conv layers with the encoder's weights, exactly.
func TestConvAutoencoderTransfer(t *testing.T) {
	x, _ := digitsImages(t, 200)
	data := train.Dataset{X: x, NumInputs: 64}
	enc, _, err := TrainAutoencoder(context.Background(), AutoencoderConfig{Encoder: convEncoder(), InputShape: []int{1, 8, 8}}, data, train.Dataset{}, quietConfig(2, 1))
	mustNoErr(t, err)
	spec := SupervisedSpec(enc, []nn.LayerSpec{{Type: nn.LayerFlatten}, {Type: nn.LayerDense, Units: 16, Activation: "relu"}}, []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 10}})
	m, err := nn.Build(spec, rand.New(rand.NewPCG(2, 2)))
	mustNoErr(t, err)
	loaded, err := InitFrom(m, enc)
	mustNoErr(t, err)
	if len(loaded) != 4 {
		t.Fatalf("loaded %v, want the W and b of enc_1 and enc_3", loaded)
	}
	want := paramCopy(enc.Model())
	for _, name := range loaded {
		if !bitEqual(m.Param(name).Value, want[name]) {
			t.Errorf("%s differs from the encoder's", name)
		}
	}
}

// TestConvAutoencoderConfigErrors: encoders the decoder cannot mirror, and settings that do not
// apply to a convolutional autoencoder, are errors that name the layer and say what to do.
func TestConvAutoencoderConfigErrors(t *testing.T) {
	conv := func(pad string, stride int) nn.LayerSpec {
		return nn.LayerSpec{Type: nn.LayerConv, Filters: 4, Kernel: 3, Padding: pad, Stride: stride, Activation: "relu"}
	}
	shape := []int{1, 8, 8}
	for _, tc := range []struct {
		name string
		cfg  AutoencoderConfig
		want string
	}{
		{"overlapping_pool", AutoencoderConfig{InputShape: shape, Encoder: []nn.LayerSpec{conv("same", 1), {Type: nn.LayerMaxPool, Kernel: 3, Stride: 2}}},
			"encoder layer 2 (enc_2, max_pool) on a 4×8×8 image: kernel 3, stride 2, padding valid gives 3×3, which upsampling by 2 makes 6×6, not 8×8: the decoder cannot mirror it"},
		{"odd_pool", AutoencoderConfig{InputShape: []int{1, 7, 7}, Encoder: []nn.LayerSpec{conv("same", 1), {Type: nn.LayerAvgPool, Kernel: 2}}}, "the decoder cannot mirror it"},
		{"dense_in_encoder", AutoencoderConfig{InputShape: shape, Encoder: []nn.LayerSpec{conv("same", 1), {Type: nn.LayerFlatten}, {Type: nn.LayerDense, Units: 8}}},
			"encoder layer 2 (enc_2, flatten) on a 4×8×8 image: a convolutional autoencoder's encoder takes conv, max_pool"},
		{"valid_conv", AutoencoderConfig{InputShape: shape, Encoder: []nn.LayerSpec{conv("", 1)}}, `padding "valid" shrinks the image by kernel - 1`},
		{"stride_not_dividing", AutoencoderConfig{InputShape: shape, Encoder: []nn.LayerSpec{conv("same", 3)}}, "stride 3 does not divide the height and width"},
		{"no_conv", AutoencoderConfig{InputShape: shape, Encoder: []nn.LayerSpec{{Type: nn.LayerMaxPool}}}, "the encoder has no conv layer"},
		{"tied", AutoencoderConfig{InputShape: shape, Tied: true, Encoder: []nn.LayerSpec{conv("same", 1)}}, "tied decoders are for dense encoders"},
		{"bad_output", AutoencoderConfig{InputShape: shape, Output: "tanh", Encoder: []nn.LayerSpec{conv("same", 1)}}, `output "tanh": want linear or sigmoid`},
		{"output_on_dense", AutoencoderConfig{Output: OutputSigmoid, Encoder: encoderLayers(4)}, "is for a convolutional autoencoder"},
		{"shape_mismatch", AutoencoderConfig{InputShape: []int{1, 4, 4}, Encoder: []nn.LayerSpec{conv("same", 1)}}, "holds 16 values per row, and the data has 64 inputs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 64
			if sh := tc.cfg.InputShape; sh != nil && tc.name != "shape_mismatch" {
				n = sh[0] * sh[1] * sh[2]
			}
			_, err := resolveAutoencoder(tc.cfg, n)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// A stride-2 conv and a residual block mirror: upsample then conv.
	lay, err := resolveAutoencoder(AutoencoderConfig{InputShape: []int{2, 8, 8}, Encoder: []nn.LayerSpec{
		conv("same", 2), {Type: nn.LayerResidual, Filters: 6, Stride: 2}}}, 128)
	mustNoErr(t, err)
	var got []string
	for _, l := range lay.decoder {
		got = append(got, l.Name+":"+l.Type+":"+strconv.Itoa(l.Filters+l.Factor))
	}
	if s := strings.Join(got, " "); s != "dec_1:upsample:2 dec_2:conv:4 dec_3:upsample:2 dec_out:conv:2" || lay.codeWidth != 6*2*2 {
		t.Fatalf("decoder %s, code width %d; want dec_1:upsample:2 dec_2:conv:4 dec_3:upsample:2 dec_out:conv:2, 24", s, lay.codeWidth)
	}
}

// TestConvAutoencoderResume: a convolutional denoising autoencoder interrupted after its
// epoch 1 and resumed from the checkpoint its hook took ends with the encoder and report of an
// uninterrupted training, bit for bit.
func TestConvAutoencoderResume(t *testing.T) {
	x, _ := digitsImages(t, 240)
	base := train.Dataset{X: x, NumInputs: 64}
	data, val := rowsView(base, 0, 200), rowsView(base, 200, 240)
	cfg := AutoencoderConfig{Encoder: convEncoder(), InputShape: []int{1, 8, 8}, Type: TypeDenoising}
	const stopAt = 1
	tc := train.Config{Epochs: 4, BatchSize: 32, Seed: 9, Optimizer: optimLR(0.01), EarlyStopping: train.EarlyStopping{Disabled: true}}
	want, wantRep, err := TrainAutoencoder(context.Background(), cfg, data, val, tc)
	mustNoErr(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &epochRecorder{cancel: cancel, stopAt: stopAt}
	itc := tc
	itc.Hooks = []train.Hook{rec.hook()}
	if _, _, err := TrainAutoencoder(ctx, cfg, data, val, itc); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted training: %v, want canceled", err)
	}
	rtc := tc
	rtc.Resume = rec.checkpoint(t)
	got, gotRep, err := TrainAutoencoder(context.Background(), cfg, data, val, rtc)
	mustNoErr(t, err)
	sameParams(t, "encoder", want.Model(), got.Model())
	wantRep.Seconds, gotRep.Seconds = 0, 0
	if a, b := fmt.Sprintf("%+v", wantRep), fmt.Sprintf("%+v", gotRep); a != b {
		t.Fatalf("reports differ:\nuninterrupted %s\nresumed       %s", a, b)
	}
}
