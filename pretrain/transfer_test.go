package pretrain

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

// smallEncoder trains a 16-12-6 autoencoder on low-rank data.
func smallEncoder(t *testing.T) (*Encoder, train.Dataset) {
	t.Helper()
	const rows, cols = 400, 16
	x, labels := lowRank(rows, cols, 11)
	data := train.Dataset{X: x, NumInputs: cols, Targets: []train.Target{{Labels: labels}}}
	enc, _, err := TrainAutoencoder(context.Background(), AutoencoderConfig{Encoder: encoderLayers(12, 6)}, data, train.Dataset{}, quietConfig(30, 1))
	mustNoErr(t, err)
	return enc, data
}

func TestInitFromCopiesEncoderWeights(t *testing.T) {
	enc, _ := smallEncoder(t)
	spec := SupervisedSpec(enc, []nn.LayerSpec{{Type: nn.LayerDense, Name: "top", Units: 5, Activation: "relu"}},
		[]nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 4}})
	m, err := nn.Build(spec, rand.New(rand.NewPCG(9, 9)))
	mustNoErr(t, err)
	before := paramCopy(m)
	loaded, err := InitFrom(m, enc)
	mustNoErr(t, err)
	if strings.Join(loaded, ",") != "enc_1/W,enc_1/b,enc_2/W,enc_2/b" {
		t.Errorf("loaded %v, want the four encoder tensors", loaded)
	}
	for _, name := range loaded {
		if !bitEqual(m.Param(name).Value, enc.Model().Param(name).Value) {
			t.Errorf("%s differs from the encoder's after InitFrom", name)
		}
	}
	for _, name := range []string{"top/W", "head_out/W"} {
		if !bitEqual(m.Param(name).Value, before[name]) {
			t.Errorf("%s (not an encoder layer) was changed", name)
		}
	}
}

func TestInitFromShapeMismatch(t *testing.T) {
	enc, _ := smallEncoder(t)
	for _, tc := range []struct {
		name   string
		layers []nn.LayerSpec
		want   []string
	}{
		{"units", []nn.LayerSpec{{Type: nn.LayerDense, Name: "enc_1", Units: 10}, {Type: nn.LayerDense, Name: "enc_2", Units: 6}},
			[]string{"enc_1/W", "[16 10]", "[16 12]"}},
		{"missing_layer", []nn.LayerSpec{{Type: nn.LayerDense, Name: "enc_1", Units: 12}},
			[]string{"enc_2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := nn.Build(nn.Spec{NumInputs: 16, Layers: tc.layers, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 4}}}, rand.New(rand.NewPCG(1, 1)))
			mustNoErr(t, err)
			_, err = InitFrom(m, enc)
			if err == nil {
				t.Fatal("InitFrom accepted a model whose encoder layers do not match")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestFrozenEncoderUnchangedByTraining(t *testing.T) {
	enc, data := smallEncoder(t)
	m, err := nn.Build(SupervisedSpec(enc, nil, []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 4}}), rand.New(rand.NewPCG(2, 2)))
	mustNoErr(t, err)
	_, err = InitFrom(m, enc)
	mustNoErr(t, err)
	n, err := FreezeEncoder(m, enc)
	mustNoErr(t, err)
	if n != 4 {
		t.Fatalf("froze %d params, want 4", n)
	}
	before := paramCopy(m)
	_, err = train.Fit(context.Background(), m, data, train.Dataset{}, quietConfig(3, 1))
	mustNoErr(t, err)
	for name, v := range before {
		same := bitEqual(m.Param(name).Value, v)
		if strings.HasPrefix(name, "enc_") && !same {
			t.Errorf("frozen %s changed during training", name)
		}
		if strings.HasPrefix(name, "head_") && same {
			t.Errorf("trainable %s did not change", name)
		}
	}
}

func TestUnfreezeHookOpensLayersFromTheTop(t *testing.T) {
	enc, data := smallEncoder(t)
	m, err := nn.Build(SupervisedSpec(enc, nil, []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 4}}), rand.New(rand.NewPCG(3, 3)))
	mustNoErr(t, err)
	_, err = InitFrom(m, enc)
	mustNoErr(t, err)
	sched := UnfreezeSchedule(enc, 2, 0.1)
	_, err = sched.Apply(m, 0)
	mustNoErr(t, err)
	// Record which encoder layers changed in each epoch.
	var changed [][]string
	prev := paramCopy(m)
	record := train.OnEpochEnd("record", -1, func(info *train.EpochInfo) error {
		var c []string
		for _, l := range []string{"enc_1", "enc_2"} {
			if !bitEqual(info.Model.Param(l+"/W").Value, prev[l+"/W"]) {
				c = append(c, l)
			}
		}
		changed = append(changed, c)
		prev = paramCopy(info.Model)
		return nil
	})
	_, err = train.Fit(context.Background(), m, data, train.Dataset{}, quietConfig(6, 1), record, UnfreezeHook(sched))
	mustNoErr(t, err)
	// Epochs 0-1: none; 2-3: enc_2 (the top); 4-5: both.
	want := []string{"", "", "enc_2", "enc_2", "enc_1,enc_2", "enc_1,enc_2"}
	for e, w := range want {
		if got := strings.Join(changed[e], ","); got != w {
			t.Errorf("epoch %d: encoder layers that changed %q, want %q", e, got, w)
		}
	}
	if s := m.Param("enc_2/W").LRScale; s != 0.1 {
		t.Errorf("unfrozen layer LR scale %g, want 0.1", s)
	}
}

func TestFineTuneConfigDefaultsToCosine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{{"", "cosine"}, {"step", "step"}} {
		var c train.Config
		c.Schedule.Name = tc.in
		if got := FineTuneConfig(c).Schedule.Name; got != tc.want {
			t.Errorf("schedule %q -> %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPretrainingHelpsFewLabels checks on the low-rank problem that a frozen pretrained
// encoder plus a trained head is a usable classifier (accuracy floor well above chance 0.25).
func TestPretrainedEncoderClassifies(t *testing.T) {
	enc, data := smallEncoder(t)
	m, err := nn.Build(SupervisedSpec(enc, []nn.LayerSpec{{Type: nn.LayerDense, Name: "top", Units: 16, Activation: "relu"}}, []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 4}}), rand.New(rand.NewPCG(4, 4)))
	mustNoErr(t, err)
	_, err = InitFrom(m, enc)
	mustNoErr(t, err)
	res, err := train.Fit(context.Background(), m, rowsView(data, 0, 300), rowsView(data, 300, 400), FineTuneConfig(quietConfig(60, 1)))
	mustNoErr(t, err)
	loss := res.History.Series("loss")
	if !(loss[len(loss)-1] < loss[0]) {
		t.Errorf("training loss %g -> %g, want it to fall", loss[0], loss[len(loss)-1])
	}
	acc, err := accuracy(m, rowsView(data, 300, 400), 0)
	mustNoErr(t, err)
	if acc < 0.7 {
		t.Errorf("held-out accuracy %.3f, want >= 0.7 (chance 0.25)", acc)
	}
}
