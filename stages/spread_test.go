package stages

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/ensemble"
	"github.com/pipe-ml/pipe/internal/storetest"
	"github.com/pipe-ml/pipe/pipeline"
)

const spreadSrc = resumeDigits + `
[stages.members]
kind = "ensemble"
train = "scale.train"
val = "scale.val"
members = 3
bootstrap = true
vary = { lr = [0.002, 0.01] }
member = { layers = [ { dense = 16 } ], epochs = 3 }
[stages.eval]
kind = "evaluate"
models = ["members.ensemble"]
tables = ["scale.test"]
`

// spreadRun runs p with opts into a new directory with a checked allocator, and returns the
// manifest read back from disk, the directory and the run's error.
func spreadRun(t *testing.T, src string, opts pipeline.RunOptions) (*pipeline.Manifest, string, error) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	p, err := pipeline.Parse([]byte(src), "spread.toml", ".", registry(t), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts.Dir, opts.Mem, opts.Version = filepath.Join(t.TempDir(), "run"), mem, "test"
	_, runErr := pipeline.Run(context.Background(), p, opts)
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

// TestSpreadRunIsTheLocalRun runs a pipeline as an engine that spreads it over processes
// does, each step a Run of its own with the store between them: every stage alone (Only), the
// ensemble's members first as parts (Part, in reverse order), then the run directory from the
// store (Remote). Its metrics, bundle and member histories are those of a local run, bit for
// bit, and the ensemble stage took every member from the parts' records, reading the
// tables' targets but not their inputs.
func TestSpreadRunIsTheLocalRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	ref, refDir, err := spreadRun(t, spreadSrc, pipeline.RunOptions{Store: storetest.New()})
	if err != nil {
		t.Fatal(err)
	}

	store := storetest.New()
	p, err := pipeline.Parse([]byte(spreadSrc), "spread.toml", ".", registry(t), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pipeline.PlanStore(context.Background(), p, pipeline.RunOptions{Store: store, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	remote := &pipeline.RemoteRun{Engine: "test", Stages: map[string]*pipeline.RemoteStage{}}
	// One process's table cache, as a worker's activities share.
	cache := pipeline.NewTableCache(nil)
	defer cache.Close()
	for _, sp := range plan.Stages {
		if sp.Stored {
			t.Fatalf("stage %s is stored in an empty store", sp.Name)
		}
		if want := ref.Stages[sp.Name].CacheKey; sp.Key != want {
			t.Fatalf("stage %s: planned key %s, the local run's %s", sp.Name, sp.Key, want)
		}
		if (sp.Name == "members") != (sp.Parts == 3) || (sp.Name != "members" && sp.Parts != 0) {
			t.Fatalf("stage %s has %d parts", sp.Name, sp.Parts)
		}
		rec := &pipeline.RemoteStage{}
		for i := sp.Parts - 1; i >= 0; i-- {
			var saved []string
			m, _, err := spreadRun(t, spreadSrc, pipeline.RunOptions{Store: store, Only: []string{sp.Name}, Part: &i, TableCache: cache,
				OnCheckpoint: func(stage, name, key string) { saved = append(saved, name) }})
			if err != nil {
				t.Fatalf("stage %s part %d: %v", sp.Name, i, err)
			}
			if len(m.StageOrder) != 4 || m.Stages[sp.Name].Status != pipeline.StatusSucceeded {
				t.Fatalf("part %d ran stages %v", i, m.StageOrder)
			}
			if !contains(saved, memberDoneName(i)) {
				t.Fatalf("part %d saved checkpoints %q, not its member's record", i, saved)
			}
		}
		if sp.Name == "members" {
			// The first part built the dense copies of the train and val tables; the others
			// took them from the cache.
			if s := cache.Stats(); s.ValueMisses != 2 || s.ValueHits != 2*int64(sp.Parts-1) || s.Values != 2 || s.ValueBytes <= 0 {
				t.Errorf("after the members' parts: table cache %+v, want 2 dense copies built and taken %d times", s, 2*(sp.Parts-1))
			}
		}
		m, _, err := spreadRun(t, spreadSrc, pipeline.RunOptions{Store: store, Only: []string{sp.Name}, TableCache: cache})
		if err != nil {
			t.Fatalf("stage %s: %v", sp.Name, err)
		}
		st := m.Stages[sp.Name]
		if st.Cached {
			t.Fatalf("stage %s was read back, not run", sp.Name)
		}
		for _, in := range sp.Inputs {
			if !m.Stages[in].Cached {
				t.Fatalf("stage %s: its input %s ran again instead of being read back", sp.Name, in)
			}
		}
		if sp.Name == "members" && infoNumber(st, "restored_members") != 3 {
			t.Fatalf("the ensemble stage trained members its parts had trained (restored %v)", st.Info["restored_members"])
		}
		if sp.Name == "members" {
			// Built from the parts' records, the ensemble reads the tables' targets only:
			// no dense copy of their inputs, which the local run, training, makes.
			for _, role := range []string{"train", "val"} {
				key := "data_path_" + role
				if got, local := infoPath(st, key), infoPath(ref.Stages[sp.Name], key); got != pathTargets || local != pathDense {
					t.Errorf("%s: %q after the parts, %q in the local run: want %q and %q", key, got, local, pathTargets, pathDense)
				}
			}
		}
		rec.Status, rec.Seconds, rec.Worker, rec.Attempts = st.Status, st.Seconds, "test", 1
		remote.Stages[sp.Name] = rec
	}

	got, dir, err := spreadRun(t, spreadSrc, pipeline.RunOptions{Store: store, Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != pipeline.StatusSucceeded || got.Remote == nil || got.Remote.Engine != "test" {
		t.Fatalf("remote run: status %s, remote %+v", got.Status, got.Remote)
	}
	for _, n := range ref.StageOrder {
		st := got.Stages[n]
		if st.Cached || st.Remote == nil || st.Remote.Worker != "test" {
			t.Errorf("stage %s: cached %v, remote %+v: want the remote record", n, st.Cached, st.Remote)
		}
		if !reflect.DeepEqual(st.Metrics, ref.Stages[n].Metrics) {
			t.Errorf("stage %s: metrics differ:\nspread %v\nlocal  %v", n, st.Metrics, ref.Stages[n].Metrics)
		}
	}
	for _, sub := range []string{"members/bundle", "members/members"} {
		want := dirFiles(t, filepath.Join(refDir, "stages", sub))
		gotFiles := dirFiles(t, filepath.Join(dir, "stages", sub))
		if len(want) == 0 || len(gotFiles) != len(want) {
			t.Fatalf("%s: %d files spread, %d local", sub, len(gotFiles), len(want))
		}
		for name, b := range want {
			if name == "bundle.json" {
				continue // names the run
			}
			if !bytes.Equal(gotFiles[name], b) {
				t.Errorf("%s/%s differs between the spread and the local run", sub, name)
			}
		}
	}
}

// TestEnsembleRecordThatDoesNotFitReadsInputs: when a member's record, which the parts
// saved, holds predictions of other rows than the stage's, the stage built from the records
// reads the tables' inputs after all (the member's predictions are computed again), with the
// local run's metrics and bundle, bit for bit.
func TestEnsembleRecordThatDoesNotFitReadsInputs(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	ref, refDir, err := spreadRun(t, spreadSrc, pipeline.RunOptions{Store: storetest.New()})
	if err != nil {
		t.Fatal(err)
	}
	store := storetest.New()
	for _, name := range []string{"load", "split", "scale"} {
		if _, _, err := spreadRun(t, spreadSrc, pipeline.RunOptions{Store: store, Only: []string{name}}); err != nil {
			t.Fatalf("stage %s: %v", name, err)
		}
	}
	keys := map[string]string{}
	for i := range 3 {
		if _, _, err := spreadRun(t, spreadSrc, pipeline.RunOptions{Store: store, Only: []string{"members"}, Part: &i,
			OnCheckpoint: func(stage, name, key string) { keys[name] = key }}); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
	}
	key := keys[memberDoneName(0)]
	if key == "" {
		t.Fatalf("part 0 saved no record (checkpoints %v)", keys)
	}
	r, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	var f ensemble.FinishedMember
	if err := f.UnmarshalBinary(b); err != nil || !f.HasOutputs {
		t.Fatalf("member 0's record: %v, predictions %v", err, f.HasOutputs)
	}
	f.ValRows++ // predictions of other validation rows
	if b, err = f.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(context.Background(), key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	m, dir, err := spreadRun(t, spreadSrc, pipeline.RunOptions{Store: store, Only: []string{"members"}})
	if err != nil {
		t.Fatal(err)
	}
	st := m.Stages["members"]
	if p := infoPath(st, "data_path_train"); p != pathDense || infoNumber(st, "restored_members") != 3 {
		t.Errorf("data_path_train %q, restored members %v: want the inputs read (%q) and every member from its record", p, st.Info["restored_members"], pathDense)
	}
	if !reflect.DeepEqual(st.Metrics, ref.Stages["members"].Metrics) {
		t.Errorf("metrics differ:\nspread %v\nlocal  %v", st.Metrics, ref.Stages["members"].Metrics)
	}
	want := dirFiles(t, filepath.Join(refDir, "stages", "members", "bundle"))
	got := dirFiles(t, filepath.Join(dir, "stages", "members", "bundle"))
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("bundle: %d files spread, %d local", len(got), len(want))
	}
	for name, b := range want {
		if name != "bundle.json" && !bytes.Equal(got[name], b) {
			t.Errorf("bundle/%s differs between the spread and the local run", name)
		}
	}
}

// infoPath is the path of a data_path_<role> entry of st's info ("" when there is none).
func infoPath(st *pipeline.StageManifest, key string) string {
	m, _ := st.Info[key].(map[string]any)
	p, _ := m["path"].(string)
	return p
}

// TestSpreadRefusesWhatIsMissing: a stage run alone whose input is not in the store fails,
// naming the input and its key; a remote run's failed stage is recorded with its error, and
// a part that does not exist is refused.
func TestSpreadRefusesWhatIsMissing(t *testing.T) {
	store := storetest.New()
	m, _, err := spreadRun(t, spreadSrc, pipeline.RunOptions{Store: store, Only: []string{"split"}})
	if err == nil || !strings.Contains(err.Error(), `stage "load", which stage "split" reads, is not in the stage store`) {
		t.Fatalf("split alone on an empty store: %v", err)
	}
	if m.Stages["split"].Status != pipeline.StatusSkipped || m.Stages["load"].Status != pipeline.StatusFailed {
		t.Fatalf("statuses: load %s, split %s", m.Stages["load"].Status, m.Stages["split"].Status)
	}

	remote := &pipeline.RemoteRun{Engine: "test", Stages: map[string]*pipeline.RemoteStage{
		"load": {Status: pipeline.StatusFailed, Error: "stage \"load\": the worker's disk is full"}}}
	m, _, err = spreadRun(t, spreadSrc, pipeline.RunOptions{Store: store, Remote: remote})
	if err == nil || m.Status != pipeline.StatusFailed || m.Stages["load"].Error != "stage \"load\": the worker's disk is full" ||
		m.Stages["eval"].Status != pipeline.StatusSkipped {
		t.Fatalf("remote run with a failed stage: %v; status %s, load %+v, eval %s", err, m.Status, m.Stages["load"], m.Stages["eval"].Status)
	}
	remote = &pipeline.RemoteRun{Engine: "test", Canceled: true, Stages: map[string]*pipeline.RemoteStage{
		"load": {Status: pipeline.StatusCanceled}}}
	m, _, _ = spreadRun(t, spreadSrc, pipeline.RunOptions{Store: store, Remote: remote})
	if m.Status != pipeline.StatusCanceled || m.ExitCode != pipeline.ExitCanceled || m.Stages["load"].Status != pipeline.StatusCanceled {
		t.Fatalf("canceled remote run: status %s (exit %d), load %s", m.Status, m.ExitCode, m.Stages["load"].Status)
	}

	p, err := pipeline.Parse([]byte(spreadSrc), "spread.toml", ".", registry(t), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []int{-1, 3} {
		_, err = pipeline.Run(context.Background(), p, pipeline.RunOptions{Dir: t.TempDir(), Store: store, Only: []string{"members"}, Part: &part})
		if err == nil || !strings.Contains(err.Error(), "stage members has 3 parts") {
			t.Fatalf("part %d: %v", part, err)
		}
	}
	zero := 0
	_, err = pipeline.Run(context.Background(), p, pipeline.RunOptions{Dir: t.TempDir(), Store: store, Only: []string{"eval"}, Part: &zero})
	if err == nil || !strings.Contains(err.Error(), "does not split into parts") {
		t.Fatalf("a part of an evaluate stage: %v", err)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
