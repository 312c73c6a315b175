package ensemble

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/metrics"
	"github.com/pipe-ml/pipe/nn/train"
)

// testEpochs keeps the package's tests fast under the race detector.
func testEpochs() int {
	if raceEnabled {
		return 3
	}
	return 6
}

// bagConfig is a bootstrap bag of small MLPs on d inputs and k classes with every feature of
// this package switched on.
func bagConfig(d, k, members int) Config {
	return Config{
		Members:         members,
		Base:            smallMember(d, k, testEpochs()),
		Vary:            Vary{Dropout: Range{0, 0.3}, LR: Range{1e-3, 1e-2}, BatchSize: []int{16, 32}},
		Bootstrap:       true,
		FeatureFraction: 0.75,
	}
}

func modelWeights(m *nn.Model) [][]float32 {
	var out [][]float32
	for _, p := range append(m.Params(), m.Buffers()...) {
		out = append(out, slices.Clone(p.Value))
	}
	return out
}

func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestTrainDeterministicAcrossWorkers(t *testing.T) {
	data := blobs(240, 6, 3, 1)
	trainSet, val := data.Subset(seq(0, 180)), data.Subset(seq(180, 240))
	test := batchOf(blobs(50, 6, 3, 2))
	type result struct {
		weights [][][]float32
		preds   map[string][]float32
		oob     []float32
	}
	run := func(workers, memberWorkers, members int) result {
		cfg := bagConfig(6, 3, members)
		cfg.Workers, cfg.MemberWorkers = workers, memberWorkers
		ens, rep, err := Train(context.Background(), cfg, trainSet, val, 77, Options{})
		if err != nil {
			t.Fatalf("workers %d: %v", workers, err)
		}
		var r result
		for _, m := range ens.Models() {
			r.weights = append(r.weights, modelWeights(m))
		}
		r.preds = map[string][]float32{}
		for _, c := range ens.CombinerNames("out") {
			out, err := ens.Predict(test, c)
			if err != nil {
				t.Fatal(err)
			}
			r.preds[c] = out.Heads[0]
		}
		r.oob = rep.OOB.Heads[0].Pred
		return r
	}
	sameWeights := func(t *testing.T, got, want result) {
		t.Helper()
		for m := range want.weights {
			for p := range want.weights[m] {
				if !bitsEqual(got.weights[m][p], want.weights[m][p]) {
					t.Fatalf("member %d param %d differs", m, p)
				}
			}
		}
	}
	ref := run(1, 1, 4)
	if _, ok := ref.preds[CombinerWeighted]; !ok {
		t.Fatalf("no weighted combiner fitted: combiners %v", ref.preds)
	}
	cases := []struct {
		name                   string
		workers, memberWorkers int
	}{{"workers_2", 2, 1}, {"workers_4", 4, 1}, {"member_workers_2", 2, 2}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := run(tc.workers, tc.memberWorkers, 4)
			sameWeights(t, got, ref)
			for c, want := range ref.preds {
				if !bitsEqual(got.preds[c], want) {
					t.Errorf("combiner %s: predictions differ from Workers = 1", c)
				}
			}
			if !bitsEqual(got.oob, ref.oob) {
				t.Error("OOB predictions differ from Workers = 1")
			}
		})
	}
	// Member i depends on (seed, i) only: the first two members of a 2-member bag are those
	// of the 4-member bag.
	t.Run("members_2", func(t *testing.T) {
		got := run(2, 1, 2)
		ref2 := ref
		ref2.weights = ref.weights[:2]
		sameWeights(t, got, ref2)
	})
}

func seq(lo, hi int) []int {
	out := make([]int, hi-lo)
	for i := range out {
		out[i] = lo + i
	}
	return out
}

