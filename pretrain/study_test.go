package pretrain

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
	"github.com/pipe-ml/pipe/nn/train"
)

const mnistSide = 28

// mnistData is MNIST as a row-major matrix scaled to [0, 1].
type mnistData struct {
	X      []float32 // rows × 784
	Labels []int32
}

// loadMNIST reads the first limit rows of MNIST (0: all 70,000; rows 60,000+ are the test
// set) through datasets.Open.
func loadMNIST(t testing.TB, limit int) mnistData {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rd, err := datasets.Open(context.Background(), "mnist", mem, datasets.Options{Limit: int64(limit)})
	if err != nil {
		t.Fatalf("open mnist: %v", err)
	}
	defer rd.Release()
	const px = mnistSide * mnistSide
	var d mnistData
	for rd.Next() {
		rec := rd.RecordBatch()
		n := int(rec.NumRows())
		base := len(d.Labels)
		d.X = append(d.X, make([]float32, n*px)...)
		for p := range px {
			col := rec.Column(p).(*array.Float32).Float32Values()
			for i, v := range col {
				d.X[(base+i)*px+p] = v / 255
			}
		}
		for _, v := range rec.Column(px).(*array.Int64).Int64Values() {
			d.Labels = append(d.Labels, int32(v))
		}
	}
	if err := rd.Err(); err != nil {
		t.Fatalf("read mnist: %v", err)
	}
	return d
}

// studyConfig is one configuration of the 1,000-label study.
type studyConfig struct {
	Seed            uint64
	PerClassTrain   int // labelled training rows per class
	PerClassVal     int // labelled validation rows per class
	PoolRows        int // rows of MNIST's train set used (labelled + unlabelled); 0: 60,000
	UnlabeledRows   int // unlabelled rows (0: every pool row not labelled)
	TestLo, TestHi  int // test rows [TestLo, TestHi)
	Hidden          []int
	Dropout         float64
	MaxShift        int
	MaskRate        float64
	AEEpochs        int
	AEBatch         int
	FineEpochs      int
	FineBatch       int
	FineLR          float64
	Patience        int
	PLRounds        int
	PLEpochs        int
	PLBatch         int
	PLThreshold     float64
	Workers         int
	SkipPseudoLabel bool
}

// studyResult holds the figures of one study run.
type studyResult struct {
	Supervised, Pretrained, PseudoLabelled float64 // test accuracies of arms 1, 2, 3
	SupervisedSec, AESec, FineSec, PLSec   float64
	AEReport                               Report
	PLReport                               SelfTrainReport
}

func (r studyResult) String() string {
	return fmt.Sprintf("arm1 supervised %.4f (%.1fs) | arm2 DAE+fine-tune %.4f (DAE %.1fs, fine %.1fs) | arm3 +pseudo-label %.4f (%.1fs)",
		r.Supervised, r.SupervisedSec, r.Pretrained, r.AESec, r.FineSec, r.PseudoLabelled, r.PLSec)
}

