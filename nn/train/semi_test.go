package train

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// semiBlobs returns 24 labeled rows and 300 unlabeled rows (the labeled ones among them) of
// blobs.
func semiBlobs() (labeled, unlabeled Dataset) {
	unlabeled = blobs(1, 300)
	idx := make([]int, 24)
	for i := range idx {
		idx[i] = i
	}
	return unlabeled.Subset(idx), unlabeled
}

var semiMethods = []string{SemiVAT, SemiPi, SemiMeanTeacher, SemiLadder}

func semiConfig(method string, u Dataset, workers int) Config {
	return Config{Epochs: 4, BatchSize: 8, Seed: 3, Workers: workers, Optimizer: optim.Config{LR: 0.01},
		EarlyStopping: EarlyStopping{Patience: 2}, EMADecay: 0.9,
		Semi: &Semi{Method: method, Unlabeled: u, UnlabeledBatch: 16, RampupEpochs: 3, Entropy: method == SemiVAT}}
}

// TestSemiDeterministicAcrossWorkers trains each method with 1 and 3 workers (and again with
// 1): the weights and history are bit-identical. The trained weights differ from supervised
// training's (the consistency loss is applied).
func TestSemiDeterministicAcrossWorkers(t *testing.T) {
	lab, unl := semiBlobs()
	val := blobs(2, 60)
	sup := buildModel(t, richSpec())
	supCfg := semiConfig(SemiPi, unl, 1)
	supCfg.Semi = nil
	if _, err := Fit(context.Background(), sup, lab, val, supCfg); err != nil {
		t.Fatal(err)
	}
	for _, method := range semiMethods {
		t.Run(method, func(t *testing.T) {
			var ws [][][]float32
			var hs []History
			for _, workers := range []int{1, 3, 1} {
				m := buildModel(t, richSpec())
				res, err := Fit(context.Background(), m, lab, val, semiConfig(method, unl, workers))
				if err != nil {
					t.Fatal(err)
				}
				ws = append(ws, weightsOf(m))
				hs = append(hs, res.History)
			}
			sameWeights(t, ws[0], ws[1])
			sameWeights(t, ws[0], ws[2])
			if !reflect.DeepEqual(hs[0], hs[1]) {
				t.Errorf("history with 3 workers differs from 1 worker's:\n%v\n%v", hs[1], hs[0])
			}
			if reflect.DeepEqual(ws[0], weightsOf(sup)) {
				t.Error("semi-supervised training gave the supervised weights")
			}
		})
	}
}

// TestSemiResumeBitIdentical resumes each method from the checkpoint of epoch 1 (through its
// wire form): the final weights and history equal the uninterrupted run's, so the semi stream,
// the Mean Teacher's weights and the ramp-up position are all in the checkpoint. A checkpoint
// of another method, or of supervised training, does not fit (ErrCheckpoint).
func TestSemiResumeBitIdentical(t *testing.T) {
	lab, unl := semiBlobs()
	val := blobs(2, 60)
	ckpts := map[string]*Checkpoint{}
	for _, method := range semiMethods {
		t.Run(method, func(t *testing.T) {
			cfg := semiConfig(method, unl, 1)
			cfg.EarlyStopping.Disabled = true
			full := buildModel(t, richSpec())
			var ck *Checkpoint
			resFull, err := Fit(context.Background(), full, lab, val, cfg, checkpointAt(1, &ck))
			if err != nil {
				t.Fatal(err)
			}
			if ck == nil || ck.Semi == nil {
				t.Fatal("no checkpoint with semi-supervised state at epoch 1")
			}
			ckpts[method] = ck
			resumed := buildModel(t, richSpec())
			cfg.Resume = ck
			resRes, err := Fit(context.Background(), resumed, lab, val, cfg)
			if err != nil {
				t.Fatal(err)
			}
			sameWeights(t, weightsOf(full), weightsOf(resumed))
			if !reflect.DeepEqual(resFull.History, resRes.History) {
				t.Errorf("resumed history differs:\n%v\n%v", resRes.History, resFull.History)
			}
		})
	}
	mismatch := []struct {
		name string
		ck   *Checkpoint
		semi bool
	}{{"vat_checkpoint_pi_config", ckpts[SemiVAT], true}, {"semi_checkpoint_supervised_config", ckpts[SemiPi], false}}
	for _, tc := range mismatch {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ck == nil {
				t.Skip("the checkpoint was not made")
			}
			cfg := semiConfig(SemiPi, unl, 1)
			if !tc.semi {
				cfg.Semi = nil
			}
			cfg.Resume = tc.ck
			if _, err := Fit(context.Background(), buildModel(t, richSpec()), lab, val, cfg); !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("err = %v, want ErrCheckpoint", err)
			}
		})
	}
}

