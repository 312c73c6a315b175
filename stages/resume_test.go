package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/storetest"
	"github.com/pipe-ml/pipe/pipeline"
)

// resumeRun runs src against store into a new run directory; cancelAt, when set, cancels the
// run (as Ctrl-C does) at the first progress event it accepts. It returns the manifest as read
// back from disk, the run directory and the run's error.
func resumeRun(t *testing.T, store pipeline.Store, src string, cancelAt func(pipeline.Event) bool, overrides ...string) (*pipeline.Manifest, string, error) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	p, err := pipeline.Parse([]byte(src), "resume.toml", ".", registry(t), pipeline.LoadOptions{Overrides: overrides})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	opts := pipeline.RunOptions{Dir: filepath.Join(t.TempDir(), "run"), Mem: mem, Store: store, Version: "test"}
	if cancelAt != nil {
		opts.Progress = func(ev pipeline.Event) {
			if cancelAt(ev) {
				cancel(pipeline.ErrCanceled)
			}
		}
	}
	_, runErr := pipeline.Run(ctx, p, opts)
	b, err := os.ReadFile(filepath.Join(opts.Dir, "manifest.json"))
	if err != nil {
		t.Fatalf("run %v; %v", runErr, err)
	}
	m, err := pipeline.ReadManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m, opts.Dir, runErr
}

// resumeCase is a pipeline whose stage is interrupted and resumed.
type resumeCase struct {
	src string
	// stage is the stage interrupted at the event cancelAt accepts; outputs are the
	// directories of its outputs (in its stage directory) and files its other files that the
	// resumed run must write exactly as an uninterrupted one.
	stage    string
	cancelAt func(pipeline.Event) bool
	outputs  []string
	files    []string
	// resumed and reference are the --set arguments of the resumed run and of the
	// uninterrupted one (other worker counts, say: results do not depend on them).
	resumed, reference []string
	// checkResumed checks the resumed stage's manifest entry: it says what it resumed.
	checkResumed func(t *testing.T, st *pipeline.StageManifest)
	// startEpoch, when set, is the checkpoint's epoch, which the resumed run must log before
	// it trains the next one (a long stage says at once that it continues).
	startEpoch int
}

// testResume interrupts a run of c.src while c.stage trains, runs it again into a new directory
// with the same stage store (the finished stages are read back from it, and c.stage finds its
// checkpoints), and checks that the resumed run's metrics and outputs are those of an
// uninterrupted run with a store of its own, bit for bit.
func testResume(t *testing.T, c resumeCase) {
	t.Helper()
	store := storetest.New()
	m1, _, err := resumeRun(t, store, c.src, c.cancelAt)
	if !errors.Is(err, pipeline.ErrCanceled) {
		t.Fatalf("interrupted run: %v, want canceled", err)
	}
	st1 := m1.Stages[c.stage]
	if st1.CacheKey == "" {
		t.Skip("needs stage keys from the cache executor")
	}
	if st1.Status != pipeline.StatusCanceled {
		t.Fatalf("stage %s %s in the interrupted run, want canceled (the cancel point does not interrupt it)", c.stage, st1.Status)
	}
	ckpts, err := store.List(context.Background(), "checkpoints/"+st1.CacheKey+"/")
	if err != nil || len(ckpts) == 0 {
		t.Fatalf("no checkpoint of %s in the store (%v)", c.stage, err)
	}

	m2, dir2, err := resumeRun(t, store, c.src, nil, c.resumed...)
	if err != nil {
		t.Fatalf("resumed run: %v (%s)", err, m2.Error)
	}
	st2 := m2.Stages[c.stage]
	if st2.Cached || st2.CacheKey != st1.CacheKey {
		t.Fatalf("resumed stage cached %v, key %s (interrupted: %s)", st2.Cached, st2.CacheKey, st1.CacheKey)
	}
	if !m2.Stages["load"].Cached {
		t.Error("the resumed run did not read the finished source back from the store")
	}
	c.checkResumed(t, st2)
	if c.startEpoch > 0 {
		checkResumeLogged(t, dir2, c.stage, c.startEpoch)
	}

	m3, dir3, err := resumeRun(t, storetest.New(), c.src, nil, c.reference...)
	if err != nil {
		t.Fatalf("uninterrupted run: %v (%s)", err, m3.Error)
	}
	for _, n := range m3.StageOrder {
		if !sameMetrics(m2.Stages[n].Metrics, m3.Stages[n].Metrics) {
			t.Errorf("stage %s: metrics of the resumed run differ:\nresumed       %v\nuninterrupted %v", n, m2.Stages[n].Metrics, m3.Stages[n].Metrics)
		}
	}
	stageDir := func(dir string) string { return filepath.Join(dir, "stages", c.stage) }
	for _, out := range c.outputs {
		got, want := bundleFiles(t, filepath.Join(stageDir(dir2), out)), bundleFiles(t, filepath.Join(stageDir(dir3), out))
		if len(want) == 0 {
			t.Fatalf("no files in %s of the uninterrupted run", out)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d files resumed, %d uninterrupted", out, len(got), len(want))
		}
		for name, b := range want {
			if !bytes.Equal(got[name], b) {
				t.Errorf("%s/%s differs between the resumed and the uninterrupted run", out, name)
			}
		}
	}
	for _, f := range c.files {
		got, err := os.ReadFile(filepath.Join(stageDir(dir2), f))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(stageDir(dir3), f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs between the resumed and the uninterrupted run", f)
		}
	}
}