// TestTrainOOB recomputes the out-of-bag report from the members' samples and a naive
// per-row average of their predictions.
func TestTrainOOB(t *testing.T) {
	data := blobs(200, 5, 3, 3)
	trainSet, val := data.Subset(seq(0, 150)), data.Subset(seq(150, 200))
	cfg := bagConfig(5, 3, 5)
	const seed = 11
	ens, rep, err := Train(context.Background(), cfg, trainSet, val, seed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := trainSet.Len()
	cfg, _ = cfg.withDefaults()
	sums := make([][3]float64, n)
	counts := make([]int, n)
	models := ens.Models()
	for m := range models {
		s := cfg.sampleRows(n, seed, m)
		if rep.Members[m].OOBRows != len(s.oob) || rep.Members[m].TrainRows != n || rep.Members[m].UniqueRows != n-len(s.oob) {
			t.Errorf("member %d report rows %d/%d/%d, want train %d, unique %d, oob %d", m, rep.Members[m].TrainRows,
				rep.Members[m].UniqueRows, rep.Members[m].OOBRows, n, n-len(s.oob), len(s.oob))
		}
		for _, p := range s.oob {
			r := baseRow(trainSet, p)
			out, err := models[m].Predict(nn.Batch{Rows: 1, X: trainSet.X[r*5 : (r+1)*5]})
			if err != nil {
				t.Fatal(err)
			}
			for c := 0; c < 3; c++ {
				sums[p][c] += float64(out.Heads[0][c])
			}
			counts[p]++
		}
	}
	oob := rep.OOB
	never := 0
	var correct, total int
	i := 0
	for p := 0; p < n; p++ {
		if counts[p] == 0 {
			never++
			continue
		}
		if i >= len(oob.Rows) || oob.Rows[i] != baseRow(trainSet, p) || oob.Members[i] != counts[p] {
			t.Fatalf("OOB row %d: report has row/members %v/%v, want base row %d left out by %d members", i, oob.Rows[i], oob.Members[i], baseRow(trainSet, p), counts[p])
		}
		best := 0
		for c := 0; c < 3; c++ {
			want := sums[p][c] / float64(counts[p])
			if math.Abs(float64(oob.Heads[0].Pred[i*3+c])-want) > 1e-6 {
				t.Fatalf("OOB prediction of row %d class %d: %g, want %g", p, c, oob.Heads[0].Pred[i*3+c], want)
			}
			if sums[p][c] > sums[p][best] {
				best = c
			}
		}
		if int32(best) == trainSet.Targets[0].Labels[baseRow(trainSet, p)] {
			correct++
		}
		total++
		i++
	}
	if i != len(oob.Rows) || never != oob.NeverOOB {
		t.Errorf("report has %d OOB rows and %d never out of bag, want %d and %d", len(oob.Rows), oob.NeverOOB, i, never)
	}
	if got, want := oob.Heads[0].Score, float64(correct)/float64(total); math.Abs(got-want) > 1e-12 {
		t.Errorf("OOB accuracy %.6f, want %.6f", got, want)
	}
	if oob.Heads[0].Metric != "accuracy" {
		t.Errorf("OOB metric %q, want accuracy", oob.Heads[0].Metric)
	}
}

func TestTrainMemberErrors(t *testing.T) {
	data := blobs(120, 4, 2, 4)
	trainSet, val := data.Subset(seq(0, 90)), data.Subset(seq(90, 120))
	boom := errors.New("injected failure")
	failHook := func(bad int, panics bool) func(int) []train.Hook {
		return func(member int) []train.Hook {
			if member != bad {
				return nil
			}
			return []train.Hook{train.OnStep("inject", 0, func(*train.StepInfo) error {
				if panics {
					panic("injected panic")
				}
				return boom
			})}
		}
	}
	invalid := smallMember(4, 2, testEpochs())
	invalid.Spec.Layers = []nn.LayerSpec{{Type: nn.LayerDense, Units: 0}}
	cases := []struct {
		name     string
		policy   string
		min      int
		specs    []Member // nil: the base member
		hooks    func(int) []train.Hook
		wantErr  string
		wantKept int
		dropped  []int
	}{
		{name: "fail_on_hook_error", policy: OnErrorFail, hooks: failHook(2, false), wantErr: "injected failure"},
		{name: "drop_on_hook_error", policy: OnErrorDrop, hooks: failHook(2, false), wantKept: 3, dropped: []int{2}},
		{name: "drop_below_min_members", policy: OnErrorDrop, min: 4, hooks: failHook(1, false), wantErr: "fewer than min_members"},
		{name: "drop_on_panic", policy: OnErrorDrop, hooks: failHook(0, true), wantKept: 3, dropped: []int{0}},
		{name: "fail_on_panic", policy: OnErrorFail, hooks: failHook(3, true), wantErr: "panicked"},
		{name: "drop_invalid_spec", policy: OnErrorDrop, specs: []Member{smallMember(4, 2, testEpochs()), invalid}, wantKept: 2, dropped: []int{1, 3}},
		{name: "fail_invalid_spec", policy: OnErrorFail, specs: []Member{smallMember(4, 2, testEpochs()), invalid}, wantErr: "units"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Members: 4, Base: smallMember(4, 2, testEpochs()), Bootstrap: true, Workers: 2, OnMemberError: tc.policy, MinMembers: tc.min}
			if tc.specs != nil {
				cfg.Base, cfg.Specs = Member{}, tc.specs
			}
			var done atomic.Int32
			ens, rep, err := Train(context.Background(), cfg, trainSet, val, 5, Options{Hooks: tc.hooks, OnMemberDone: func(MemberReport) { done.Add(1) }})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if ens != nil {
					t.Error("an ensemble was returned with the error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(ens.Models()); got != tc.wantKept || rep.Kept != tc.wantKept || rep.Dropped != 4-tc.wantKept {
				t.Fatalf("ensemble has %d members (report kept %d, dropped %d), want %d kept", got, rep.Kept, rep.Dropped, tc.wantKept)
			}
			for i, mr := range rep.Members {
				if want := slices.Contains(tc.dropped, i); mr.Dropped != want || (mr.Err != nil) != want {
					t.Errorf("member %d: dropped %v, err %v; want dropped = %v with an error iff dropped", i, mr.Dropped, mr.Err, want)
				}
				if mr.Dropped && slices.Contains(ens.Names(), mr.Name) {
					t.Errorf("dropped member %s is still in the ensemble %v", mr.Name, ens.Names())
				}
			}
			if tc.hooks != nil && done.Load() != 4 {
				t.Errorf("OnMemberDone called %d times, want 4", done.Load())
			}
			if _, err := ens.Predict(batchOf(val), CombinerWeighted); err != nil {
				t.Errorf("predict with the weighted combiner of the kept members: %v", err)
			}
		})
	}
}