// runStudy runs the three arms on d.
func runStudy(ctx context.Context, t testing.TB, d mnistData, c studyConfig) studyResult {
	t.Helper()
	const px = mnistSide * mnistSide
	pool := c.PoolRows
	if pool == 0 {
		pool = 60_000
	}
	rng := rand.New(rand.NewPCG(c.Seed, 1))
	perm := rng.Perm(pool)
	var trainIdx, valIdx, unlIdx []int
	nTrain, nVal := make([]int, 10), make([]int, 10)
	for _, r := range perm {
		y := d.Labels[r]
		switch {
		case nTrain[y] < c.PerClassTrain:
			nTrain[y]++
			trainIdx = append(trainIdx, r)
		case nVal[y] < c.PerClassVal:
			nVal[y]++
			valIdx = append(valIdx, r)
		default:
			if c.UnlabeledRows == 0 || len(unlIdx) < c.UnlabeledRows {
				unlIdx = append(unlIdx, r)
			}
		}
	}
	testIdx := make([]int, 0, c.TestHi-c.TestLo)
	for r := c.TestLo; r < c.TestHi; r++ {
		testIdx = append(testIdx, r)
	}
	// Labels visible to training: only the labelled rows; every other row is missing.
	visible := make([]int32, len(d.Labels))
	for i := range visible {
		visible[i] = -1
	}
	for _, r := range append(append([]int(nil), trainIdx...), valIdx...) {
		visible[r] = d.Labels[r]
	}
	full := train.Dataset{X: d.X, NumInputs: px, Targets: []train.Target{{Labels: visible}}}
	labelled, val := full, full
	labelled.Index, val.Index = trainIdx, valIdx
	unlabeled := full
	unlabeled.Index = unlIdx
	test := train.Dataset{X: d.X, NumInputs: px, Targets: []train.Target{{Labels: d.Labels}}, Index: testIdx}
	hidden := make([]int32, len(unlIdx))
	for i, r := range unlIdx {
		hidden[i] = d.Labels[r]
	}

	var enc []nn.LayerSpec
	for _, u := range c.Hidden {
		enc = append(enc, nn.LayerSpec{Type: nn.LayerDense, Units: u, Activation: "relu"})
	}
	shift := features.ImageShift{Height: mnistSide, Width: mnistSide, MaxShift: c.MaxShift}
	augment := func(b *nn.Batch, _ *nn.Targets, rng *rand.Rand) { shift.Augment(b.X, b.Rows, px, rng) }
	heads := []nn.HeadSpec{{Name: "digit", Kind: nn.HeadSoftmax, Classes: 10}}
	fineTC := FineTuneConfig(train.Config{Epochs: c.FineEpochs, BatchSize: c.FineBatch, Seed: c.Seed, Workers: c.Workers,
		Optimizer: optim.Config{LR: c.FineLR}, Augment: augment,
		EarlyStopping: train.EarlyStopping{Metric: "val_loss", Patience: c.Patience}})
	// The supervised spec: the encoder's layers (named enc_i) with dropout, then the head.
	supervised := func() nn.Spec {
		layers := make([]nn.LayerSpec, len(enc))
		for i, l := range enc {
			l.Name = fmt.Sprintf("enc_%d", i+1)
			l.Dropout = c.Dropout
			layers[i] = l
		}
		return nn.Spec{NumInputs: px, Layers: layers, Heads: heads}
	}
	var res studyResult

	// Arm 1: supervised only.
	start := time.Now()
	m1, err := nn.Build(supervised(), rand.New(rand.NewPCG(c.Seed, 2)))
	if err != nil {
		t.Fatal(err)
	}
	sr, err := train.Fit(ctx, m1, labelled, val, fineTC)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("arm 1 training: %d epochs, best %d (%s %.4f)", sr.Epochs, sr.BestEpoch, sr.Metric, sr.BestMetric)
	res.Supervised = mustAccuracy(t, m1, test)
	res.SupervisedSec = time.Since(start).Seconds()
	t.Logf("arm 1: %.4f in %.1fs", res.Supervised, res.SupervisedSec)

	// Arm 2: denoising autoencoder on every pool row (labels unused), then fine-tuning.
	start = time.Now()
	aeData := full
	aeData.Index = append(append(append([]int(nil), trainIdx...), valIdx...), unlIdx...)
	cfg := AutoencoderConfig{Encoder: enc, Type: TypeDenoising, Corruption: Corruption{Kind: CorruptMask, Rate: c.MaskRate}}
	aeTC := train.Config{Epochs: c.AEEpochs, BatchSize: c.AEBatch, Seed: c.Seed, Workers: c.Workers,
		EarlyStopping: train.EarlyStopping{Disabled: true}, Schedule: optim.ScheduleConfig{Name: "cosine"}}
	encoder, aeRep, err := TrainAutoencoder(ctx, cfg, train.Dataset{X: d.X, NumInputs: px, Index: aeData.Index}, train.Dataset{X: d.X, NumInputs: px, Index: valIdx}, aeTC)
	if err != nil {
		t.Fatal(err)
	}
	res.AEReport = aeRep
	res.AESec = time.Since(start).Seconds()
	t.Logf("DAE: %.1fs, loss %v val %v, measured mask %.4f", res.AESec, aeRep.TrainLoss, aeRep.ValLoss, aeRep.MeasuredCorruption)
	start = time.Now()
	m2, err := nn.Build(supervised(), rand.New(rand.NewPCG(c.Seed, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InitFrom(m2, encoder); err != nil {
		t.Fatal(err)
	}
	fr, err := train.Fit(ctx, m2, labelled, val, fineTC)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("arm 2 fine-tuning: %d epochs, best %d (%s %.4f)", fr.Epochs, fr.BestEpoch, fr.Metric, fr.BestMetric)
	res.Pretrained = mustAccuracy(t, m2, test)
	res.FineSec = time.Since(start).Seconds()
	t.Logf("arm 2: %.4f in %.1fs", res.Pretrained, res.FineSec)
	if c.SkipPseudoLabel {
		return res
	}

	// Arm 3: arm 2 plus self-training with pseudo-labels on the unlabelled rows.
	start = time.Now()
	plTC := fineTC
	plTC.Epochs, plTC.BatchSize = c.PLEpochs, c.PLBatch
	plTC.EarlyStopping = train.EarlyStopping{Disabled: true}
	rep, err := SelfTrain(ctx, m2, labelled, unlabeled, val, plTC, PseudoLabelOptions{Threshold: c.PLThreshold}, c.PLRounds, hidden)
	if err != nil {
		t.Fatal(err)
	}
	res.PLReport = rep
	res.PseudoLabelled = mustAccuracy(t, m2, test)
	res.PLSec = time.Since(start).Seconds()
	for _, r := range rep.Rounds {
		t.Logf("round %d: added %d (pseudo-label accuracy %.4f), val %.3f, %.1fs", r.Round, r.Added, r.PseudoAccuracy, r.ValAccuracy, r.Seconds)
	}
	t.Logf("arm 3: %.4f in %.1fs", res.PseudoLabelled, res.PLSec)
	return res
}

func mustAccuracy(t testing.TB, m *nn.Model, d train.Dataset) float64 {
	t.Helper()
	acc, err := accuracy(m, d, 0)
	if err != nil {
		t.Fatal(err)
	}
	return acc
}

// fullStudy is the configuration of the full MNIST 1,000-label study: 900 training labels +
// 100 validation labels (seeded, 90 + 10 per class), 59,000 unlabelled rows, MNIST's 10,000
// test rows; every arm 784-512-256 relu (dropout 0.3) with ±2-pixel shifts, Adam 1e-3, cosine.
// Measured (-tags openblas, 2 workers, shared 2-core machine): arm 1 supervised 0.9487 (5.5 s),
// arm 2 DAE (10 epochs over the 60,000 training rows, mask 0.25; 40 s) + fine-tuning 0.9399
// (5 s), arm 3 + 10 pseudo-label rounds (threshold 0.9, 8 epochs each) 0.9769 (212 s); 267 s
// in all.
var fullStudy = studyConfig{
	Seed: 1, PerClassTrain: 90, PerClassVal: 10, TestLo: 60_000, TestHi: 70_000,
	Hidden: []int{512, 256}, Dropout: 0.3, MaxShift: 2, MaskRate: 0.25,
	AEEpochs: 10, AEBatch: 256, FineEpochs: 150, FineBatch: 64, FineLR: 1e-3, Patience: 30,
	PLRounds: 10, PLEpochs: 8, PLBatch: 256, PLThreshold: 0.9, Workers: 2,
}

// TestMNISTStudy runs the full study (several minutes; set PIPE_MNIST_STUDY=1, and build with
// -tags openblas for speed).
func TestMNISTStudy(t *testing.T) {
	if os.Getenv("PIPE_MNIST_STUDY") == "" {
		t.Skip("set PIPE_MNIST_STUDY=1 to run the full MNIST 1,000-label study")
	}
	start := time.Now()
	d := loadMNIST(t, 0)
	t.Logf("load: %.1fs", time.Since(start).Seconds())
	cfg := fullStudy
	if js := os.Getenv("PIPE_MNIST_STUDY_JSON"); js != "" { // overrides, for tuning
		if err := json.Unmarshal([]byte(js), &cfg); err != nil {
			t.Fatalf("PIPE_MNIST_STUDY_JSON: %v", err)
		}
	}
	t.Logf("config %+v", cfg)
	res := runStudy(context.Background(), t, d, cfg)
	t.Logf("%v; total %.1fs", res, time.Since(start).Seconds())
}

// ciStudy is the scaled-down study run by TestMNISTPretrainingBeatsSupervised: 200 training
// labels + 100 validation labels from MNIST's first rows, the rest of the pool unlabelled,
// a disjoint block of 2,000 training-set rows as the test set.
func ciStudy(seed uint64) studyConfig {
	c := studyConfig{
		Seed: seed, PerClassTrain: 20, PerClassVal: 10, PoolRows: 6000, TestLo: 8000, TestHi: 10_000,
		Hidden: []int{256, 128}, Dropout: 0.3, MaxShift: 1, MaskRate: 0.25,
		AEEpochs: 10, AEBatch: 128, FineEpochs: 60, FineBatch: 32, FineLR: 1e-3, Patience: 15,
		PLRounds: 4, PLEpochs: 8, PLBatch: 128, PLThreshold: 0.9, Workers: 2,
	}
	if raceEnabled { // ~35 s under -race
		c.PoolRows, c.TestHi = 5000, 9000
		c.AEEpochs, c.PLRounds, c.PLEpochs = 6, 4, 5
	}
	return c
}

func TestMNISTPretrainingBeatsSupervised(t *testing.T) {
	c := ciStudy(1)
	d := loadMNIST(t, c.TestHi)
	res := runStudy(context.Background(), t, d, c)
	t.Logf("%v", res)
	if res.PseudoLabelled < res.Supervised+ciMargin {
		t.Errorf("DAE + pseudo-labels %.4f vs supervised only %.4f: want a lead of at least %.2f", res.PseudoLabelled, res.Supervised, ciMargin)
	}
	if floor := 0.8; res.Supervised < floor-0.1 || res.PseudoLabelled < floor {
		t.Errorf("accuracies %.4f (supervised) and %.4f (DAE + pseudo-labels), want >= %.2f and >= %.2f", res.Supervised, res.PseudoLabelled, floor-0.1, floor)
	}
	if !(res.AEReport.ValLoss[len(res.AEReport.ValLoss)-1] < res.AEReport.ValLoss[0]) {
		t.Errorf("DAE validation loss did not fall: %v", res.AEReport.ValLoss)
	}
}

// TestMNISTCISeeds runs the scaled-down study over seeds 1-3 (tuning aid; set
// PIPE_MNIST_CI_SEEDS=1, optionally PIPE_MNIST_STUDY_JSON with overrides).
func TestMNISTCISeeds(t *testing.T) {
	if os.Getenv("PIPE_MNIST_CI_SEEDS") == "" {
		t.Skip("set PIPE_MNIST_CI_SEEDS=1 to run the scaled-down study over three seeds")
	}
	c := ciStudy(1)
	if js := os.Getenv("PIPE_MNIST_STUDY_JSON"); js != "" {
		if err := json.Unmarshal([]byte(js), &c); err != nil {
			t.Fatal(err)
		}
	}
	d := loadMNIST(t, c.TestHi)
	for seed := uint64(1); seed <= 3; seed++ {
		c.Seed = seed
		start := time.Now()
		res := runStudy(context.Background(), t, d, c)
		t.Logf("seed %d: %v; lead %.4f; %.1fs", seed, res, res.PseudoLabelled-res.Supervised, time.Since(start).Seconds())
	}
}