// progressAt accepts the progress event of stage that reaches done units.
func progressAt(stage, unit string, done int64) func(pipeline.Event) bool {
	return func(ev pipeline.Event) bool { return ev.Stage == stage && ev.Unit == unit && ev.Done == done }
}

func infoNumber(st *pipeline.StageManifest, key string) float64 {
	switch v := st.Info[key].(type) {
	case float64:
		return v
	case int:
		return float64(v)
	}
	return -1
}

func hasNote(st *pipeline.StageManifest, part string) bool {
	for _, n := range st.Notes {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}

const resumeDigits = `
[pipeline]
seed = 4
[stages.load]
kind = "dataset"
name = "digits"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
method = "minmax"
`

// checkResumeLogged checks that the run in dir logged, for stage, that it continues after the
// checkpoint of epoch, before its first epoch's record.
func checkResumeLogged(t *testing.T, dir, stage string, epoch int) {
	t.Helper()
	log, err := os.ReadFile(filepath.Join(dir, "log.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for line := range strings.Lines(string(log)) {
		var rec struct {
			Stage   string `json:"stage"`
			Level   string `json:"level"`
			Message string `json:"message"`
			Epoch   *int   `json:"epoch"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Stage != stage || rec.Epoch == nil {
			continue
		}
		if strings.HasPrefix(rec.Message, "continuing from the checkpoint") && rec.Level == "info" {
			if *rec.Epoch != epoch {
				t.Errorf("the resumed run logged the checkpoint of epoch %d, want %d", *rec.Epoch, epoch)
			}
			found = true
			break
		}
		if rec.Message == "epoch" {
			t.Fatalf("the resumed run logged epoch %d of %s before saying it continues from a checkpoint", *rec.Epoch, stage)
		}
	}
	if !found {
		t.Errorf("the resumed run never logged that %s continues from the checkpoint of epoch %d", stage, epoch)
	}
}

// TestResumeTrainStage interrupts a train stage after its epoch 4 of 9: the resumed run
// continues from the checkpoint of epoch 4, and ends with the bundle, history and metrics
// (its own and an evaluation's) of an uninterrupted run.
func TestResumeTrainStage(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	testResume(t, resumeCase{
		src: resumeDigits + `
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 32, dropout = 0.1 } ]
optimizer = { name = "adam", lr = 0.003 }
schedule = { name = "cosine" }
epochs = 9
early_stopping = { patience = 3 }
[stages.eval]
kind = "evaluate"
models = ["model.model"]
tables = ["scale.test"]
`,
		stage:      "model",
		cancelAt:   progressAt("model", "epoch", 4),
		outputs:    []string{"bundle"},
		files:      []string{"history.csv"},
		startEpoch: 4,
		checkResumed: func(t *testing.T, st *pipeline.StageManifest) {
			if e := infoNumber(st, "resumed_from_epoch"); e != 4 || !hasNote(st, "resumed from the checkpoint of epoch 4") {
				t.Errorf("resumed stage: info resumed_from_epoch %v, notes %q; want epoch 4", st.Info["resumed_from_epoch"], st.Notes)
			}
		},
	})
}

// TestResumeEnsembleStage interrupts an ensemble of 4 members, trained one at a time, when two
// have finished: the resumed run (with other worker counts) does not train them again, and
// ends with the ensemble bundle, member histories and metrics of an uninterrupted run (with
// yet other worker counts).
func TestResumeEnsembleStage(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	testResume(t, resumeCase{
		src: resumeDigits + `
[stages.members]
kind = "ensemble"
train = "scale.train"
val = "scale.val"
members = 4
workers = 1
bootstrap = true
feature_fraction = 0.8
vary = { lr = [0.002, 0.01] }
member = { layers = [ { dense = 16 } ], epochs = 4 }
[stages.eval]
kind = "evaluate"
models = ["members.ensemble"]
tables = ["scale.test"]
`,
		stage:     "members",
		cancelAt:  progressAt("members", "members", 2),
		outputs:   []string{"bundle"},
		files:     []string{"members/member_00/history.csv", "members/member_03/history.csv"},
		resumed:   []string{"members.workers=2", "pipeline.workers=2"},
		reference: []string{"members.workers=3", "pipeline.workers=3"},
		checkResumed: func(t *testing.T, st *pipeline.StageManifest) {
			if n := infoNumber(st, "restored_members"); n != 2 || !hasNote(st, "2 finished members taken from their records") {
				t.Errorf("resumed stage: info restored_members %v, notes %q; want 2", st.Info["restored_members"], st.Notes)
			}
			members, _ := st.Info["members"].([]any)
			for i, m := range members {
				info, _ := m.(map[string]any)
				if restored := info["restored"] == true; restored != (i < 2) {
					t.Errorf("member %d: restored %v", i, restored)
				}
			}
		},
	})
}

// TestResumePretrainStage interrupts a denoising autoencoder after its epoch 3 of 7: the
// resumed run continues from epoch 3 and ends with the encoder, the measured corruption and
// the metrics (of a train stage initialised from the encoder too) of an uninterrupted run.
func TestResumePretrainStage(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	testResume(t, resumeCase{
		src: resumeDigits + `
[stages.dae]
kind = "pretrain"
input = "scale.train"
type = "denoising"
layers = [ { dense = 24 } ]
epochs = 7
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
init_from = "dae.encoder"
epochs = 3
`,
		stage:      "dae",
		cancelAt:   progressAt("dae", "epoch", 3),
		outputs:    []string{"encoder"},
		files:      []string{"history.csv"},
		startEpoch: 3,
		checkResumed: func(t *testing.T, st *pipeline.StageManifest) {
			if e := infoNumber(st, "resumed_from_epoch"); e != 3 || !hasNote(st, "resumed from the checkpoint of epoch 3") {
				t.Errorf("resumed stage: info resumed_from_epoch %v, notes %q; want epoch 3", st.Info["resumed_from_epoch"], st.Notes)
			}
			if c, _ := st.Info["corruption"].(map[string]any); c == nil || c["measured"] == nil {
				t.Errorf("no measured corruption in %v", st.Info)
			}
		},
	})
}

// TestResumePseudoLabelStage interrupts a pseudo_label stage after its round 1 of 3: the
// resumed run continues with round 2 and ends with the bundle, pseudo-labels and metrics of
// an uninterrupted run.
func TestResumePseudoLabelStage(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	testResume(t, resumeCase{
		src: resumeDigits + `
[stages.few]
kind = "mask_labels"
input = "scale.train"
per_class = 10
val_per_class = 5
[stages.aug]
kind = "augment"
input = "few.train"
image = { height = 8, width = 8, first = "pixel_0_0" }
shift = 1
[stages.sup]
kind = "train"
train = "aug"
val = "few.val"
layers = [ { dense = 32 } ]
epochs = 20
early_stopping = false
[stages.pseudo]
kind = "pseudo_label"
model = "sup.model"
train = "aug"
val = "few.val"
top_share = 0.5
rounds = 3
epochs = 3
views = 2
keep_best = true
ensemble_decay = 0.5
[stages.eval]
kind = "evaluate"
models = ["pseudo.model"]
tables = ["scale.test"]
`,
		stage:    "pseudo",
		cancelAt: progressAt("pseudo", "rounds", 1),
		outputs:  []string{"bundle"},
		files:    []string{"pseudo_labels.csv"},
		checkResumed: func(t *testing.T, st *pipeline.StageManifest) {
			if r := infoNumber(st, "resumed_from_round"); r != 1 || !hasNote(st, "after 1 finished rounds") {
				t.Errorf("resumed stage: info resumed_from_round %v, notes %q; want 1", st.Info["resumed_from_round"], st.Notes)
			}
		},
	})
}

// TestResumeSetsAsideABadCheckpoint: a train stage whose checkpoint in the store is damaged,
// or is another model's (of the same stage with other layers), logs a warning, trains from the
// start, and ends as an uninterrupted run: never a wrong resume, never a failed stage.
func TestResumeSetsAsideABadCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	src := func(units string) string {
		return resumeDigits + `
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = ` + units + ` } ]
epochs = 5
`
	}
	interrupted := func(src string) (pipeline.Store, string) {
		store := storetest.New()
		m, _, err := resumeRun(t, store, src, progressAt("model", "epoch", 2))
		if !errors.Is(err, pipeline.ErrCanceled) {
			t.Fatalf("interrupted run: %v", err)
		}
		key := m.Stages["model"].CacheKey
		if key == "" {
			t.Skip("needs stage keys from the cache executor")
		}
		return store, "checkpoints/" + key + "/" + trainCheckpointName
	}
	ctx := context.Background()
	_, ref, err := resumeRun(t, storetest.New(), src("24"), nil)
	if err != nil {
		t.Fatal(err)
	}
	otherStore, otherKey := interrupted(src("12"))
	r, err := otherStore.Get(ctx, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	var foreign bytes.Buffer
	if _, err := foreign.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	r.Close()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"damaged", []byte("not a checkpoint")},
		{"another_model", foreign.Bytes()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, key := interrupted(src("24"))
			if err := store.Put(ctx, key, bytes.NewReader(tc.data)); err != nil {
				t.Fatal(err)
			}
			m, dir, err := resumeRun(t, store, src("24"), nil)
			if err != nil {
				t.Fatalf("run with a bad checkpoint: %v", err)
			}
			if st := m.Stages["model"]; st.Info["resumed_from_epoch"] != nil || hasNote(st, "resumed") {
				t.Errorf("resumed from a bad checkpoint: info %v, notes %q", st.Info["resumed_from_epoch"], st.Notes)
			}
			log, err := os.ReadFile(filepath.Join(dir, "log.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(log), "set aside") || !strings.Contains(string(log), `"level":"warn"`) {
				t.Error("no warning that the checkpoint was set aside in log.jsonl")
			}
			got, want := bundleFiles(t, filepath.Join(dir, "stages/model/bundle")), bundleFiles(t, filepath.Join(ref, "stages/model/bundle"))
			if !reflect.DeepEqual(got, want) {
				t.Error("the bundle differs from an uninterrupted run's")
			}
		})
	}
}

// TestCheckpointsGoWhenTheStageFinishes: a finished stage's checkpoints are removed from the
// store, and a stage that is to be computed anew (--no-cache, --refresh, cache = false) does
// not continue from an interrupted attempt's checkpoints.
func TestCheckpointsGoWhenTheStageFinishes(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	src := resumeDigits + `
[stages.model]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 16 } ]
epochs = 8
early_stopping = { patience = 8 }
`
	checkpoints := func(s *storetest.MemStore) int {
		objs, err := s.List(context.Background(), "checkpoints/")
		if err != nil {
			t.Fatal(err)
		}
		return len(objs)
	}
	for _, c := range []struct {
		name      string
		overrides []string
	}{
		{"cache = false", []string{"model.cache=false"}},
		{"refresh", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := storetest.New()
			if _, _, err := resumeRun(t, store, src, progressAt("model", "epoch", 3), c.overrides...); !errors.Is(err, pipeline.ErrCanceled) {
				t.Fatalf("interrupted run: %v", err)
			}
			if checkpoints(store) == 0 {
				t.Fatal("the interrupted training left no checkpoint")
			}
			// Run again, asking for the model to be computed anew.
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			p, err := pipeline.Parse([]byte(src), "resume.toml", ".", registry(t), pipeline.LoadOptions{Overrides: c.overrides})
			if err != nil {
				t.Fatal(err)
			}
			opts := pipeline.RunOptions{Dir: filepath.Join(t.TempDir(), "run"), Mem: mem, Store: store, Version: "test"}
			if c.name == "refresh" {
				opts.Refresh = []string{"model"}
			}
			res, err := pipeline.Run(context.Background(), p, opts)
			mem.AssertSize(t, 0)
			if err != nil {
				t.Fatal(err)
			}
			st := res.Manifest.Stages["model"]
			if _, resumed := st.Info["resumed_from_epoch"]; resumed {
				t.Errorf("the stage continued from the interrupted attempt's checkpoint: %v", st.Info)
			}
			if n := checkpoints(store); n != 0 {
				t.Errorf("%d checkpoint objects left after the stage finished", n)
			}
		})
	}
}

// sameMetrics: equal metrics, bit for bit with pipe's GEMM; within 1e-9 relative with
// OpenBLAS, whose results depend on how a prediction's rows are chunked.
func sameMetrics(a, b map[string]float64) bool {
	if rowIndependentGEMM || len(a) != len(b) {
		return reflect.DeepEqual(a, b)
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || math.Abs(x-y) > 1e-9*math.Max(1, math.Abs(y)) {
			return false
		}
	}
	return true
}