// TestTrainCancel cancels the context from inside member 0 at its third step: every member
// must stop within about one step, Train must return an error wrapping context.Canceled, and
// no goroutine may outlive Train.
func TestTrainCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	data := blobs(400, 4, 2, 5)
	cfg := Config{Members: 6, Base: smallMember(4, 2, 50), Bootstrap: true, Workers: 2}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var after atomic.Int64 // steps completed after the cancellation
	hooks := func(member int) []train.Hook {
		return []train.Hook{train.OnStep("count", 0, func(si *train.StepInfo) error {
			if ctx.Err() != nil {
				after.Add(1)
			}
			if member == 0 && si.Step == 2 {
				cancel()
			}
			return nil
		})}
	}
	_, rep, err := Train(ctx, cfg, data.Subset(seq(0, 300)), data.Subset(seq(300, 400)), 1, Options{Hooks: hooks})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want one wrapping context.Canceled", err)
	}
	// A member's full run is 50 epochs × ceil(300/32) = 500 steps; after the cancel each of the
	// 2 running members may finish only the step it is in (member 0's own step counts).
	if s := after.Load(); s > int64(cfg.Workers) {
		t.Errorf("%d training steps completed after the cancellation; want at most %d", s, cfg.Workers)
	}
	if rep.Kept != 0 {
		t.Errorf("report says %d members kept after cancellation", rep.Kept)
	}
}