// TestSemiConfigErrors checks that a bad semi config is reported before training.
func TestSemiConfigErrors(t *testing.T) {
	lab, unl := semiBlobs()
	cases := []struct {
		name string
		semi Semi
		spec nn.Spec
		want string
	}{
		{"unknown_method", Semi{Method: "gamma", Unlabeled: unl}, richSpec(), `semi method "gamma": want "vat", "pi", "mean_teacher" or "ladder"`},
		{"ladder_without_noise", Semi{Method: SemiLadder, Unlabeled: unl}, nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: 8}, {Type: nn.LayerBatchNorm}},
			Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3}}}, "needs noise in the hidden layers"},
		{"no_unlabeled_rows", Semi{Method: SemiPi, Unlabeled: Dataset{NumInputs: 6}}, richSpec(), "no unlabeled rows"},
		{"unlabeled_width", Semi{Method: SemiPi, Unlabeled: Dataset{NumInputs: 5, X: make([]float32, 50)}}, richSpec(), "unlabeled data has 5 numeric inputs"},
		{"regression_head", Semi{Method: SemiVAT, Unlabeled: unl}, nn.Spec{NumInputs: 6, Heads: []nn.HeadSpec{{Kind: nn.HeadRegression}}}, "needs a model with one softmax head"},
		{"bad_teacher_decay", Semi{Method: SemiMeanTeacher, Unlabeled: unl, TeacherDecay: 1}, richSpec(), "semi teacher decay"},
		{"negative_weight", Semi{Method: SemiPi, Unlabeled: unl, Weight: -1}, richSpec(), "semi weight -1"},
		{"svrg", Semi{Method: SemiVAT, Unlabeled: unl}, richSpec(), "cannot use the svrg optimizer"},
		{"separate_batches_on_pi", Semi{Method: SemiPi, Unlabeled: unl, SeparateBatches: true}, richSpec(), `semi separate batches is a setting of methods "vat" and "ladder", not "pi"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Epochs: 1, Semi: &tc.semi}
			if tc.name == "svrg" {
				cfg.Optimizer.Name = "svrg"
			}
			lb, val := lab, blobs(2, 10)
			if tc.spec.Heads[0].Kind == nn.HeadRegression {
				lb = Dataset{NumInputs: 6, X: lab.X[:60], Targets: []Target{{Values: make([]float32, 10)}}}
				val = lb
			}
			_, err := Fit(context.Background(), buildModel(t, tc.spec), lb, val, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestSemiSettingsMatter checks that every setting of a method changes the trained weights (a
// setting that is read nowhere, say VAT's Eps when the adversarial direction is lost, would
// leave them unchanged).
func TestSemiSettingsMatter(t *testing.T) {
	lab, unl := semiBlobs()
	val := blobs(2, 60)
	train := func(method string, edit func(*Semi)) [][]float32 {
		cfg := semiConfig(method, unl, 1)
		cfg.Semi.RampupEpochs = -1
		edit(cfg.Semi)
		m := buildModel(t, richSpec())
		if _, err := Fit(context.Background(), m, lab, val, cfg); err != nil {
			t.Fatal(err)
		}
		return weightsOf(m)
	}
	cases := []struct {
		method, name string
		edit         func(*Semi)
	}{
		{SemiVAT, "eps", func(s *Semi) { s.Eps = 0.5 }},
		{SemiVAT, "xi", func(s *Semi) { s.Xi = 1 }},
		{SemiVAT, "entropy", func(s *Semi) { s.Entropy = !s.Entropy }},
		{SemiVAT, "weight", func(s *Semi) { s.Weight = 3 }},
		{SemiVAT, "separate_batches", func(s *Semi) { s.SeparateBatches = true }},
		{SemiPi, "noise", func(s *Semi) { s.Noise = 0.05 }},
		{SemiPi, "weight", func(s *Semi) { s.Weight = 1 }},
		{SemiMeanTeacher, "teacher_decay", func(s *Semi) { s.TeacherDecay = 0.5 }},
		{SemiMeanTeacher, "unlabeled_batch", func(s *Semi) { s.UnlabeledBatch = 8 }},
		{SemiLadder, "noise", func(s *Semi) { s.Noise = 0.05 }},
		{SemiLadder, "weight", func(s *Semi) { s.Weight = 3 }},
	}
	for _, tc := range cases {
		t.Run(tc.method+"/"+tc.name, func(t *testing.T) {
			a := train(tc.method, func(*Semi) {})
			b := train(tc.method, tc.edit)
			if reflect.DeepEqual(a, b) {
				t.Errorf("changing %s left the weights unchanged", tc.name)
			}
		})
	}
}

// TestVATKeepsRunningStats runs one VAT step on a model with batch norm in its trunk and on its
// logits: the running statistics afterwards equal those of one training-mode pass over the
// clean rows (the combined batch, or with SeparateBatches its unlabelled rows), bit for bit, so
// VAT's probe and adversarial passes (perturbed rows) and the separate labelled pass leave them
// alone. With eps large the perturbed batches' statistics differ clearly, so a pass that
// recorded them would show.
func TestVATKeepsRunningStats(t *testing.T) {
	spec := nn.Spec{NumInputs: 6, Layers: []nn.LayerSpec{
		{Type: nn.LayerBatchNorm, Momentum: 0.5},
		{Type: nn.LayerDense, Units: 16, Activation: "relu"},
		{Type: nn.LayerBatchNorm, Momentum: 0.5},
	}, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 3, BatchNorm: true}}}
	lab, unl := semiBlobs()
	b, tg := materialize(lab.Subset([]int{0, 1, 2, 3, 4, 5, 6, 7}))
	const nl, nu = 8, 16
	for _, separate := range []bool{false, true} {
		t.Run(fmt.Sprintf("separate_batches=%v", separate), func(t *testing.T) {
			m := buildModel(t, spec)
			ref := buildModel(t, spec)
			cfg := Config{BatchSize: nl, Seed: 5, Optimizer: optim.Config{LR: 0.01}}
			sr, err := newSemiRun(&Semi{Method: SemiVAT, Unlabeled: unl, UnlabeledBatch: nu, Eps: 4, Entropy: true, SeparateBatches: separate}, cfg, m, nl)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sr.step(b, tg, optim.Progress{Step: 10, StepsPerEpoch: 1}); err != nil {
				t.Fatal(err)
			}
			// The clean pass that keeps the statistics: the combined batch, or its unlabelled rows.
			n := nl + nu
			clean := nn.Batch{Rows: n, X: sr.batch.X[:n*6]}
			if separate {
				clean = nn.Batch{Rows: nu, X: sr.batch.X[nl*6 : n*6]}
			}
			if _, err := ref.LossStep(clean, true, nn.GradDiscard, entropyLoss(3, 0, nil)); err != nil {
				t.Fatal(err)
			}
			got, want := m.Buffers(), ref.Buffers()
			if len(got) != 6 {
				t.Fatalf("%d buffers, want 6 (two trunk batch norms and the head's, mean and variance each)", len(got))
			}
			for i := range got {
				if !reflect.DeepEqual(got[i].Value, want[i].Value) {
					t.Errorf("buffer %s after the VAT step %v, want the clean pass's %v", got[i].Name, got[i].Value[:3], want[i].Value[:3])
				}
			}
		})
	}
}