// TestFeatureMask checks that a member's outputs do not depend on the columns it does not
// use, and do depend on those it uses.
func TestFeatureMask(t *testing.T) {
	data := blobs(150, 8, 3, 6)
	cfg := Config{Members: 3, Base: smallMember(8, 3, testEpochs()), FeatureFraction: 0.5, Bootstrap: true}
	ens, rep, err := Train(context.Background(), cfg, data.Subset(seq(0, 110)), data.Subset(seq(110, 150)), 3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	probe := batchOf(blobs(20, 8, 3, 7))
	for m, model := range ens.Models() {
		used := rep.Members[m].Features
		if len(used) != 4 {
			t.Fatalf("member %d uses columns %v, want 4 of 8", m, used)
		}
		ref, _ := model.Predict(probe)
		for j := 0; j < 8; j++ {
			moved := nn.Batch{Rows: probe.Rows, X: slices.Clone(probe.X)}
			for r := 0; r < probe.Rows; r++ {
				moved.X[r*8+j] += 3
			}
			got, _ := model.Predict(moved)
			same := bitsEqual(got.Heads[0], ref.Heads[0])
			if slices.Contains(used, j) == same {
				t.Errorf("member %d column %d (used %v): outputs unchanged = %v", m, j, slices.Contains(used, j), same)
			}
		}
	}
}

func TestFeatureMaskRejectsMixingFirstLayer(t *testing.T) {
	cases := []struct {
		name   string
		layers []nn.LayerSpec
		ok     bool
	}{
		{"dense", []nn.LayerSpec{{Type: nn.LayerDense, Units: 4, Activation: "relu"}}, true},
		{"batch_norm_then_dense", []nn.LayerSpec{{Type: nn.LayerBatchNorm}, {Type: nn.LayerDense, Units: 4}}, true},
		{"heads_only", nil, true},
		{"residual_with_projection", []nn.LayerSpec{{Type: nn.LayerResidual, Units: 5}}, true},
		{"residual_identity_skip", []nn.LayerSpec{{Type: nn.LayerResidual, Units: 6}}, false},
		{"layer_norm_first", []nn.LayerSpec{{Type: nn.LayerLayerNorm}, {Type: nn.LayerDense, Units: 4}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := nn.Build(nn.Spec{NumInputs: 6, Layers: tc.layers, Heads: []nn.HeadSpec{{Kind: nn.HeadSoftmax, Classes: 2}}}, memberRand(1, 0, streamBuild))
			if err != nil {
				t.Fatal(err)
			}
			_, err = newInputMask(m, []int{0, 2})
			if (err == nil) != tc.ok {
				t.Errorf("newInputMask error %v, want ok = %v", err, tc.ok)
			}
		})
	}
}

func TestVaryDraws(t *testing.T) {
	base := smallMember(4, 2, 1)
	base.Spec.Layers = append(base.Spec.Layers, nn.LayerSpec{Type: nn.LayerDropout, Rate: 0.5})
	cfg := Config{Members: 200, Base: base, Vary: Vary{Dropout: Range{0.1, 0.4}, LR: Range{1e-4, 1e-2}, BatchSize: []int{8, 64}, Activation: []string{"tanh", "gelu"}}}
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var logLR []float64
	acts := map[string]int{}
	for i := 0; i < cfg.Members; i++ {
		r := cfg.recipe(i, 1)
		d := r.Spec.Layers[0].Dropout
		if d < 0.1 || d > 0.4 || r.Spec.Layers[1].Rate != d {
			t.Fatalf("member %d: dropout %g, dropout layer rate %g; want the same draw in [0.1, 0.4]", i, d, r.Spec.Layers[1].Rate)
		}
		lr := r.Train.Optimizer.LR
		if lr < 1e-4 || lr > 1e-2 {
			t.Fatalf("member %d: lr %g outside [1e-4, 1e-2]", i, lr)
		}
		logLR = append(logLR, math.Log10(lr))
		if b := r.Train.BatchSize; b != 8 && b != 64 {
			t.Fatalf("member %d: batch size %d not in the choices", i, b)
		}
		acts[r.Spec.Layers[0].Activation]++
		if r.Train.Workers != 1 || r.Name == "" {
			t.Fatalf("member %d: workers %d, name %q", i, r.Train.Workers, r.Name)
		}
	}
	// Log-uniform in [1e-4, 1e-2]: log10(lr) is uniform in [−4, −2], mean −3, and a third of the
	// draws fall in each third of the interval. 200 draws: sd of the mean ≈ 0.577/√200 = 0.04.
	var mean float64
	low := 0
	for _, v := range logLR {
		mean += v / float64(len(logLR))
		if v < -4+2.0/3 {
			low++
		}
	}
	if math.Abs(mean+3) > 0.15 || low < 40 || low > 95 {
		t.Errorf("log10(lr) mean %.3f (want −3 ± 0.15), %d of 200 in the lowest third (want ≈ 67)", mean, low)
	}
	if acts["tanh"] < 70 || acts["gelu"] < 70 {
		t.Errorf("activation choices %v: want both drawn about 100 times", acts)
	}
	// Each field has its own stream: adding LR variation does not change the dropout draws.
	noLR := cfg
	noLR.Vary.LR = Range{}
	for i := 0; i < 10; i++ {
		if a, b := cfg.recipe(i, 1).Spec.Layers[0].Dropout, noLR.recipe(i, 1).Spec.Layers[0].Dropout; a != b {
			t.Errorf("member %d: dropout %g with LR varied, %g without", i, a, b)
		}
	}
	// The base spec is not modified.
	if base.Spec.Layers[0].Dropout != 0 || base.Spec.Layers[0].Activation != "relu" {
		t.Errorf("recipe modified the base spec: %+v", base.Spec.Layers[0])
	}
}

func TestConfigRejects(t *testing.T) {
	base := smallMember(4, 2, 1)
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no_recipe", Config{}, "no member recipe"},
		{"both_recipes", Config{Base: base, Specs: []Member{base}}, "both"},
		{"both_samplings", Config{Base: base, Bootstrap: true, Subsample: 0.5}, "choose one"},
		{"subsample_range", Config{Base: base, Subsample: 1.5}, "subsample"},
		{"policy", Config{Base: base, OnMemberError: "retry"}, "on_member_error"},
		{"min_members", Config{Base: base, Members: 2, MinMembers: 3}, "min_members"},
		{"dropout_range", Config{Base: base, Vary: Vary{Dropout: Range{0.2, 1}}}, "vary.dropout"},
		{"lr_log", Config{Base: base, Vary: Vary{LR: Range{0, 0.1}}}, "log-uniform"},
		{"budget", Config{Base: base, MemoryBudget: -1}, "memory budget"},
		{"resume", Config{Base: Member{Spec: base.Spec, Train: train.Config{Resume: &train.Checkpoint{}}}}, "Resume"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Train(context.Background(), tc.cfg, blobs(20, 4, 2, 1), train.Dataset{}, 1, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDiversityByHand(t *testing.T) {
	// Argmax predictions on 4 rows: m0 = [0 1 2 0], m1 = [0 1 1 0], m2 = [1 1 2 2].
	// Disagreements: (m0, m1) 1/4, (m0, m2) 2/4, (m1, m2) 3/4 → mean 0.5.
	onehot := func(classes ...int) []float32 {
		out := make([]float32, 3*len(classes))
		for r, c := range classes {
			out[r*3+c] = 0.9
			out[r*3+(c+1)%3] = 0.1
		}
		return out
	}
	outs := []nn.Outputs{
		{Heads: [][]float32{onehot(0, 1, 2, 0), {1, 2, 3, 4}}, Width: []int{3, 1}},
		{Heads: [][]float32{onehot(0, 1, 1, 0), {1, 2, 3, 4}}, Width: []int{3, 1}},
		{Heads: [][]float32{onehot(1, 1, 2, 2), {1, 2, 3, 4}}, Width: []int{3, 1}},
	}
	heads := []nn.HeadSpec{{Name: "c", Kind: nn.HeadSoftmax, Classes: 3}, {Name: "r", Kind: nn.HeadRegression}}
	got := diversity(heads, outs, 4)
	if math.Abs(got[0]-0.5) > 1e-12 || !math.IsNaN(got[1]) {
		t.Errorf("diversity %v, want [0.5 NaN]", got)
	}
}

// TestReportCombinerGains recomputes the validation scores of the report's combiners and best
// member from the ensemble's own predictions.
func TestReportCombinerGains(t *testing.T) {
	data := blobs(200, 5, 3, 8)
	val := data.Subset(seq(150, 200))
	ens, rep, err := Train(context.Background(), bagConfig(5, 3, 4), data.Subset(seq(0, 150)), val, 2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Seconds <= 0 {
		t.Errorf("report wall time %g s", rep.Seconds)
	}
	for _, m := range rep.Members {
		if !(m.Seconds > 0 && m.Finished > m.Started && m.EstimatedBytes > 0 && m.Epochs > 0 && m.Steps > 0) {
			t.Errorf("member %d report incomplete: %+v", m.Index, m)
		}
	}
	labels := val.Targets[0].Labels[150:200]
	vb := batchOf(val)
	outs, err := ens.MemberOutputs(vb)
	if err != nil {
		t.Fatal(err)
	}
	best := math.Inf(-1)
	for m, o := range outs {
		acc := metrics.Accuracy(labels, o.Heads[0], 3)
		best = max(best, acc)
		if got := rep.Members[m].Val["accuracy"]; math.Abs(got-acc) > 1e-12 {
			t.Errorf("member %d val accuracy %.4f in the report, %.4f recomputed", m, got, acc)
		}
	}
	if len(rep.Combiners) != 3 {
		t.Fatalf("report scores %d combiners, want mean, vote and weighted", len(rep.Combiners))
	}
	for _, cs := range rep.Combiners {
		out, err := ens.Predict(vb, cs.Combiner)
		if err != nil {
			t.Fatal(err)
		}
		acc := metrics.Accuracy(labels, out.Heads[0], 3)
		if math.Abs(cs.Score-acc) > 1e-12 || math.Abs(cs.BestMemberScore-best) > 1e-12 || math.Abs(cs.Gain-(acc-best)) > 1e-12 {
			t.Errorf("%s: report score %.4f best %.4f gain %.4f; recomputed %.4f, %.4f, %.4f", cs.Combiner, cs.Score, cs.BestMemberScore, cs.Gain, acc, best, acc-best)
		}
	}
	div, err := ens.Diversity(val)
	if err != nil {
		t.Fatal(err)
	}
	if div[0] != rep.Diversity[0] || !(div[0] > 0 && div[0] < 1) {
		t.Errorf("diversity %v, report %v: want equal and in (0, 1)", div, rep.Diversity)
	}
}
